// Final state: what the run left behind, read from the nodes' stores through
// each domain's key layout (core/*/..._keys.h) and from the live nodes, for
// the checkers.
#ifndef PARLEY_SIM_FINAL_STATE_H_
#define PARLEY_SIM_FINAL_STATE_H_

#include "sim/checkers.h"
#include "sim/run_state.h"

namespace parley {
namespace sim {

FinalState ReadFinalState(RunState& r);

}  // namespace sim
}  // namespace parley

#endif  // PARLEY_SIM_FINAL_STATE_H_
