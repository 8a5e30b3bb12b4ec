// FakeCluster: runs several nodes in one unit test, deterministically, on a
// manual clock. Messages are delivered FIFO after a fixed latency; nothing is
// lost, duplicated or reordered unless a test crashes a node (messages to a
// crashed node vanish, as they would on the wire). It also hosts a minimal
// event bus: durable log, dedup by event_id, consumer groups, ack, and
// redelivery of unacked deliveries after a timeout.
#ifndef PARLEY_FAKES_FAKE_CLUSTER_H_
#define PARLEY_FAKES_FAKE_CLUSTER_H_

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
#include "fakes/manual_clock.h"
#include "fakes/mem_store.h"

namespace parley {

class FakeCluster {
 public:
  using Factory = std::function<std::unique_ptr<Node>(Env*)>;

  struct Options {
    uint64_t seed = 1;
    absl::Duration latency = absl::Milliseconds(1);
    absl::Duration bus_ack_timeout = absl::Seconds(2);
  };

  FakeCluster() : FakeCluster(Options()) {}
  explicit FakeCluster(Options options);
  ~FakeCluster();

  // Creates the node at `address` and starts it. The node gets its own store
  // unless `store` is given (replicas of a service sharing one database).
  Node* Add(const std::string& address, Factory factory, MemStore* store = nullptr);
  // The node loses its memory, timers and undelivered messages; its store
  // keeps the committed batches.
  void Crash(const std::string& address);
  // Creates the node again from its factory over the same store and starts it.
  void Restart(const std::string& address);
  bool IsUp(const std::string& address) const;

  Node* node(const std::string& address);
  template <typename T>
  T* NodeAs(const std::string& address) {
    return dynamic_cast<T*>(node(address));
  }
  MemStore& store(const std::string& address);

  absl::Time Now() const { return clock_.Now(); }
  // Runs everything due now, until nothing is.
  void RunUntilIdle() { RunUntil(clock_.Now()); }
  // Runs everything due within `d`, in time order, and leaves the clock there.
  void Advance(absl::Duration d) { RunUntil(clock_.Now() + d); }

  // Sends `request` from a test endpoint and runs until the reply arrives or
  // `max_wait` passes (then DEADLINE_EXCEEDED).
  // An empty `request_id` gets a fresh one; repeating one re-sends a retry.
  Reply Call(const std::string& to, const Request& request, uint64_t auth_user_id = 0,
             absl::Duration max_wait = absl::Seconds(10), const std::string& request_id = "");
  // Sends `request` from the test endpoint without waiting; returns its
  // correlation id for TakeReply.
  uint64_t Send(const std::string& to, const Request& request, uint64_t auth_user_id = 0,
                const std::string& request_id = "");
  // The reply to a Send, once it has arrived.
  std::optional<Reply> TakeReply(uint64_t correlation_id);

  // The next envelope for which `match(to, envelope)` holds is parked instead
  // of delivered, until ReleaseHeld(): a test writes an interleaving by hand.
  using Matcher = std::function<bool(const std::string& to, const Envelope& envelope)>;
  void HoldNext(Matcher match) { hold_matchers_.push_back(std::move(match)); }
  size_t held() const { return held_.size(); }
  void ReleaseHeld();

  // Envelopes (other than replies to Call) sent to the test endpoint.
  static constexpr char kTestAddress[] = "test.endpoint";
  const std::vector<Envelope>& test_inbox() const { return test_inbox_; }

  // Delivers `event` straight to the node at `address` (as a duplicate or a
  // late delivery would arrive). Returns the delivery id.
  uint64_t InjectEvent(const std::string& address, const Event& event);
  // While unreachable, publishes from `address` are lost before the bus.
  void SetBusReachable(const std::string& address, bool reachable);
  // Every distinct event the bus accepted, in order.
  const std::vector<Event>& bus_log() const { return bus_log_; }
  // The bus forgets every event after the first `keep` it accepted, acked or
  // not, as nats-server losing its unsynced tail to a power failure (their ids
  // leave the dedup set too); unacked deliveries of them are dropped.
  void BusLoseTail(size_t keep);
  // Tells the node at `address` that its bus connection came back.
  void BusReconnected(const std::string& address);
  uint64_t messages_sent() const { return messages_sent_; }
  uint64_t unacked_deliveries() const { return deliveries_.size(); }

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
  struct Delivery {
    std::string group;
    Event event;
    std::string member;
  };

  void Schedule(absl::Time at, std::function<void()> action);
  void RunUntil(absl::Time until);
  void Deliver(const std::string& to, const Envelope& envelope);
  void BusPublish(const std::string& from, const Event& event);
  void BusDeliver(const std::string& group, const Event& event);
  void BusAck(uint64_t delivery_id);
  std::string NextMember(const std::string& group);
  // Runs `fn` on the node at `address` if it is still the same incarnation.
  void OnNode(const std::string& address, uint64_t incarnation, std::function<void(Node*)> fn);

  Options options_;
  ManualClock clock_;
  std::map<std::string, Slot> slots_;
  // (time, sequence) -> action: ties broken by scheduling order.
  std::map<std::pair<absl::Time, uint64_t>, std::function<void()>> queue_;
  uint64_t next_seq_ = 0;
  uint64_t next_timer_id_ = 1;
  std::set<uint64_t> cancelled_timers_;

  // Bus.
  std::vector<Event> bus_log_;
  std::set<std::string> bus_event_ids_;
  std::set<std::string> bus_unreachable_;
  std::map<std::string, std::vector<std::string>> groups_;  // group -> members
  std::map<std::string, std::set<std::string>> group_topics_;
  std::map<std::string, uint64_t> group_next_;
  std::map<uint64_t, Delivery> deliveries_;
  uint64_t next_delivery_id_ = 1;

  // Test endpoint.
  uint64_t next_correlation_id_ = 1;
  std::map<uint64_t, Reply> replies_;
  std::vector<Envelope> test_inbox_;
  std::vector<Matcher> hold_matchers_;
  std::vector<std::pair<std::string, Envelope>> held_;
  uint64_t messages_sent_ = 0;
};

}  // namespace parley

#endif  // PARLEY_FAKES_FAKE_CLUSTER_H_
