// Probes: counters of interesting paths, gathered from every node of a run
// (before a crash or restart drops it, and at the end).
#ifndef PARLEY_SIM_PROBES_H_
#define PARLEY_SIM_PROBES_H_

#include "core/env.h"
#include "sim/run_state.h"

namespace parley {
namespace sim {

// Adds `node`'s counters (and its report samples) to the run's.
void CollectProbes(RunState& r, Node* node);

}  // namespace sim
}  // namespace parley

#endif  // PARLEY_SIM_PROBES_H_
