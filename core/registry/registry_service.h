// RegistryService: the service registry at
// "svc.registry". Instances register and heartbeat with the same request; an
// instance that misses heartbeats for `ttl` is no longer healthy and is
// dropped; callers discover healthy instances or watch a service for changes.
// State is in memory: after a registry restart, instances reappear with their
// next heartbeat.
#ifndef PARLEY_CORE_REGISTRY_REGISTRY_SERVICE_H_
#define PARLEY_CORE_REGISTRY_REGISTRY_SERVICE_H_

#include <cstdint>
#include <map>
#include <string>
#include <utility>

#include "absl/time/time.h"
#include "core/service_node.h"

namespace parley {

struct RegistryOptions {
  // An instance not heard from for this long is unhealthy.
  absl::Duration ttl = absl::Milliseconds(1500);
  absl::Duration sweep_interval = absl::Milliseconds(250);
  absl::Duration max_watch_lease = absl::Seconds(60);
  size_t max_instances = 10000;
  size_t max_watchers_per_service = 10000;
};

struct RegistryStats {
  uint64_t registered = 0;  // new instances
  uint64_t expired = 0;
  uint64_t deregistered = 0;
  uint64_t updates_sent = 0;
};

class RegistryService : public ServiceNode {
 public:
  RegistryService(Env* env, RegistryOptions options = RegistryOptions());

  const RegistryStats& stats() const { return stats_; }
  uint64_t revision() const { return revision_; }
  // The instances of `service` healthy now, ordered by instance id.
  DiscoverReply Healthy(const std::string& service);

 protected:
  absl::Status OnStart() override;
  void HandleRequest(const Envelope& request) override;

 private:
  struct Entry {
    Instance instance;
    absl::Time last_heartbeat;
  };
  using Key = std::pair<std::string, std::string>;  // (service, instance_id)

  Reply Register(const RegisterInstanceRequest& request);
  Reply Deregister(const DeregisterInstanceRequest& request);
  Reply Watch(const Envelope& envelope);
  void Changed(const std::string& service);
  void Sweep();

  RegistryOptions options_;
  std::map<Key, Entry> entries_;
  // service -> watcher address -> lease expiry
  std::map<std::string, std::map<std::string, absl::Time>> watchers_;
  uint64_t revision_ = 0;
  RegistryStats stats_;
};

}  // namespace parley

#endif  // PARLEY_CORE_REGISTRY_REGISTRY_SERVICE_H_
