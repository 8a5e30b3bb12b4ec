// JetStreamBus: the durable event bus on NATS JetStream. Events go to the
// stream PARLEY_EVENTS (subjects parley.evt.<topic>) with Nats-Msg-Id =
// event_id, so a republished event is dropped by the stream's dedup window.
// Each consumer group is one durable pull consumer; a fetch thread per group
// takes one message at a time (batch 1: cnats 3.4.1's Fetch overflows its
// buffer when leftovers exceed half the batch, nats.c #749) and hands it to a
// member's event loop; the message is acked only when the member acks, i.e.
// after its effect is committed. Unacked messages come back after AckWait.
//
// An existing stream is updated to these options (e.g. a longer
// duplicates_window); a stream whose configuration cannot be updated (another
// storage type) fails Create. OnReconnected() (the connection's reconnected
// callback, a cnats thread) tells every attached host, whose node publishes
// its retained acked events again (Outbox::ReplayRetained): nats-server may
// have restarted without the messages it had acked but not synced.
#ifndef PARLEY_SERVER_JETSTREAM_BUS_H_
#define PARLEY_SERVER_JETSTREAM_BUS_H_

#include <nats/nats.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/proto/events.pb.h"
#include "server/network.h"

namespace parley {


class JetStreamBus {
 public:
  struct Options {
    std::string stream = "PARLEY_EVENTS";
    int replicas = 1;  // 3 on a NATS cluster
    // A cluster elects its JetStream leader after it starts: keep trying this long.
    absl::Duration create_timeout = absl::Seconds(20);
    absl::Duration ack_wait = absl::Seconds(30);
    // At least the producers' Outbox retention, so that a retained event
    // published again while the stream still has it is dropped.
    absl::Duration duplicates_window = absl::Minutes(2);
    size_t max_queued_publishes = 100000;
  };

  static absl::StatusOr<std::unique_ptr<JetStreamBus>> Create(natsConnection* conn,
                                                              Options options);
  ~JetStreamBus();

  void Attach(Endpoint* host);
  void Detach(const std::string& address);
  void Publish(const std::string& from, const Event& event);
  void Subscribe(const std::string& address, const std::string& group,
                 const std::vector<std::string>& topics);
  void AckEvent(uint64_t delivery_id);
  // Thread-safe, does not block: hands the notice to each host's loop.
  void OnReconnected();

  uint64_t published() const { return published_; }
  uint64_t publish_failures() const { return publish_failures_; }
  uint64_t delivered() const { return delivered_; }
  uint64_t dropped_publishes() const { return dropped_publishes_; }
  uint64_t reconnects() const { return reconnects_; }

 private:
  struct Group {
    std::string name;
    std::set<std::string> topics;
    std::vector<std::string> members;
    uint64_t next = 0;
    natsSubscription* sub = nullptr;
    std::thread fetcher;
  };
  JetStreamBus(jsCtx* js, Options options) : js_(js), options_(std::move(options)) {}
  void PublishLoop();
  void FetchLoop(Group* group);

  jsCtx* js_;
  Options options_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::map<std::string, Endpoint*> hosts_;
  std::deque<std::pair<std::string, Event>> to_publish_;
  std::thread publisher_;
  std::map<std::string, std::unique_ptr<Group>> groups_;
  std::map<uint64_t, natsMsg*> pending_;
  uint64_t next_delivery_ = 1;
  std::atomic<uint64_t> published_{0}, publish_failures_{0}, delivered_{0}, dropped_publishes_{0},
      reconnects_{0};
};

}  // namespace parley

#endif  // PARLEY_SERVER_JETSTREAM_BUS_H_
