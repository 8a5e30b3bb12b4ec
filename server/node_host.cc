#include "server/node_host.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <utility>

namespace parley {

HostLoop::HostLoop(std::string name, size_t max_queued) : loop_(std::move(name), max_queued) {
  loop_.SetAfterRun([this] { FlushAll(); });
}

HostLoop::~HostLoop() { loop_.Stop(); }

void HostLoop::Add(NodeHost* host) { hosts_.push_back(host); }

void HostLoop::Remove(NodeHost* host) {
  hosts_.erase(std::remove(hosts_.begin(), hosts_.end(), host), hosts_.end());
}

void HostLoop::FlushAll() {
  ++runs_;
  // Every write of the run is durable before any output of the run leaves,
  // whichever node of the loop made the write and whichever sends the output.
  for (NodeHost* host : hosts_) host->Commit();
  for (NodeHost* host : hosts_) host->Release();
}

NodeHost::NodeHost(std::string address, std::unique_ptr<OrderedStore> store, Network* network,
                   uint64_t seed)
    : address_(std::move(address)),
      store_(std::move(store)),
      network_(network),
      rng_(seed),
      own_loop_(std::make_unique<HostLoop>(address_)),
      host_loop_(own_loop_.get()),
      loop_(host_loop_->loop()) {}

NodeHost::NodeHost(std::string address, std::unique_ptr<OrderedStore> store, Network* network,
                   uint64_t seed, HostLoop* loop)
    : address_(std::move(address)),
      store_(std::move(store)),
      network_(network),
      rng_(seed),
      host_loop_(loop),
      loop_(host_loop_->loop()) {}

NodeHost::~NodeHost() { Stop(); }

void NodeHost::Start(Factory factory) {
  if (own_loop_) own_loop_->Start();
  loop_.RunSync([this] { host_loop_->Add(this); });
  network_->Attach(this);
  loop_.RunSync([this, &factory] {
    node_ = factory(this);
    node_->Start();
  });
}

void NodeHost::Stop() {
  if (node_ == nullptr) return;
  loop_.RunSync([this] {
    node_->Stop();
    Commit();
    Release();
  });
  network_->Detach(address_);
  // Nothing posts for this host any more; what was posted before runs
  // before this (the queue is in order) and finds the node still there, or
  // runs after Stop's flush and is dropped below with the node.
  loop_.RunSync([this] {
    for (const auto& [id, loop_id] : timers_) loop_.Cancel(loop_id);
    timers_.clear();
    Commit();
    Release();
    host_loop_->Remove(this);
    node_.reset();
  });
  if (own_loop_) own_loop_->Stop();
  node_.reset();
}

void NodeHost::Deliver(Envelope envelope) {
  loop_.Post([this, envelope = std::move(envelope), arrived = absl::Now()] {
    Handle(envelope, arrived);
  });
}

void NodeHost::DeliverMany(std::vector<Envelope> envelopes) {
  loop_.Post([this, envelopes = std::move(envelopes), arrived = absl::Now()] {
    for (const Envelope& e : envelopes) Handle(e, arrived);
  });
}

void NodeHost::Handle(const Envelope& envelope, absl::Time arrived) {
  if (node_ == nullptr) return;
  if (envelope.has_request() && envelope.timeout_us() > 0 &&
      absl::Now() - arrived > absl::Microseconds(envelope.timeout_us())) {
    expired_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  node_->OnEnvelope(envelope);
}

void NodeHost::DeliverEvent(Event event, uint64_t delivery_id) {
  loop_.Post([this, event = std::move(event), delivery_id] {
    if (node_) node_->OnEvent(event, delivery_id);
  });
}

void NodeHost::DeliverPublishAck(std::string event_id) {
  loop_.Post([this, event_id = std::move(event_id)] {
    if (node_) node_->OnPublishAck(event_id);
  });
}

void NodeHost::DeliverBusReconnected() {
  loop_.Post([this] {
    if (node_) node_->OnBusReconnected();
  });
}

void NodeHost::RunOnLoop(const std::function<void(Node*)>& fn) {
  loop_.RunSync([&] { fn(node_.get()); });
}

void NodeHost::Commit() {
  const absl::Status s = store_.Commit();
  if (!s.ok()) {
    std::fprintf(stderr, "%s: durable write failed, stopping the process: %s\n", address_.c_str(),
                 std::string(s.message()).c_str());
    std::abort();
  }
}

void NodeHost::Release() {
  std::vector<std::pair<std::string, std::vector<Envelope>>> sends;
  sends.swap(held_sends_);
  held_index_.clear();
  std::vector<std::function<void()>> events;
  events.swap(held_events_);
  for (auto& [to, envelopes] : sends) network_->SendMany(address_, to, std::move(envelopes));
  for (std::function<void()>& fn : events) fn();
}

void NodeHost::Send(const std::string& to, Envelope envelope) {
  auto [it, fresh] = held_index_.try_emplace(to, held_sends_.size());
  if (fresh) held_sends_.emplace_back(to, std::vector<Envelope>());
  held_sends_[it->second].second.push_back(std::move(envelope));
}

void NodeHost::Publish(const Event& event) {
  held_events_.push_back([this, event] { network_->Publish(address_, event); });
}

void NodeHost::Subscribe(const std::string& group, const std::vector<std::string>& topics) {
  network_->Subscribe(address_, group, topics);
}

void NodeHost::AckEvent(uint64_t delivery_id) {
  held_events_.push_back([this, delivery_id] { network_->AckEvent(delivery_id); });
}

TimerId NodeHost::SetTimer(absl::Duration after) {
  const TimerId id = next_timer_++;
  timers_[id] = loop_.PostAfter(after, [this, id] {
    timers_.erase(id);
    if (node_) node_->OnTimer(id);
  });
  return id;
}

void NodeHost::FailStop(const std::string& reason) {
  std::fprintf(stderr, "%s: fail-stop, ending the process: %s\n", address_.c_str(), reason.c_str());
  std::fflush(stderr);
  std::_Exit(70);
}

void NodeHost::CancelTimer(TimerId id) {
  auto it = timers_.find(id);
  if (it == timers_.end()) return;
  loop_.Cancel(it->second);
  timers_.erase(it);
}

}  // namespace parley
