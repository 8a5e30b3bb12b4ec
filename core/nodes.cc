#include "core/nodes.h"

#include <cstdlib>
#include <utility>

#include "absl/strings/numbers.h"
#include "core/check.h"
#include "core/message/conversation.h"
#include "core/services.h"

namespace parley {

std::string NodeAddress(NodeRole role, const std::string& id) {
  switch (role) {
    case NodeRole::kRegistry: return kRegistryAddress;
    case NodeRole::kKv: return kKvAddress;
    case NodeRole::kUser: return InstanceAddress(kUserService, id);
    case NodeRole::kFriend: return InstanceAddress(kFriendService, id);
    case NodeRole::kGroup: return InstanceAddress(kGroupService, id);
    case NodeRole::kMessageShard: {
      uint32_t k = 0;
      PARLEY_CHECK(absl::SimpleAtoi(id, &k)) << "a message shard's id is its number, not '" << id << "'";
      return ShardAddress(k);
    }
    case NodeRole::kGateway: return GatewayAddress(id);
    case NodeRole::kClient: break;
  }
  PARLEY_CHECK(false) << "no address for a client role: clients are named by their host";
  return "";
}

std::unique_ptr<Node> MakeNode(NodeRole role, const std::string& id, const NodeOptions& options,
                               Env* env) {
  switch (role) {
    case NodeRole::kRegistry: return std::make_unique<RegistryService>(env, options.registry);
    case NodeRole::kKv: return std::make_unique<KvService>(env, options.kv);
    case NodeRole::kUser: {
      UserOptions o = options.user;
      o.instance_id = id;
      return std::make_unique<UserService>(env, o);
    }
    case NodeRole::kFriend: {
      FriendOptions o = options.friends;
      o.instance_id = id;
      return std::make_unique<FriendService>(env, o);
    }
    case NodeRole::kGroup: {
      GroupOptions o = options.group;
      o.instance_id = id;
      return std::make_unique<GroupService>(env, o);
    }
    case NodeRole::kMessageShard: {
      MessageOptions o = options.message;
      PARLEY_CHECK(absl::SimpleAtoi(id, &o.shard))
          << "a message shard's id is its number, not '" << id << "'";
      return std::make_unique<MessageShard>(env, o);
    }
    case NodeRole::kGateway: {
      GatewayOptions o = options.gateway;
      o.gateway_id = id;
      return std::make_unique<Gateway>(env, o);
    }
    case NodeRole::kClient: return std::make_unique<Client>(env, options.client);
  }
  PARLEY_CHECK(false) << "unknown node role " << static_cast<int>(role);
  return nullptr;
}

NodeFactory NodeFactoryFor(NodeRole role, const std::string& id, NodeOptions options) {
  return [role, id, options = std::move(options)](Env* env) {
    return MakeNode(role, id, options, env);
  };
}

}  // namespace parley
