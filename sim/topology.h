// Topology: which nodes a scenario's run has (servers and clients), each
// built through the node factory (core/nodes.h).
#ifndef PARLEY_SIM_TOPOLOGY_H_
#define PARLEY_SIM_TOPOLOGY_H_

#include <string>
#include <vector>

#include "sim/run_state.h"

namespace parley {
namespace sim {

// Adds every server and client of the scenario to the world. The clients'
// second devices are drawn from the workload's stream (as they always were).
void BuildTopology(RunState& r);

// Every server address of the built topology, in the order faults pick from.
std::vector<std::string> ServerAddresses(const RunState& r);

}  // namespace sim
}  // namespace parley

#endif  // PARLEY_SIM_TOPOLOGY_H_
