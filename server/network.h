// Network: how a server-mode node reaches others. The local implementation
// connects the nodes of one process and hosts an in-process event bus (the
// `--event_bus=local` choice: the simulator's EventBus state machine under a
// mutex); the NATS implementation (server/nats_network.h) maps addresses to
// subjects under `parley.` and the bus to JetStream.
#ifndef PARLEY_SERVER_NETWORK_H_
#define PARLEY_SERVER_NETWORK_H_

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "core/proto/events.pb.h"
#include "core/proto/rpc.pb.h"
#include "server/event_loop.h"
#include "sim/event_bus.h"

namespace parley {

// What a network delivers to: a node's host, or a client connection.
class Endpoint {
 public:
  virtual ~Endpoint() = default;
  virtual const std::string& Self() const = 0;
  // Thread-safe; must not block.
  virtual void Deliver(Envelope envelope) = 0;
  // Several at once, in order (one wakeup, one socket write).
  virtual void DeliverMany(std::vector<Envelope> envelopes) {
    for (Envelope& e : envelopes) Deliver(std::move(e));
  }
  virtual void DeliverEvent(Event event, uint64_t delivery_id) {}
  virtual void DeliverPublishAck(std::string event_id) {}
  // The bus connection came back (see Node::OnBusReconnected).
  virtual void DeliverBusReconnected() {}
};

class Network {
 public:
  virtual ~Network() = default;
  virtual void Attach(Endpoint* host) = 0;
  virtual void Detach(const std::string& address) = 0;
  virtual void Send(const std::string& from, const std::string& to, Envelope envelope) = 0;
  // Several envelopes from one sender to one address, in order.
  virtual void SendMany(const std::string& from, const std::string& to,
                        std::vector<Envelope> envelopes) {
    for (Envelope& e : envelopes) Send(from, to, std::move(e));
  }
  virtual void Publish(const std::string& from, const Event& event) = 0;
  virtual void Subscribe(const std::string& address, const std::string& group,
                         const std::vector<std::string>& topics) = 0;
  virtual void AckEvent(uint64_t delivery_id) = 0;
};

// All nodes in one process. The bus is the shared EventBus state machine
// (sim/event_bus.h, the simulator's bus): it keeps its log in memory, dedups
// by event_id within `dedup_window`, delivers each event to one member of
// every subscribed group and redelivers what is not acked within
// `ack_timeout` (the timers run on an EventLoop of this network). The window
// defaults to forever: nodes may republish retained events for as long as
// --event_retention, and nothing here knows it (a JetStream stream gets
// retention plus a minute from parleyd).
class LocalNetwork : public Network {
 public:
  explicit LocalNetwork(absl::Duration ack_timeout = absl::Seconds(2),
                        absl::Duration dedup_window = absl::InfiniteDuration());
  ~LocalNetwork() override;

  void Attach(Endpoint* host) override;
  void Detach(const std::string& address) override;
  void Send(const std::string& from, const std::string& to, Envelope envelope) override;
  void SendMany(const std::string& from, const std::string& to,
                std::vector<Envelope> envelopes) override;
  void Publish(const std::string& from, const Event& event) override;
  void Subscribe(const std::string& address, const std::string& group,
                 const std::vector<std::string>& topics) override;
  void AckEvent(uint64_t delivery_id) override;

  uint64_t undeliverable() const;

 private:
  // The bus's view of this network. Its callbacks run with mu_ held.
  class BusHost : public EventBus::Host {
   public:
    explicit BusHost(LocalNetwork* net) : net_(net) {}
    bool MemberUp(const std::string& member) override;
    void PublishAcked(const std::string& publisher, const std::string& event_id) override;
    void DeliverEvent(const std::string& member, const Event& event,
                      uint64_t delivery_id) override;
    void ArmAckTimer(uint64_t delivery_id, absl::Duration after) override;

   private:
    LocalNetwork* net_;
  };

  mutable std::mutex mu_;
  std::map<std::string, Endpoint*> hosts_;
  uint64_t undeliverable_ = 0;
  BusHost bus_host_;
  EventBus bus_;      // guarded by mu_
  EventLoop timers_;  // redelivery timers
};

}  // namespace parley

#endif  // PARLEY_SERVER_NETWORK_H_
