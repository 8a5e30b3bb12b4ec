#include "fakes/core_cluster.h"

#include <memory>

#include "absl/strings/str_cat.h"
#include "core/services.h"
#include "core/status.h"

namespace parley {

std::string CoreCluster::Address(const std::string& service, int replica) {
  return InstanceAddress(service, absl::StrCat(replica + 1));
}

CoreCluster::CoreCluster(CoreClusterOptions options)
    : options_(std::move(options)), net_(options_.cluster) {
  net_.Add(kRegistryAddress, [this](Env* env) {
    return std::make_unique<RegistryService>(env, options_.registry);
  });
  net_.Add(kKvAddress,
           [this](Env* env) { return std::make_unique<KvService>(env, options_.kv); });
  for (int i = 0; i < options_.user_replicas; ++i) {
    net_.Add(Address(kUserService, i), [this, i](Env* env) {
      UserOptions o = options_.user;
      o.instance_id = absl::StrCat(i + 1);
      return std::make_unique<UserService>(env, o);
    }, &user_store_);
  }
  for (int i = 0; i < options_.friend_replicas; ++i) {
    net_.Add(Address(kFriendService, i), [this, i](Env* env) {
      FriendOptions o = options_.friends;
      o.instance_id = absl::StrCat(i + 1);
      return std::make_unique<FriendService>(env, o);
    }, &friend_store_);
  }
  for (int i = 0; i < options_.group_replicas; ++i) {
    net_.Add(Address(kGroupService, i), [this, i](Env* env) {
      GroupOptions o = options_.group;
      o.instance_id = absl::StrCat(i + 1);
      return std::make_unique<GroupService>(env, o);
    }, &group_store_);
  }
  for (uint32_t k = 0; k < options_.shards; ++k) {
    net_.Add(ShardAddress(k), [this, k](Env* env) {
      MessageOptions o = options_.message;
      o.shard = k;
      o.num_shards = options_.shards;
      return std::make_unique<MessageShard>(env, o);
    });
  }
  for (int i = 0; i < options_.gateways; ++i) {
    net_.Add(GatewayAt(i), [this, i](Env* env) {
      GatewayOptions o = options_.gateway;
      o.gateway_id = absl::StrCat(i + 1);
      o.num_shards = options_.shards;
      return std::make_unique<Gateway>(env, o);
    });
  }
  // Heartbeats reach the registry and every caller discovers its callees.
  net_.Advance(absl::Seconds(1));
}

std::string CoreCluster::AddClient(const std::string& name, const std::string& device,
                                   ClientOptions options) {
  const std::string address = absl::StrCat("client.", name, ".", device);
  options.name = name;
  options.device_id = device;
  if (options.password.empty()) options.password = "password-" + name;
  net_.Add(address, [options](Env* env) { return std::make_unique<Client>(env, options); });
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
