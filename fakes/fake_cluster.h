// FakeCluster: runs several nodes in one unit test, deterministically, in
// virtual time. A thin layer over the simulator's kernel (sim/kernel.h) with
// a quiet network: messages are delivered FIFO after a fixed latency; nothing
// is lost, duplicated or reordered unless a test crashes a node (messages to
// a crashed node vanish, as they would on the wire) or holds an envelope. The
// kernel's event bus (sim/event_bus.h): durable log, dedup by event_id
// (within Options::bus_dedup_window, forever by default), consumer groups,
// ack, and redelivery of unacked deliveries after a timeout.
#ifndef PARLEY_FAKES_FAKE_CLUSTER_H_
#define PARLEY_FAKES_FAKE_CLUSTER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "core/env.h"
#include "fakes/manual_clock.h"  // for tests that build on FakeCluster
#include "fakes/mem_store.h"
#include "sim/kernel.h"

namespace parley {

class FakeCluster {
 public:
  using Factory = std::function<std::unique_ptr<Node>(Env*)>;

  struct Options {
    uint64_t seed = 1;
    absl::Duration latency = absl::Milliseconds(1);
    absl::Duration bus_ack_timeout = absl::Seconds(2);
    // Unit tests get a bus that never forgets an event id (as before the
    // window existed): a producer test may retain and republish events for
    // longer than JetStream's default two minutes, as parleyd covers by
    // widening the stream's window to the retention plus a minute.
    absl::Duration bus_dedup_window = absl::InfiniteDuration();
  };

  FakeCluster() : FakeCluster(Options()) {}
  explicit FakeCluster(Options options);

  // Creates the node at `address` and starts it. The node gets its own store
  // unless `store` is given (replicas of a service sharing one database).
  Node* Add(const std::string& address, Factory factory, MemStore* store = nullptr);
  // The node loses its memory, timers and undelivered messages; its store
  // keeps the committed batches.
  void Crash(const std::string& address);
  // Creates the node again from its factory over the same store and starts
  // it; a live node is crashed first (the same as sim::World, see Kernel).
  void Restart(const std::string& address);
  bool IsUp(const std::string& address) const;

  Node* node(const std::string& address);
  template <typename T>
  T* NodeAs(const std::string& address) {
    return dynamic_cast<T*>(node(address));
  }
  MemStore& store(const std::string& address);

  absl::Time Now() const { return kernel_.Now(); }
  // Runs everything due now, until nothing is.
  void RunUntilIdle() { kernel_.RunUntil(Now()); }
  // Runs everything due within `d`, in time order, and leaves the clock there.
  void Advance(absl::Duration d) { kernel_.RunUntil(Now() + d); }

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
  void HoldNext(Matcher match) { kernel_.HoldNext(std::move(match)); }
  size_t held() const { return kernel_.held(); }
  void ReleaseHeld() { kernel_.ReleaseHeld(); }

  // Envelopes (other than replies to Call) sent to the test endpoint.
  static constexpr char kTestAddress[] = "test.endpoint";
  const std::vector<Envelope>& test_inbox() const { return kernel_.inbox(kTestAddress); }

  // Delivers `event` straight to the node at `address` (as a duplicate or a
  // late delivery would arrive). Returns the delivery id.
  uint64_t InjectEvent(const std::string& address, const Event& event);
  // While unreachable, publishes from `address` are lost before the bus.
  void SetBusReachable(const std::string& address, bool reachable);
  // Every distinct event the bus accepted, in order.
  const std::vector<Event>& bus_log() const { return kernel_.bus().log(); }
  // The bus forgets every event after the first `keep` it accepted, acked or
  // not, as nats-server losing its unsynced tail to a power failure (their ids
  // leave the dedup set too); unacked deliveries of them are dropped.
  void BusLoseTail(size_t keep) { kernel_.bus().LoseTail(keep); }
  // Tells the node at `address` that its bus connection came back.
  void BusReconnected(const std::string& address);
  uint64_t messages_sent() const { return kernel_.stats().messages_sent; }
  uint64_t unacked_deliveries() const { return kernel_.bus().unacked(); }

  // The kernel underneath, for partitions (Block, Isolate, RemoveFilter) and
  // whatever else a test needs beyond this interface.
  sim::Kernel& kernel() { return kernel_; }

 private:
  sim::Kernel kernel_;
};

}  // namespace parley

#endif  // PARLEY_FAKES_FAKE_CLUSTER_H_
