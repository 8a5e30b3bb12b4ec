// Kernel: the one deterministic mechanism under sim::World and FakeCluster.
// One thread, virtual time, one root seed.
//
//   - A scheduler ordered by (time, sequence number): items due at the same
//     time run in the order they were scheduled. Every item run is folded
//     into a running hash (its time and a digest chosen by whoever scheduled
//     it): same seed, same hash.
//   - Node slots with incarnations. A crash destroys the node (memory, timers,
//     undelivered messages and events of that incarnation are gone); its
//     store keeps the committed batches (and may lose the last one).
//     Restart semantics, the same for World and FakeCluster:
//       Crash(a)   of a down node does nothing;
//       Restart(a) of a down node creates it again from its factory over the
//                  same store and starts it;
//       Restart(a) of a live node crashes it first, then does the above.
//     A caller that means "bring it back if it is down" checks IsUp().
//   - NodeEnv, the one implementation of core's Env over the kernel,
//     including FailStop: the node is crashed once the current callback
//     returns, and restarted a second later unless it is up by then.
//   - Outside endpoints: addresses that are not nodes (a test, the final
//     state reader). Replies sent to them are kept by correlation id; other
//     envelopes go to the endpoint's inbox. Call() sends a request from one
//     and runs the scheduler until the reply arrives or time runs out.
//   - The network: one link model for every link (latency, jitter, loss,
//     duplication, reorder) and a set of delivery filters, each with an id:
//     Block(from, to) and Isolate(a) drop at send time, HoldNext(match)
//     parks the next matching envelope on arrival until ReleaseHeld().
//     RemoveFilter(id) heals only that filter.
//   - The event bus (EventBus) hosted on the network: publishes, acks and
//     deliveries travel with the link model's delay; the pseudo-address "bus"
//     can be blocked or isolated like a node.
#ifndef PARLEY_SIM_KERNEL_H_
#define PARLEY_SIM_KERNEL_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/time/time.h"
#include "core/env.h"
#include "core/rng.h"
#include "fakes/faulty_store.h"
#include "fakes/mem_store.h"
#include "sim/event_bus.h"
#include "sim/ratio.h"

namespace parley {
namespace sim {

// The link model every message, publish, ack and bus delivery goes through.
// The probabilities are given as doubles for the scenario files' sake; the
// kernel turns them into integer parts per million once (see Ppm) and draws
// against those, so no floating-point comparison decides a run.
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

// What an item contributes to the hash and the trace. Exposed so layers
// scheduling their own items digest them the same way.
uint64_t HashMix(uint64_t h, uint64_t x);
uint64_t HashString(absl::string_view s);


// Watches the network's decisions; optional (Kernel::set_network_observer,
// null by default: nothing is told and nothing is spent). It only watches: it
// may not schedule, send or draw, so a run with one is the same run.
class NetworkObserver {
 public:
  virtual ~NetworkObserver() = default;
  // Transmit dropped `envelope`: a partition (`blocked`) or the link's loss.
  virtual void OnLost(const std::string& from, const std::string& to, const Envelope& envelope,
                      bool blocked) = 0;
  // Transmit sent a copy that arrives after `delay` on the link (a second
  // copy of a duplicated envelope has `duplicate` set).
  virtual void OnSent(const std::string& from, const std::string& to, const Envelope& envelope,
                      absl::Duration delay, bool duplicate) = 0;
  // A copy arrived for the node at `to`; `up` false: it is down, and the copy is dropped.
  virtual void OnArrival(const std::string& to, const Envelope& envelope, bool up) = 0;
};

class Kernel {
 public:
  using Factory = std::function<std::unique_ptr<Node>(Env*)>;
  using Matcher = std::function<bool(const std::string& to, const Envelope& envelope)>;
  using FilterId = uint64_t;

  // The pseudo-address of the event bus on the network, for filters.
  static constexpr char kBusAddress[] = "bus";

  struct Options {
    uint64_t seed = 1;
    absl::Time start = absl::FromUnixSeconds(1700000000);
    NetworkConfig network;
    EventBus::Options bus;
  };

  explicit Kernel(Options options);
  // Nodes about to be destroyed while up are reported to OnNodeGone first.
  ~Kernel();
  Kernel(const Kernel&) = delete;
  Kernel& operator=(const Kernel&) = delete;

  uint64_t seed() const { return options_.seed; }
  // The network's and the bus's randomness (nodes have their own).
  SeededRng& rng() { return rng_; }
  absl::Time Now() const { return now_; }
  absl::Time Start() const { return options_.start; }

  // ---- scheduler
  // Runs `action` at `at` (not before now). `digest` and `what` go into the
  // hash and the trace.
  void Schedule(absl::Time at, std::function<void()> action, uint64_t digest, const char* what);
  // Runs every item due by `until`, then leaves the clock at `until`.
  void RunUntil(absl::Time until);
  bool Idle() const { return heap_.empty(); }
  // Items in the scheduler's heap (cancelled timers not yet taken out included).
  size_t pending_items() const { return heap_.size(); }
  // REQUIRES: !Idle().
  absl::Time NextTime() const { return heap_.front().time; }

  // ---- nodes
  // Creates and starts the node at `address`. `store` may be shared by
  // replicas (a service's database); null: the node gets its own.
  void AddNode(const std::string& address, Factory factory, MemStore* store = nullptr);
  void Crash(const std::string& address);
  void Restart(const std::string& address);
  bool IsUp(const std::string& address) const;
  // Null while down or unknown.
  Node* node(const std::string& address);
  MemStore* store(const std::string& address);
  // The node's disk: a FaultyStore over its store, healthy until a nemesis
  // says otherwise. Replicas sharing one store each have their own disk
  // (their own path to the database). Null for an unknown address.
  FaultyStore* disk(const std::string& address);
  std::vector<std::string> Addresses() const;
  uint64_t incarnation(const std::string& address) const;
  void OnNodeGone(std::function<void(const std::string&, Node*)> fn) { on_gone_ = std::move(fn); }
  void OnSend(std::function<void(const std::string&, const std::string&, const Envelope&)> fn) {
    on_send_ = std::move(fn);
  }
  void set_lose_unsynced_batch(bool lose) { lose_unsynced_batch_ = lose; }
  void set_network_observer(NetworkObserver* observer) { network_observer_ = observer; }
  // `address`'s clock reads `skew` off from now on, and drifts by
  // `drift_ppm` microseconds per simulated second after that.
  void SetSkew(const std::string& address, absl::Duration skew, double drift_ppm = 0);
  void ClearSkews() { skew_.clear(); }

  // ---- network
  void set_network(const NetworkConfig& config);
  const NetworkConfig& network() const { return options_.network; }
  // Drops everything sent from `from` to `to` (one way).
  FilterId Block(const std::string& from, const std::string& to);
  // Drops everything sent from or to `address`.
  FilterId Isolate(const std::string& address);
  // Parks the next envelope arriving for which `match` holds (once).
  FilterId HoldNext(Matcher match);
  // Removes one filter; unknown ids (already healed, a used hold) are ignored.
  void RemoveFilter(FilterId id) { filters_.erase(id); }
  // Removes every Block and Isolate filter.
  void RemovePartitions();
  bool Partitioned() const;
  bool Blocked(const std::string& from, const std::string& to) const;
  size_t held() const { return held_.size(); }
  // Sends the parked envelopes on, each after one link delay.
  void ReleaseHeld();
  // Sends `envelope` over the network as `from` (counted, filtered, lossy),
  // leaving `after` from now (a sender busy with a slow disk).
  void Transmit(const std::string& from, const std::string& to, Envelope envelope,
                absl::Duration after = absl::ZeroDuration());

  // ---- outside endpoints
  // `keep_inbox`: keep envelopes other than replies (else dropped).
  void AddEndpoint(const std::string& address, bool keep_inbox);
  // Sends a request from endpoint `from`; returns its correlation id. An
  // empty `request_id` gets "<from>#<correlation id>".
  uint64_t SendRequest(const std::string& from, const std::string& to, const Request& request,
                       uint64_t auth_user_id, const std::string& request_id);
  // Runs until the reply to `correlation_id` is in, `max_wait` passed or
  // nothing is left to run.
  std::optional<Reply> AwaitReply(uint64_t correlation_id, absl::Duration max_wait);
  std::optional<Reply> TakeReply(uint64_t correlation_id);
  const std::vector<Envelope>& inbox(const std::string& endpoint) const;

  // ---- bus
  EventBus& bus() { return bus_; }
  const EventBus& bus() const { return bus_; }
  // Delivers `event` straight to `address` after one link delay, outside any
  // group; returns the delivery id.
  uint64_t InjectEvent(const std::string& address, const Event& event);
  // Tells the node at `address` its bus connection came back.
  void BusReconnected(const std::string& address);

  // ---- determinism
  uint64_t hash() const { return hash_; }
  void set_trace(bool on) { trace_on_ = on; }
  // Counts every event by kind (what ran; for a message, the receiver's role
  // and what it carries, e.g. "message ->gw request ping"; for a timer, its
  // node's role). Only observes: the run, its events and hash are the same.
  void set_count_kinds(bool on) { count_kinds_ = on; }
  const std::map<std::string, uint64_t>& kind_counts() const { return kind_counts_; }
  const std::vector<std::pair<uint64_t, std::string>>& trace() const { return trace_; }
  const WorldStats& stats() const;

 private:
  class NodeEnv;
  class BusHost : public EventBus::Host {
   public:
    explicit BusHost(Kernel* kernel) : kernel_(kernel) {}
    bool MemberUp(const std::string& member) override { return kernel_->IsUp(member); }
    void PublishAcked(const std::string& publisher, const std::string& event_id) override;
    void DeliverEvent(const std::string& member, const Event& event,
                      uint64_t delivery_id) override;
    void ArmAckTimer(uint64_t delivery_id, absl::Duration after) override;

   private:
    Kernel* kernel_;
  };
  struct Slot {
    Factory factory;
    std::unique_ptr<MemStore> own_store;
    MemStore* store = nullptr;
    std::unique_ptr<FaultyStore> disk;  // over `store`; what the node's Env hands out
    std::unique_ptr<NodeEnv> env;
    std::unique_ptr<Node> node;
    uint64_t incarnation = 0;
    bool up = false;
  };
  struct Filter {
    enum Kind { kBlock, kIsolate, kHold } kind;
    std::string from, to;  // kBlock: the link; kIsolate: `from` is the node
    Matcher match;         // kHold
  };
  struct Endpoint {
    bool keep_inbox = false;
    std::vector<Envelope> inbox;
  };
  struct Skew {
    absl::Duration offset;
    double drift_ppm = 0;
    absl::Time since;
  };

  // The scheduler's heap holds small plain entries; what an item does lives
  // in a Task in a pool (tasks_, recycled through free_tasks_), so the heap
  // moves 32 bytes per swap and the common items (messages, timers, bus
  // deliveries) need no std::function and no per-item allocation.
  struct Item {
    absl::Time time;
    uint64_t seq;
    uint32_t task;  // index into tasks_
  };
  // Where a message goes, looked up when it is sent and trusted at delivery
  // while no node or endpoint was added since (address_version_).
  struct Route {
    uint64_t version = 0;
    Endpoint* endpoint = nullptr;
    Slot* slot = nullptr;
  };
  struct Task {
    enum Kind : uint8_t { kAction, kMessage, kTimer, kEvent } kind = kAction;
    uint64_t digest = 0;
    const char* what = "";
    std::function<void()> action;  // kAction
    std::string to;                // kMessage
    Route route;                   // kMessage
    Envelope envelope;             // kMessage
    Slot* slot = nullptr;          // kTimer, kEvent
    uint64_t incarnation = 0;      // kTimer, kEvent
    uint64_t id = 0;               // kTimer: the timer id; kEvent: the delivery id
    Event event;                   // kEvent
  };
  // A pooled task for an item due at `at`; Push() schedules it.
  Task& NewTask(Task::Kind kind, uint64_t digest, const char* what, uint32_t* index);
  void Push(absl::Time at, uint32_t index);
  // A timer that must not run (Env::CancelTimer).
  void CancelTimer(uint64_t id);
  // Takes every cancelled timer out of the heap.
  void CompactCancelled();
  static constexpr size_t kMinCompaction = 64;
  void Run(Task& task);
  std::string KindOf(const Task& task) const;  // for kind_counts()
  void ScheduleMessage(absl::Time at, const std::string& to, Envelope envelope, uint64_t digest);
  void ScheduleEvent(absl::Time at, Slot* slot, const Event& event, uint64_t delivery_id,
                     uint64_t digest);
  Route RouteTo(const std::string& to);
  void Fold(const Item& item, const Task& task);
  absl::Duration Delay();
  // True with probability ppm / 1e6; 0 and 1e6 draw nothing.
  bool Draw(uint32_t ppm);
  void Deliver(const std::string& to, const Route& route, const Envelope& envelope);
  absl::Duration SkewOf(const std::string& address) const;
  FilterId AddFilter(Filter filter);

  Options options_;
  // options_.network's probabilities in parts per million.
  uint32_t loss_ppm_ = 0;
  uint32_t duplicate_ppm_ = 0;
  SeededRng rng_;
  absl::Time now_;
  std::vector<Item> heap_;
  // A deque: a running task's reference stays valid while it schedules more.
  std::deque<Task> tasks_;
  std::vector<uint32_t> free_tasks_;
  uint64_t next_seq_ = 0;
  // The last item run, for the order check in RunUntil.
  static constexpr uint64_t kNoneRun = ~uint64_t{0};
  absl::Time last_run_time_ = absl::InfinitePast();
  uint64_t last_run_seq_ = kNoneRun;

  std::map<std::string, Slot> slots_;
  uint64_t next_timer_id_ = 1;
  // Cancelled timers still in the heap (see CancelTimer). Membership only
  // (never iterated in an order that reaches output), so a hash set cannot
  // reach output.
  absl::flat_hash_set<uint64_t> cancelled_timers_;
  // Bumped by AddNode and AddEndpoint: a Route taken before is looked up again.
  uint64_t address_version_ = 1;
  // RouteTo's answers while address_version_ is routes_version_. Looked up
  // only, never iterated: a hash map's order cannot reach output.
  absl::flat_hash_map<std::string, Route> routes_;
  uint64_t routes_version_ = 0;
  std::function<void(const std::string&, Node*)> on_gone_;
  std::function<void(const std::string&, const std::string&, const Envelope&)> on_send_;
  bool lose_unsynced_batch_ = false;
  NetworkObserver* network_observer_ = nullptr;
  std::map<std::string, Skew> skew_;

  std::map<FilterId, Filter> filters_;  // id order = the order holds are tried
  FilterId next_filter_id_ = 1;
  std::vector<std::pair<std::string, Envelope>> held_;

  std::map<std::string, Endpoint> endpoints_;
  uint64_t next_correlation_id_ = 1;
  std::map<uint64_t, Reply> replies_;

  BusHost bus_host_;
  EventBus bus_;

  uint64_t hash_ = 0;
  bool trace_on_ = false;
  bool count_kinds_ = false;
  std::map<std::string, uint64_t> kind_counts_;
  std::vector<std::pair<uint64_t, std::string>> trace_;
  mutable WorldStats stats_;  // the bus's counters are copied in by stats()
};

}  // namespace sim
}  // namespace parley

#endif  // PARLEY_SIM_KERNEL_H_
