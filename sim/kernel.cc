#include "sim/kernel.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/check.h"

namespace parley {
namespace sim {

uint64_t HashMix(uint64_t h, uint64_t x) {
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

namespace {

// One message in ten gets the reorder jitter.
constexpr uint32_t kReorderPpm = 100000;

// What an envelope contributes to the run's hash: enough to tell runs apart
// without serializing every message.
uint64_t Digest(const std::string& to, const Envelope& e) {
  uint64_t h = HashString(to);
  h = HashMix(h, HashString(e.from()));
  h = HashMix(h, e.correlation_id());
  h = HashMix(h, static_cast<uint64_t>(e.body_case()));
  if (e.has_request()) h = HashMix(h, static_cast<uint64_t>(e.request().op_case()));
  if (e.has_reply()) h = HashMix(h, static_cast<uint64_t>(e.reply().status().code()));
  h = HashMix(h, e.ByteSizeLong());
  return h;
}

}  // namespace

// ---- NodeEnv ---------------------------------------------------------------------------------

class Kernel::NodeEnv : public Env {
 public:
  NodeEnv(Kernel* kernel, Slot* slot, std::string address, FaultyStore* disk, uint64_t seed,
          uint64_t incarnation)
      : k_(kernel), slot_(slot), address_(std::move(address)),
        address_hash_(HashString(address_)), disk_(disk), rng_(seed),
        incarnation_(incarnation) {}

  const std::string& Self() const override { return address_; }
  absl::Time Now() override { return k_->now_ + k_->SkewOf(address_); }
  SeededRng& Rng() override { return rng_; }
  OrderedStore& Store() override { return *disk_; }

  void Send(const std::string& to, Envelope envelope) override {
    // The transport knows who sends: a node cannot claim another's address
    // (a TCP connection or a NATS inbox is the same in server mode).
    envelope.set_from(address_);
    if (k_->on_send_) k_->on_send_(address_, to, envelope);
    k_->Transmit(address_, to, std::move(envelope), Stalled());
  }

  void Publish(const Event& event) override {
    if (k_->Blocked(address_, kBusAddress)) return;
    k_->Schedule(k_->now_ + Stalled() + k_->Delay(),
                 [k = k_, from = address_, event] { k->bus_.Publish(from, event, k->now_); },
                 HashString(event.event_id()), "publish");
  }

  void Subscribe(const std::string& group, const std::vector<std::string>& topics) override {
    k_->bus_.Subscribe(address_, group, topics);
  }

  void AckEvent(uint64_t delivery_id) override {
    if (k_->Blocked(address_, kBusAddress)) return;
    k_->Schedule(k_->now_ + Stalled() + k_->Delay(),
                 [k = k_, delivery_id] { k->bus_.Ack(delivery_id); },
                 delivery_id, "event-ack");
  }

  TimerId SetTimer(absl::Duration after) override {
    const TimerId id = k_->next_timer_id_++;
    uint32_t index;
    Task& task = k_->NewTask(Task::kTimer, HashMix(address_hash_, id), "timer", &index);
    task.slot = slot_;
    task.incarnation = incarnation_;
    task.id = id;
    k_->Push(k_->now_ + std::max(after, absl::ZeroDuration()), index);
    return id;
  }

  void CancelTimer(TimerId id) override { k_->CancelTimer(id); }

  void FailStop(const std::string& reason) override {
    // The node is inside a callback: crash this incarnation once it returns
    // (an item due now runs after it), and bring the node back a second later
    // as a supervisor would, unless something restarted it meanwhile.
    ++k_->stats_.fail_stops;
    k_->Schedule(k_->now_,
                 [k = k_, address = address_, inc = incarnation_] {
                   auto it = k->slots_.find(address);
                   if (it == k->slots_.end() || !it->second.up ||
                       it->second.incarnation != inc) {
                     return;
                   }
                   k->Crash(address);
                   k->Schedule(k->now_ + absl::Seconds(1),
                               [k, address] {
                                 if (!k->IsUp(address)) k->Restart(address);
                               },
                               HashString("fail-stop-restart"), "fail-stop-restart");
                 },
                 HashString(address_) ^ 0x5170, "fail-stop");
  }

 private:
  // A slow disk: the writes of this callback stalled the node, so whatever
  // it sends leaves once the disk is done (in order: the node is busy until
  // then). Zero, and no change to the schedule, when the disk is healthy.
  absl::Duration Stalled() {
    const absl::Duration stall = disk_->TakeStall();
    if (stall > absl::ZeroDuration()) busy_until_ = std::max(busy_until_, k_->now_) + stall;
    return busy_until_ > k_->now_ ? busy_until_ - k_->now_ : absl::ZeroDuration();
  }

  Kernel* k_;
  Slot* slot_;  // this node's slot (slots_ never drops one)
  std::string address_;
  uint64_t address_hash_;  // HashString(address_), for the timers' digests
  FaultyStore* disk_;
  SeededRng rng_;
  uint64_t incarnation_;
  absl::Time busy_until_ = absl::InfinitePast();
};

// ---- the bus's host --------------------------------------------------------------------------

void Kernel::BusHost::PublishAcked(const std::string& publisher, const std::string& event_id) {
  Kernel* k = kernel_;
  k->Schedule(k->now_ + k->Delay(), [k, publisher, event_id] {
    auto it = k->slots_.find(publisher);
    if (it != k->slots_.end() && it->second.up) it->second.node->OnPublishAck(event_id);
  }, HashString(event_id), "publish-ack");
}

void Kernel::BusHost::DeliverEvent(const std::string& member, const Event& event,
                                   uint64_t delivery_id) {
  Kernel* k = kernel_;
  if (k->Blocked(kBusAddress, member)) return;
  Slot* slot = &k->slots_.at(member);
  k->ScheduleEvent(k->now_ + k->Delay(), slot, event, delivery_id,
                   HashMix(HashString(member), delivery_id));
}

void Kernel::BusHost::ArmAckTimer(uint64_t delivery_id, absl::Duration after) {
  Kernel* k = kernel_;
  k->Schedule(k->now_ + after, [k, delivery_id] { k->bus_.AckTimeout(delivery_id); },
              delivery_id, "event-timeout");
}

// ---- kernel ----------------------------------------------------------------------------------

Kernel::Kernel(Options options)
    : options_(std::move(options)),
      rng_(SeededRng::Derive(options_.seed, "world")),
      now_(options_.start),
      bus_host_(this),
      bus_(&bus_host_, options_.bus) {
  set_network(options_.network);
}

void Kernel::set_network(const NetworkConfig& config) {
  options_.network = config;
  loss_ppm_ = Ppm(config.loss);
  duplicate_ppm_ = Ppm(config.duplicate);
}

Kernel::~Kernel() {
  // Nodes go first, while everything their destructors might touch lives.
  for (auto& [address, slot] : slots_) {
    if (slot.up && on_gone_) on_gone_(address, slot.node.get());
    slot.node.reset();
  }
}

// ---- scheduler

namespace {

struct Later {
  template <typename I>
  bool operator()(const I& a, const I& b) const {
    return a.time != b.time ? a.time > b.time : a.seq > b.seq;
  }
};

}  // namespace

Kernel::Task& Kernel::NewTask(Task::Kind kind, uint64_t digest, const char* what,
                              uint32_t* index) {
  if (free_tasks_.empty()) {
    *index = static_cast<uint32_t>(tasks_.size());
    tasks_.emplace_back();
  } else {
    *index = free_tasks_.back();
    free_tasks_.pop_back();
  }
  Task& task = tasks_[*index];
  task.kind = kind;
  task.digest = digest;
  task.what = what;
  return task;
}

void Kernel::Push(absl::Time at, uint32_t index) {
  heap_.push_back(Item{std::max(at, now_), next_seq_++, index});
  std::push_heap(heap_.begin(), heap_.end(), Later());
}

void Kernel::CancelTimer(uint64_t id) {
  if (!cancelled_timers_.insert(id).second) return;
  // Most cancelled timers are call timeouts cancelled by their reply, due
  // long after it: left in the heap they would make it a third larger. Once
  // they are half of it, they are taken out all at once. Which items are
  // left, and the (time, sequence) order they run in, are the same: only the
  // heap's layout changes, and it decides nothing.
  if (cancelled_timers_.size() >= kMinCompaction && cancelled_timers_.size() * 2 >= heap_.size()) {
    CompactCancelled();
  }
}

void Kernel::CompactCancelled() {
  size_t kept = 0;
  for (size_t i = 0; i < heap_.size(); ++i) {
    const Item item = heap_[i];
    const Task& task = tasks_[item.task];
    if (task.kind == Task::kTimer && cancelled_timers_.erase(task.id) > 0) {
      free_tasks_.push_back(item.task);
      continue;
    }
    heap_[kept++] = item;
  }
  heap_.resize(kept);
  std::make_heap(heap_.begin(), heap_.end(), Later());
  // What is left names no pending timer (cancelled after it ran, or a
  // timer id unknown to the kernel): nothing will look for it again.
  cancelled_timers_.clear();
}

void Kernel::Schedule(absl::Time at, std::function<void()> action, uint64_t digest,
                      const char* what) {
  uint32_t index;
  NewTask(Task::kAction, digest, what, &index).action = std::move(action);
  Push(at, index);
}

void Kernel::ScheduleMessage(absl::Time at, const std::string& to, Envelope envelope,
                             uint64_t digest) {
  uint32_t index;
  Task& task = NewTask(Task::kMessage, digest, "message", &index);
  task.to = to;  // reuses the pooled string's buffer
  task.route = RouteTo(to);
  task.envelope = std::move(envelope);
  Push(at, index);
}

void Kernel::ScheduleEvent(absl::Time at, Slot* slot, const Event& event, uint64_t delivery_id,
                           uint64_t digest) {
  uint32_t index;
  Task& task = NewTask(Task::kEvent, digest, "event", &index);
  task.slot = slot;
  task.incarnation = slot->incarnation;
  task.id = delivery_id;
  task.event = event;  // a copy: the bus's log may lose it before delivery
  Push(at, index);
}

void Kernel::Run(Task& task) {
  switch (task.kind) {
    case Task::kAction: {
      task.action();
      task.action = nullptr;  // what it captured goes now, as the item did
      break;
    }
    case Task::kMessage:
      Deliver(task.to, task.route, task.envelope);
      break;
    case Task::kTimer: {
      Slot* slot = task.slot;
      if (slot->up && slot->incarnation == task.incarnation) slot->node->OnTimer(task.id);
      break;
    }
    case Task::kEvent: {
      Slot* slot = task.slot;
      if (slot->up && slot->incarnation == task.incarnation) {
        slot->node->OnEvent(task.event, task.id);
      }
      break;
    }
  }
}

namespace {

// "svc.message.0" -> "svc.message", "gw.1" -> "gw", "client.alice.phone" -> "client".
absl::string_view RoleOf(absl::string_view address) {
  size_t end = address.find('.');
  if (absl::StartsWith(address, "svc.") && end != absl::string_view::npos) {
    end = address.find('.', end + 1);
  }
  return address.substr(0, end);
}

std::string EnvelopeKind(const Envelope& e) {
  if (e.has_request()) {
    const auto* f = Request::descriptor()->FindFieldByNumber(e.request().op_case());
    return absl::StrCat("request ", f != nullptr ? f->name() : "(none)");
  }
  if (e.has_reply()) {
    const auto* f = Reply::descriptor()->FindFieldByNumber(e.reply().result_case());
    return absl::StrCat("reply ", f != nullptr ? f->name() : "(status only)");
  }
  if (e.has_push()) return "push";
  if (e.has_client_push()) return "client_push";
  if (e.has_registry_update()) return "registry_update";
  return "(empty)";
}

}  // namespace

std::string Kernel::KindOf(const Task& task) const {
  switch (task.kind) {
    case Task::kMessage:
      return absl::StrCat("message ->", RoleOf(task.to), " ", EnvelopeKind(task.envelope));
    case Task::kTimer:
    case Task::kEvent:
      return absl::StrCat(task.what, " at ",
                          task.slot != nullptr && task.slot->env != nullptr
                              ? RoleOf(task.slot->env->Self())
                              : absl::string_view("?"));
    case Task::kAction:
      break;
  }
  return task.what;
}

void Kernel::Fold(const Item& item, const Task& task) {
  hash_ = HashMix(hash_, static_cast<uint64_t>(absl::ToUnixMicros(item.time)));
  hash_ = HashMix(hash_, task.digest);
  ++stats_.events;
  if (count_kinds_) ++kind_counts_[KindOf(task)];
  if (trace_on_) {
    trace_.emplace_back(hash_, absl::StrCat("#", stats_.events, " t=",
                                            absl::FormatDuration(item.time - options_.start),
                                            " ", task.what));
  }
}

void Kernel::RunUntil(absl::Time until) {
  while (!heap_.empty() && heap_.front().time <= until) {
    std::pop_heap(heap_.begin(), heap_.end(), Later());
    const Item item = heap_.back();
    heap_.pop_back();
    Task& task = tasks_[item.task];
    // Paired with Schedule's clamp and the heap's order: items run in
    // (time, sequence) order and time never goes back.
    PARLEY_CHECK(item.time >= now_) << "item '" << task.what << "' due before now";
    PARLEY_CHECK(item.time > last_run_time_ || (item.time == last_run_time_ && item.seq > last_run_seq_) ||
                 last_run_seq_ == kNoneRun)
        << "item '" << task.what << "' runs out of (time, sequence) order";
    last_run_time_ = item.time;
    last_run_seq_ = item.seq;
    now_ = item.time;
    // A cancelled timer is a no-op: it is neither counted nor hashed, so the
    // event count is of things that happened (a quarter of a default seed's
    // items were cancelled call timeouts and keep-alives).
    if (task.kind == Task::kTimer && cancelled_timers_.erase(task.id) > 0) {
      free_tasks_.push_back(item.task);
      continue;
    }
    Fold(item, task);
    Run(task);
    free_tasks_.push_back(item.task);
  }
  now_ = std::max(now_, until);
}

// ---- nodes

void Kernel::AddNode(const std::string& address, Factory factory, MemStore* store) {
  ++address_version_;
  Slot& slot = slots_[address];
  slot.factory = std::move(factory);
  if (store == nullptr) {
    slot.own_store = std::make_unique<MemStore>();
    store = slot.own_store.get();
  }
  slot.store = store;
  slot.disk = std::make_unique<FaultyStore>(
      store, SeededRng::Derive(options_.seed, absl::StrCat("disk:", address)));
  Restart(address);
}

void Kernel::Crash(const std::string& address) {
  Slot& slot = slots_.at(address);
  if (!slot.up) return;
  if (on_gone_) on_gone_(address, slot.node.get());
  slot.node.reset();
  slot.env.reset();
  slot.up = false;
  ++slot.incarnation;  // what the old incarnation scheduled finds no node
  if (lose_unsynced_batch_) slot.store->LoseLastBatch();
  // Its consumer-group memberships stay: a restarted node rejoins them.
}

void Kernel::Restart(const std::string& address) {
  Slot& slot = slots_.at(address);
  if (slot.up) Crash(address);
  const uint64_t seed =
      SeededRng::Derive(options_.seed, absl::StrCat(address, "#", slot.incarnation));
  slot.env =
      std::make_unique<NodeEnv>(this, &slot, address, slot.disk.get(), seed, slot.incarnation);
  slot.node = slot.factory(slot.env.get());
  slot.up = true;
  hash_ = HashMix(hash_, HashString(address) ^ slot.incarnation);
  slot.node->Start();
}

bool Kernel::IsUp(const std::string& address) const {
  auto it = slots_.find(address);
  return it != slots_.end() && it->second.up;
}

Node* Kernel::node(const std::string& address) {
  auto it = slots_.find(address);
  return it == slots_.end() || !it->second.up ? nullptr : it->second.node.get();
}

FaultyStore* Kernel::disk(const std::string& address) {
  auto it = slots_.find(address);
  return it == slots_.end() ? nullptr : it->second.disk.get();
}

MemStore* Kernel::store(const std::string& address) {
  auto it = slots_.find(address);
  return it == slots_.end() ? nullptr : it->second.store;
}

std::vector<std::string> Kernel::Addresses() const {
  std::vector<std::string> out;
  for (const auto& [address, slot] : slots_) out.push_back(address);
  return out;
}

uint64_t Kernel::incarnation(const std::string& address) const {
  return slots_.at(address).incarnation;
}

void Kernel::SetSkew(const std::string& address, absl::Duration skew, double drift_ppm) {
  skew_[address] = Skew{skew, drift_ppm, now_};
}

absl::Duration Kernel::SkewOf(const std::string& address) const {
  auto it = skew_.find(address);
  if (it == skew_.end()) return absl::ZeroDuration();
  const double elapsed_s = absl::ToDoubleSeconds(now_ - it->second.since);
  return it->second.offset +
         absl::Microseconds(static_cast<int64_t>(elapsed_s * it->second.drift_ppm));
}

// ---- network

Kernel::FilterId Kernel::AddFilter(Filter filter) {
  const FilterId id = next_filter_id_++;
  filters_.emplace(id, std::move(filter));
  return id;
}

Kernel::FilterId Kernel::Block(const std::string& from, const std::string& to) {
  return AddFilter(Filter{Filter::kBlock, from, to, nullptr});
}

Kernel::FilterId Kernel::Isolate(const std::string& address) {
  return AddFilter(Filter{Filter::kIsolate, address, "", nullptr});
}

Kernel::FilterId Kernel::HoldNext(Matcher match) {
  return AddFilter(Filter{Filter::kHold, "", "", std::move(match)});
}

void Kernel::RemovePartitions() {
  for (auto it = filters_.begin(); it != filters_.end();) {
    it = it->second.kind == Filter::kHold ? std::next(it) : filters_.erase(it);
  }
}

bool Kernel::Partitioned() const {
  for (const auto& [id, f] : filters_) {
    if (f.kind != Filter::kHold) return true;
  }
  return false;
}

bool Kernel::Blocked(const std::string& from, const std::string& to) const {
  for (const auto& [id, f] : filters_) {
    switch (f.kind) {
      case Filter::kBlock:
        if (f.from == from && f.to == to) return true;
        break;
      case Filter::kIsolate:
        if (f.from == from || f.from == to) return true;
        break;
      case Filter::kHold:
        break;
    }
  }
  return false;
}

bool Kernel::Draw(uint32_t ppm) {
  if (ppm == 0) return false;
  if (ppm >= kMillion) return true;
  return rng_.Uniform(kMillion) < ppm;
}

absl::Duration Kernel::Delay() {
  const NetworkConfig& net = options_.network;
  absl::Duration d = net.latency;
  if (net.jitter > absl::ZeroDuration()) {
    d += absl::Microseconds(rng_.Uniform(absl::ToInt64Microseconds(net.jitter) + 1));
  }
  if (net.reorder_jitter > absl::ZeroDuration() && Draw(kReorderPpm)) {
    d += absl::Microseconds(rng_.Uniform(absl::ToInt64Microseconds(net.reorder_jitter) + 1));
  }
  return d;
}

void Kernel::Transmit(const std::string& from, const std::string& to, Envelope envelope,
                      absl::Duration after) {
  ++stats_.messages_sent;
  if (Blocked(from, to) || Draw(loss_ppm_)) {
    ++stats_.messages_lost;
    if (network_observer_ != nullptr) {
      network_observer_->OnLost(from, to, envelope, Blocked(from, to));
    }
    return;
  }
  const uint64_t digest = Digest(to, envelope);
  if (Draw(duplicate_ppm_)) {
    ++stats_.messages_duplicated;
    const absl::Duration copy_delay = Delay();
    if (network_observer_ != nullptr) {
      network_observer_->OnSent(from, to, envelope, copy_delay, /*duplicate=*/true);
    }
    ScheduleMessage(now_ + after + copy_delay, to, envelope, digest);
  }
  const absl::Duration delay = Delay();
  if (network_observer_ != nullptr) {
    network_observer_->OnSent(from, to, envelope, delay, /*duplicate=*/false);
  }
  ScheduleMessage(now_ + after + delay, to, std::move(envelope), digest);
}

Kernel::Route Kernel::RouteTo(const std::string& to) {
  // Routes are remembered per address until the next node or endpoint is
  // added: one hash lookup per message instead of two string-keyed tree
  // searches (addresses share long prefixes: "client.user12.d1").
  if (routes_version_ != address_version_) {
    routes_.clear();
    routes_version_ = address_version_;
  }
  auto [cached, fresh] = routes_.try_emplace(to);
  if (!fresh) return cached->second;
  Route& route = cached->second;
  route.version = address_version_;
  auto endpoint = endpoints_.find(to);
  if (endpoint != endpoints_.end()) {
    route.endpoint = &endpoint->second;
    return route;
  }
  auto it = slots_.find(to);
  if (it != slots_.end()) route.slot = &it->second;
  return route;
}

void Kernel::Deliver(const std::string& to, const Route& sent_route, const Envelope& envelope) {
  for (auto it = filters_.begin(); it != filters_.end(); ++it) {
    if (it->second.kind == Filter::kHold && it->second.match(to, envelope)) {
      filters_.erase(it);  // a hold takes one envelope
      held_.emplace_back(to, envelope);
      return;
    }
  }
  // The route taken at send time holds unless an address was added since.
  const Route route = sent_route.version == address_version_ ? sent_route : RouteTo(to);
  if (route.endpoint != nullptr) {
    if (envelope.has_reply()) {
      replies_[envelope.correlation_id()] = envelope.reply();
    } else if (route.endpoint->keep_inbox) {
      route.endpoint->inbox.push_back(envelope);
    }
    return;
  }
  const bool up = route.slot != nullptr && route.slot->up;
  if (network_observer_ != nullptr) network_observer_->OnArrival(to, envelope, up);
  if (!up) {
    ++stats_.messages_lost;  // as on the wire: the sender's timeout handles it
    return;
  }
  route.slot->node->OnEnvelope(envelope);
}

void Kernel::ReleaseHeld() {
  std::vector<std::pair<std::string, Envelope>> held = std::move(held_);
  held_.clear();
  for (auto& [to, envelope] : held) {
    const uint64_t digest = Digest(to, envelope);
    ScheduleMessage(now_ + Delay(), to, std::move(envelope), digest);
  }
}

// ---- outside endpoints

void Kernel::AddEndpoint(const std::string& address, bool keep_inbox) {
  ++address_version_;
  endpoints_[address].keep_inbox = keep_inbox;
}

uint64_t Kernel::SendRequest(const std::string& from, const std::string& to,
                             const Request& request, uint64_t auth_user_id,
                             const std::string& request_id) {
  const uint64_t correlation_id = next_correlation_id_++;
  Envelope envelope;
  envelope.set_correlation_id(correlation_id);
  envelope.set_from(from);
  envelope.set_request_id(request_id.empty() ? absl::StrCat(from, "#", correlation_id)
                                             : request_id);
  envelope.set_auth_user_id(auth_user_id);
  *envelope.mutable_request() = request;
  Transmit(from, to, std::move(envelope));
  return correlation_id;
}

std::optional<Reply> Kernel::AwaitReply(uint64_t correlation_id, absl::Duration max_wait) {
  const absl::Time deadline = now_ + max_wait;
  while (replies_.count(correlation_id) == 0 && now_ < deadline && !heap_.empty()) {
    RunUntil(std::min(deadline, heap_.front().time));
  }
  return TakeReply(correlation_id);
}

std::optional<Reply> Kernel::TakeReply(uint64_t correlation_id) {
  auto it = replies_.find(correlation_id);
  if (it == replies_.end()) return std::nullopt;
  Reply reply = std::move(it->second);
  replies_.erase(it);
  return reply;
}

const std::vector<Envelope>& Kernel::inbox(const std::string& endpoint) const {
  return endpoints_.at(endpoint).inbox;
}

// ---- bus

uint64_t Kernel::InjectEvent(const std::string& address, const Event& event) {
  const uint64_t id = bus_.NewDeliveryId();
  Slot* slot = &slots_.at(address);
  ScheduleEvent(now_ + Delay(), slot, event, id, HashMix(HashString(address), id));
  return id;
}

void Kernel::BusReconnected(const std::string& address) {
  if (Node* n = node(address)) n->OnBusReconnected();
}

const WorldStats& Kernel::stats() const {
  stats_.bus_published = bus_.stats().published;
  stats_.bus_duplicates_let_through = bus_.stats().duplicates_let_through;
  stats_.bus_redeliveries = bus_.stats().redeliveries;
  return stats_;
}

}  // namespace sim
}  // namespace parley
