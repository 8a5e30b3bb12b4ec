// Workload: what the users do. The setup (friends, groups) and, during the
// chaos phase, a Poisson process of actions drawn from the action table by
// rate. A new action is one method and one row of WorkloadActions().
#ifndef PARLEY_SIM_WORKLOAD_H_
#define PARLEY_SIM_WORKLOAD_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/client/client.h"
#include "sim/run_state.h"

namespace parley {
namespace sim {

class WorkloadDriver;

// One row of the action table.
struct WorkloadAction {
  const char* name;  // e.g. "send"
  // The Workload field that sets its rate (a shrinker zeroes it to drop the
  // action), e.g. "send_rate_per_s".
  const char* knob;
  // Actions per second over all users (0: never drawn).
  double (*rate)(const Workload& w);
  void (WorkloadDriver::*run)();
};

// The actions in draw order (the order is part of a seed's meaning).
const std::vector<WorkloadAction>& WorkloadActions();

class WorkloadDriver {
 public:
  explicit WorkloadDriver(RunState& r) : r_(r) {}

  // Schedules the setup: friends at 3 s, groups at 6 s.
  void ScheduleSetup();
  // Starts the action process at the start of chaos.
  void ScheduleChaos();
  // After settling: every user lists its conversations once more.
  void ListEverything();
  // Every request still without a reply goes into the history as such.
  void FinishUnanswered();
  // The simulator's tap on what message shards send (bodies served).
  void OnServed(const std::string& from, const Envelope& envelope);

  // The actions (rows of WorkloadActions()).
  void DoSend();
  void DoProfile();
  void DoRead();
  void DoRecall();
  void DoJoinLeave();
  void DoChurn();
  void DoListFriends();
  void DoRetire();
  void DoFriendChange();
  void DoAttack();    // workload_policy.cc
  void DoModerate();  // workload_policy.cc
  void DoFreshSync();

 private:
  void NextAction();
  Client* OnlineClient(size_t* index);
  Client* OnlineAdversary(size_t* index);
  bool IsAdversary(size_t client_index) const;
  // Every client operation other than a send goes through here, so the
  // history has it (REQUEST) with its outcome for the policy checkers.
  void Issue(size_t client_index, const Request& request, std::function<void(const Reply&)> then,
             bool adversary = false, const std::string& forged = "", uint64_t forged_auth = 0,
             const std::string& forged_from = "");
  // A recent acknowledged send, from the history (for recalls).
  const HistoryEntry* RecentAck(bool of_other_user, uint64_t me);

  struct Pending {
    size_t client_index;
    Request request;
    int64_t invoked_us;
    bool adversary;
    std::string forged;
  };

  RunState& r_;
  std::map<uint64_t, Pending> unanswered_;
  uint64_t next_issue_ = 1;
  uint64_t next_body_ = 1;
};

// Writes what `request` (and its `reply`, if any) says into `e`.
void RecordRequest(HistoryEntry* e, const Request& request, const Reply* reply);

}  // namespace sim
}  // namespace parley

#endif  // PARLEY_SIM_WORKLOAD_H_
