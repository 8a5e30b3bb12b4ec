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
  o.run_id = std::to_string(absl::ToUnixSeconds(absl::Now()) % 1000000);
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
  for (const std::string& line : r->Explain()) std::cout << line << "\n";
  std::cout << r->LoadLine() << std::endl;
  return r->violations.empty() ? 0 : 1;
}
