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

// Every server address of a topology, in the order faults pick from:
// service replicas (user, friend, group), shards, gateways, kv, registry.
// Known before the nodes are built, so faults can be drawn beforehand.
std::vector<std::string> ServerAddresses(const Topology& t);

}  // namespace sim
}  // namespace parley

#endif  // PARLEY_SIM_TOPOLOGY_H_
