// Nemesis: the faults of one run. A seed's fault mix (swarm testing), the
// schedule of faults during chaos, and the fault-kind table: how each kind
// is applied, healed and described. A new fault kind is an enum value in
// sim/scenario.proto and one row of FaultKinds().
#ifndef PARLEY_SIM_NEMESIS_H_
#define PARLEY_SIM_NEMESIS_H_

#include <string>
#include <vector>

#include "sim/run_state.h"

namespace parley {
namespace sim {

// The fault mix one seed runs with.
struct FaultMix {
  double loss = 0;
  double duplicate = 0;
  double reorder_ms = 0;
  double partition_rate = 0;
  double crash_rate = 0;
  double bus_rate = 0;
  double skew_ms = 0;
  double duration_max_s = 5;
};

// One row of the fault-kind table.
struct FaultKind {
  ScriptedFault::Kind kind;
  // Does the fault; false when there is nothing to heal (e.g. an absent client).
  bool (*apply)(RunState& r, const ScriptedFault& f);
  // Undoes it after `duration_s` (nullptr: nothing to undo, or Heal undoes it).
  void (*heal)(RunState& r, const ScriptedFault& f);
  const char* heal_label;  // the heal's event name
  // What the history and the config say of it (nullptr: kind, target, duration).
  std::string (*describe)(const ScriptedFault& f);
};

// Every fault kind, one row each, in enum order.
const std::vector<FaultKind>& FaultKinds();
// The row of `kind` (nullptr: unknown).
const FaultKind* FindFaultKind(ScriptedFault::Kind kind);
// "KIND target for 1.5s" and whatever the row adds.
std::string DescribeFault(const ScriptedFault& f);

class Nemesis {
 public:
  explicit Nemesis(RunState& r) : r_(r) {}

  // Draws this seed's fault mix (once, before anything else draws).
  void DrawMix();
  const FaultMix& mix() const { return mix_; }
  // Turns the network faults on at the start of chaos and schedules the
  // faults: drawn ones and the scenario's script.
  void Schedule();
  // Everything back to normal: the end of chaos.
  void Heal();
  // The run's faults as a fixed, scripted schedule: what the shrinker cuts.
  Faults FixedFaults() const;

 private:
  void NextFault();
  void Apply(const ScriptedFault& f);

  RunState& r_;
  FaultMix mix_;
};

}  // namespace sim
}  // namespace parley

#endif  // PARLEY_SIM_NEMESIS_H_
