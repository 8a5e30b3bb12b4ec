// World: the simulated universe of one run. One thread, virtual time, one
// root seed. A scheduler ordered by (time, sequence number) runs message
// deliveries, timers, bus deliveries and the actions of the workload and the
// nemesis. The network has per-link latency and jitter, loss, duplication,
// reordering and partitions; each node has a clock that may be skewed; each
// store keeps its committed batches across a crash (and may lose the last
// one); the event bus keeps a durable log with consumer groups, acks,
// redelivery and a dedup window that can be switched off.
//
// Every processed event is folded into a running hash: same seed, same hash.
#ifndef PARLEY_SIM_WORLD_H_
#define PARLEY_SIM_WORLD_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "core/env.h"
#include "core/rng.h"
#include "fakes/mem_store.h"

namespace parley {
namespace sim {

struct NetworkConfig {
  absl::Duration latency = absl::Milliseconds(1);
  absl::Duration jitter = absl::Milliseconds(1);
  double loss = 0;
  double duplicate = 0;
  // Extra random delay on some messages, which reorders them.
  absl::Duration reorder_jitter = absl::ZeroDuration();
};

struct WorldStats {
  uint64_t events = 0;
  uint64_t messages_sent = 0;
  uint64_t messages_lost = 0;         // loss, partitions, dead receivers
  uint64_t messages_duplicated = 0;
  uint64_t bus_published = 0;
  uint64_t bus_duplicates_let_through = 0;
  uint64_t bus_redeliveries = 0;
  uint64_t fail_stops = 0;            // nodes that stopped themselves (Env::FailStop)
};

class World {
 public:
  using Factory = std::function<std::unique_ptr<Node>(Env*)>;

  explicit World(uint64_t seed);
  ~World();
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  uint64_t seed() const { return seed_; }
  SeededRng& rng() { return rng_; }
  absl::Time Now() const { return now_; }
  absl::Time Start() const { return start_; }

  // ---- nodes
  // `store` may be shared by replicas (a service's database); null: own.
  void AddNode(const std::string& address, Factory factory, MemStore* store = nullptr);
  void Crash(const std::string& address);
  void Restart(const std::string& address);
  bool IsUp(const std::string& address) const;
  Node* node(const std::string& address);
  template <typename T>
  T* NodeAs(const std::string& address) {
    return dynamic_cast<T*>(node(address));
  }
  MemStore* store(const std::string& address);
  std::vector<std::string> Addresses() const;
  // Called with every node about to be destroyed (crash, end of run), so its
  // counters can be collected.
  void OnNodeGone(std::function<void(const std::string&, Node*)> fn) { on_gone_ = std::move(fn); }
  // Called for every envelope a node sends (before loss or delay): a tap for
  // what servers serve, which the checkers judge.
  void OnSend(std::function<void(const std::string& from, const std::string& to, const Envelope&)> fn) {
    on_send_ = std::move(fn);
  }
  void set_lose_unsynced_batch(bool lose) { lose_unsynced_batch_ = lose; }

  // ---- faults
  void set_network(const NetworkConfig& config) { network_ = config; }
  const NetworkConfig& network() const { return network_; }
  // Nothing crosses between `a` and `b` in the given direction(s).
  void Block(const std::string& from, const std::string& to) { blocked_.insert({from, to}); }
  void Isolate(const std::string& address);
  void HealPartitions() { blocked_.clear(); isolated_.clear(); }
  bool Partitioned() const { return !blocked_.empty() || !isolated_.empty(); }
  // `address`'s clock reads `skew` off from now on, and drifts by
  // `drift_ppm` microseconds per simulated second after that.
  void SetSkew(const std::string& address, absl::Duration skew, double drift_ppm = 0);
  void ClearSkews() { skew_.clear(); }
  void SetBusDedup(bool on) { bus_dedup_ = on; }
  void SetBusOutage(bool on) { bus_outage_ = on; }
  // Redelivers the last `count` events of the log to every consumer group.
  void BusStorm(size_t count);

  // ---- running
  void At(absl::Time when, std::function<void()> action, const char* what = "action");
  void After(absl::Duration d, std::function<void()> action, const char* what = "action") {
    At(now_ + d, std::move(action), what);
  }
  void RunUntil(absl::Time until);

  // A request from outside (the final-state reader); runs until answered.
  std::optional<Reply> Call(const std::string& to, const Request& request,
                            uint64_t auth_user_id = 0, absl::Duration max_wait = absl::Seconds(5));

  // ---- determinism
  uint64_t hash() const { return hash_; }
  // Keeps (hash after the event, description) of every event when on.
  void set_trace(bool on) { trace_on_ = on; }
  const std::vector<std::pair<uint64_t, std::string>>& trace() const { return trace_; }

  const WorldStats& stats() const { return stats_; }
  const std::vector<Event>& bus_log() const { return bus_log_; }

 private:
  class NodeEnv;
  struct Slot {
    Factory factory;
    std::unique_ptr<MemStore> own_store;
    MemStore* store = nullptr;
    std::unique_ptr<NodeEnv> env;
    std::unique_ptr<Node> node;
    uint64_t incarnation = 0;
    bool up = false;
  };
  struct Item {
    absl::Time time;
    uint64_t seq;
    std::function<void()> action;
    uint64_t digest;
    const char* what;
  };
  struct Delivery {
    std::string group;
    size_t log_index;
  };

  void Schedule(absl::Time at, std::function<void()> action, uint64_t digest, const char* what);
  void Fold(const Item& item);
  void Transmit(const std::string& from, const std::string& to, Envelope envelope);
  void Deliver(const std::string& to, const Envelope& envelope);
  bool Blocked(const std::string& from, const std::string& to) const;
  absl::Duration Delay();
  void BusPublish(const std::string& from, const Event& event);
  void BusDeliver(const std::string& group, size_t log_index);
  std::string NextMember(const std::string& group);
  void OnNode(const std::string& address, uint64_t incarnation, const std::function<void(Node*)>& fn);

  const uint64_t seed_;
  SeededRng rng_;  // the network's and the bus's randomness
  absl::Time start_;
  absl::Time now_;
  std::vector<Item> heap_;
  uint64_t next_seq_ = 0;
  uint64_t next_timer_id_ = 1;
  std::set<uint64_t> cancelled_timers_;
  std::map<std::string, Slot> slots_;
  std::function<void(const std::string&, Node*)> on_gone_;
  std::function<void(const std::string&, const std::string&, const Envelope&)> on_send_;
  bool lose_unsynced_batch_ = false;

  NetworkConfig network_;
  std::set<std::pair<std::string, std::string>> blocked_;
  std::set<std::string> isolated_;
  struct Skew {
    absl::Duration offset;
    double drift_ppm = 0;
    absl::Time since;
  };
  std::map<std::string, Skew> skew_;
  absl::Duration SkewOf(const std::string& address) const;

  std::vector<Event> bus_log_;
  std::set<std::string> bus_ids_;
  bool bus_dedup_ = true;
  bool bus_outage_ = false;
  std::map<std::string, std::vector<std::string>> groups_;
  std::map<std::string, std::set<std::string>> group_topics_;
  std::map<std::string, uint64_t> group_next_;
  std::map<uint64_t, Delivery> deliveries_;
  uint64_t next_delivery_id_ = 1;
  absl::Duration bus_ack_timeout_ = absl::Seconds(2);

  static constexpr char kOutside[] = "sim.outside";
  uint64_t next_correlation_id_ = 1;
  std::map<uint64_t, Reply> replies_;

  uint64_t hash_ = 0;
  bool trace_on_ = false;
  std::vector<std::pair<uint64_t, std::string>> trace_;
  WorldStats stats_;
};

}  // namespace sim
}  // namespace parley

#endif  // PARLEY_SIM_WORLD_H_
