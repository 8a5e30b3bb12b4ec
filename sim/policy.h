// The access policy (docs/policy.md) as a model of its own, written from the
// policy and not from the core: it replays the history of granted operations
// and decides, for every request a client made, whether the policy allows it,
// and for what a client was served, whether it was entitled to it then.
//
// What the model knows it learns only from the history: a request's effect
// happened at some instant between its invocation and its reply, so a fact
// (is U a member of G?) is known over a window of time only if no change of it
// could have happened inside that window, and a change whose outcome is
// unknown (no reply, or a transport error) makes the fact unknown from then
// on. Where the model cannot know, it does not judge (kSkip): the checkers
// built on it never guess.
#ifndef PARLEY_SIM_POLICY_H_
#define PARLEY_SIM_POLICY_H_

#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "sim/checkers.h"
#include "sim/history.pb.h"

namespace parley {
namespace sim {

constexpr int64_t kNeverUs = std::numeric_limits<int64_t>::max();

// A boolean fact over time, from the windows of the operations that set it.
class Timeline {
 public:
  // An operation set the fact to `value` at some instant in [from_us, to_us];
  // to_us == kNeverUs: its outcome is unknown (it may take effect any time).
  // `by` names the operation (so judging it can leave its own effect out).
  void Change(int64_t from_us, int64_t to_us, bool value, const void* by = nullptr);
  // The fact's value throughout [a_us, b_us] if the history determines it,
  // leaving out the effect of the operation `excluding`.
  std::optional<bool> During(int64_t a_us, int64_t b_us, const void* excluding = nullptr) const;
  // Whether the fact had been true before a_us (true), could not have been
  // by b_us (false), or may have been.
  std::optional<bool> EverTrue(int64_t a_us, int64_t b_us) const;

 private:
  struct Step {
    int64_t from_us, to_us;
    bool value;
    const void* by;
  };
  std::vector<Step> steps_;
};

// True for reply codes after which the request may or may not have taken
// effect (the reply was lost or the path failed).
bool OutcomeUnknown(int32_t code);

struct Verdict {
  enum Kind { kSkip, kAllow, kForbid };
  Kind kind = kSkip;
  int32_t code = 0;  // kForbid: the refusal the policy documents
  std::string why;
};

// One client request with its outcome: REQUEST entries, and sends/recalls
// (SEND_INVOKED joined with their SEND_ACKED / SEND_FAILED).
struct Op {
  const HistoryEntry* entry = nullptr;  // REQUEST or SEND_INVOKED
  const HistoryEntry* outcome = nullptr;  // the reply's entry (== entry for REQUEST), or null
  std::string kind;  // the operation: "join_group", ..., "send_private", "send_group", "recall"
  uint64_t user = 0;  // the session's user: the one acting, whatever was forged
  int64_t from_us = 0, to_us = kNeverUs;
  bool replied = false;
  int32_t code = 0;  // the reply's code when replied
};

class PolicyModel {
 public:
  struct Options {
    // The shards' recall window (0: recalls past it are not judged) and how
    // far a server clock may be off (skew and drift), so that only recalls
    // clearly past the window are judged.
    int64_t recall_window_us = 0;
    int64_t clock_slack_us = 0;
  };
  explicit PolicyModel(const History& history) : PolicyModel(history, Options()) {}
  PolicyModel(const History& history, Options options);

  const std::vector<Op>& ops() const { return ops_; }
  Verdict Judge(const Op& op) const;

  // Facts over [a, b], when the history determines them.
  std::optional<bool> Member(uint64_t group, uint64_t user, int64_t a, int64_t b) const;
  std::optional<bool> Friends(uint64_t x, uint64_t y, int64_t a, int64_t b) const;
  // Either blocks the other.
  std::optional<bool> Blocked(uint64_t x, uint64_t y, int64_t a, int64_t b) const;
  std::optional<bool> Open(uint64_t group, int64_t a, int64_t b) const;
  std::optional<bool> Banned(uint64_t group, uint64_t user, int64_t a, int64_t b) const;
  std::optional<bool> Dissolved(uint64_t group, int64_t a, int64_t b) const;
  // The creator of a group the history saw created, or 0.
  uint64_t Owner(uint64_t group) const;
  // Whether `user` owns the group throughout [a, b] (ownership moves by
  // transfer_ownership), and whether it was ever a member by b.
  std::optional<bool> Owns(uint64_t group, uint64_t user, int64_t a, int64_t b) const;
  std::optional<bool> EverMember(uint64_t group, uint64_t user, int64_t a, int64_t b) const;
  // The sender of an acknowledged message, or 0.
  uint64_t Sender(const std::string& conversation, uint64_t seq) const;
  // When the recall of (conversation, seq) was acknowledged, or kNeverUs.
  int64_t RecallAckedUs(const std::string& conversation, uint64_t seq) const;
  // The body the history says (conversation, seq) was sent with, or "".
  std::string Body(const std::string& conversation, uint64_t seq) const;
  // Requests that could have made `user` a member of `group` (granted or of
  // unknown outcome, and not forbidden), counted; and those that could have
  // ended a membership.
  int Joins(uint64_t group, uint64_t user) const;
  int Leaves(uint64_t group, uint64_t user) const;

 private:
  void Apply(const Op& op);
  Verdict JudgeUnscoped(const Op& op) const;

  // While judging an operation: its own effect is not evidence.
  mutable const void* judging_ = nullptr;
  std::vector<Op> ops_;
  std::map<std::pair<uint64_t, uint64_t>, Timeline> member_, banned_;
  std::map<std::pair<uint64_t, uint64_t>, Timeline> friends_, blocks_;  // friends_: (low, high)
  std::map<uint64_t, Timeline> open_, dissolved_;
  std::map<uint64_t, uint64_t> owner_;  // the creator
  std::map<std::pair<uint64_t, uint64_t>, Timeline> owns_;
  std::map<std::pair<std::string, uint64_t>, uint64_t> sender_;
  std::map<std::pair<std::string, uint64_t>, std::string> body_;
  std::map<std::pair<std::string, uint64_t>, int64_t> recall_acked_;
  // (conversation, seq) -> when its send was invoked and acked.
  std::map<std::pair<std::string, uint64_t>, std::pair<int64_t, int64_t>> sent_;
  Options options_;
  std::map<std::pair<uint64_t, uint64_t>, int> joins_, leaves_;
};

// The checkers of the access policy (registered in AllCheckers()).
std::optional<Violation> AccessControl(const History& h, const FinalState& s);
std::optional<Violation> Privacy(const History& h, const FinalState& s);
std::optional<Violation> RecallChecker(const History& h, const FinalState& s);

}  // namespace sim
}  // namespace parley

#endif  // PARLEY_SIM_POLICY_H_
