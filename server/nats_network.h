// NatsNetwork: node-to-node messages over a real nats-server. An address A is
// the subject "parley.A"; every host subscribes to its own subject, and cnats
// callbacks (library threads) only enqueue into the host's event loop. A send
// to an endpoint attached in this process is delivered directly; client
// connections ("tcp.*") exist only in their gateway's process. Events
// go through JetStream (the default) or, with `local`, an in-process bus (one
// process hosts every consuming role).
//
// Reconnects: on cnats's reconnected callback (a library thread) a state
// listener counts the reconnect and passes it to the JetStream bus, which
// posts it to every attached host's loop: the nodes publish their retained
// acked events again, since a reconnect may mean nats-server restarted
// without what it had not synced (see Outbox). Every reconnect is treated so,
// a network blip included: the cost is republishing the events of the
// retention window, which the stream's dedup window drops.
#ifndef PARLEY_SERVER_NATS_NETWORK_H_
#define PARLEY_SERVER_NATS_NETWORK_H_

#include <nats/nats.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/jetstream_bus.h"
#include "server/network.h"

namespace parley {

class NatsNetwork : public Network {
 public:
  enum class Bus { kJetStream, kLocal };
  static absl::StatusOr<std::unique_ptr<NatsNetwork>> Connect(
      const std::string& url, Bus bus = Bus::kJetStream,
      JetStreamBus::Options js_options = JetStreamBus::Options());
  JetStreamBus* jetstream() { return js_.get(); }
  ~NatsNetwork() override;

  void Attach(Endpoint* host) override;
  void Detach(const std::string& address) override;
  void Send(const std::string& from, const std::string& to, Envelope envelope) override;
  void SendMany(const std::string& from, const std::string& to,
                std::vector<Envelope> envelopes) override;
  void Publish(const std::string& from, const Event& event) override;
  void Subscribe(const std::string& address, const std::string& group,
                 const std::vector<std::string>& topics) override;
  void AckEvent(uint64_t delivery_id) override;

  // The connection's state changes. cnats reconnects forever (a wait of
  // 100 ms between rounds); listeners hear each change on a cnats thread, so
  // they must be short and thread-safe (hand the notice to your own loop).
  // Several listeners may be added; a listener must not add or remove
  // listeners. Remove before whatever the listener touches goes away.
  enum class ConnectionState { kDisconnected, kReconnected, kClosed };
  using StateListener = std::function<void(ConnectionState)>;
  int AddStateListener(StateListener listener);
  void RemoveStateListener(int id);
  // False from a disconnect until the reconnect (and after close).
  bool connected() const { return connected_; }
  static const char* StateName(ConnectionState state);

  uint64_t sent() const { return sent_; }
  uint64_t received() const { return received_; }
  uint64_t errors() const { return errors_; }
  uint64_t malformed() const { return malformed_; }
  uint64_t reconnects() const { return reconnects_; }

 private:
  struct Target {
    NatsNetwork* network;
    std::mutex mu;
    Endpoint* host;  // null once detached
    natsSubscription* sub = nullptr;
  };
  NatsNetwork(natsConnection* conn, natsOptions* opts) : conn_(conn), opts_(opts) {}
  // Delivers to `to` if it is attached here; false if it is not.
  bool SendLocal(const std::string& to, std::vector<Envelope>* envelopes);
  static void OnMessage(natsConnection* nc, natsSubscription* sub, natsMsg* msg, void* closure);
  static void OnError(natsConnection* nc, natsSubscription* sub, natsStatus err, void* closure);
  static void OnDisconnected(natsConnection* nc, void* closure);
  static void OnReconnected(natsConnection* nc, void* closure);
  static void OnClosed(natsConnection* nc, void* closure);
  void Notify(ConnectionState state);

  natsConnection* conn_;
  natsOptions* opts_;
  std::mutex mu_;
  // A target with a subscription stays allocated until the network goes (its
  // callback holds a raw pointer); a re-attached address retires the old one.
  std::map<std::string, std::shared_ptr<Target>> targets_;
  std::vector<std::shared_ptr<Target>> retired_;
  LocalNetwork bus_;
  std::unique_ptr<JetStreamBus> js_;
  // What the reconnected callback may use: set once js_ exists, cleared
  // before js_ goes.
  std::mutex callback_mu_;
  JetStreamBus* reconnect_target_ = nullptr;
  std::atomic<uint64_t> sent_{0}, received_{0}, errors_{0}, malformed_{0}, reconnects_{0};
  std::atomic<bool> connected_{true};
  std::mutex listeners_mu_;  // held while listeners are called
  std::map<int, StateListener> listeners_;
  int next_listener_ = 1;
  bool closed_seen_ = false;  // guarded by listeners_mu_
  std::condition_variable closed_cv_;
};

}  // namespace parley

#endif  // PARLEY_SERVER_NATS_NETWORK_H_
