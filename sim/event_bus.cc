#include "sim/event_bus.h"

#include <algorithm>

#include "core/env.h"

namespace parley {

EventBus::EventBus(Host* host, Options options) : host_(host), options_(options) {}

void EventBus::Expire(absl::Time now) {
  while (!accepted_.empty() && accepted_.front().first + options_.dedup_window <= now) {
    auto it = seen_.find(accepted_.front().second);
    // The id may have been forgotten (lost tail) and accepted again since.
    if (it != seen_.end() && it->second == accepted_.front().first) seen_.erase(it);
    accepted_.pop_front();
  }
}

void EventBus::Publish(const std::string& publisher, const Event& event, absl::Time now) {
  if (unreachable_.count(publisher) > 0) return;  // lost on the way
  if (outage_) return;  // not accepted: the publisher's relay tries again
  Expire(now);
  const bool seen = seen_.count(event.event_id()) > 0;
  // The publisher is acked either way: a duplicate publish is already durable.
  host_->PublishAcked(publisher, event.event_id());
  if (seen && dedup_) return;
  if (seen) {
    ++stats_.duplicates_let_through;
  } else {
    seen_.emplace(event.event_id(), now);
    // An infinite window never expires anything: no need to queue expiries.
    if (options_.dedup_window != absl::InfiniteDuration()) {
      accepted_.emplace_back(now, event.event_id());
    }
  }
  log_.push_back(event);
  ++stats_.published;
  const std::string topic = EventTopic(event);
  for (const auto& [group, topics] : topics_) {
    if (topics.count(topic) > 0) Deliver(group, log_.size() - 1);
  }
}

void EventBus::Subscribe(const std::string& member, const std::string& group,
                         const std::vector<std::string>& topics) {
  std::vector<std::string>& members = members_[group];
  if (std::find(members.begin(), members.end(), member) == members.end()) {
    members.push_back(member);
  }
  topics_[group].insert(topics.begin(), topics.end());
}

void EventBus::Ack(uint64_t delivery_id) { deliveries_.erase(delivery_id); }

void EventBus::AckTimeout(uint64_t delivery_id) {
  auto it = deliveries_.find(delivery_id);
  if (it == deliveries_.end()) return;
  const Delivery d = it->second;
  deliveries_.erase(it);
  ++stats_.redeliveries;
  Deliver(d.group, d.log_index);
}

std::string EventBus::NextMember(const std::string& group) {
  const std::vector<std::string>& members = members_[group];
  uint64_t& next = next_member_[group];
  for (size_t i = 0; i < members.size(); ++i) {
    const std::string& m = members[(next + i) % members.size()];
    if (host_->MemberUp(m)) {
      next = next + i + 1;
      return m;
    }
  }
  return "";
}

void EventBus::Deliver(const std::string& group, size_t log_index) {
  const uint64_t id = next_delivery_id_++;
  deliveries_[id] = Delivery{group, log_index};
  const std::string member = outage_ ? "" : NextMember(group);
  if (!member.empty()) host_->DeliverEvent(member, log_[log_index], id);
  // Armed even without a member: the delivery is retried once one is up.
  host_->ArmAckTimer(id, options_.ack_timeout);
}

void EventBus::SetReachable(const std::string& publisher, bool reachable) {
  if (reachable) {
    unreachable_.erase(publisher);
  } else {
    unreachable_.insert(publisher);
  }
}

void EventBus::Storm(size_t count) {
  const size_t first = log_.size() > count ? log_.size() - count : 0;
  for (size_t i = first; i < log_.size(); ++i) {
    const std::string topic = EventTopic(log_[i]);
    for (const auto& [group, topics] : topics_) {
      if (topics.count(topic) > 0) {
        ++stats_.redeliveries;
        Deliver(group, i);
      }
    }
  }
}

void EventBus::LoseTail(size_t keep) {
  while (log_.size() > keep) {
    const size_t index = log_.size() - 1;
    seen_.erase(log_.back().event_id());
    for (auto it = deliveries_.begin(); it != deliveries_.end();) {
      it = it->second.log_index == index ? deliveries_.erase(it) : std::next(it);
    }
    log_.pop_back();
  }
}

}  // namespace parley
