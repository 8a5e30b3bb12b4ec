#include "server/parleyd.h"

#include <filesystem>
#include <random>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/friend/friend_service.h"
#include "core/gateway/gateway.h"
#include "core/group/group_service.h"
#include "core/kv/kv_service.h"
#include "core/message/message_shard.h"
#include "core/registry/registry_service.h"
#include "core/services.h"
#include "core/user/user_service.h"
#include "server/leveldb_store.h"

namespace parley {

absl::StatusOr<std::unique_ptr<Parleyd>> Parleyd::Start(const ParleydOptions& options, Log log) {
  auto d = std::unique_ptr<Parleyd>(new Parleyd(options, std::move(log)));
  absl::Status s = d->Run();
  if (!s.ok()) {
    d->Stop();
    return s;
  }
  return d;
}

Parleyd::~Parleyd() { Stop(); }

absl::Status Parleyd::AddHost(const std::string& address, NodeHost::Factory factory) {
  const std::string dir = options_.data_dir + "/" + address;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  auto store = LevelDbStore::Open(dir);
  if (!store.ok()) return store.status();
  std::random_device seed;  // server mode: seeds from the OS
  hosts_.push_back(std::make_unique<NodeHost>(address, std::move(*store), network_.get(),
                                              (uint64_t{seed()} << 32) | seed()));
  hosts_.back()->Start(std::move(factory));
  log_(absl::StrCat("started ", address));
  return absl::OkStatus();
}

absl::Status Parleyd::Run() {
  std::set<std::string> roles;
  for (absl::string_view r : absl::StrSplit(options_.roles, ',', absl::SkipEmpty())) {
    roles.insert(std::string(r));
  }
  if (roles.count("all") > 0) {
    roles = {"registry", "kv", "user", "friend", "group", "message", "gateway"};
  }
  for (const std::string& r : roles) {
    static const std::set<std::string> kKnown = {"registry", "kv",      "user",   "friend",
                                                 "group",    "message", "gateway"};
    if (kKnown.count(r) == 0) return absl::InvalidArgumentError(absl::StrCat("unknown role '", r, "'"));
  }
  if (options_.event_bus != "jetstream" && options_.event_bus != "local") {
    return absl::InvalidArgumentError("--event_bus must be jetstream or local");
  }
  if (options_.shards == 0) return absl::InvalidArgumentError("--shards must be positive");
  if (!(options_.client_requests_per_s > 0) || !(options_.client_burst >= 1)) {
    return absl::InvalidArgumentError("--client_requests_per_s must be positive, --client_burst at least 1");
  }
  {  // connection limits
    const ListenerOptions& l = options_.client_limits;
    if (l.max_connections == 0 || l.connection_headroom >= l.max_connections) {
      return absl::InvalidArgumentError("--max_connections must be positive and above --connection_headroom");
    }
    if (l.max_connections_per_address == 0 || l.max_auth_in_flight < 1) {
      return absl::InvalidArgumentError("--max_connections_per_address and --max_auth_in_flight must be positive");
    }
    if (!(l.user_requests_per_s > 0) || !(l.user_burst >= 1) || !(l.address_registrations_per_s >= 0) ||
        !(l.address_registration_burst >= 1) || !(l.address_login_failures >= 0)) {
      return absl::InvalidArgumentError(
          "--user_requests_per_s must be positive, --user_burst and --address_registration_burst at "
          "least 1, --address_registrations_per_s and --address_login_failures not negative");
    }
    if (l.max_request_timeout <= absl::ZeroDuration() || l.login_deadline < absl::ZeroDuration() ||
        l.frame_deadline < absl::ZeroDuration() || l.idle_deadline < absl::ZeroDuration() ||
        l.login_failure_delay < absl::ZeroDuration()) {
      return absl::InvalidArgumentError("deadlines and delays must not be negative");
    }
  }
  std::error_code ec;
  std::filesystem::create_directories(options_.data_dir, ec);
  if (ec) return absl::InvalidArgumentError(absl::StrCat("cannot create ", options_.data_dir));
  log_(absl::StrCat("data in ", std::filesystem::absolute(options_.data_dir).string()));

  nats_url_ = options_.nats_url;
  if (nats_url_.empty()) {
    auto server = NatsServerProcess::Start(options_.data_dir + "/nats");
    if (!server.ok()) return server.status();
    nats_server_ = std::move(*server);
    nats_url_ = nats_server_->url();
    log_(absl::StrCat("started nats-server at ", nats_url_, " (pid ", nats_server_->pid(), ")"));
  }
  JetStreamBus::Options js;
  js.replicas = options_.stream_replicas;
  auto network = NatsNetwork::Connect(
      nats_url_,
      options_.event_bus == "local" ? NatsNetwork::Bus::kLocal : NatsNetwork::Bus::kJetStream, js);
  if (!network.ok()) return network.status();
  network_ = std::move(*network);
  log_(absl::StrCat("connected to ", nats_url_, ", event bus ", options_.event_bus));

  const std::string key = options_.token_key.empty() ? TestTokenKey() : options_.token_key;
  if (options_.token_key.empty()) log_("warning: using the built-in token key (set --token_key)");
  const PasswordCost cost =
      options_.minimal_password_cost ? PasswordCost::Minimal() : PasswordCost::Interactive();
  const uint32_t shards = options_.shards;
  absl::Status s;
  auto add = [&](const std::string& address, NodeHost::Factory f) {
    if (s.ok()) s = AddHost(address, std::move(f));
  };
  if (roles.count("registry")) add(kRegistryAddress, [](Env* e) { return std::make_unique<RegistryService>(e); });
  if (roles.count("kv")) add(kKvAddress, [](Env* e) { return std::make_unique<KvService>(e); });
  if (roles.count("user")) {
    add(InstanceAddress(kUserService, "1"), [key, cost](Env* e) {
      UserOptions o;
      o.token_key = key;
      o.password_cost = cost;
      return std::make_unique<UserService>(e, o);
    });
  }
  if (roles.count("friend")) add(InstanceAddress(kFriendService, "1"), [](Env* e) { return std::make_unique<FriendService>(e); });
  if (roles.count("group")) add(InstanceAddress(kGroupService, "1"), [](Env* e) { return std::make_unique<GroupService>(e); });
  if (roles.count("message")) {
    for (uint32_t k = 0; k < shards; ++k) {
      add(ShardAddress(k), [k, shards](Env* e) {
        MessageOptions o;
        o.shard = k;
        o.num_shards = shards;
        return std::make_unique<MessageShard>(e, o);
      });
    }
  }
  if (roles.count("gateway")) {
    const std::string id = options_.gateway_id;
    add(GatewayAddress(id), [id, shards, key](Env* e) {
      GatewayOptions o;
      o.gateway_id = id;
      o.num_shards = shards;
      o.token_key = key;
      return std::make_unique<Gateway>(e, o);
    });
    if (!s.ok()) return s;
    ListenerOptions lo = options_.client_limits;
    lo.log = log_;
    const size_t colon = options_.listen.rfind(':');
    if (colon == std::string::npos || !absl::SimpleAtoi(options_.listen.substr(colon + 1), &lo.port)) {
      return absl::InvalidArgumentError(absl::StrCat("--listen must be HOST:PORT, not ", options_.listen));
    }
    lo.host = options_.listen.substr(0, colon);
    lo.gateway_address = GatewayAddress(id);
    lo.requests_per_s = options_.client_requests_per_s;
    lo.burst = options_.client_burst;
    auto listener = ClientListener::Start(network_.get(), lo);
    if (!listener.ok()) return listener.status();
    listener_ = std::move(*listener);
    log_(absl::StrCat("listening for clients on ", lo.host, ":", listener_->port()));
  }
  return s;
}

void Parleyd::Stop() {
  if (stopped_) return;
  stopped_ = true;
  listener_.reset();
  for (auto it = hosts_.rbegin(); it != hosts_.rend(); ++it) {
    log_(absl::StrCat("stopping ", (*it)->Self()));
    (*it)->Stop();
  }
  hosts_.clear();
  network_.reset();
  if (nats_server_) {
    nats_server_->Stop().IgnoreError();
    log_("stopped nats-server");
  }
}

}  // namespace parley
