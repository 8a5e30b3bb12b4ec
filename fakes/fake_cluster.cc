#include "fakes/fake_cluster.h"

#include <cassert>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/status.h"

namespace parley {
namespace {

sim::Kernel::Options KernelOptions(const FakeCluster::Options& options) {
  sim::Kernel::Options k;
  k.seed = options.seed;
  // A quiet network: a fixed latency, nothing lost, duplicated or reordered.
  k.network.latency = options.latency;
  k.network.jitter = absl::ZeroDuration();
  k.bus.ack_timeout = options.bus_ack_timeout;
  k.bus.dedup_window = options.bus_dedup_window;
  return k;
}

}  // namespace

FakeCluster::FakeCluster(Options options) : kernel_(KernelOptions(options)) {
  kernel_.AddEndpoint(kTestAddress, /*keep_inbox=*/true);
}

Node* FakeCluster::Add(const std::string& address, Factory factory, MemStore* store) {
  assert(!kernel_.IsUp(address));
  kernel_.AddNode(address, std::move(factory), store);
  return kernel_.node(address);
}

void FakeCluster::Crash(const std::string& address) { kernel_.Crash(address); }

void FakeCluster::Restart(const std::string& address) { kernel_.Restart(address); }

bool FakeCluster::IsUp(const std::string& address) const { return kernel_.IsUp(address); }

Node* FakeCluster::node(const std::string& address) { return kernel_.node(address); }

MemStore& FakeCluster::store(const std::string& address) { return *kernel_.store(address); }

uint64_t FakeCluster::Send(const std::string& to, const Request& request, uint64_t auth_user_id,
                          const std::string& request_id) {
  return kernel_.SendRequest(kTestAddress, to, request, auth_user_id, request_id);
}

std::optional<Reply> FakeCluster::TakeReply(uint64_t correlation_id) {
  return kernel_.TakeReply(correlation_id);
}

Reply FakeCluster::Call(const std::string& to, const Request& request, uint64_t auth_user_id,
                        absl::Duration max_wait, const std::string& request_id) {
  const uint64_t correlation_id = Send(to, request, auth_user_id, request_id);
  std::optional<Reply> reply = kernel_.AwaitReply(correlation_id, max_wait);
  if (!reply.has_value()) {
    return ErrorReply(absl::DeadlineExceededError(absl::StrCat("no reply from ", to)));
  }
  return *std::move(reply);
}

uint64_t FakeCluster::InjectEvent(const std::string& address, const Event& event) {
  return kernel_.InjectEvent(address, event);
}

void FakeCluster::SetBusReachable(const std::string& address, bool reachable) {
  kernel_.bus().SetReachable(address, reachable);
}

void FakeCluster::BusReconnected(const std::string& address) { kernel_.BusReconnected(address); }

}  // namespace parley
