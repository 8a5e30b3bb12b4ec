#include "fakes/fake_cluster.h"

#include <algorithm>
#include <cassert>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/rng.h"
#include "core/status.h"

namespace parley {

class FakeCluster::NodeEnv : public Env {
 public:
  NodeEnv(FakeCluster* cluster, std::string address, MemStore* store, uint64_t seed,
          uint64_t incarnation)
      : cluster_(cluster),
        address_(std::move(address)),
        store_(store),
        rng_(seed),
        incarnation_(incarnation) {}

  const std::string& Self() const override { return address_; }
  absl::Time Now() override { return cluster_->Now(); }
  SeededRng& Rng() override { return rng_; }
  OrderedStore& Store() override { return *store_; }

  void Send(const std::string& to, Envelope envelope) override {
    // The transport knows the sender (as a TCP connection or a NATS inbox
    // does): a node cannot claim another's address.
    envelope.set_from(address_);
    ++cluster_->messages_sent_;
    cluster_->Schedule(cluster_->Now() + cluster_->options_.latency,
                       [c = cluster_, to, envelope = std::move(envelope)] {
                         c->Deliver(to, envelope);
                       });
  }

  void Publish(const Event& event) override {
    cluster_->Schedule(cluster_->Now() + cluster_->options_.latency,
                       [c = cluster_, from = address_, event] { c->BusPublish(from, event); });
  }

  void Subscribe(const std::string& group, const std::vector<std::string>& topics) override {
    std::vector<std::string>& members = cluster_->groups_[group];
    if (std::find(members.begin(), members.end(), address_) == members.end()) {
      members.push_back(address_);
    }
    cluster_->group_topics_[group].insert(topics.begin(), topics.end());
  }

  void AckEvent(uint64_t delivery_id) override {
    cluster_->Schedule(cluster_->Now() + cluster_->options_.latency,
                       [c = cluster_, delivery_id] { c->BusAck(delivery_id); });
  }

  TimerId SetTimer(absl::Duration after) override {
    const TimerId id = cluster_->next_timer_id_++;
    cluster_->Schedule(cluster_->Now() + std::max(after, absl::ZeroDuration()),
                       [c = cluster_, address = address_, inc = incarnation_, id] {
                         if (c->cancelled_timers_.erase(id) > 0) return;
                         c->OnNode(address, inc, [id](Node* n) { n->OnTimer(id); });
                       });
    return id;
  }

  void CancelTimer(TimerId id) override { cluster_->cancelled_timers_.insert(id); }
  void FailStop(const std::string& reason) override {
    // After the current callback: crash this incarnation, restart a second later.
    cluster_->Schedule(cluster_->Now(), [c = cluster_, address = address_, inc = incarnation_] {
      auto it = c->slots_.find(address);
      if (it == c->slots_.end() || !it->second.up || it->second.incarnation != inc) return;
      c->Crash(address);
      c->Schedule(c->Now() + absl::Seconds(1), [c, address] {
        if (!c->IsUp(address)) c->Restart(address);
      });
    });
  }

 private:
  FakeCluster* cluster_;
  std::string address_;
  MemStore* store_;
  SeededRng rng_;
  uint64_t incarnation_;
};

FakeCluster::FakeCluster(Options options) : options_(options) {}

FakeCluster::~FakeCluster() {
  // Nodes go first: their destructors may still refer to their envs.
  for (auto& [address, slot] : slots_) slot.node.reset();
}

Node* FakeCluster::Add(const std::string& address, Factory factory, MemStore* store) {
  Slot& slot = slots_[address];
  assert(!slot.up);
  slot.factory = std::move(factory);
  if (store == nullptr) {
    slot.own_store = std::make_unique<MemStore>();
    store = slot.own_store.get();
  }
  slot.store = store;
  Restart(address);
  return slot.node.get();
}

void FakeCluster::Crash(const std::string& address) {
  Slot& slot = slots_.at(address);
  slot.node.reset();
  slot.env.reset();
  slot.up = false;
  ++slot.incarnation;  // scheduled timers of the old incarnation are dropped
}

void FakeCluster::Restart(const std::string& address) {
  Slot& slot = slots_.at(address);
  if (slot.up) Crash(address);
  const uint64_t seed =
      SeededRng::Derive(options_.seed, absl::StrCat(address, "#", slot.incarnation));
  slot.env = std::make_unique<NodeEnv>(this, address, slot.store, seed, slot.incarnation);
  slot.node = slot.factory(slot.env.get());
  slot.up = true;
  slot.node->Start();
}

bool FakeCluster::IsUp(const std::string& address) const {
  auto it = slots_.find(address);
  return it != slots_.end() && it->second.up;
}

Node* FakeCluster::node(const std::string& address) {
  auto it = slots_.find(address);
  return it == slots_.end() ? nullptr : it->second.node.get();
}

MemStore& FakeCluster::store(const std::string& address) { return *slots_.at(address).store; }

void FakeCluster::Schedule(absl::Time at, std::function<void()> action) {
  queue_.emplace(std::make_pair(at, next_seq_++), std::move(action));
}

void FakeCluster::RunUntil(absl::Time until) {
  while (!queue_.empty() && queue_.begin()->first.first <= until) {
    auto it = queue_.begin();
    clock_.Set(std::max(clock_.Now(), it->first.first));
    std::function<void()> action = std::move(it->second);
    queue_.erase(it);
    action();
  }
  clock_.Set(std::max(clock_.Now(), until));
}

void FakeCluster::OnNode(const std::string& address, uint64_t incarnation,
                         std::function<void(Node*)> fn) {
  auto it = slots_.find(address);
  if (it == slots_.end() || !it->second.up || it->second.incarnation != incarnation) return;
  fn(it->second.node.get());
}

void FakeCluster::Deliver(const std::string& to, const Envelope& envelope) {
  for (auto m = hold_matchers_.begin(); m != hold_matchers_.end(); ++m) {
    if ((*m)(to, envelope)) {
      hold_matchers_.erase(m);
      held_.emplace_back(to, envelope);
      return;
    }
  }
  if (to == kTestAddress) {
    if (envelope.has_reply()) {
      replies_[envelope.correlation_id()] = envelope.reply();
    } else {
      test_inbox_.push_back(envelope);
    }
    return;
  }
  auto it = slots_.find(to);
  if (it == slots_.end() || !it->second.up) return;  // lost, as on the wire
  it->second.node->OnEnvelope(envelope);
}

void FakeCluster::ReleaseHeld() {
  for (auto& [to, envelope] : held_) {
    Schedule(Now() + options_.latency, [this, to = to, envelope = envelope] {
      Deliver(to, envelope);
    });
  }
  held_.clear();
}

uint64_t FakeCluster::Send(const std::string& to, const Request& request, uint64_t auth_user_id,
                          const std::string& request_id) {
  const uint64_t correlation_id = next_correlation_id_++;
  Envelope envelope;
  envelope.set_correlation_id(correlation_id);
  envelope.set_from(kTestAddress);
  envelope.set_request_id(request_id.empty() ? absl::StrCat(kTestAddress, "#", correlation_id)
                                             : request_id);
  envelope.set_auth_user_id(auth_user_id);
  *envelope.mutable_request() = request;
  ++messages_sent_;
  Schedule(Now() + options_.latency, [this, to, envelope] { Deliver(to, envelope); });
  return correlation_id;
}

std::optional<Reply> FakeCluster::TakeReply(uint64_t correlation_id) {
  auto it = replies_.find(correlation_id);
  if (it == replies_.end()) return std::nullopt;
  Reply reply = std::move(it->second);
  replies_.erase(it);
  return reply;
}

Reply FakeCluster::Call(const std::string& to, const Request& request, uint64_t auth_user_id,
                        absl::Duration max_wait, const std::string& request_id) {
  const uint64_t correlation_id = Send(to, request, auth_user_id, request_id);
  const absl::Time deadline = Now() + max_wait;
  while (replies_.count(correlation_id) == 0 && Now() < deadline) {
    if (queue_.empty()) break;
    RunUntil(std::min(deadline, queue_.begin()->first.first));
  }
  auto it = replies_.find(correlation_id);
  if (it == replies_.end()) {
    return ErrorReply(absl::DeadlineExceededError(absl::StrCat("no reply from ", to)));
  }
  Reply reply = std::move(it->second);
  replies_.erase(it);
  return reply;
}

void FakeCluster::SetBusReachable(const std::string& address, bool reachable) {
  if (reachable) {
    bus_unreachable_.erase(address);
  } else {
    bus_unreachable_.insert(address);
  }
}

void FakeCluster::BusLoseTail(size_t keep) {
  while (bus_log_.size() > keep) {
    const std::string id = bus_log_.back().event_id();
    bus_event_ids_.erase(id);
    for (auto it = deliveries_.begin(); it != deliveries_.end();) {
      it = it->second.event.event_id() == id ? deliveries_.erase(it) : std::next(it);
    }
    bus_log_.pop_back();
  }
}

void FakeCluster::BusReconnected(const std::string& address) {
  auto it = slots_.find(address);
  if (it == slots_.end() || !it->second.up) return;
  it->second.node->OnBusReconnected();
}

void FakeCluster::BusPublish(const std::string& from, const Event& event) {
  if (bus_unreachable_.count(from) > 0) return;  // lost on the way
  const bool fresh = bus_event_ids_.insert(event.event_id()).second;
  // The publisher is acked either way: a duplicate publish is already durable.
  Schedule(Now() + options_.latency, [this, from, id = event.event_id()] {
    auto it = slots_.find(from);
    if (it == slots_.end() || !it->second.up) return;
    it->second.node->OnPublishAck(id);
  });
  if (!fresh) return;
  bus_log_.push_back(event);
  const std::string topic = EventTopic(event);
  for (const auto& [group, topics] : group_topics_) {
    if (topics.count(topic) > 0) BusDeliver(group, event);
  }
}

std::string FakeCluster::NextMember(const std::string& group) {
  const std::vector<std::string>& members = groups_[group];
  uint64_t& next = group_next_[group];
  for (size_t i = 0; i < members.size(); ++i) {
    const std::string& m = members[(next + i) % members.size()];
    if (IsUp(m)) {
      next = next + i + 1;
      return m;
    }
  }
  return "";
}

void FakeCluster::BusDeliver(const std::string& group, const Event& event) {
  const uint64_t id = next_delivery_id_++;
  const std::string member = NextMember(group);
  deliveries_[id] = Delivery{group, event, member};
  if (!member.empty()) {
    const uint64_t incarnation = slots_.at(member).incarnation;
    Schedule(Now() + options_.latency, [this, member, incarnation, event, id] {
      OnNode(member, incarnation, [&](Node* n) { n->OnEvent(event, id); });
    });
  }
  Schedule(Now() + options_.bus_ack_timeout, [this, id] {
    auto it = deliveries_.find(id);
    if (it == deliveries_.end()) return;
    Delivery d = std::move(it->second);
    deliveries_.erase(it);
    BusDeliver(d.group, d.event);  // redelivery
  });
}

void FakeCluster::BusAck(uint64_t delivery_id) { deliveries_.erase(delivery_id); }

uint64_t FakeCluster::InjectEvent(const std::string& address, const Event& event) {
  const uint64_t id = next_delivery_id_++;
  const uint64_t incarnation = slots_.at(address).incarnation;
  Schedule(Now() + options_.latency, [this, address, incarnation, event, id] {
    OnNode(address, incarnation, [&](Node* n) { n->OnEvent(event, id); });
  });
  return id;
}

}  // namespace parley
