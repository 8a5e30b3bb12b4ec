// parley_load: drives many reference clients over TCP against parleyd
// (loopback only, bounded in clients and time), then checks what they saw
// with the simulator's checkers. The last line is the LOAD line; exit 0 only
// when every checker passed.
#include <iostream>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "server/load.h"
#include "sim/history.h"

ABSL_FLAG(std::string, server, "127.0.0.1:7700", "HOST:PORT[,HOST:PORT...] of parleyd gateways");
ABSL_FLAG(int, clients, 20, "clients (2..5000)");
ABSL_FLAG(double, duration_s, 10, "seconds of load");
ABSL_FLAG(double, rate, 0, "sends per second in all; 0: as fast as possible");
ABSL_FLAG(double, group_fraction, 0.3, "share of group sends");
ABSL_FLAG(int, group_size, 10, "members per group");
ABSL_FLAG(bool, churn, false, "clients drop and reconnect during the run");
ABSL_FLAG(uint64_t, seed, 1, "seed of the load's choices");
ABSL_FLAG(double, client_rate, 100,
          "unpaced: most sends per second of one client (0: no cap; parleyd allows 200 requests/s per connection by default)");
ABSL_FLAG(int, client_threads, 2, "threads the clients share (an event loop and a socket reader each)");
ABSL_FLAG(bool, pairs, false, "1:1 pairs: clients 2i and 2i+1 are friends and send only to each other");
ABSL_FLAG(int, groups, 0, "G groups of --group_size (--clients = G x size), --group_senders senders each");
ABSL_FLAG(int, group_senders, 3, "with --groups: the members of each group that send");
ABSL_FLAG(int, in_flight, 1, "unpaced: sends outstanding per sender (closed loop)");
ABSL_FLAG(int, on_wire, 1,
          "sends each client keeps on the wire (pipelined past 1: a retried send may then commit "
          "after a later one, which the sender_fifo checker reports)");
ABSL_FLAG(int, body_bytes, 4, "bytes of each message body");
ABSL_FLAG(int, max_backlog, 0,
          "paced: skip (and count as shed) a send whose sender already has this many outstanding (0: no bound)");
ABSL_FLAG(double, warmup_s, 0, "seconds of load before the measured window (not counted)");
ABSL_FLAG(std::string, mode, "load",
          "load; offline (1 user offline gets --offline_messages, --offline_repeats times); logins "
          "(--logins serial logins)");
ABSL_FLAG(int, offline_messages, 1000, "mode offline: messages sent to the offline user");
ABSL_FLAG(int, offline_repeats, 5, "mode offline: repeats");
ABSL_FLAG(int, logins, 50, "mode logins: serial logins");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("parley_load --server=HOST:PORT --clients=N --duration_s=S [--rate=R]");
  absl::ParseCommandLine(argc, argv);
  parley::LoadOptions o;
  o.servers = absl::StrSplit(absl::GetFlag(FLAGS_server), ',', absl::SkipEmpty());
  o.clients = absl::GetFlag(FLAGS_clients);
  o.duration_s = absl::GetFlag(FLAGS_duration_s);
  o.rate_per_s = absl::GetFlag(FLAGS_rate);
  o.group_fraction = absl::GetFlag(FLAGS_group_fraction);
  o.group_size = absl::GetFlag(FLAGS_group_size);
  o.churn = absl::GetFlag(FLAGS_churn);
  o.seed = absl::GetFlag(FLAGS_seed);
  o.client_threads = absl::GetFlag(FLAGS_client_threads);
  o.client_rate = absl::GetFlag(FLAGS_client_rate);
  o.pairs = absl::GetFlag(FLAGS_pairs);
  o.groups = absl::GetFlag(FLAGS_groups);
  o.group_senders = absl::GetFlag(FLAGS_group_senders);
  o.in_flight = absl::GetFlag(FLAGS_in_flight);
  o.on_wire = absl::GetFlag(FLAGS_on_wire);
  o.body_bytes = absl::GetFlag(FLAGS_body_bytes);
  o.max_backlog = absl::GetFlag(FLAGS_max_backlog);
  o.warmup_s = absl::GetFlag(FLAGS_warmup_s);
  o.run_id = std::to_string(absl::ToUnixSeconds(absl::Now()) % 1000000);
  const std::string mode = absl::GetFlag(FLAGS_mode);
  if (mode == "offline") {
    parley::OfflineOptions f;
    f.servers = o.servers;
    f.messages = absl::GetFlag(FLAGS_offline_messages);
    f.repeats = absl::GetFlag(FLAGS_offline_repeats);
    f.body_bytes = o.body_bytes;
    f.run_id = o.run_id;
    absl::StatusOr<parley::OfflineResult> r = parley::RunOffline(f);
    if (!r.ok()) {
      std::cerr << "parley_load: " << r.status().message() << "\n";
      return 2;
    }
    for (const parley::sim::Violation& v : r->violations) {
      std::cout << "FAIL checker=" << v.checker << ": " << v.explanation << "\n";
    }
    std::cout << "OFFLINE messages=" << f.messages << " repeats=" << r->login_ms.size()
              << " login_median_ms=" << r->login_median_ms
              << " login_to_all_median_ms=" << r->all_median_ms << " delivered=" << r->delivered
              << (r->violations.empty() ? "" : " CHECKERS FAILED") << std::endl;
    return r->violations.empty() ? 0 : 1;
  }
  if (mode == "logins") {
    parley::LoginOptions f;
    f.servers = o.servers;
    f.count = absl::GetFlag(FLAGS_logins);
    f.run_id = o.run_id;
    absl::StatusOr<parley::LoginResult> r = parley::RunLogins(f);
    if (!r.ok()) {
      std::cerr << "parley_load: " << r.status().message() << "\n";
      return 2;
    }
    std::cout << "LOGINS count=" << r->login_ms.size() << " login_p50_ms=" << r->login_p50_ms
              << " login_p99_ms=" << r->login_p99_ms << " session_p50_ms=" << r->session_p50_ms
              << " session_p99_ms=" << r->session_p99_ms << std::endl;
    return 0;
  }
  if (mode != "load") {
    std::cerr << "parley_load: --mode is load, offline or logins\n";
    return 2;
  }
  o.progress = [](const std::string& line) { std::cerr << "parley_load: " << line << std::endl; };
  absl::StatusOr<parley::LoadResult> r = parley::RunLoad(o);
  if (!r.ok()) {
    std::cerr << "parley_load: " << r.status().message() << "\n";
    return 2;
  }
  for (const parley::sim::Violation& v : r->violations) {
    std::cout << "FAIL checker=" << v.checker << ": " << v.explanation << "\n";
  }
  std::cout << "latency send->deliver: p50 " << r->p50_ms << " ms, p99 " << r->p99_ms
            << " ms, p999 " << r->p999_ms << " ms (to the other users' clients)\n";
  std::cout << "window: " << r->window_acked << " acked and " << r->window_deliveries
            << " delivered to other users in " << r->window_s << " s (" << r->msgs_per_s
            << " msg/s, " << r->deliveries_per_s << " deliveries/s); parley_load used "
            << r->load_cpu_s << " CPU-s; " << r->shed << " sends shed (--max_backlog)\n";
  std::cout << "send replies in the window:";
  for (const auto& [code, n] : r->send_replies) std::cout << " " << code << "=" << n;
  std::cout << "; refusals p50 " << r->refusal_p50_ms << " ms, p99 " << r->refusal_p99_ms << " ms\n";
  for (const std::string& line : r->Explain()) std::cout << line << "\n";
  std::cout << r->LoadLine() << std::endl;
  return r->violations.empty() ? 0 : 1;
}
