// Run configuration: the one-line description of everything a run derived
// from its scenario and seed, printed before the run starts.
#ifndef PARLEY_SIM_RUN_CONFIG_H_
#define PARLEY_SIM_RUN_CONFIG_H_

#include <cstdint>
#include <string>

#include "sim/nemesis.h"
#include "sim/scenario.pb.h"

namespace parley {
namespace sim {

std::string DescribeRun(const Scenario& s, uint64_t seed, const FaultMix& m);

}  // namespace sim
}  // namespace parley

#endif  // PARLEY_SIM_RUN_CONFIG_H_
