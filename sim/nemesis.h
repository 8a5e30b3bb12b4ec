// Nemesis: the faults of one run. A seed's fault mix (swarm testing), the
// fault schedule (drawn whole before the run, each fault from its own
// sub-seed), and the fault-kind table: how each kind is drawn, applied,
// healed and described.
//
// A new fault kind is an enum value in sim/scenario.proto and one row of
// FaultKinds(): its rate in a seed's mix (0 for script-only kinds), what it
// draws when scheduled, how it is applied and healed. Whatever the fault
// needs at play time must be drawn in `draw` or `fix` and written into the
// ScriptedFault, so the schedule (RunResult::fixed_faults) replays exactly.
#ifndef PARLEY_SIM_NEMESIS_H_
#define PARLEY_SIM_NEMESIS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "core/rng.h"
#include "sim/run_state.h"

namespace parley {
namespace sim {

// The fault mix one seed runs with, in integers (sim/ratio.h): shares in
// parts per million, rates in micro-hertz, times in microseconds.
struct FaultMix {
  uint64_t loss_ppm = 0;
  uint64_t duplicate_ppm = 0;
  int64_t reorder_us = 0;
  uint64_t partition_uhz = 0;
  uint64_t crash_uhz = 0;
  uint64_t bus_uhz = 0;
  int64_t skew_us = 0;
  uint64_t storage_uhz = 0;
  int64_t duration_max_us = 5000000;
};

// What a fault kind may draw from when it is scheduled.
struct FaultPlan {
  const Scenario& scenario;
  const FaultMix& mix;
  std::vector<std::string> servers;  // ServerAddresses(topology)
};

// One row of the fault-kind table.
struct FaultKind {
  ScriptedFault::Kind kind;
  // Faults of this kind per million seconds in a seed's mix (nullptr:
  // scripted only).
  uint64_t (*rate)(const FaultMix& m);
  // A drawn fault's target and amounts, from the fault's own stream (its
  // duration is drawn before). nullptr: nothing to draw.
  void (*draw)(const FaultPlan& plan, SeededRng& rng, ScriptedFault* f);
  // Fills in, drawn fault or scripted, what applying it would otherwise draw
  // at play time (nullptr: nothing). Leaves what the fault already says.
  void (*fix)(const FaultPlan& plan, SeededRng& rng, ScriptedFault* f);
  // Does the fault; false when there is nothing to heal (e.g. an absent client).
  bool (*apply)(RunState& r, const ScriptedFault& f);
  // Undoes it after `duration_s` (nullptr: nothing to undo, or Heal undoes it).
  void (*heal)(RunState& r, const ScriptedFault& f);
  const char* heal_label;  // the heal's event name
  // What the history and the config add to "KIND target for D" (nullptr: nothing).
  std::string (*describe)(const ScriptedFault& f);
};

// Every fault kind, one row each.
const std::vector<FaultKind>& FaultKinds();
// The row of `kind` (nullptr: unknown).
const FaultKind* FindFaultKind(ScriptedFault::Kind kind);
// "KIND target for 1.5s" and whatever the row adds.
std::string DescribeFault(const ScriptedFault& f);

class Nemesis {
 public:
  // A run schedules at most this many drawn faults (absurd rates stop here).
  static constexpr int kMaxDrawnFaults = 10000;

  explicit Nemesis(RunState& r) : r_(r) {}

  // Draws this seed's fault mix and its whole fault schedule (once, before
  // anything else draws): drawn faults and the scenario's script, in time order.
  void Plan();
  const FaultMix& mix() const { return mix_; }
  const std::vector<ScriptedFault>& schedule() const { return schedule_; }
  // Turns the network faults on at the start of chaos and schedules the faults.
  void Schedule();
  // Everything back to normal: the end of chaos.
  void Heal();
  // The run's faults as a fixed, scripted schedule: what the shrinker cuts,
  // and what replays exactly the faults that were applied.
  Faults FixedFaults() const;

 private:
  void DrawMix();
  void Apply(const ScriptedFault& f);

  RunState& r_;
  FaultMix mix_;
  std::vector<ScriptedFault> schedule_;
  bool planned_ = false;
};

}  // namespace sim
}  // namespace parley

#endif  // PARLEY_SIM_NEMESIS_H_
