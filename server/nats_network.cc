#include "server/nats_network.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/node_host.h"

namespace parley {
namespace {

std::string Subject(const std::string& address) { return "parley." + address; }

// A client connection is an endpoint only its own gateway (same process)
// sends to: it gets no subject on the server.
bool LocalOnly(const std::string& address) { return address.rfind("tcp.", 0) == 0; }

}  // namespace

absl::StatusOr<std::unique_ptr<NatsNetwork>> NatsNetwork::Connect(const std::string& url, Bus bus,
                                                                  JetStreamBus::Options js_options) {
  natsOptions* opts = nullptr;
  if (natsOptions_Create(&opts) != NATS_OK) return absl::InternalError("natsOptions_Create failed");
  // A comma-separated list names several servers of one cluster.
  std::vector<std::string> urls = absl::StrSplit(url, ',', absl::SkipEmpty());
  std::vector<const char*> servers;
  for (const std::string& u : urls) servers.push_back(u.c_str());
  natsOptions_SetServers(opts, servers.data(), static_cast<int>(servers.size()));
  natsOptions_SetMaxReconnect(opts, -1);  // keep trying: nodes outlive a server restart
  natsOptions_SetReconnectWait(opts, 100);
  auto network = std::unique_ptr<NatsNetwork>(new NatsNetwork(nullptr, opts));
  // cnats has no default error handler: without one, slow-consumer errors are silent.
  natsOptions_SetErrorHandler(opts, &NatsNetwork::OnError, network.get());
  natsOptions_SetDisconnectedCB(opts, &NatsNetwork::OnDisconnected, network.get());
  natsOptions_SetReconnectedCB(opts, &NatsNetwork::OnReconnected, network.get());
  natsOptions_SetClosedCB(opts, &NatsNetwork::OnClosed, network.get());
  natsConnection* conn = nullptr;
  const natsStatus s = natsConnection_Connect(&conn, opts);
  if (s != NATS_OK) {
    return absl::UnavailableError(
        absl::StrCat("cannot connect to ", url, ": ", natsStatus_GetText(s)));
  }
  network->conn_ = conn;
  if (bus == Bus::kJetStream) {
    auto js = JetStreamBus::Create(conn, std::move(js_options));
    if (!js.ok()) return js.status();
    network->js_ = std::move(*js);
    {
      std::lock_guard<std::mutex> lock(network->callback_mu_);
      network->reconnect_target_ = network->js_.get();
    }
    // A reconnect may follow a nats-server restart that lost acked events:
    // the bus tells its hosts (a cnats thread: it only posts to their loops).
    NatsNetwork* n = network.get();
    network->AddStateListener([n](ConnectionState state) {
      if (state != ConnectionState::kReconnected) return;
      ++n->reconnects_;
      std::lock_guard<std::mutex> lock(n->callback_mu_);
      if (n->reconnect_target_ != nullptr) n->reconnect_target_->OnReconnected();
    });
  }
  return network;
}

NatsNetwork::~NatsNetwork() {
  {
    std::lock_guard<std::mutex> lock(callback_mu_);
    reconnect_target_ = nullptr;
  }
  js_.reset();  // its threads use the connection
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [address, target] : targets_) {
      if (target->sub != nullptr) natsSubscription_Unsubscribe(target->sub);
    }
  }
  {
    std::lock_guard<std::mutex> lock(listeners_mu_);
    listeners_.clear();  // closing is no news to anyone
  }
  if (conn_ != nullptr) {
    natsConnection_Close(conn_);
    // The closed callback runs on a cnats thread and uses this object: wait
    // for it (bounded) before going.
    std::unique_lock<std::mutex> lock(listeners_mu_);
    closed_cv_.wait_for(lock, std::chrono::seconds(2), [this] { return closed_seen_; });
    lock.unlock();
    natsConnection_Destroy(conn_);
  }
  for (auto& [address, target] : targets_) {
    if (target->sub != nullptr) natsSubscription_Destroy(target->sub);
  }
  for (auto& target : retired_) {
    if (target->sub != nullptr) natsSubscription_Destroy(target->sub);
  }
  natsOptions_Destroy(opts_);
}

void NatsNetwork::OnError(natsConnection*, natsSubscription*, natsStatus, void* closure) {
  ++static_cast<NatsNetwork*>(closure)->errors_;
}

int NatsNetwork::AddStateListener(StateListener listener) {
  std::lock_guard<std::mutex> lock(listeners_mu_);
  const int id = next_listener_++;
  listeners_[id] = std::move(listener);
  return id;
}

void NatsNetwork::RemoveStateListener(int id) {
  std::lock_guard<std::mutex> lock(listeners_mu_);
  listeners_.erase(id);  // once this returns the listener is not running
}

const char* NatsNetwork::StateName(ConnectionState state) {
  switch (state) {
    case ConnectionState::kDisconnected:
      return "disconnected";
    case ConnectionState::kReconnected:
      return "reconnected";
    case ConnectionState::kClosed:
      return "closed";
  }
  return "?";
}

void NatsNetwork::Notify(ConnectionState state) {
  connected_ = state == ConnectionState::kReconnected;
  std::lock_guard<std::mutex> lock(listeners_mu_);
  for (auto& [id, listener] : listeners_) listener(state);
  if (state == ConnectionState::kClosed) {
    closed_seen_ = true;
    closed_cv_.notify_all();
  }
}

void NatsNetwork::OnDisconnected(natsConnection*, void* closure) {
  static_cast<NatsNetwork*>(closure)->Notify(ConnectionState::kDisconnected);
}

void NatsNetwork::OnReconnected(natsConnection*, void* closure) {
  static_cast<NatsNetwork*>(closure)->Notify(ConnectionState::kReconnected);
}

void NatsNetwork::OnClosed(natsConnection*, void* closure) {
  static_cast<NatsNetwork*>(closure)->Notify(ConnectionState::kClosed);
}

void NatsNetwork::OnMessage(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
  auto* target = static_cast<Target*>(closure);
  Envelope envelope;
  const bool ok = envelope.ParseFromArray(natsMsg_GetData(msg), natsMsg_GetDataLength(msg));
  natsMsg_Destroy(msg);
  if (!ok) {
    ++target->network->malformed_;  // garbage on our subject: dropped, counted
    return;
  }
  ++target->network->received_;
  std::lock_guard<std::mutex> lock(target->mu);
  if (target->host != nullptr) target->host->Deliver(std::move(envelope));
}

void NatsNetwork::Attach(Endpoint* host) {
  bus_.Attach(host);
  if (js_) js_->Attach(host);
  auto target = std::make_shared<Target>();
  target->network = this;
  target->host = host;
  if (!LocalOnly(host->Self())) {
    natsConnection_Subscribe(&target->sub, conn_, Subject(host->Self()).c_str(),
                             &NatsNetwork::OnMessage, target.get());
    natsConnection_Flush(conn_);  // the subscription is live before anyone sends to it
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto& slot = targets_[host->Self()];
  if (slot != nullptr) retired_.push_back(std::move(slot));  // its callbacks may still run
  slot = std::move(target);
}

void NatsNetwork::Detach(const std::string& address) {
  bus_.Detach(address);
  if (js_) js_->Detach(address);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = targets_.find(address);
  if (it == targets_.end()) return;
  if (it->second->sub != nullptr) natsSubscription_Unsubscribe(it->second->sub);
  {
    std::lock_guard<std::mutex> target_lock(it->second->mu);
    it->second->host = nullptr;  // a callback already running delivers nothing more
  }
  // A connection's target has no callback: forget it (a Send holding it
  // finds it detached).
  if (it->second->sub == nullptr) targets_.erase(it);
}

bool NatsNetwork::SendLocal(const std::string& to, std::vector<Envelope>* envelopes) {
  // Fast path: an endpoint attached in this process gets the envelopes without
  // a round trip through the server (per-pair order holds: a pair's messages
  // all take one path while the target stays attached).
  std::shared_ptr<Target> local;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = targets_.find(to);
    if (it != targets_.end()) local = it->second;
  }
  if (local == nullptr) return false;
  std::lock_guard<std::mutex> lock(local->mu);
  if (local->host == nullptr) return false;
  sent_ += envelopes->size();
  if (envelopes->size() == 1) {
    local->host->Deliver(std::move(envelopes->front()));
  } else {
    local->host->DeliverMany(std::move(*envelopes));
  }
  return true;
}

void NatsNetwork::Send(const std::string& from, const std::string& to, Envelope envelope) {
  std::vector<Envelope> one;
  one.push_back(std::move(envelope));
  SendMany(from, to, std::move(one));
}

void NatsNetwork::SendMany(const std::string& from, const std::string& to,
                           std::vector<Envelope> envelopes) {
  if (SendLocal(to, &envelopes)) return;
  if (LocalOnly(to)) {
    errors_ += envelopes.size();  // a closed connection: as lost messages
    return;
  }
  const std::string subject = Subject(to);
  std::string data;
  for (const Envelope& envelope : envelopes) {
    data.clear();
    envelope.SerializeToString(&data);
    if (natsConnection_Publish(conn_, subject.c_str(), data.data(), data.size()) == NATS_OK) {
      ++sent_;
    } else {
      ++errors_;  // as a lost message: the sender's timeout retries
    }
  }
}

void NatsNetwork::Publish(const std::string& from, const Event& event) {
  if (js_) return js_->Publish(from, event);
  bus_.Publish(from, event);
}

void NatsNetwork::Subscribe(const std::string& address, const std::string& group,
                            const std::vector<std::string>& topics) {
  if (js_) return js_->Subscribe(address, group, topics);
  bus_.Subscribe(address, group, topics);
}

void NatsNetwork::AckEvent(uint64_t delivery_id) {
  if (js_) return js_->AckEvent(delivery_id);
  bus_.AckEvent(delivery_id);
}

}  // namespace parley
