// Network: how a server-mode node reaches others. The local implementation
// connects the nodes of one process and hosts an in-process event bus (the
// `--event_bus=local` choice); the NATS implementation (next) maps addresses
// to subjects under `parley.` and the bus to JetStream.
#ifndef PARLEY_SERVER_NETWORK_H_
#define PARLEY_SERVER_NETWORK_H_

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "core/proto/events.pb.h"
#include "core/proto/rpc.pb.h"
#include "server/event_loop.h"

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

// All nodes in one process. The bus keeps its log in memory, dedups by
// event_id, delivers each event to one member of every subscribed group and
// redelivers what is not acked within `ack_timeout`.
class LocalNetwork : public Network {
 public:
  explicit LocalNetwork(absl::Duration ack_timeout = absl::Seconds(2));
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
  void Deliver(const std::string& group, size_t index);

  mutable std::mutex mu_;
  std::map<std::string, Endpoint*> hosts_;
  std::vector<Event> log_;
  std::set<std::string> ids_;
  std::map<std::string, std::vector<std::string>> groups_;
  std::map<std::string, std::set<std::string>> topics_;
  std::map<std::string, uint64_t> next_member_;
  std::map<uint64_t, std::pair<std::string, size_t>> unacked_;
  uint64_t next_delivery_ = 1;
  uint64_t undeliverable_ = 0;
  absl::Duration ack_timeout_;
  EventLoop timers_;  // redelivery timers
};

}  // namespace parley

#endif  // PARLEY_SERVER_NETWORK_H_
