#include "server/network.h"

#include <algorithm>

#include "core/env.h"
#include "server/node_host.h"

namespace parley {

LocalNetwork::LocalNetwork(absl::Duration ack_timeout, absl::Duration dedup_window)
    : bus_host_(this),
      bus_(&bus_host_, EventBus::Options{ack_timeout, dedup_window}),
      timers_("local-bus") {
  timers_.Start();
}

LocalNetwork::~LocalNetwork() { timers_.Stop(); }

void LocalNetwork::Attach(Endpoint* host) {
  std::lock_guard<std::mutex> lock(mu_);
  hosts_[host->Self()] = host;
}

void LocalNetwork::Detach(const std::string& address) {
  std::lock_guard<std::mutex> lock(mu_);
  hosts_.erase(address);
}

void LocalNetwork::Send(const std::string& from, const std::string& to, Envelope envelope) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = hosts_.find(to);
  if (it == hosts_.end()) {
    ++undeliverable_;  // as on a real network: the sender's timeout handles it
    return;
  }
  it->second->Deliver(std::move(envelope));
}

void LocalNetwork::SendMany(const std::string& from, const std::string& to,
                            std::vector<Envelope> envelopes) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = hosts_.find(to);
  if (it == hosts_.end()) {
    undeliverable_ += envelopes.size();
    return;
  }
  it->second->DeliverMany(std::move(envelopes));
}

void LocalNetwork::Publish(const std::string& from, const Event& event) {
  std::lock_guard<std::mutex> lock(mu_);
  // The server reads the wall clock; only the dedup window uses it.
  bus_.Publish(from, event, absl::Now());
}

void LocalNetwork::Subscribe(const std::string& address, const std::string& group,
                             const std::vector<std::string>& topics) {
  std::lock_guard<std::mutex> lock(mu_);
  bus_.Subscribe(address, group, topics);
}

void LocalNetwork::AckEvent(uint64_t delivery_id) {
  std::lock_guard<std::mutex> lock(mu_);
  bus_.Ack(delivery_id);
}

uint64_t LocalNetwork::undeliverable() const {
  std::lock_guard<std::mutex> lock(mu_);
  return undeliverable_;
}

// ---- the bus's host: every callback runs inside a bus_ call, with mu_ held.

bool LocalNetwork::BusHost::MemberUp(const std::string& member) {
  return net_->hosts_.count(member) > 0;
}

void LocalNetwork::BusHost::PublishAcked(const std::string& publisher,
                                         const std::string& event_id) {
  auto it = net_->hosts_.find(publisher);
  if (it != net_->hosts_.end()) it->second->DeliverPublishAck(event_id);
}

void LocalNetwork::BusHost::DeliverEvent(const std::string& member, const Event& event,
                                         uint64_t delivery_id) {
  net_->hosts_.at(member)->DeliverEvent(event, delivery_id);
}

void LocalNetwork::BusHost::ArmAckTimer(uint64_t delivery_id, absl::Duration after) {
  LocalNetwork* net = net_;
  net->timers_.PostAfter(after, [net, delivery_id] {
    std::lock_guard<std::mutex> lock(net->mu_);
    net->bus_.AckTimeout(delivery_id);
  });
}

}  // namespace parley
