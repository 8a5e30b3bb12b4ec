// One run: a scenario and a seed, from topology to verdict. Builds the world,
// starts every node and client, plays the workload and the nemesis during the
// chaos phase, heals everything, lets it settle, reads the final state and
// runs the checkers.
#ifndef PARLEY_SIM_SIMULATION_H_
#define PARLEY_SIM_SIMULATION_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "sim/checkers.h"
#include "sim/history.pb.h"
#include "sim/scenario.pb.h"

namespace parley {
namespace sim {

struct RunResult {
  uint64_t seed = 0;
  bool passed = false;
  std::vector<Violation> violations;
  std::string error;  // a scenario the run could not start
  uint64_t events = 0;
  double sim_seconds = 0;
  uint64_t hash = 0;
  // The derived configuration (fault mix included), printed before a run.
  std::string config;
  // The integers the nemesis drew for this seed (FaultMix), by field name.
  std::map<std::string, int64_t> fault_mix;
  // Named counters of interesting paths, declared where they are counted
  // (core/probe.h; ProbeNames() lists them all).
  std::map<std::string, uint64_t> probes;
  // With RunOptions::count_kinds: the events by kind ("timer at client",
  // "message ->gw request ping", ...); they sum to `events`.
  std::map<std::string, uint64_t> event_kinds;
  // What the history holds: sends acked and failed, deliveries to apps.
  uint64_t sends_acked = 0;
  uint64_t sends_failed = 0;
  uint64_t deliveries = 0;
  // Samples for the report's distributions.
  std::vector<double> profile_apply_ms;
  std::vector<double> sync_sizes;
  // Faults the nemesis applied (at_s from the start of chaos).
  std::vector<ScriptedFault> faults;
  double chaos_start_s = 0;  // from the start of the run
  History history;
  std::vector<std::pair<uint64_t, std::string>> trace;  // with trace on
  // The scenario with this seed's faults written out as a fixed schedule
  // (only `faults` is set): replaying it reproduces the fault sequence.
  Scenario fixed_faults;
};

// How far a run is, in simulated time, for a progress line.
struct RunProgress {
  double sim_s = 0;    // from the start of the run
  double total_s = 0;  // where the run will end (the final listing included)
  uint64_t events = 0;
};

struct RunOptions {
  bool trace = false;
  bool keep_history = true;
  // With keep_history: also record what explains the client-visible entries
  // (History.network: lost, blocked, duplicated, delayed and undeliverable
  // envelopes carrying a conversation's message; each DELIVERED entry's
  // origin and gateway). Costs time and memory, so run and replay ask for
  // it and swarm and shrink do not; the run itself is the same either way.
  bool explain = false;
  // Count the run's events by kind (RunResult::event_kinds): where a seed's
  // events go. Only observes; the run and its hash are the same.
  bool count_kinds = false;
  // Told every 100 simulated ms how far the run is (null: the run goes
  // through without stopping). For a progress line: it may not touch the run.
  std::function<void(const RunProgress&)> progress;
};

RunResult RunScenario(const Scenario& scenario, uint64_t seed, const RunOptions& options = {});
// The derived configuration of a run (its fault mix included), without running it.
std::string RunConfig(const Scenario& scenario, uint64_t seed);

// About how much memory one run of `scenario` takes at its peak, in MB
// (measured: some 40 KB per client device, a little per server and group),
// and the field that drives it, e.g. "workload.users=100000".
struct MemoryEstimate {
  uint64_t mb = 0;
  std::string driver;
};
MemoryEstimate EstimateMemory(const Scenario& scenario);

// The built-in scenario: a few hundred users, tens of groups, every fault
// kind, about a minute of simulated chaos.
Scenario DefaultScenario();

// Reads a textproto Scenario; a malformed file's error names line and column.
absl::StatusOr<Scenario> LoadScenario(const std::string& path);
absl::StatusOr<Scenario> ParseScenario(const std::string& text, const std::string& name);

// The names of all probes a run reports (fired or not).
const std::vector<std::string>& ProbeNames();

}  // namespace sim
}  // namespace parley

#endif  // PARLEY_SIM_SIMULATION_H_
