#include "fakes/core_cluster.h"

#include <memory>

#include "absl/strings/str_cat.h"
#include "core/nodes.h"
#include "core/services.h"
#include "core/status.h"

namespace parley {

std::string CoreCluster::Address(const std::string& service, int replica) {
  return InstanceAddress(service, absl::StrCat(replica + 1));
}

CoreCluster::CoreCluster(CoreClusterOptions options)
    : options_(std::move(options)), net_(options_.cluster) {
  // Every node through the one factory; the options are copied into each
  // factory, so a restart builds the node as the first start did.
  NodeOptions o;
  o.registry = options_.registry;
  o.kv = options_.kv;
  o.user = options_.user;
  o.friends = options_.friends;
  o.group = options_.group;
  o.message = options_.message;
  o.message.num_shards = options_.shards;
  o.gateway = options_.gateway;
  o.gateway.num_shards = options_.shards;
  auto add = [&](NodeRole role, const std::string& id, MemStore* store = nullptr) {
    net_.Add(NodeAddress(role, id), NodeFactoryFor(role, id, o), store);
  };
  add(NodeRole::kRegistry, "");
  add(NodeRole::kKv, "");
  for (int i = 0; i < options_.user_replicas; ++i) add(NodeRole::kUser, absl::StrCat(i + 1), &user_store_);
  for (int i = 0; i < options_.friend_replicas; ++i) {
    add(NodeRole::kFriend, absl::StrCat(i + 1), &friend_store_);
  }
  for (int i = 0; i < options_.group_replicas; ++i) {
    add(NodeRole::kGroup, absl::StrCat(i + 1), &group_store_);
  }
  for (uint32_t k = 0; k < options_.shards; ++k) add(NodeRole::kMessageShard, absl::StrCat(k));
  for (int i = 0; i < options_.gateways; ++i) add(NodeRole::kGateway, absl::StrCat(i + 1));
  // Heartbeats reach the registry and every caller discovers its callees.
  net_.Advance(absl::Seconds(1));
}

std::string CoreCluster::AddClient(const std::string& name, const std::string& device,
                                   ClientOptions options) {
  const std::string address = absl::StrCat("client.", name, ".", device);
  options.name = name;
  options.device_id = device;
  if (options.password.empty()) options.password = "password-" + name;
  NodeOptions o;
  o.client = std::move(options);
  net_.Add(address, NodeFactoryFor(NodeRole::kClient, "", std::move(o)));
  return address;
}

Reply CoreCluster::Call(const std::string& address, const Request& request,
                        uint64_t auth_user_id) {
  return net_.Call(address, request, auth_user_id);
}

uint64_t CoreCluster::Register(const std::string& name, const std::string& nickname) {
  Request request;
  request.mutable_register_()->set_name(name);
  request.mutable_register_()->set_password("password-" + name);
  request.mutable_register_()->set_nickname(nickname);
  Reply reply = Call(Address(kUserService), request);
  return reply.status().code() == CODE_OK ? reply.register_().user_id() : 0;
}

absl::Status CoreCluster::Befriend(uint64_t a, uint64_t b) {
  Request request;
  request.mutable_add_friend()->set_friend_id(b);
  return ReplyStatus(Call(Address(kFriendService), request, a));
}

}  // namespace parley
