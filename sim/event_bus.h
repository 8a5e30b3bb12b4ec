// EventBus: the one event bus state machine, shared by the simulator's kernel
// (sim::World, FakeCluster) and the server's in-process bus (LocalNetwork).
//
// It owns no thread and reads no clock: the caller passes the time where the
// bus needs it (the dedup window) and arms the ack timers the bus asks for,
// calling AckTimeout() when one fires. Everything the bus does to the outside
// goes through its Host, synchronously and in a fixed order, so a
// deterministic caller stays deterministic.
//
// What it models, after JetStream:
//   - a durable log of accepted events;
//   - consumer groups: each accepted event goes to one member of every group
//     subscribed to its topic, members taking turns (round-robin, skipping
//     members the host reports down);
//   - delivery ids and acks; an unacked delivery is redelivered (again to the
//     next member) once its ack timer fires;
//   - a dedup window: an event id accepted at time t makes publishes of the
//     same id until t + dedup_window duplicates (acked, not logged again).
//     After the window the id is forgotten, as JetStream's Duplicates window
//     forgets message ids. Dedup can be switched off (duplicates let through);
//   - an outage: publishes are not accepted (no ack: the publisher retries),
//     no member is chosen for deliveries (they time out and are redelivered);
//   - a storm (redeliver the last N events to every group), losing the
//     unsynced tail of the log, and publishers that cannot reach the bus.
//
// Not thread-safe: a threaded caller holds its own lock around every call
// (the Host's callbacks run under it).
#ifndef PARLEY_SIM_EVENT_BUS_H_
#define PARLEY_SIM_EVENT_BUS_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "core/proto/events.pb.h"

namespace parley {

class EventBus {
 public:
  // What the bus asks of whoever hosts it. Called from inside the bus's
  // methods, in the order the bus decides.
  class Host {
   public:
    virtual ~Host() = default;
    // Whether `member` can be chosen for a delivery (it is up / attached).
    virtual bool MemberUp(const std::string& member) = 0;
    // The bus accepted (or already had) `event_id` from `publisher`: tell it.
    virtual void PublishAcked(const std::string& publisher, const std::string& event_id) = 0;
    // Hand `event` to `member` as delivery `delivery_id`.
    virtual void DeliverEvent(const std::string& member, const Event& event,
                              uint64_t delivery_id) = 0;
    // Call AckTimeout(delivery_id) after `after`.
    virtual void ArmAckTimer(uint64_t delivery_id, absl::Duration after) = 0;
  };

  struct Options {
    absl::Duration ack_timeout = absl::Seconds(2);
    // Two minutes, JetStream's default Duplicates window: longer than a
    // simulator run's chaos (the default and smoke scenarios run 103 s and
    // 63 s, and the simulator's nodes retain no acked events), so today's
    // runs dedup exactly as "forever" did. InfiniteDuration(): forever.
    absl::Duration dedup_window = absl::Minutes(2);
  };

  struct Stats {
    uint64_t published = 0;                // events appended to the log
    uint64_t duplicates_let_through = 0;   // while dedup was off
    uint64_t redeliveries = 0;             // ack timeouts and storms
  };

  EventBus(Host* host, Options options);
  EventBus(const EventBus&) = delete;
  EventBus& operator=(const EventBus&) = delete;

  // A publish arrives at the bus at `now`. Lost if `publisher` cannot reach
  // the bus; not accepted during an outage. Otherwise the publisher is acked
  // first, then (unless it is a duplicate within the window and dedup is on)
  // the event is logged and delivered to every subscribed group, in group
  // name order.
  void Publish(const std::string& publisher, const Event& event, absl::Time now);
  // `member` joins `group` (once) and the group gains `topics`.
  void Subscribe(const std::string& member, const std::string& group,
                 const std::vector<std::string>& topics);
  // Ends delivery `delivery_id`; unknown ids are ignored (already redelivered).
  void Ack(uint64_t delivery_id);
  // The ack timer of `delivery_id` fired: redeliver it if still unacked.
  void AckTimeout(uint64_t delivery_id);

  // A delivery id outside any group (a test injecting an event by hand).
  uint64_t NewDeliveryId() { return next_delivery_id_++; }

  // ---- faults
  void SetDedup(bool on) { dedup_ = on; }
  void SetOutage(bool on) { outage_ = on; }
  // Publishes from `publisher` are lost on the way while unreachable.
  void SetReachable(const std::string& publisher, bool reachable);
  // Redelivers the last `count` events of the log to every subscribed group.
  void Storm(size_t count);
  // Forgets every event after the first `keep` in the log, acked or not (a
  // server losing its unsynced tail): their ids leave the dedup window and
  // their unacked deliveries are dropped.
  void LoseTail(size_t keep);

  const std::vector<Event>& log() const { return log_; }
  size_t unacked() const { return deliveries_.size(); }
  const Stats& stats() const { return stats_; }
  const Options& options() const { return options_; }

 private:
  struct Delivery {
    std::string group;
    size_t log_index;
  };

  void Deliver(const std::string& group, size_t log_index);
  std::string NextMember(const std::string& group);
  // Forgets ids accepted at or before `now - dedup_window`.
  void Expire(absl::Time now);

  Host* const host_;
  const Options options_;
  std::vector<Event> log_;
  // Event id -> when first accepted; `accepted_` is the same in time order,
  // so expiry pops from its front.
  std::map<std::string, absl::Time> seen_;
  std::deque<std::pair<absl::Time, std::string>> accepted_;
  std::set<std::string> unreachable_;
  bool dedup_ = true;
  bool outage_ = false;
  std::map<std::string, std::vector<std::string>> members_;  // group -> members
  std::map<std::string, std::set<std::string>> topics_;      // group -> topics
  std::map<std::string, uint64_t> next_member_;
  std::map<uint64_t, Delivery> deliveries_;  // unacked
  uint64_t next_delivery_id_ = 1;
  Stats stats_;
};

}  // namespace parley

#endif  // PARLEY_SIM_EVENT_BUS_H_
