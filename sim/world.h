// World: the simulated universe of one run, a thin layer over Kernel (see
// sim/kernel.h for the scheduler, the node slots and Restart semantics, the
// network's filters and NodeEnv; sim/event_bus.h for the bus). One thread,
// virtual time, one root seed. The scheduler runs message deliveries, timers,
// bus deliveries and the actions of the workload and the nemesis. The network
// has latency and jitter, loss, duplication, reordering and partitions; each
// node has a clock that may be skewed; each store keeps its committed batches
// across a crash (and may lose the last one); the event bus keeps a durable
// log with consumer groups, acks, redelivery and a dedup window (two minutes,
// see EventBus::Options) that can be switched off.
//
// Every processed event is folded into a running hash: same seed, same hash.
#ifndef PARLEY_SIM_WORLD_H_
#define PARLEY_SIM_WORLD_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "core/env.h"
#include "core/rng.h"
#include "fakes/mem_store.h"
#include "sim/kernel.h"

namespace parley {
namespace sim {

class World {
 public:
  using Factory = Kernel::Factory;
  using PartitionId = Kernel::FilterId;

  explicit World(uint64_t seed);
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  uint64_t seed() const { return kernel_.seed(); }
  SeededRng& rng() { return kernel_.rng(); }
  absl::Time Now() const { return kernel_.Now(); }
  absl::Time Start() const { return kernel_.Start(); }

  // ---- nodes
  // `store` may be shared by replicas (a service's database); null: own.
  void AddNode(const std::string& address, Factory factory, MemStore* store = nullptr) {
    kernel_.AddNode(address, std::move(factory), store);
  }
  // Crash of a down node does nothing; Restart of a live node crashes it
  // first (see Kernel). "Bring it back if down" is `if (!IsUp(a)) Restart(a)`.
  void Crash(const std::string& address) { kernel_.Crash(address); }
  void Restart(const std::string& address) { kernel_.Restart(address); }
  bool IsUp(const std::string& address) const { return kernel_.IsUp(address); }
  Node* node(const std::string& address) { return kernel_.node(address); }
  template <typename T>
  T* NodeAs(const std::string& address) {
    return dynamic_cast<T*>(node(address));
  }
  MemStore* store(const std::string& address) { return kernel_.store(address); }
  // The node's disk (see Kernel::disk): where storage faults are injected.
  FaultyStore* disk(const std::string& address) { return kernel_.disk(address); }
  std::vector<std::string> Addresses() const { return kernel_.Addresses(); }
  // Called with every node about to be destroyed (crash, end of run), so its
  // counters can be collected.
  void OnNodeGone(std::function<void(const std::string&, Node*)> fn) {
    kernel_.OnNodeGone(std::move(fn));
  }
  // Called for every envelope a node sends (before loss or delay): a tap for
  // what servers serve, which the checkers judge.
  void OnSend(std::function<void(const std::string& from, const std::string& to, const Envelope&)> fn) {
    kernel_.OnSend(std::move(fn));
  }
  void set_lose_unsynced_batch(bool lose) { kernel_.set_lose_unsynced_batch(lose); }
  void set_network_observer(NetworkObserver* observer) { kernel_.set_network_observer(observer); }

  // ---- faults
  void set_network(const NetworkConfig& config) { kernel_.set_network(config); }
  const NetworkConfig& network() const { return kernel_.network(); }
  // Partitions are filters: each call adds one and returns its id, and
  // Heal(id) removes only that one (another partition still in force stays).
  // Nothing crosses from `from` to `to` (one way; "bus" is the event bus).
  PartitionId Block(const std::string& from, const std::string& to) {
    return kernel_.Block(from, to);
  }
  // Nothing crosses to or from `address`.
  PartitionId Isolate(const std::string& address) { return kernel_.Isolate(address); }
  void Heal(PartitionId id) { kernel_.RemoveFilter(id); }
  // Heals every partition (the end of a run).
  void HealPartitions() { kernel_.RemovePartitions(); }
  bool Partitioned() const { return kernel_.Partitioned(); }
  // `address`'s clock reads `skew` off from now on, and drifts by
  // `drift_ppm` microseconds per simulated second after that.
  void SetSkew(const std::string& address, absl::Duration skew, double drift_ppm = 0) {
    kernel_.SetSkew(address, skew, drift_ppm);
  }
  void ClearSkews() { kernel_.ClearSkews(); }
  void SetBusDedup(bool on) { kernel_.bus().SetDedup(on); }
  void SetBusOutage(bool on) { kernel_.bus().SetOutage(on); }
  // Redelivers the last `count` events of the log to every consumer group.
  void BusStorm(size_t count) { kernel_.bus().Storm(count); }

  // ---- running
  void At(absl::Time when, std::function<void()> action, const char* what = "action") {
    kernel_.Schedule(when, std::move(action), HashString(what), what);
  }
  void After(absl::Duration d, std::function<void()> action, const char* what = "action") {
    At(Now() + d, std::move(action), what);
  }
  void RunUntil(absl::Time until) { kernel_.RunUntil(until); }

  // A request from outside (the final-state reader); runs until answered.
  std::optional<Reply> Call(const std::string& to, const Request& request,
                            uint64_t auth_user_id = 0, absl::Duration max_wait = absl::Seconds(5));

  // ---- determinism
  uint64_t hash() const { return kernel_.hash(); }
  // Keeps (hash after the event, description) of every event when on.
  void set_trace(bool on) { kernel_.set_trace(on); }
  const std::vector<std::pair<uint64_t, std::string>>& trace() const { return kernel_.trace(); }
  // Counts events by kind (Kernel::set_count_kinds); the run is the same.
  void set_count_kinds(bool on) { kernel_.set_count_kinds(on); }
  const std::map<std::string, uint64_t>& kind_counts() const { return kernel_.kind_counts(); }

  const WorldStats& stats() const { return kernel_.stats(); }
  const std::vector<Event>& bus_log() const { return kernel_.bus().log(); }

  Kernel& kernel() { return kernel_; }

 private:
  static constexpr char kOutside[] = "sim.outside";

  Kernel kernel_;
};

}  // namespace sim
}  // namespace parley

#endif  // PARLEY_SIM_WORLD_H_
