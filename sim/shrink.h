// The shrinker: reduces a failing (scenario, seed) — its faults one by one
// and their durations and amounts, the run's duration and windows, the
// workload's actions, users, groups and devices, the topology's nodes and the
// sends themselves — while the same checker still fails, and returns the
// smallest scenario it found, with its faults as a scripted schedule.
//
// Deterministic: the same scenario, seed and budget give the same steps and
// the same result (it reads no clock; the CLI times the steps).
#ifndef PARLEY_SIM_SHRINK_H_
#define PARLEY_SIM_SHRINK_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "sim/scenario.pb.h"

namespace parley {
namespace sim {

// A rough count of what a scenario asks for: faults, users, groups, seconds,
// nodes and workload kinds (each action's rate per second, rounded up; for
// sends cut by a send_filter, at most the number of sends kept).
uint64_t ScenarioSize(const Scenario& scenario);

// What the shrinker also makes smaller when the size stays the same: the
// sends kept, the faults' seconds and amounts, the settle and offline
// windows. A step is accepted when (ScenarioSize, ShrinkDetail) goes down
// (compared in that order), so shrinking always ends.
struct ShrinkDetail {
  uint64_t sends = 0;      // sends kept (all drawn, no filter: the most there is)
  uint64_t fault_ms = 0;   // the scheduled faults' durations and |amounts|, in ms
  uint64_t window_ms = 0;  // settle_s and offline_s, in ms
  bool operator<(const ShrinkDetail& o) const;
};
ShrinkDetail DetailOf(const Scenario& scenario);

// One accepted step.
struct ShrinkStep {
  int number = 0;           // 1, 2, 3, ...
  std::string removed;      // what it removed, e.g. "fault #3 (CRASH shard1 at 12.0s)"
  uint64_t size_before = 0;
  uint64_t size_after = 0;
  int runs = 0;             // runs spent on it (the rejected tries since the last step, and it)
  int total_runs = 0;       // runs spent so far
};

struct ShrinkResult {
  bool reproduced = false;  // the original failed at all
  std::string checker;      // the checker every accepted step still failed
  Scenario original;        // with its faults written out as a schedule
  Scenario shrunk;
  uint64_t original_size = 0;
  uint64_t shrunk_size = 0;
  int runs = 0;
  std::vector<ShrinkStep> steps;
};

// Spends at most `max_runs` simulation runs; `on_step` hears of each
// accepted step as it is taken.
ShrinkResult Shrink(const Scenario& scenario, uint64_t seed, int max_runs,
                    const std::function<void(const ShrinkStep&)>& on_step);
// The same, each step told as one line (DescribeStep).
ShrinkResult Shrink(const Scenario& scenario, uint64_t seed, int max_runs,
                    const std::function<void(const std::string&)>& progress);

// "step 3: removed fault #2 (CRASH shard1 at 12.0s): size 120 -> 110 (4 runs, 17 so far)".
std::string DescribeStep(const ShrinkStep& step);

}  // namespace sim
}  // namespace parley

#endif  // PARLEY_SIM_SHRINK_H_
