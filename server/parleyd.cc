#include "server/parleyd.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
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

absl::StatusOr<std::string> LoadTokenKey(const ParleydOptions& options,
                                         const std::function<void(const std::string&)>& log) {
  const size_t min = TokenSigner::kMinKeyBytes;
  if (!options.token_key.empty() && !options.token_key_file.empty()) {
    return absl::InvalidArgumentError("set --token_key or --token_key_file, not both");
  }
  if (!options.token_key.empty()) {
    if (options.token_key.size() < min) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--token_key must be at least ", min, " bytes, not ", options.token_key.size(),
          " (or leave it out: parleyd keeps a random key in --data_dir/token.key)"));
    }
    return options.token_key;
  }
  const bool shared = !options.token_key_file.empty();
  const std::string path = shared ? options.token_key_file : options.data_dir + "/token.key";
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    if (errno != ENOENT) {
      return absl::InvalidArgumentError(absl::StrCat("cannot read the token key file ", path, ": ",
                                                     std::strerror(errno)));
    }
    if (shared) {
      return absl::NotFoundError(absl::StrCat(
          "--token_key_file ", path, " does not exist; make one (head -c 32 /dev/urandom > ", path,
          " && chmod 600 ", path, ") and give the same file to every parleyd"));
    }
    // First start: a fresh random key, readable by its owner only.
    unsigned char bytes[32];
    size_t got = 0;
    while (got < sizeof(bytes)) {
      const ssize_t n = getrandom(bytes + got, sizeof(bytes) - got, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return absl::InternalError("getrandom failed");
      got += static_cast<size_t>(n);
    }
    const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
      return absl::InvalidArgumentError(absl::StrCat("cannot create the token key file ", path,
                                                     ": ", std::strerror(errno)));
    }
    const bool written = write(fd, bytes, sizeof(bytes)) == static_cast<ssize_t>(sizeof(bytes)) &&
                         fsync(fd) == 0;
    close(fd);
    if (!written) {
      unlink(path.c_str());
      return absl::InternalError(absl::StrCat("cannot write the token key file ", path));
    }
    const int dir = open(options.data_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir >= 0) {
      fsync(dir);
      close(dir);
    }
    log(absl::StrCat("created a new token key in ", path));
    return std::string(reinterpret_cast<const char*>(bytes), sizeof(bytes));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat("the token key file ", path, " is not a file"));
  }
  if ((st.st_mode & 077) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("the token key file ", path,
                                                   " is readable by others: chmod 600 ", path));
  }
  std::ifstream in(path, std::ios::binary);
  std::string key((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read the token key file ", path));
  }
  if (key.size() < min) {
    return absl::InvalidArgumentError(absl::StrCat("the token key file ", path, " holds ",
                                                   key.size(), " bytes; the key must be at least ",
                                                   min, " bytes"));
  }
  log(absl::StrCat("token key from ", path));
  return key;
}

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
    if (!nats_server_->syncs_always()) {
      log_(absl::StrCat(
          "WARNING: ", NatsServerProcess::Version(),
          " cannot fsync before acknowledging (jetstream sync_interval: always needs "
          "nats-server 2.10+): JetStream syncs its files every 2 minutes, so an acknowledged "
          "event can be lost on a power failure or kernel crash (not on a crash of the "
          "process); see docs/operations.md"));
    }
  }
  JetStreamBus::Options js;
  js.replicas = options_.stream_replicas;
  auto network = NatsNetwork::Connect(
      nats_url_,
      options_.event_bus == "local" ? NatsNetwork::Bus::kLocal : NatsNetwork::Bus::kJetStream, js);
  if (!network.ok()) return network.status();
  network_ = std::move(*network);
  log_(absl::StrCat("connected to ", nats_url_, ", event bus ", options_.event_bus));

  absl::StatusOr<std::string> loaded_key = LoadTokenKey(options_, log_);
  if (!loaded_key.ok()) return loaded_key.status();
  const std::string key = std::move(*loaded_key);
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
