// parleyd: the Parley server. With no flags it hosts every role, starts its
// own nats-server on a free loopback port, keeps its data in ./parley-data and
// listens for clients on 127.0.0.1:7700. SIGINT/SIGTERM drain and exit.
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <mutex>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/time/clock.h"
#include "core/testing/bugs.h"
#include "server/parleyd.h"

ABSL_FLAG(std::string, roles, "all", "registry,kv,user,friend,group,message,gateway or all");
ABSL_FLAG(std::string, nats, "", "NATS URL; empty: start our own nats-server");
ABSL_FLAG(int, nats_port, 0,
          "port of our own nats-server (0: the one kept in DATA_DIR/nats/port, else a free one)");
ABSL_FLAG(absl::Duration, report_interval, absl::Seconds(10),
          "log client connects/disconnects and error counts this often (when they changed)");
ABSL_FLAG(std::string, data_dir, "parley-data", "one LevelDB per node under here");
ABSL_FLAG(std::string, listen, "127.0.0.1:7700", "client address (port 0: any free port)");
ABSL_FLAG(std::string, gateway_id, "1", "this process's gateway id");
ABSL_FLAG(uint32_t, shards, 2, "message shards");
ABSL_FLAG(int, loops, 0,
          "event-loop threads the nodes share, besides one for the user node "
          "(0, the default: a thread for every node; measured faster on 2 cores)");
ABSL_FLAG(std::string, event_bus, "jetstream", "jetstream or local");
ABSL_FLAG(std::string, token_key, "",
          "secret for session tokens (32+ bytes); default: a random key in DATA_DIR/token.key");
ABSL_FLAG(std::string, token_key_file, "",
          "file holding the token key (32+ bytes, mode 0600; must exist): one key for several parleyd");
ABSL_FLAG(bool, minimal_password_cost, false, "argon2id minimum cost (tests, load runs)");
ABSL_FLAG(int, stream_replicas, 1, "replicas of the PARLEY_EVENTS stream (3 on a NATS cluster)");
ABSL_FLAG(absl::Duration, event_retention, absl::Minutes(3),
          "keep events this long after JetStream acked them and publish them again when "
          "nats-server reconnects or parleyd starts (0: delete at the ack)");
ABSL_FLAG(uint64_t, max_backend_calls, 4096, "calls from the gateway to the services in flight past which a client request is refused RESOURCE_EXHAUSTED at once (0: no bound)");
ABSL_FLAG(double, client_requests_per_s, 200, "requests per second allowed per client connection");
ABSL_FLAG(double, client_burst, 400, "requests a client connection may send at once");
// Connection hardening (docs/protocol.md "Limits and errors").
ABSL_FLAG(uint64_t, max_connections, 10000, "client connections at most (less --connection_headroom)");
ABSL_FLAG(uint64_t, connection_headroom, 100, "slots below --max_connections: from there a new connection evicts the oldest one that has not logged in (refused with an error frame only when all have)");
ABSL_FLAG(uint64_t, max_connections_per_address, 1000, "client connections per source address");
ABSL_FLAG(absl::Duration, login_deadline, absl::Seconds(30), "close a connection with no gateway_login by then (0: never)");
ABSL_FLAG(absl::Duration, frame_deadline, absl::Seconds(10), "close a connection that does not finish a started frame by then (0: never)");
ABSL_FLAG(absl::Duration, idle_deadline, absl::Minutes(2), "close a connection that sends no frame for this long (0: never)");
ABSL_FLAG(int, max_auth_in_flight, 1, "register/login requests a connection may have unanswered");
ABSL_FLAG(absl::Duration, login_failure_delay, absl::Milliseconds(500), "wait after a connection's 2nd failed login in a row, doubling");
ABSL_FLAG(absl::Duration, login_failure_delay_max, absl::Seconds(8), "the longest such wait");
ABSL_FLAG(double, address_login_failures, 300, "failed logins of an address (decaying 1/s) past which it is slowed");
ABSL_FLAG(absl::Duration, address_login_interval, absl::Seconds(1), "one register/login per this from a slowed address");
ABSL_FLAG(double, user_requests_per_s, 300, "requests per second per user across its connections");
ABSL_FLAG(double, user_burst, 600, "requests a user may send at once across its connections");
ABSL_FLAG(double, address_registrations_per_s, 1, "registrations per second per source address");
ABSL_FLAG(double, address_registration_burst, 250, "registrations an address may make at once");
ABSL_FLAG(std::string, planted_bug, "",
          "TESTS ONLY: plant this bug (core/testing/bugs.h) in every thread, so a real run "
          "(parley_real) can show a checker catch it; this parleyd is then broken on purpose");
ABSL_FLAG(absl::Duration, max_request_timeout, absl::Minutes(10), "a larger timeout_us is refused");

namespace {
volatile std::sig_atomic_t g_stop = 0;
void OnSignal(int) { g_stop = 1; }
}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("parleyd [--roles=...] [--nats=URL] [--data_dir=DIR] [--listen=HOST:PORT]");
  absl::ParseCommandLine(argc, argv);
  parley::ParleydOptions o;
  o.roles = absl::GetFlag(FLAGS_roles);
  o.nats_url = absl::GetFlag(FLAGS_nats);
  o.nats_port = absl::GetFlag(FLAGS_nats_port);
  o.report_interval = absl::GetFlag(FLAGS_report_interval);
  o.data_dir = absl::GetFlag(FLAGS_data_dir);
  // Under `bazel run` a relative data dir is relative to where it was typed,
  // not to the runfiles tree.
  if (const char* cwd = std::getenv("BUILD_WORKING_DIRECTORY"); cwd != nullptr && !o.data_dir.empty() &&
      o.data_dir[0] != '/') {
    o.data_dir = std::string(cwd) + "/" + o.data_dir;
  }
  o.listen = absl::GetFlag(FLAGS_listen);
  o.gateway_id = absl::GetFlag(FLAGS_gateway_id);
  o.shards = absl::GetFlag(FLAGS_shards);
  o.loops = absl::GetFlag(FLAGS_loops);
  o.event_bus = absl::GetFlag(FLAGS_event_bus);
  o.token_key = absl::GetFlag(FLAGS_token_key);
  o.token_key_file = absl::GetFlag(FLAGS_token_key_file);
  if (const char* cwd = std::getenv("BUILD_WORKING_DIRECTORY");
      cwd != nullptr && !o.token_key_file.empty() && o.token_key_file[0] != '/') {
    o.token_key_file = std::string(cwd) + "/" + o.token_key_file;
  }
  o.minimal_password_cost = absl::GetFlag(FLAGS_minimal_password_cost);
  o.stream_replicas = absl::GetFlag(FLAGS_stream_replicas);
  o.event_retention = absl::GetFlag(FLAGS_event_retention);
  o.max_backend_calls = absl::GetFlag(FLAGS_max_backend_calls);
  o.client_requests_per_s = absl::GetFlag(FLAGS_client_requests_per_s);
  o.client_burst = absl::GetFlag(FLAGS_client_burst);
  {  // connection hardening
    parley::ListenerOptions& l = o.client_limits;
    l.max_connections = absl::GetFlag(FLAGS_max_connections);
    l.connection_headroom = absl::GetFlag(FLAGS_connection_headroom);
    l.max_connections_per_address = absl::GetFlag(FLAGS_max_connections_per_address);
    l.login_deadline = absl::GetFlag(FLAGS_login_deadline);
    l.frame_deadline = absl::GetFlag(FLAGS_frame_deadline);
    l.idle_deadline = absl::GetFlag(FLAGS_idle_deadline);
    l.max_auth_in_flight = absl::GetFlag(FLAGS_max_auth_in_flight);
    l.login_failure_delay = absl::GetFlag(FLAGS_login_failure_delay);
    l.login_failure_delay_max = absl::GetFlag(FLAGS_login_failure_delay_max);
    l.address_login_failures = absl::GetFlag(FLAGS_address_login_failures);
    l.address_login_interval = absl::GetFlag(FLAGS_address_login_interval);
    l.user_requests_per_s = absl::GetFlag(FLAGS_user_requests_per_s);
    l.user_burst = absl::GetFlag(FLAGS_user_burst);
    l.address_registrations_per_s = absl::GetFlag(FLAGS_address_registrations_per_s);
    l.address_registration_burst = absl::GetFlag(FLAGS_address_registration_burst);
    l.max_request_timeout = absl::GetFlag(FLAGS_max_request_timeout);
  }
  // Lines come from several threads (the monitor, the listener): one at a time.
  static std::mutex log_mu;
  auto log = [](const std::string& line) {
    std::lock_guard<std::mutex> lock(log_mu);
    std::cerr << "parleyd: " << line << std::endl;
  };
  if (const std::string name = absl::GetFlag(FLAGS_planted_bug); !name.empty()) {
    absl::StatusOr<parley::Bug> bug = parley::ParseBug(name);
    if (!bug.ok()) {
      std::cerr << "parleyd: --planted_bug: " << bug.status().message() << std::endl;
      return 1;
    }
    parley::PlantBugInProcess(*bug);
    log("WARNING: planted bug " + name + ": this parleyd is broken on purpose (tests only)");
  }
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  auto d = parley::Parleyd::Start(o, log);
  if (!d.ok()) {
    std::cerr << "parleyd: " << d.status().message() << std::endl;
    return 1;
  }
  log("ready");
  while (!g_stop) absl::SleepFor(absl::Milliseconds(100));
  log("draining");
  (*d)->Stop();
  log("stopped");
  return 0;
}
