// The orchestrator of one run: builds the topology, schedules the workload
// and the nemesis, runs chaos, heals, settles, reads the final state, runs the
// checkers and gathers the probes. Each idea lives in its own part:
// topology.cc, workload.cc (+ workload_policy.cc), nemesis.cc,
// final_state.cc, probes.cc, run_config.cc and scenario_io.cc.
#include "sim/simulation.h"

#include <algorithm>

#include "core/testing/bugs.h"
#include "sim/final_state.h"
#include "sim/nemesis.h"
#include "sim/probes.h"
#include "sim/ratio.h"
#include "sim/run_config.h"
#include "sim/run_state.h"
#include "sim/topology.h"
#include "sim/workload.h"

namespace parley {
namespace sim {

// Rounded to the microsecond, so a time written as seconds in a schedule
// comes back as the microsecond it was drawn at.
absl::Duration Seconds(double s) { return absl::Microseconds(Micros(s)); }

namespace {

class Simulation {
 public:
  Simulation(const Scenario& scenario, uint64_t seed, const RunOptions& options)
      : r_(scenario, seed, options), workload_(r_), nemesis_(r_) {}

  std::string Config() {
    nemesis_.Plan();
    return DescribeRun(r_.s, r_.seed, nemesis_.mix(), nemesis_.schedule());
  }
  RunResult Run();

 private:
  RunState r_;
  WorkloadDriver workload_;
  Nemesis nemesis_;
};

RunResult Simulation::Run() {
  RunResult result;
  result.seed = r_.seed;
  absl::StatusOr<Bug> bug = r_.s.bug().empty() ? Bug::kNone : ParseBug(r_.s.bug());
  if (!bug.ok()) {
    result.error = std::string(bug.status().message());
    return result;
  }
  ScopedBug planted(*bug);
  World& world = r_.world;
  world.set_trace(r_.options.trace);
  result.config = Config();
  world.set_lose_unsynced_batch(r_.s.faults().lose_unsynced_batch());
  world.OnNodeGone([this](const std::string&, Node* n) { CollectProbes(r_, n); });
  BuildTopology(r_);
  world.OnSend([this](const std::string& from, const std::string&, const Envelope& envelope) {
    workload_.OnServed(from, envelope);
  });
  r_.chaos_start = world.Start() + absl::Seconds(8);
  r_.chaos_end = r_.chaos_start + Seconds(r_.s.workload().duration_s());
  workload_.ScheduleSetup();
  workload_.ScheduleChaos();
  nemesis_.Schedule();
  world.RunUntil(r_.chaos_end);
  nemesis_.Heal();
  world.RunUntil(r_.chaos_end + Seconds(std::max(5.0, r_.s.settle_s())));
  // Settled: every user lists its conversations once more, judged exactly.
  r_.quiet_since_us = absl::ToUnixMicros(world.Now());
  workload_.ListEverything();
  world.RunUntil(world.Now() + absl::Seconds(5));
  workload_.FinishUnanswered();

  FinalState final_state = ReadFinalState(r_);
  std::vector<std::string> names(r_.s.checkers().begin(), r_.s.checkers().end());
  result.violations = RunCheckers(names, r_.recorder.history(), final_state, &result.error);
  if (*bug == Bug::kCanary && r_.seed % 100 == 0) {
    result.violations.push_back({"canary", -1, "the planted canary fails every 100th seed"});
  }
  result.passed = result.error.empty() && result.violations.empty();
  result.events = world.stats().events;
  result.sim_seconds = absl::ToDoubleSeconds(world.Now() - world.Start());
  result.hash = world.hash();
  for (const std::string& address : world.Addresses()) {
    if (Node* n = world.node(address)) CollectProbes(r_, n);
  }
  world.OnNodeGone(nullptr);
  world.OnSend(nullptr);
  for (const std::string& p : ProbeNames()) result.probes[p] += r_.probes[p];
  result.profile_apply_ms = r_.profile_apply_ms;
  result.sync_sizes = r_.sync_sizes;
  result.faults = r_.applied_faults;
  result.chaos_start_s = absl::ToDoubleSeconds(r_.chaos_start - world.Start());
  for (const HistoryEntry& e : r_.recorder.history().entries()) {
    result.sends_acked += e.kind() == HistoryEntry::SEND_ACKED;
    result.sends_failed += e.kind() == HistoryEntry::SEND_FAILED;
    result.deliveries += e.kind() == HistoryEntry::DELIVERED;
  }
  if (r_.options.keep_history) result.history = r_.recorder.history();
  *result.fixed_faults.mutable_faults() = nemesis_.FixedFaults();
  if (r_.options.trace) result.trace = world.trace();
  return result;
}

}  // namespace

std::string RunConfig(const Scenario& scenario, uint64_t seed) {
  Simulation simulation(scenario, seed, RunOptions());
  return simulation.Config();
}

RunResult RunScenario(const Scenario& scenario, uint64_t seed, const RunOptions& options) {
  Simulation simulation(scenario, seed, options);
  return simulation.Run();
}

}  // namespace sim
}  // namespace parley
