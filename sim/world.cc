#include "sim/world.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/status.h"

namespace parley {
namespace sim {
namespace {

uint64_t Mix(uint64_t h, uint64_t x) {
  h ^= x + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
  h *= 0xff51afd7ed558ccdULL;
  return h ^ (h >> 33);
}

uint64_t HashString(absl::string_view s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ULL;
  }
  return h;
}

// What an envelope contributes to the run's hash: enough to tell runs apart
// without serializing every message.
uint64_t Digest(const std::string& to, const Envelope& e) {
  uint64_t h = HashString(to);
  h = Mix(h, HashString(e.from()));
  h = Mix(h, e.correlation_id());
  h = Mix(h, static_cast<uint64_t>(e.body_case()));
  if (e.has_request()) h = Mix(h, static_cast<uint64_t>(e.request().op_case()));
  if (e.has_reply()) h = Mix(h, static_cast<uint64_t>(e.reply().status().code()));
  h = Mix(h, e.ByteSizeLong());
  return h;
}

template <typename T>
bool Later(const T& a, const T& b) {
  return a.time != b.time ? a.time > b.time : a.seq > b.seq;
}

}  // namespace

class World::NodeEnv : public Env {
 public:
  NodeEnv(World* world, std::string address, MemStore* store, uint64_t seed, uint64_t incarnation)
      : world_(world), address_(std::move(address)), store_(store), rng_(seed),
        incarnation_(incarnation) {}

  const std::string& Self() const override { return address_; }
  absl::Time Now() override {
    return world_->now_ + world_->SkewOf(address_);
  }
  SeededRng& Rng() override { return rng_; }
  OrderedStore& Store() override { return *store_; }
  void Send(const std::string& to, Envelope envelope) override {
    // The transport knows who sends: a node cannot claim another's address
    // (a TCP connection or a NATS inbox is the same in server mode).
    envelope.set_from(address_);
    if (world_->on_send_) world_->on_send_(address_, to, envelope);
    world_->Transmit(address_, to, std::move(envelope));
  }
  void Publish(const Event& event) override {
    if (world_->Blocked(address_, "bus")) return;
    world_->Schedule(world_->now_ + world_->Delay(),
                     [w = world_, from = address_, event] { w->BusPublish(from, event); },
                     HashString(event.event_id()), "publish");
  }
  void Subscribe(const std::string& group, const std::vector<std::string>& topics) override {
    std::vector<std::string>& members = world_->groups_[group];
    if (std::find(members.begin(), members.end(), address_) == members.end()) {
      members.push_back(address_);
    }
    world_->group_topics_[group].insert(topics.begin(), topics.end());
  }
  void AckEvent(uint64_t delivery_id) override {
    if (world_->Blocked(address_, "bus")) return;
    world_->Schedule(world_->now_ + world_->Delay(),
                     [w = world_, delivery_id] { w->deliveries_.erase(delivery_id); },
                     delivery_id, "event-ack");
  }
  TimerId SetTimer(absl::Duration after) override {
    const TimerId id = world_->next_timer_id_++;
    world_->Schedule(world_->now_ + std::max(after, absl::ZeroDuration()),
                     [w = world_, address = address_, inc = incarnation_, id] {
                       if (w->cancelled_timers_.erase(id) > 0) return;
                       w->OnNode(address, inc, [id](Node* n) { n->OnTimer(id); });
                     },
                     Mix(HashString(address_), id), "timer");
    return id;
  }
  void CancelTimer(TimerId id) override { world_->cancelled_timers_.insert(id); }
  void FailStop(const std::string& reason) override {
    // After the current callback: crash this incarnation, restart a second later.
    ++world_->stats_.fail_stops;
    world_->Schedule(world_->now_,
                     [w = world_, address = address_, inc = incarnation_] {
                       auto it = w->slots_.find(address);
                       if (it == w->slots_.end() || !it->second.up ||
                           it->second.incarnation != inc) {
                         return;
                       }
                       w->Crash(address);
                       w->After(absl::Seconds(1), [w, address] { w->Restart(address); },
                                "fail-stop-restart");
                     },
                     HashString(address_) ^ 0x5170, "fail-stop");
  }

 private:
  World* world_;
  std::string address_;
  MemStore* store_;
  SeededRng rng_;
  uint64_t incarnation_;
};

World::World(uint64_t seed)
    : seed_(seed),
      rng_(SeededRng::Derive(seed, "world")),
      start_(absl::FromUnixSeconds(1700000000)),
      now_(start_) {}

World::~World() {
  for (auto& [address, slot] : slots_) {
    if (slot.up && on_gone_) on_gone_(address, slot.node.get());
    slot.node.reset();
  }
}

// ---- nodes ----------------------------------------------------------------------------------

void World::AddNode(const std::string& address, Factory factory, MemStore* store) {
  Slot& slot = slots_[address];
  slot.factory = std::move(factory);
  if (store == nullptr) {
    slot.own_store = std::make_unique<MemStore>();
    store = slot.own_store.get();
  }
  slot.store = store;
  Restart(address);
}

void World::Crash(const std::string& address) {
  Slot& slot = slots_.at(address);
  if (!slot.up) return;
  if (on_gone_) on_gone_(address, slot.node.get());
  slot.node.reset();
  slot.env.reset();
  slot.up = false;
  ++slot.incarnation;
  if (lose_unsynced_batch_) slot.store->LoseLastBatch();
  // Its consumer-group memberships stay: a restarted node rejoins them.
}

void World::Restart(const std::string& address) {
  Slot& slot = slots_.at(address);
  if (slot.up) return;
  const uint64_t seed = SeededRng::Derive(seed_, absl::StrCat(address, "#", slot.incarnation));
  slot.env = std::make_unique<NodeEnv>(this, address, slot.store, seed, slot.incarnation);
  slot.node = slot.factory(slot.env.get());
  slot.up = true;
  hash_ = Mix(hash_, HashString(address) ^ slot.incarnation);
  slot.node->Start();
}

bool World::IsUp(const std::string& address) const {
  auto it = slots_.find(address);
  return it != slots_.end() && it->second.up;
}

Node* World::node(const std::string& address) {
  auto it = slots_.find(address);
  return it == slots_.end() || !it->second.up ? nullptr : it->second.node.get();
}

MemStore* World::store(const std::string& address) {
  auto it = slots_.find(address);
  return it == slots_.end() ? nullptr : it->second.store;
}

std::vector<std::string> World::Addresses() const {
  std::vector<std::string> out;
  for (const auto& [address, slot] : slots_) out.push_back(address);
  return out;
}

void World::OnNode(const std::string& address, uint64_t incarnation,
                   const std::function<void(Node*)>& fn) {
  auto it = slots_.find(address);
  if (it == slots_.end() || !it->second.up || it->second.incarnation != incarnation) return;
  fn(it->second.node.get());
}

// ---- faults ----------------------------------------------------------------------------------

void World::Isolate(const std::string& address) { isolated_.insert(address); }

void World::SetSkew(const std::string& address, absl::Duration skew, double drift_ppm) {
  skew_[address] = Skew{skew, drift_ppm, now_};
}

absl::Duration World::SkewOf(const std::string& address) const {
  auto it = skew_.find(address);
  if (it == skew_.end()) return absl::ZeroDuration();
  const double elapsed_s = absl::ToDoubleSeconds(now_ - it->second.since);
  return it->second.offset + absl::Microseconds(static_cast<int64_t>(elapsed_s * it->second.drift_ppm));
}

bool World::Blocked(const std::string& from, const std::string& to) const {
  if (isolated_.count(from) > 0 || isolated_.count(to) > 0) return true;
  return blocked_.count({from, to}) > 0;
}

// ---- scheduling ------------------------------------------------------------------------------

void World::Schedule(absl::Time at, std::function<void()> action, uint64_t digest,
                     const char* what) {
  heap_.push_back(Item{std::max(at, now_), next_seq_++, std::move(action), digest, what});
  std::push_heap(heap_.begin(), heap_.end(), [](const Item& a, const Item& b) { return Later(a, b); });
}

void World::At(absl::Time when, std::function<void()> action, const char* what) {
  Schedule(when, std::move(action), HashString(what), what);
}

void World::Fold(const Item& item) {
  hash_ = Mix(hash_, static_cast<uint64_t>(absl::ToUnixMicros(item.time)));
  hash_ = Mix(hash_, item.digest);
  ++stats_.events;
  if (trace_on_) {
    trace_.emplace_back(hash_, absl::StrCat("#", stats_.events, " t=",
                                            absl::FormatDuration(item.time - start_), " ",
                                            item.what));
  }
}

void World::RunUntil(absl::Time until) {
  auto later = [](const Item& a, const Item& b) { return Later(a, b); };
  while (!heap_.empty() && heap_.front().time <= until) {
    std::pop_heap(heap_.begin(), heap_.end(), later);
    Item item = std::move(heap_.back());
    heap_.pop_back();
    now_ = std::max(now_, item.time);
    Fold(item);
    item.action();
  }
  now_ = std::max(now_, until);
}

// ---- network ---------------------------------------------------------------------------------

absl::Duration World::Delay() {
  absl::Duration d = network_.latency;
  if (network_.jitter > absl::ZeroDuration()) {
    d += absl::Microseconds(rng_.Uniform(absl::ToInt64Microseconds(network_.jitter) + 1));
  }
  if (network_.reorder_jitter > absl::ZeroDuration() && rng_.Bernoulli(0.1)) {
    d += absl::Microseconds(rng_.Uniform(absl::ToInt64Microseconds(network_.reorder_jitter) + 1));
  }
  return d;
}

void World::Transmit(const std::string& from, const std::string& to, Envelope envelope) {
  ++stats_.messages_sent;
  if (Blocked(from, to) || rng_.Bernoulli(network_.loss)) {
    ++stats_.messages_lost;
    return;
  }
  const uint64_t digest = Digest(to, envelope);
  if (rng_.Bernoulli(network_.duplicate)) {
    ++stats_.messages_duplicated;
    Schedule(now_ + Delay(), [this, to, envelope] { Deliver(to, envelope); }, digest, "message");
  }
  Schedule(now_ + Delay(), [this, to, envelope = std::move(envelope)] { Deliver(to, envelope); },
           digest, "message");
}

void World::Deliver(const std::string& to, const Envelope& envelope) {
  if (to == kOutside) {
    if (envelope.has_reply()) replies_[envelope.correlation_id()] = envelope.reply();
    return;
  }
  auto it = slots_.find(to);
  if (it == slots_.end() || !it->second.up) {
    ++stats_.messages_lost;
    return;
  }
  it->second.node->OnEnvelope(envelope);
}

std::optional<Reply> World::Call(const std::string& to, const Request& request,
                                 uint64_t auth_user_id, absl::Duration max_wait) {
  const uint64_t correlation_id = next_correlation_id_++;
  Envelope envelope;
  envelope.set_correlation_id(correlation_id);
  envelope.set_from(kOutside);
  envelope.set_request_id(absl::StrCat(kOutside, "#", correlation_id));
  envelope.set_auth_user_id(auth_user_id);
  *envelope.mutable_request() = request;
  Transmit(kOutside, to, std::move(envelope));
  const absl::Time deadline = now_ + max_wait;
  while (replies_.count(correlation_id) == 0 && now_ < deadline && !heap_.empty()) {
    RunUntil(std::min(deadline, heap_.front().time));
  }
  auto it = replies_.find(correlation_id);
  if (it == replies_.end()) return std::nullopt;
  Reply reply = std::move(it->second);
  replies_.erase(it);
  return reply;
}

// ---- the event bus ---------------------------------------------------------------------------

void World::BusPublish(const std::string& from, const Event& event) {
  if (bus_outage_) return;  // not accepted: the publisher's relay tries again
  const bool seen = bus_ids_.count(event.event_id()) > 0;
  // The publisher learns its event is durable.
  Schedule(now_ + Delay(), [this, from, id = event.event_id()] {
    auto it = slots_.find(from);
    if (it != slots_.end() && it->second.up) it->second.node->OnPublishAck(id);
  }, HashString(event.event_id()), "publish-ack");
  if (seen && bus_dedup_) return;
  if (seen) ++stats_.bus_duplicates_let_through;
  bus_ids_.insert(event.event_id());
  bus_log_.push_back(event);
  ++stats_.bus_published;
  const std::string topic = EventTopic(event);
  for (const auto& [group, topics] : group_topics_) {
    if (topics.count(topic) > 0) BusDeliver(group, bus_log_.size() - 1);
  }
}

std::string World::NextMember(const std::string& group) {
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

void World::BusDeliver(const std::string& group, size_t log_index) {
  const uint64_t id = next_delivery_id_++;
  deliveries_[id] = Delivery{group, log_index};
  const std::string member = bus_outage_ ? "" : NextMember(group);
  if (!member.empty() && !Blocked("bus", member)) {
    const uint64_t incarnation = slots_.at(member).incarnation;
    Schedule(now_ + Delay(), [this, member, incarnation, log_index, id] {
      OnNode(member, incarnation, [&](Node* n) { n->OnEvent(bus_log_[log_index], id); });
    }, Mix(HashString(member), id), "event");
  }
  Schedule(now_ + bus_ack_timeout_, [this, id] {
    auto it = deliveries_.find(id);
    if (it == deliveries_.end()) return;
    const Delivery d = it->second;
    deliveries_.erase(it);
    ++stats_.bus_redeliveries;
    BusDeliver(d.group, d.log_index);
  }, id, "event-timeout");
}

void World::BusStorm(size_t count) {
  const size_t first = bus_log_.size() > count ? bus_log_.size() - count : 0;
  for (size_t i = first; i < bus_log_.size(); ++i) {
    const std::string topic = EventTopic(bus_log_[i]);
    for (const auto& [group, topics] : group_topics_) {
      if (topics.count(topic) > 0) {
        ++stats_.bus_redeliveries;
        BusDeliver(group, i);
      }
    }
  }
}

}  // namespace sim
}  // namespace parley
