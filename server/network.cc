#include "server/network.h"

#include <algorithm>

#include "core/env.h"
#include "server/node_host.h"

namespace parley {

LocalNetwork::LocalNetwork(absl::Duration ack_timeout)
    : ack_timeout_(ack_timeout), timers_("local-bus") {
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
  auto publisher = hosts_.find(from);
  if (publisher != hosts_.end()) publisher->second->DeliverPublishAck(event.event_id());
  if (!ids_.insert(event.event_id()).second) return;  // duplicate publish
  log_.push_back(event);
  const std::string topic = EventTopic(event);
  for (const auto& [group, topics] : topics_) {
    if (topics.count(topic) > 0) Deliver(group, log_.size() - 1);
  }
}

// REQUIRES: mu_ held.
void LocalNetwork::Deliver(const std::string& group, size_t index) {
  const uint64_t id = next_delivery_++;
  unacked_[id] = {group, index};
  const std::vector<std::string>& members = groups_[group];
  for (size_t i = 0; i < members.size(); ++i) {
    const std::string& m = members[(next_member_[group] + i) % members.size()];
    auto host = hosts_.find(m);
    if (host == hosts_.end()) continue;
    next_member_[group] += i + 1;
    host->second->DeliverEvent(log_[index], id);
    break;
  }
  timers_.PostAfter(ack_timeout_, [this, id] {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = unacked_.find(id);
    if (it == unacked_.end()) return;
    const auto [g, i] = it->second;
    unacked_.erase(it);
    Deliver(g, i);
  });
}

void LocalNetwork::Subscribe(const std::string& address, const std::string& group,
                             const std::vector<std::string>& topics) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string>& members = groups_[group];
  if (std::find(members.begin(), members.end(), address) == members.end()) {
    members.push_back(address);
  }
  topics_[group].insert(topics.begin(), topics.end());
}

void LocalNetwork::AckEvent(uint64_t delivery_id) {
  std::lock_guard<std::mutex> lock(mu_);
  unacked_.erase(delivery_id);
}

uint64_t LocalNetwork::undeliverable() const {
  std::lock_guard<std::mutex> lock(mu_);
  return undeliverable_;
}

}  // namespace parley
