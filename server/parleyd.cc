#include "server/parleyd.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "core/nodes.h"
#include "core/services.h"
#include "server/leveldb_store.h"

namespace parley {
namespace {
constexpr int kMaxLoops = 64;
}  // namespace

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

absl::Status Parleyd::AddHost(const std::string& address, NodeHost::Factory factory,
                              HostLoop* loop) {
  const std::string dir = options_.data_dir + "/" + address;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  auto store = LevelDbStore::Open(dir);
  if (!store.ok()) return store.status();
  std::random_device seed;  // server mode: seeds from the OS
  const uint64_t rng_seed = (uint64_t{seed()} << 32) | seed();
  hosts_.push_back(loop == nullptr ? std::make_unique<NodeHost>(address, std::move(*store),
                                                                network_.get(), rng_seed)
                                   : std::make_unique<NodeHost>(address, std::move(*store),
                                                                network_.get(), rng_seed, loop));
  hosts_.back()->SetAckedEventRetention(options_.event_retention);
  hosts_.back()->Start(std::move(factory));
  log_(absl::StrCat("started ", address));
  return absl::OkStatus();
}

std::string Parleyd::NatsPortFile(const std::string& data_dir) { return data_dir + "/nats/port"; }

absl::Status Parleyd::StartNatsServer() {
  const std::string dir = options_.data_dir + "/nats";
  const std::string port_file = NatsPortFile(options_.data_dir);
  int port = options_.nats_port;
  bool from_file = false;
  if (port == 0) {
    std::ifstream in(port_file);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    int kept = 0;
    if (absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &kept) && kept > 0 && kept < 65536) {
      port = kept;
      from_file = true;
    } else if (!text.empty()) {
      log_(absl::StrCat("ignoring ", port_file, " (not a port: '", absl::CHexEscape(text), "')"));
    }
  }
  auto taken = [](const absl::Status& s) {
    return absl::StrContains(s.message(), "address already in use");
  };
  absl::StatusOr<std::unique_ptr<NatsServerProcess>> server;
  if (port > 0) {
    // The old nats-server (ours before a restart) may take a moment to let go.
    const absl::Time deadline = absl::Now() + absl::Seconds(5);
    for (;;) {
      server = NatsServerProcess::Start(dir, absl::Seconds(10), "/usr/sbin/nats-server", port);
      if (server.ok() || !taken(server.status()) || absl::Now() >= deadline) break;
      absl::SleepFor(absl::Milliseconds(250));
    }
    if (!server.ok() && !from_file) {
      return absl::Status(server.status().code(),
                          absl::StrCat("--nats_port=", port, ": ", server.status().message()));
    }
    if (!server.ok() && taken(server.status())) {
      log_(absl::StrCat("nats-server: port ", port, " (kept in ", port_file,
                        ") is taken by another process; starting on a free port instead. parleyd "
                        "given --nats=nats://127.0.0.1:", port,
                        " must be pointed at the new port (or pin one with --nats_port)"));
      server = NatsServerProcess::Start(dir);
    }
  } else {
    server = NatsServerProcess::Start(dir);
  }
  if (!server.ok()) return server.status();
  nats_server_ = std::move(*server);
  nats_url_ = nats_server_->url();
  const size_t colon = nats_url_.rfind(':');
  int got = 0;
  if (colon != std::string::npos && absl::SimpleAtoi(nats_url_.substr(colon + 1), &got) &&
      !(from_file && got == port)) {
    // Written whole or not at all: a temporary file renamed over the old one.
    const std::string tmp = port_file + ".tmp";
    {
      std::ofstream out(tmp, std::ios::trunc);
      out << got << "\n";
    }
    std::error_code ec;
    std::filesystem::rename(tmp, port_file, ec);
    if (ec) log_(absl::StrCat("cannot write ", port_file, ": ", ec.message()));
  }
  log_(absl::StrCat("started nats-server at ", nats_url_, " (pid ", nats_server_->pid(), "; port ",
                    from_file && got == port ? "kept from " : "written to ", port_file, ")"));
  return absl::OkStatus();
}

void Parleyd::StopMonitor() {
  if (network_ && nats_listener_id_ != 0) network_->RemoveStateListener(nats_listener_id_);
  nats_listener_id_ = 0;
  {
    std::lock_guard<std::mutex> lock(monitor_mu_);
    monitor_stop_ = true;
    monitor_cv_.notify_all();
  }
  if (monitor_.joinable()) monitor_.join();
}

void Parleyd::Monitor() {
  absl::Time lost_at = absl::InfinitePast();
  absl::Time next_report = absl::Now() + options_.report_interval;
  absl::Time last_retry_note = absl::InfinitePast();
  uint64_t accepted = 0, closed = 0, refused = 0, bad_frames = 0, limited = 0, deadlines = 0,
           unavailable = 0, nats_errors = 0;
  std::unique_lock<std::mutex> lock(monitor_mu_);
  while (!monitor_stop_) {
    monitor_cv_.wait_for(lock, std::chrono::milliseconds(200),
                         [this] { return monitor_stop_ || !nats_events_.empty(); });
    if (monitor_stop_) break;
    std::deque<NatsNetwork::ConnectionState> events;
    events.swap(nats_events_);
    lock.unlock();
    const absl::Time now = absl::Now();
    for (NatsNetwork::ConnectionState e : events) {
      switch (e) {
        case NatsNetwork::ConnectionState::kDisconnected:
          lost_at = now;
          last_retry_note = now;
          log_(absl::StrCat("NATS: lost the connection to ", nats_url_,
                            "; reconnecting every 100 ms without limit; logins are refused "
                            "(UNAVAILABLE) until it is back"));
          break;
        case NatsNetwork::ConnectionState::kReconnected:
          log_(absl::StrCat("NATS: reconnected to ", nats_url_,
                            lost_at == absl::InfinitePast()
                                ? std::string()
                                : absl::StrFormat(" after %.1f s", absl::ToDoubleSeconds(now - lost_at)),
                            "; logins accepted again"));
          lost_at = absl::InfinitePast();
          break;
        case NatsNetwork::ConnectionState::kClosed:
          log_(absl::StrCat("NATS: the connection to ", nats_url_,
                            " is closed for good; logins stay refused (restart parleyd)"));
          break;
      }
    }
    if (nats_lost_ && lost_at != absl::InfinitePast() && now - last_retry_note >= absl::Seconds(10)) {
      last_retry_note = now;
      log_(absl::StrFormat("NATS: still without a connection to %s after %.0f s; retrying",
                           nats_url_, absl::ToDoubleSeconds(now - lost_at)));
    }
    if (now >= next_report) {
      next_report = now + options_.report_interval;
      if (listener_ != nullptr) {
        const ListenerStats& st = listener_->stats();
        const uint64_t a = st.accepted, c = st.closed;
        if (a != accepted || c != closed) {
          log_(absl::StrCat("clients: ", a - c, " connected (+", a - accepted, " -", c - closed, ")"));
          accepted = a;
          closed = c;
        }
        const uint64_t r = st.refused_full + st.refused_per_address;
        const uint64_t b = st.malformed + st.too_large;
        const uint64_t l = st.rate_limited + st.user_rate_limited + st.auth_refused +
                           st.registrations_refused + st.bad_timeout;
        const uint64_t d = st.deadline_closed, u = st.refused_unavailable;
        if (r != refused || b != bad_frames || l != limited || d != deadlines || u != unavailable) {
          log_(absl::StrCat("client errors since the last report: ", r - refused,
                            " connections refused (caps), ", b - bad_frames,
                            " bad frames (malformed or too large), ", l - limited,
                            " requests refused by limits, ", d - deadlines, " closed on deadlines, ",
                            u - unavailable, " logins refused without NATS"));
          refused = r;
          bad_frames = b;
          limited = l;
          deadlines = d;
          unavailable = u;
        }
      }
      const uint64_t ne = network_ != nullptr ? network_->errors() : 0;
      if (ne != nats_errors) {
        log_(absl::StrCat("NATS: ", ne - nats_errors,
                          " errors since the last report (failed publishes, slow consumer, "
                          "messages to closed connections)"));
        nats_errors = ne;
      }
    }
    lock.lock();
  }
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
  if (options_.loops < 0 || options_.loops > kMaxLoops) {
    return absl::InvalidArgumentError(
        absl::StrCat("--loops must be 0 (a thread for every node) or 1..", kMaxLoops,
                     " (threads the nodes share), not ", options_.loops));
  }
  if (options_.event_retention < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--event_retention must not be negative");
  }
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
  if (!nats_url_.empty() && options_.nats_port != 0) {
    return absl::InvalidArgumentError("--nats_port is for the embedded nats-server: not with --nats");
  }
  if (options_.nats_port < 0 || options_.nats_port > 65535) {
    return absl::InvalidArgumentError("--nats_port must be 1..65535 (0: keep the last one)");
  }
  if (nats_url_.empty()) {
    absl::Status started = StartNatsServer();
    if (!started.ok()) return started;
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
  if (options_.event_retention > absl::ZeroDuration()) {
    // A retained event published again while the stream has it must be dropped.
    js.duplicates_window =
        std::max(js.duplicates_window, options_.event_retention + absl::Minutes(1));
  }
  auto network = NatsNetwork::Connect(
      nats_url_,
      options_.event_bus == "local" ? NatsNetwork::Bus::kLocal : NatsNetwork::Bus::kJetStream, js);
  if (!network.ok()) return network.status();
  network_ = std::move(*network);
  log_(absl::StrCat("connected to ", nats_url_, ", event bus ", options_.event_bus));
  // cnats tells us on its own threads: the monitor thread logs it.
  nats_listener_id_ = network_->AddStateListener([this](NatsNetwork::ConnectionState state) {
    nats_lost_ = state != NatsNetwork::ConnectionState::kReconnected;
    std::lock_guard<std::mutex> lock(monitor_mu_);
    nats_events_.push_back(state);
    monitor_cv_.notify_all();
  });

  absl::StatusOr<std::string> loaded_key = LoadTokenKey(options_, log_);
  if (!loaded_key.ok()) return loaded_key.status();
  const std::string key = std::move(*loaded_key);
  const PasswordCost cost =
      options_.minimal_password_cost ? PasswordCost::Minimal() : PasswordCost::Interactive();
  const uint32_t shards = options_.shards;
  absl::Status s;
  // The loops: --loops shared ones, taken in turn by the nodes in the order
  // below, and the user node on one of its own (a login hashes a password
  // for milliseconds, which would hold every message of a shared loop).
  std::vector<HostLoop*> shared;
  HostLoop* user_loop = nullptr;
  if (options_.loops > 0) {
    for (int k = 0; k < options_.loops; ++k) {
      loops_.push_back(std::make_unique<HostLoop>(absl::StrCat("loop.", k)));
      shared.push_back(loops_.back().get());
    }
    if (roles.count("user")) {
      loops_.push_back(std::make_unique<HostLoop>("loop.user"));
      user_loop = loops_.back().get();
    }
    for (auto& loop : loops_) loop->Start();
  }
  size_t next_loop = 0;
  auto loop_for = [&](NodeRole role) -> HostLoop* {
    if (options_.loops == 0) return nullptr;  // a loop of the node's own
    if (role == NodeRole::kUser) return user_loop;
    return shared[next_loop++ % shared.size()];
  };
  auto add = [&](const std::string& address, NodeHost::Factory f, HostLoop* loop) {
    if (s.ok()) s = AddHost(address, std::move(f), loop);
  };
  // The nodes through the one factory (core/nodes.h); the token key and the
  // password cost are the only options a deployment sets here.
  NodeOptions node_options;
  node_options.user.token_key = key;
  node_options.user.password_cost = cost;
  node_options.message.num_shards = shards;
  node_options.gateway.num_shards = shards;
  node_options.gateway.token_key = key;
  node_options.gateway.max_backend_calls = options_.max_backend_calls;
  auto add_node = [&](NodeRole role, const std::string& id) {
    add(NodeAddress(role, id), NodeFactoryFor(role, id, node_options), loop_for(role));
  };
  if (roles.count("registry")) add_node(NodeRole::kRegistry, "");
  if (roles.count("kv")) add_node(NodeRole::kKv, "");
  if (roles.count("user")) add_node(NodeRole::kUser, "1");
  if (roles.count("friend")) add_node(NodeRole::kFriend, "1");
  if (roles.count("group")) add_node(NodeRole::kGroup, "1");
  if (roles.count("message")) {
    for (uint32_t k = 0; k < shards; ++k) add_node(NodeRole::kMessageShard, absl::StrCat(k));
  }
  if (roles.count("gateway")) {
    const std::string id = options_.gateway_id;
    add_node(NodeRole::kGateway, id);
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
    lo.available = [this]() -> absl::Status {
      if (!nats_lost_) return absl::OkStatus();
      return absl::UnavailableError(
          "the server has lost its NATS connection; retrying (try again shortly)");
    };
    auto listener = ClientListener::Start(network_.get(), lo);
    if (!listener.ok()) return listener.status();
    listener_ = std::move(*listener);
    log_(absl::StrCat("listening for clients on ", lo.host, ":", listener_->port()));
  }
  if (s.ok()) monitor_ = std::thread([this] { Monitor(); });
  return s;
}

void Parleyd::Stop() {
  if (stopped_) return;
  stopped_ = true;
  StopMonitor();
  listener_.reset();
  for (auto it = hosts_.rbegin(); it != hosts_.rend(); ++it) {
    log_(absl::StrCat("stopping ", (*it)->Self()));
    (*it)->Stop();
  }
  hosts_.clear();
  loops_.clear();
  network_.reset();
  if (nats_server_) {
    nats_server_->Stop().IgnoreError();
    log_("stopped nats-server");
  }
}

}  // namespace parley
