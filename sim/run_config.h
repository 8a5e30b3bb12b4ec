// Run configuration: everything a run derived from its scenario and seed,
// printed before the run starts: topology, workload rates, network, the
// seed's fault mix and every scheduled fault with its amounts.
#ifndef PARLEY_SIM_RUN_CONFIG_H_
#define PARLEY_SIM_RUN_CONFIG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "sim/nemesis.h"
#include "sim/scenario.pb.h"

namespace parley {
namespace sim {

// The first line is the one-line summary; the others the details.
std::string DescribeRun(const Scenario& s, uint64_t seed, const FaultMix& m,
                        const std::vector<ScriptedFault>& schedule);

}  // namespace sim
}  // namespace parley

#endif  // PARLEY_SIM_RUN_CONFIG_H_
