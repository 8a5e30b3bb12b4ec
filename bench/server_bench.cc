// Server benchmark, in one run on loopback: raw NATS publish->subscribe and
// JetStream async publish rates for 128-byte payloads, then parley_load
// against an in-process parleyd (private mix, and groups of 100), with ratios.
// Bounded in count and time; run with -c opt.
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
ABSL_FLAG(std::string, dir, "/tmp/parley-server-bench", "scratch directory (wiped)");

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
  auto nats = parley::NatsServerProcess::Start(dir + "/nats");
  if (!nats.ok()) {
    std::fprintf(stderr, "server_bench: %s\n", std::string(nats.status().message()).c_str());
    return 1;
  }
  const double raw = RawRate((*nats)->url(), absl::GetFlag(FLAGS_raw_messages));
  const double js = JetStreamAsyncRate((*nats)->url(), absl::GetFlag(FLAGS_js_messages));
  std::printf("nats publish->subscribe: %.0f msg/s\njetstream async publish: %.0f msg/s\n", raw, js);

  parley::ParleydOptions o;
  o.nats_url = (*nats)->url();
  o.data_dir = dir + "/parleyd";
  o.listen = "127.0.0.1:0";
  o.minimal_password_cost = true;
  auto d = parley::Parleyd::Start(o, [](const std::string&) {});
  if (!d.ok()) {
    std::fprintf(stderr, "server_bench: %s\n", std::string(d.status().message()).c_str());
    return 1;
  }
  const std::string server = "127.0.0.1:" + std::to_string((*d)->listen_port());
  auto run = [&](const char* name, int clients, double group_fraction, int group_size) {
    parley::LoadOptions l;
    l.servers = {server};
    l.clients = clients;
    l.duration_s = absl::GetFlag(FLAGS_load_s);
    l.group_fraction = group_fraction;
    l.group_size = group_size;
    l.run_id = name;
    auto r = parley::RunLoad(l);
    if (!r.ok()) {
      std::printf("%s: %s\n", name, std::string(r.status().message()).c_str());
      return parley::LoadResult();
    }
    std::printf("%s: %s%s\n", name, r->LoadLine().c_str(), r->violations.empty() ? "" : " CHECKERS FAILED");
    return *r;
  };
  const parley::LoadResult priv = run("private", 50, 0, 10);
  const parley::LoadResult group = run("group100", 100, 1, 100);
  const double group_deliveries = group.delivered / absl::GetFlag(FLAGS_load_s);
  std::printf(
      "BENCH server: nats_msgs_per_s=%.0f js_async_msgs_per_s=%.0f parley_private_msgs_per_s=%.1f "
      "ratio_to_js_async=%.3f group100_msgs_per_s=%.1f group_deliveries_per_s=%.0f "
      "private_p99_ms=%.2f group_p99_ms=%.2f\n",
      raw, js, priv.msgs_per_s, priv.msgs_per_s / js, group.msgs_per_s, group_deliveries,
      priv.p99_ms, group.p99_ms);
  (*d)->Stop();
  return 0;
}
