#include "server/node_host.h"

#include <cstdio>
#include <cstdlib>
#include <utility>

namespace parley {

NodeHost::NodeHost(std::string address, std::unique_ptr<OrderedStore> store, Network* network,
                   uint64_t seed)
    : address_(std::move(address)),
      store_(std::move(store)),
      network_(network),
      rng_(seed),
      loop_(address_) {
  loop_.SetAfterRun([this] { Flush(); });
}

NodeHost::~NodeHost() { Stop(); }

void NodeHost::Start(Factory factory) {
  loop_.Start();
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
    Flush();
  });
  network_->Detach(address_);
  loop_.Stop();
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

void NodeHost::Flush() {
  const absl::Status s = store_.Commit();
  if (!s.ok()) {
    std::fprintf(stderr, "%s: durable write failed, stopping the process: %s\n", address_.c_str(),
                 std::string(s.message()).c_str());
    std::abort();
  }
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
