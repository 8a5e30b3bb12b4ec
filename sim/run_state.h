// The state one run shares between its parts: the world, the run's random
// streams, the history, what the topology built, and what the workload
// believes of the social graph. Each part (topology, workload, nemesis,
// final state) reads and writes it; the orchestrator (simulation.cc) owns it.
#ifndef PARLEY_SIM_RUN_STATE_H_
#define PARLEY_SIM_RUN_STATE_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "core/proto/rpc.pb.h"
#include "core/rng.h"
#include "fakes/mem_store.h"
#include "sim/history.h"
#include "sim/scenario.pb.h"
#include "sim/simulation.h"
#include "sim/world.h"

namespace parley {
namespace sim {

absl::Duration Seconds(double s);

struct ClientInfo {
  std::string address;
  size_t user_index;
};

struct RunState {
  RunState(const Scenario& scenario, uint64_t seed, const RunOptions& options)
      : s(scenario),
        seed(seed),
        options(options),
        world(seed),
        rng(SeededRng::Derive(seed, "workload")),
        nemesis_rng(SeededRng::Derive(seed, "nemesis")),
        recorder([this] { return world.Now(); }) {}

  const Scenario& s;
  const uint64_t seed;
  const RunOptions options;
  World world;
  SeededRng rng;          // the workload's
  SeededRng nemesis_rng;  // the fault schedule's
  HistoryRecorder recorder;
  absl::Time chaos_start, chaos_end;

  // Topology: replicas of one service share one store (its database).
  MemStore user_store, friend_store, group_store;
  std::vector<std::string> gateways, shards, services;
  std::vector<ClientInfo> clients;
  std::vector<std::string> user_names;

  // The workload's own belief of the social graph (from acknowledged replies).
  std::map<uint64_t, std::set<uint64_t>> friends;
  std::map<uint64_t, std::set<uint64_t>> groups;  // group -> members
  std::map<uint64_t, uint64_t> group_owner;
  std::set<std::pair<uint64_t, uint64_t>> kicked;     // (group, user)
  std::map<uint64_t, std::set<uint64_t>> blocked_by;  // user -> users who blocked it
  std::set<uint64_t> open_groups;
  std::set<std::string> retired;  // devices gone for good

  // What the run observed for the report and the checkers.
  std::vector<ScriptedFault> applied_faults;
  // The network filters the fault being applied added (partitions): removed,
  // these and no others, when that fault heals.
  std::vector<uint64_t> fault_filters;
  std::map<std::string, uint64_t> probes;
  std::vector<double> profile_apply_ms;
  std::vector<double> sync_sizes;
  std::map<std::string, std::vector<double>> samples;  // other sample probes
  std::map<std::pair<std::string, uint64_t>, int64_t> body_served_us;
  int64_t quiet_since_us = INT64_MAX;
};

}  // namespace sim
}  // namespace parley

#endif  // PARLEY_SIM_RUN_STATE_H_
