// Server benchmark, in one run on loopback: raw NATS publish->subscribe and
// JetStream async publish rates for 128-byte payloads, then parley_load
// against an in-process parleyd (a fresh one, on a fresh nats-server, for
// each run, so one run's compactions do not weigh on the next): private sends
// at peak (one in flight per client) and paced at half that peak (for the
// latency target), and groups of 100; then the ratios. The parleyd allows
// each connection 100k requests/s so the server, not its abuse limit, is what
// is measured. Bounded in count and time; run with -c opt.
#include <nats/nats.h>

#include <atomic>
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/load.h"
#include "server/nats_server_process.h"
#include "server/parleyd.h"

ABSL_FLAG(int, raw_messages, 300000, "messages for the raw NATS rate");
ABSL_FLAG(int, js_messages, 100000, "messages for the JetStream async rate");
ABSL_FLAG(double, load_s, 8, "seconds of each parley_load run");
ABSL_FLAG(int, private_clients, 200, "clients of the private runs");
ABSL_FLAG(int, group_clients, 100, "clients of the group run (one group of 100 per 100)");
ABSL_FLAG(std::string, dir, "/tmp/parley-server-bench", "scratch directory (wiped)");
ABSL_FLAG(std::string, nats_server, "/usr/sbin/nats-server",
          "the nats-server binary (2.10+ to measure sync_interval: always)");

namespace {

std::atomic<int> received{0};
void OnMsg(natsConnection*, natsSubscription*, natsMsg* msg, void*) {
  natsMsg_Destroy(msg);
  ++received;
}

double RawRate(const std::string& url, int n) {
  natsConnection* pub = nullptr;
  natsConnection* sub_conn = nullptr;
  natsConnection_ConnectTo(&pub, url.c_str());
  natsConnection_ConnectTo(&sub_conn, url.c_str());
  natsSubscription* sub = nullptr;
  natsConnection_Subscribe(&sub, sub_conn, "bench.raw", OnMsg, nullptr);
  natsSubscription_SetPendingLimits(sub, -1, -1);
  natsConnection_Flush(sub_conn);
  const std::string payload(128, 'x');
  received = 0;
  const absl::Time start = absl::Now();
  for (int i = 0; i < n; ++i) natsConnection_Publish(pub, "bench.raw", payload.data(), payload.size());
  natsConnection_Flush(pub);
  const absl::Time deadline = start + absl::Seconds(30);
  while (received < n && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(1));
  const double s = absl::ToDoubleSeconds(absl::Now() - start);
  natsSubscription_Destroy(sub);
  natsConnection_Destroy(pub);
  natsConnection_Destroy(sub_conn);
  return received / s;
}

double JetStreamAsyncRate(const std::string& url, int n) {
  natsConnection* conn = nullptr;
  natsConnection_ConnectTo(&conn, url.c_str());
  jsOptions o;
  jsOptions_Init(&o);
  o.PublishAsync.MaxPending = 10000;
  jsCtx* js = nullptr;
  natsConnection_JetStream(&js, conn, &o);
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  cfg.Name = "BENCH";
  const char* subjects[] = {"bench.js"};
  cfg.Subjects = subjects;
  cfg.SubjectsLen = 1;
  jsErrCode err;
  js_AddStream(nullptr, js, &cfg, nullptr, &err);
  const std::string payload(128, 'x');
  const absl::Time start = absl::Now();
  for (int i = 0; i < n; ++i) js_PublishAsync(js, "bench.js", payload.data(), payload.size(), nullptr);
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = 30000;
  js_PublishAsyncComplete(js, &po);
  const double s = absl::ToDoubleSeconds(absl::Now() - start);
  jsCtx_Destroy(js);
  natsConnection_Destroy(conn);
  return n / s;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const std::string dir = absl::GetFlag(FLAGS_dir);
  std::system(("rm -rf '" + dir + "'").c_str());
  const std::string bin = absl::GetFlag(FLAGS_nats_server);
  std::printf("%s\n", parley::NatsServerProcess::Version(bin).c_str());
  // JetStream's default first (syncs every 2 minutes), then what parley
  // starts: sync_interval always (fsync before the ack), where supported.
  auto nats = parley::NatsServerProcess::Start(dir + "/nats", absl::Seconds(10), bin, -1, {},
                                               /*sync_always=*/false);
  if (!nats.ok()) {
    std::fprintf(stderr, "server_bench: %s\n", std::string(nats.status().message()).c_str());
    return 1;
  }
  const double raw = RawRate((*nats)->url(), absl::GetFlag(FLAGS_raw_messages));
  const double js = JetStreamAsyncRate((*nats)->url(), absl::GetFlag(FLAGS_js_messages));
  std::printf("nats publish->subscribe: %.0f msg/s\njetstream async publish: %.0f msg/s\n", raw, js);
  (*nats)->Stop().IgnoreError();
  {
    auto synced = parley::NatsServerProcess::Start(dir + "/nats-sync", absl::Seconds(10), bin, -1,
                                                   {}, /*sync_always=*/true);
    if (!synced.ok()) {
      std::printf("jetstream async publish, sync_interval always: %s\n",
                  std::string(synced.status().message()).c_str());
    } else if (!(*synced)->syncs_always()) {
      std::printf("jetstream async publish, sync_interval always: not supported by %s\n",
                  parley::NatsServerProcess::Version(bin).c_str());
    } else {
      const double js_sync = JetStreamAsyncRate((*synced)->url(), absl::GetFlag(FLAGS_js_messages));
      std::printf("jetstream async publish, sync_interval always: %.0f msg/s (%.1f%% of the default)\n",
                  js_sync, 100.0 * js_sync / js);
    }
  }

  auto run = [&](const char* name, int clients, double group_fraction, int group_size,
                 double rate) {
    // Each run on its own nats-server and parleyd: what one run leaves (its
    // LevelDB compactions, its stream) does not weigh on the next.
    const std::string run_dir = dir + "/" + name;
    auto run_nats = parley::NatsServerProcess::Start(run_dir + "/nats");
    if (!run_nats.ok()) {
      std::printf("%s: %s\n", name, std::string(run_nats.status().message()).c_str());
      return parley::LoadResult();
    }
    parley::ParleydOptions o;
    o.nats_url = (*run_nats)->url();
    o.data_dir = run_dir + "/parleyd";
    o.listen = "127.0.0.1:0";
    o.minimal_password_cost = true;
    o.client_requests_per_s = 100000;
    o.client_burst = 100000;
    auto d = parley::Parleyd::Start(o, [](const std::string&) {});
    if (!d.ok()) {
      std::printf("%s: %s\n", name, std::string(d.status().message()).c_str());
      return parley::LoadResult();
    }
    parley::LoadOptions l;
    l.servers = {"127.0.0.1:" + std::to_string((*d)->listen_port())};
    l.clients = clients;
    l.duration_s = absl::GetFlag(FLAGS_load_s);
    l.group_fraction = group_fraction;
    l.group_size = group_size;
    l.rate_per_s = rate;
    l.client_rate = 0;  // the server's limit is raised too: measure the server
    l.run_id = name;
    auto r = parley::RunLoad(l);
    (*d)->Stop();
    if (!r.ok()) {
      std::printf("%s: %s\n", name, std::string(r.status().message()).c_str());
      return parley::LoadResult();
    }
    std::printf("%s: %s p999_ms=%.2f failed=%u%s\n", name, r->LoadLine().c_str(), r->p999_ms,
                static_cast<unsigned>(r->failed), r->violations.empty() ? "" : " CHECKERS FAILED");
    std::fflush(stdout);
    return *r;
  };
  const int pc = absl::GetFlag(FLAGS_private_clients);
  // Peak: every client keeps one send in flight. Then half of that rate, paced.
  const parley::LoadResult peak = run("private_peak", pc, 0, 10, 0);
  const parley::LoadResult half = run("private_half", pc, 0, 10, peak.msgs_per_s / 2);
  const parley::LoadResult group = run("group100", absl::GetFlag(FLAGS_group_clients), 1, 100, 0);
  const double group_deliveries = group.delivered / absl::GetFlag(FLAGS_load_s);
  std::printf(
      "BENCH server: nats_msgs_per_s=%.0f js_async_msgs_per_s=%.0f parley_private_msgs_per_s=%.1f "
      "ratio_to_js_async=%.3f ratio_to_nats=%.4f private_p99_ms_at_half_peak=%.2f "
      "group100_msgs_per_s=%.1f group_deliveries_per_s=%.0f group_p99_ms=%.2f\n",
      raw, js, peak.msgs_per_s, peak.msgs_per_s / js, peak.msgs_per_s / raw, half.p99_ms,
      group.msgs_per_s, group_deliveries, group.p99_ms);
  return 0;
}
