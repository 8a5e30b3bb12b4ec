// The one node factory: given a role and its options, the Node a deployment
// runs. The simulator's topology, the test cluster (fakes/core_cluster) and
// parleyd all build their nodes here, so a new service or a new option is
// wired once. It lives in core (as //core:nodes, above every domain library
// and below sim/, fakes/ and server/) because all three hosts may depend on
// core while core depends on none of them.
#ifndef PARLEY_CORE_NODES_H_
#define PARLEY_CORE_NODES_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/client/client.h"
#include "core/env.h"
#include "core/friend/friend_service.h"
#include "core/gateway/gateway.h"
#include "core/group/group_service.h"
#include "core/kv/kv_service.h"
#include "core/message/message_shard.h"
#include "core/registry/registry_service.h"
#include "core/user/user_service.h"

namespace parley {

enum class NodeRole {
  kRegistry,      // "svc.registry"
  kKv,            // "svc.kv"
  kUser,          // a replica "svc.user.<id>"
  kFriend,        // a replica "svc.friend.<id>"
  kGroup,         // a replica "svc.group.<id>"
  kMessageShard,  // "svc.message.<k>", id is the shard number k
  kGateway,       // "gw.<id>"
  kClient,        // a reference client; its address is the host's choice
};

// Every role's options. A host fills in what it deploys with; MakeNode sets
// the per-instance fields (instance id, shard, gateway id) from `id`.
struct NodeOptions {
  RegistryOptions registry;
  KvOptions kv;
  UserOptions user;
  FriendOptions friends;
  GroupOptions group;
  MessageOptions message;  // num_shards: the deployment's shard count
  GatewayOptions gateway;  // num_shards: the deployment's shard count
  ClientOptions client;
};

using NodeFactory = std::function<std::unique_ptr<Node>(Env*)>;

// The address of the instance `id` of `role` (not defined for kClient).
std::string NodeAddress(NodeRole role, const std::string& id);

// Builds instance `id` of `role` on `env`.
std::unique_ptr<Node> MakeNode(NodeRole role, const std::string& id, const NodeOptions& options,
                               Env* env);

// A factory for hosts that (re)start nodes themselves: it keeps its own copy
// of `options`, so the caller's may go away.
NodeFactory NodeFactoryFor(NodeRole role, const std::string& id, NodeOptions options);

}  // namespace parley

#endif  // PARLEY_CORE_NODES_H_
