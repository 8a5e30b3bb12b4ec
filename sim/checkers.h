// Checkers: the promises of the core, judged from the history and the final
// state only — never from the core's own bookkeeping. Each returns the first
// violation it finds, naming the offending history entry where there is one
// (and, for no_lost_ack, no_duplicates and order, counting the further
// findings of the same cause in it).
#ifndef PARLEY_SIM_CHECKERS_H_
#define PARLEY_SIM_CHECKERS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "core/proto/entities.pb.h"
#include "core/proto/messaging.pb.h"
#include "sim/history.pb.h"

namespace parley {
namespace sim {

// What the run left behind, read from the nodes' stores after settling.
struct FinalState {
  // conversation -> seq -> message (bodies dropped).
  std::map<std::string, std::map<uint64_t, Message>> messages;
  // (user, group) -> membership intervals by group version.
  std::map<std::pair<uint64_t, uint64_t>, std::vector<MembershipInterval>> intervals;
  std::map<uint64_t, Profile> profiles;
  // group -> user -> member entry.
  std::map<uint64_t, std::map<uint64_t, Member>> members;
  // owner -> list as the friend store renders it, and as kv caches it.
  std::map<uint64_t, FriendList> friend_lists;
  std::map<uint64_t, FriendList> friend_cache;
  // Live (unexpired) presence entries in kv, and the sessions gateways hold.
  std::vector<PresenceRecord> presence;
  std::set<std::tuple<uint64_t, std::string, std::string, uint64_t>> sessions;  // user, device, gw, epoch
  // service -> healthy instance addresses per the registry, and the nodes up.
  std::map<std::string, std::set<std::string>> registry;
  std::map<std::string, std::set<std::string>> live_instances;
  // (conversation, user) -> read cursor.
  std::map<std::pair<std::string, uint64_t>, uint64_t> read_cursors;
  // client address -> user id.
  std::map<std::string, uint64_t> clients;
  // (conversation, seq) -> the last time (us) a message shard sent that
  // message with its body, by push or sync reply (the simulator's tap).
  std::map<std::pair<std::string, uint64_t>, int64_t> body_served_us;
  // Every value of every node's store, one after another: what the store
  // keeps, for "no recalled body anywhere" (empty: not known).
  std::string store_blob;
  // From this time on nothing changed any more (the run had settled): replies
  // to requests sent after it are judged exactly (unread counts).
  int64_t quiet_since_us = INT64_MAX;
  // The shards' recall window and how far server clocks may be off (0: not
  // known; recalls past the window are then not judged).
  int64_t recall_window_us = 0;
  int64_t clock_slack_us = 0;
};

struct Violation {
  std::string checker;
  int64_t entry = -1;  // index into the history, or -1
  std::string explanation;
  // One failure per cause: a checker that finds several violations of one
  // cause (one lost message missing at many devices, one message late at
  // many clients, one message delivered twice to many) reports the first and
  // counts the rest here: how many further findings, at which entries (other
  // than `entry`), and the cause as the explanation names it.
  int further = 0;
  std::vector<int64_t> further_entries;
  std::string cause;
};

using Checker = std::function<std::optional<Violation>(const History&, const FinalState&)>;

// Every checker by name, in a fixed order.
const std::vector<std::pair<std::string, Checker>>& AllCheckers();
// Runs the named checkers (all if `names` is empty); unknown names are an error.
std::vector<Violation> RunCheckers(const std::vector<std::string>& names, const History& history,
                                   const FinalState& state, std::string* error);

// True if `user` may see `message` per its group memberships (always for
// private conversations it takes part in).
bool Visible(const FinalState& state, uint64_t user, const Message& message);

}  // namespace sim
}  // namespace parley

#endif  // PARLEY_SIM_CHECKERS_H_
