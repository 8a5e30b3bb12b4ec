// CoreCluster: a FakeCluster with the registry, the kv node and replicas of
// the user, friend and group services, wired as in a deployment, plus small
// helpers for tests (register, login, befriend, call a service).
#ifndef PARLEY_FAKES_CORE_CLUSTER_H_
#define PARLEY_FAKES_CORE_CLUSTER_H_

#include <cstdint>
#include <string>

#include "core/client/client.h"
#include "core/friend/friend_service.h"
#include "core/gateway/gateway.h"
#include "core/group/group_service.h"
#include "core/kv/kv_service.h"
#include "core/message/message_shard.h"
#include "core/services.h"
#include "core/registry/registry_service.h"
#include "core/user/user_service.h"
#include "fakes/fake_cluster.h"

namespace parley {

struct CoreClusterOptions {
  FakeCluster::Options cluster;
  int user_replicas = 1;
  int friend_replicas = 1;
  int group_replicas = 1;
  UserOptions user;
  FriendOptions friends;
  GroupOptions group;
  KvOptions kv;
  RegistryOptions registry;
  // Messaging: shards "svc.message.<k>" and gateways "gw.<k+1>".
  uint32_t shards = 0;
  int gateways = 0;
  MessageOptions message;
  GatewayOptions gateway;
};

class CoreCluster {
 public:
  explicit CoreCluster(CoreClusterOptions options = CoreClusterOptions());

  FakeCluster& net() { return net_; }

  // "svc.<service>.<i+1>": replica i of a service.
  static std::string Address(const std::string& service, int replica = 0);

  // Calls replica 0 of `service` (or `address` for the singletons).
  Reply Call(const std::string& address, const Request& request, uint64_t auth_user_id = 0);

  // Registers `name` (password "password-<name>") and returns its id, or 0.
  uint64_t Register(const std::string& name, const std::string& nickname = "");
  // Makes a and b friends; returns the reply's status.
  absl::Status Befriend(uint64_t a, uint64_t b);
  // Adds a reference client at "client.<name>.<device>" and returns its
  // address; it connects (registering its name) on start.
  std::string AddClient(const std::string& name, const std::string& device = "d1",
                        ClientOptions options = ClientOptions());
  Client* client(const std::string& address) { return net_.NodeAs<Client>(address); }
  static std::string GatewayAt(int i) { return GatewayAddress(std::to_string(i + 1)); }
  Gateway* gateway(int i) { return net_.NodeAs<Gateway>(GatewayAt(i)); }
  MessageShard* shard(uint32_t k) { return net_.NodeAs<MessageShard>(ShardAddress(k)); }

  // Lets events flow and caches settle.
  void Settle(absl::Duration d = absl::Seconds(3)) { net_.Advance(d); }

  // Replicas of one service share one store: the service's database.
  MemStore& UserStore() { return user_store_; }
  MemStore& FriendStore() { return friend_store_; }
  MemStore& GroupStore() { return group_store_; }

 private:
  CoreClusterOptions options_;
  FakeCluster net_;
  MemStore user_store_;
  MemStore friend_store_;
  MemStore group_store_;
};

}  // namespace parley

#endif  // PARLEY_FAKES_CORE_CLUSTER_H_
