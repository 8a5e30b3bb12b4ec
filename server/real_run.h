// The real runner: one scenario file (the format parley_sim reads) run
// against real processes — nats-server with JetStream, parleyd per role group
// and per gateway, each on its own LevelDB data dir — driven over TCP by the
// reference client, with real faults (kill -9 and restart, a fault-injecting
// TCP proxy between each parleyd and nats-server, nats-server killed and
// restarted on its store), judged by the simulator's delivery checkers on the
// same history format and on the final state read from the LevelDB stores.
//
// What the runner cannot do is refused up front, by name (Unsupported); with
// `drop_unsupported` those parts are left out instead and listed in the
// report. The seed draws every choice the runner makes (the schedule of
// sends, churn and faults, Plan()), so a failing run can be re-run with the
// same schedule; the processes' thread timing is not replayed. See
// docs/real-runs.md.
#ifndef PARLEY_SERVER_REAL_RUN_H_
#define PARLEY_SERVER_REAL_RUN_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "sim/checkers.h"
#include "sim/history.pb.h"
#include "sim/scenario.pb.h"

namespace parley {

// The delivery checkers a real run can feed (history + messages and group
// memberships read from LevelDB). The others need state only the simulator
// sees (caches, presence, the registry's view, probes) or workload steps the
// runner does not drive.
const std::vector<std::string>& RealRunCheckers();

// The planted bugs that are client logic (core/client): planted on the
// runner's own client threads. Every other bug (but the simulator's canary)
// is planted in every parleyd with --planted_bug; a scenario's bug is planted
// in both places, as the simulator plants it everywhere.
const std::vector<std::string>& RealRunBugs();

// Every part of `scenario` the runner cannot honour, one line each, naming
// the field or fault kind and why ("faults.script[2] CLOCK_SKEW: ...").
std::vector<std::string> Unsupported(const sim::Scenario& scenario);

// One step of the schedule, drawn from the seed before anything runs.
struct PlannedStep {
  enum Kind { kSend, kOffline, kOnline, kFault, kFaultEnd };
  double at_s = 0;  // from the start of the workload
  Kind kind = kSend;
  int client = -1;          // kSend/kOffline/kOnline: the device's index
  bool group = false;       // kSend: to a group (else to a friend)
  uint32_t pick = 0;        // kSend: which friend/group (mod how many it has)
  sim::ScriptedFault fault; // kFault/kFaultEnd
  int fault_id = -1;        // kFault/kFaultEnd: pairs a fault's start and end
  std::string Describe() const;
};

// The devices the run has: client.user<N>.d1 for every user, .d2 for the
// users the seed gave a second device.
struct PlannedClient {
  std::string address;
  uint32_t user = 0;
  std::string device;
};

struct Plan {
  std::vector<PlannedClient> clients;
  // user -> the users it befriends at the start, and each group's members
  // (users; the first is the owner).
  std::vector<std::vector<uint32_t>> friends;
  std::vector<std::vector<uint32_t>> groups;
  std::vector<PlannedStep> steps;  // in time order
};

// Deterministic: the same scenario and seed give the same plan.
Plan MakePlan(const sim::Scenario& scenario, uint64_t seed);

struct RealRunOptions {
  sim::Scenario scenario;
  std::string scenario_path;  // for the report
  uint64_t seed = 1;
  std::string parleyd = "server/parleyd";
  std::string nats_server = "/usr/sbin/nats-server";
  std::string work_dir;  // data dirs, logs and report.json go here (created)
  bool drop_unsupported = false;
  // CRASH faults become pauses: SIGSTOP for the fault's duration, then
  // SIGCONT (a frozen process: its sockets stay open, nothing answers). The
  // scenario format has no pause kind of its own.
  bool crash_as_pause = false;
  // Overrides (0: the scenario's): short runs for tests.
  double duration_s = 0;
  double settle_s = 0;
  uint32_t users = 0;
  std::function<void(const std::string&)> progress;
  // Told each parleyd start: its name ("services", "message", "gw.N") and pid.
  std::function<void(const std::string& name, int pid)> started;
};

struct RealProcess {
  std::string name;  // "nats", "services", "message", "gw.1"
  std::string roles;
  std::vector<std::string> logs;  // one per start
  int starts = 0;
};

struct RealRunResult {
  bool passed = false;
  // The checkers' violations, after "process_exit" ones: a parleyd that
  // exited during the run without the runner killing it.
  std::vector<sim::Violation> violations;
  std::vector<std::string> not_applied;  // what drop_unsupported left out
  std::vector<std::string> checkers;     // the checkers run
  sim::History history;
  std::vector<RealProcess> processes;
  uint64_t process_starts = 0;
  uint64_t sent = 0, acked = 0, failed = 0, delivered = 0;
  uint64_t stored_messages = 0;  // read back from the shards' LevelDB
  std::map<std::string, uint64_t> faults_applied;  // kind -> count
  uint64_t proxy_cut = 0, proxy_refused = 0;
  double wall_s = 0;
  std::vector<std::pair<std::string, double>> phases;
  std::string report_path;
  std::string Summary() const;  // one line
};

// Runs it; an error if the scenario is refused (Unsupported, unless
// drop_unsupported) or the processes could not be started.
absl::StatusOr<RealRunResult> RunReal(const RealRunOptions& options);

}  // namespace parley

#endif  // PARLEY_SERVER_REAL_RUN_H_
