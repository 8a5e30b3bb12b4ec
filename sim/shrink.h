// The shrinker: reduces a failing (scenario, seed) — its faults, workload,
// topology and windows — while the same checker still fails, and returns the
// smallest scenario it found, with its faults as a scripted schedule.
#ifndef PARLEY_SIM_SHRINK_H_
#define PARLEY_SIM_SHRINK_H_

#include <cstdint>
#include <functional>
#include <string>

#include "sim/scenario.pb.h"

namespace parley {
namespace sim {

// A rough count of what a scenario asks for: faults, users, groups, seconds,
// nodes and workload kinds. The shrinker only accepts strictly smaller ones.
uint64_t ScenarioSize(const Scenario& scenario);

struct ShrinkResult {
  bool reproduced = false;  // the original failed at all
  std::string checker;      // the checker every accepted step still failed
  Scenario original;        // with its faults written out as a schedule
  Scenario shrunk;
  uint64_t original_size = 0;
  uint64_t shrunk_size = 0;
  int runs = 0;
};

ShrinkResult Shrink(const Scenario& scenario, uint64_t seed, int max_runs,
                    const std::function<void(const std::string&)>& progress);

}  // namespace sim
}  // namespace parley

#endif  // PARLEY_SIM_SHRINK_H_
