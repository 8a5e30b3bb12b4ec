// Real runs (issue 16): scenario files against real processes — nats-server,
// parleyd per role group and per gateway on their own LevelDB dirs — with real
// faults (kill -9 and restart, a NATS proxy that drops or one-ways a
// process's link, nats-server killed and restarted), judged by the
// simulator's delivery checkers. Short runs: about 20 s each.
#include <signal.h>
#include <sys/stat.h>

#include <atomic>
#include <thread>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "server/real_run.h"
#include "sim/simulation.h"

namespace parley {
namespace {

sim::Scenario Load(const std::string& name) {
  absl::StatusOr<sim::Scenario> s = sim::LoadScenario("scenarios/" + name + ".textproto");
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? *s : sim::Scenario();
}

RealRunOptions Options(const std::string& scenario, const std::string& dir) {
  RealRunOptions o;
  o.scenario = Load(scenario);
  o.scenario_path = "scenarios/" + scenario + ".textproto";
  o.parleyd = "server/parleyd";
  o.work_dir = std::string(std::getenv("TEST_TMPDIR")) + "/" + dir;
  o.progress = [](const std::string& line) { std::fprintf(stderr, "real: %s\n", line.c_str()); };
  return o;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void ExpectLogsExist(const RealRunResult& r) {
  for (const RealProcess& p : r.processes) {
    EXPECT_EQ(p.logs.size(), static_cast<size_t>(p.starts)) << p.name;
    for (const std::string& log : p.logs) {
      struct stat st;
      EXPECT_EQ(stat(log.c_str(), &st), 0) << log;
    }
  }
}

TEST(RealRunTest, RefusesWhatItCannotHonourByName) {
  // smoke has clock skew, message loss and services with two replicas.
  RealRunOptions o = Options("smoke", "refused");
  absl::StatusOr<RealRunResult> r = RunReal(o);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(r.status()));
  for (const char* name : {"faults.clock_skew_max_ms", "faults.loss_max", "faults.duplicate_max",
                           "topology.user_replicas", "workload.recall_rate_per_s"}) {
    EXPECT_TRUE(absl::StrContains(r.status().message(), name)) << name << " not named in: "
                                                               << r.status().message();
  }
  // Scripted kinds the runner has no real means for, each by name.
  absl::StatusOr<sim::Scenario> s = sim::ParseScenario(
      "topology { gateways: 2 shards: 2 user_replicas: 1 friend_replicas: 1 group_replicas: 1 }\n"
      "workload { users: 4 duration_s: 5 }\n"
      "faults { script { at_s: 1 kind: CLOCK_SKEW target: \"gw.1\" amount_ms: 100 }\n"
      "         script { at_s: 1 kind: PARTITION_HALVES duration_s: 1 }\n"
      "         script { at_s: 1 kind: BUS_STORM }\n"
      "         script { at_s: 1 kind: DISK_SLOW target: \"svc.message.0\" duration_s: 1 amount_ms: 5 }\n"
      "         script { at_s: 1 kind: CRASH target: \"gw.2\" duration_s: 1 } }",
      "inline");
  ASSERT_TRUE(s.ok()) << s.status();
  const std::vector<std::string> refused = Unsupported(*s);
  const std::string all = absl::StrJoin(refused, "\n");
  ASSERT_EQ(refused.size(), 4u) << all;
  EXPECT_TRUE(absl::StrContains(all, "faults.script[0] CLOCK_SKEW gw.1")) << all;
  EXPECT_TRUE(absl::StrContains(all, "faults.script[1] PARTITION_HALVES")) << all;
  EXPECT_TRUE(absl::StrContains(all, "faults.script[2] BUS_STORM")) << all;
  EXPECT_TRUE(absl::StrContains(all, "faults.script[3] DISK_SLOW")) << all;
  EXPECT_FALSE(absl::StrContains(all, "CRASH")) << all;  // supported
  // The real-run scenarios need nothing dropped.
  EXPECT_TRUE(Unsupported(Load("real_crashes")).empty());
  EXPECT_TRUE(Unsupported(Load("real_partitions")).empty());
  // The simulator's own canary cannot be planted in a real run.
  RealRunOptions b = Options("real_crashes", "bug-refused");
  b.scenario.set_bug("canary");
  r = RunReal(b);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(absl::StrContains(r.status().message(), "a real run cannot plant it")) << r.status();
}

TEST(RealRunTest, ThePlanIsDrawnFromTheSeed) {
  const sim::Scenario s = Load("real_crashes");
  auto lines = [&](uint64_t seed) {
    std::vector<std::string> out;
    const Plan p = MakePlan(s, seed);
    for (const PlannedClient& c : p.clients) out.push_back(c.address);
    for (const auto& f : p.friends) out.push_back(absl::StrJoin(f, ","));
    for (const auto& g : p.groups) out.push_back(absl::StrJoin(g, ","));
    for (const PlannedStep& st : p.steps) out.push_back(st.Describe());
    return out;
  };
  EXPECT_EQ(lines(7), lines(7));
  EXPECT_NE(lines(7), lines(8));
  const Plan p = MakePlan(s, 7);
  int sends = 0, faults = 0;
  for (const PlannedStep& st : p.steps) {
    sends += st.kind == PlannedStep::kSend;
    faults += st.kind == PlannedStep::kFault;
  }
  EXPECT_GT(sends, 200);  // 25/s for 12 s
  EXPECT_EQ(faults, 5);   // the script
}

TEST(RealRunTest, SmokeShortRunPasses) {
  RealRunOptions o = Options("smoke", "smoke");
  o.drop_unsupported = true;
  o.duration_s = 8;
  o.settle_s = 20;
  absl::StatusOr<RealRunResult> r = RunReal(o);
  ASSERT_TRUE(r.ok()) << r.status();
  std::printf("%s\n", r->Summary().c_str());
  for (const sim::Violation& v : r->violations) ADD_FAILURE() << v.checker << ": " << v.explanation;
  EXPECT_TRUE(r->passed);
  EXPECT_FALSE(r->not_applied.empty());
  EXPECT_EQ(r->processes.size(), 5u);  // nats, services, message, gw.1, gw.2
  EXPECT_GT(r->acked, 50u);
  EXPECT_EQ(r->stored_messages, r->acked);  // read back from the shards' LevelDB
  EXPECT_GT(r->delivered, r->acked);
  ExpectLogsExist(*r);
  const std::string json = ReadAll(r->report_path);
  EXPECT_TRUE(absl::StrContains(json, "\"real\": true")) << json;
  EXPECT_TRUE(absl::StrContains(json, "\"verdict\": \"PASS\"")) << json;
  EXPECT_TRUE(absl::StrContains(json, "faults.clock_skew_max_ms")) << json;  // listed as not applied
}

TEST(RealRunTest, GatewayAndShardCrashesLoseNothing) {
  RealRunOptions o = Options("real_crashes", "crashes");
  absl::StatusOr<RealRunResult> r = RunReal(o);
  ASSERT_TRUE(r.ok()) << r.status();
  std::printf("%s\n", r->Summary().c_str());
  for (const sim::Violation& v : r->violations) ADD_FAILURE() << v.checker << ": " << v.explanation;
  EXPECT_TRUE(r->passed);
  EXPECT_EQ(r->faults_applied["CRASH"], 5u);
  EXPECT_EQ(r->process_starts, 10u);  // 5 processes + 5 restarts after kill -9
  EXPECT_GT(r->acked, 150u);
  EXPECT_EQ(r->stored_messages, r->acked);
  ExpectLogsExist(*r);
  int restarts = 0;
  for (const auto& e : r->history.entries()) {
    restarts += e.kind() == sim::HistoryEntry::FAULT && absl::StartsWith(e.detail(), "restart ");
  }
  EXPECT_EQ(restarts, 5);
}

TEST(RealRunTest, CrashesAsPausesLoseNothing) {
  RealRunOptions o = Options("real_crashes", "pauses");
  o.crash_as_pause = true;  // SIGSTOP for the fault's duration, then SIGCONT
  absl::StatusOr<RealRunResult> r = RunReal(o);
  ASSERT_TRUE(r.ok()) << r.status();
  std::printf("%s\n", r->Summary().c_str());
  for (const sim::Violation& v : r->violations) ADD_FAILURE() << v.checker << ": " << v.explanation;
  EXPECT_TRUE(r->passed);
  EXPECT_EQ(r->faults_applied["CRASH as SIGSTOP"], 5u);
  EXPECT_EQ(r->faults_applied.count("CRASH"), 0u);
  EXPECT_EQ(r->process_starts, 5u);  // nothing was killed
  int conts = 0;
  for (const auto& e : r->history.entries()) {
    conts += e.kind() == sim::HistoryEntry::FAULT && absl::StartsWith(e.detail(), "SIGCONT ");
  }
  EXPECT_EQ(conts, 5);
  EXPECT_TRUE(absl::StrContains(ReadAll(r->report_path), "\"crash_as\": \"pause\""));
}

TEST(RealRunTest, ShardsCutOffNatsAndABusOutageLoseNothing) {
  RealRunOptions o = Options("real_partitions", "partitions");
  absl::StatusOr<RealRunResult> r = RunReal(o);
  ASSERT_TRUE(r.ok()) << r.status();
  std::printf("%s\n", r->Summary().c_str());
  for (const sim::Violation& v : r->violations) ADD_FAILURE() << v.checker << ": " << v.explanation;
  EXPECT_TRUE(r->passed);
  EXPECT_EQ(r->faults_applied["PARTITION_NODE"], 2u);
  EXPECT_EQ(r->faults_applied["PARTITION_ONE_WAY"], 1u);
  EXPECT_EQ(r->faults_applied["BUS_OUTAGE"], 1u);
  EXPECT_EQ(r->faults_applied["CLIENT_OFFLINE"], 1u);
  // The partitions closed live connections: the NATS links of the message
  // process and of gw.2 (2), and gw.2's clients (at least one more).
  EXPECT_GE(r->proxy_cut, 3u);
  for (const RealProcess& p : r->processes) {
    if (p.name == "nats") {
      EXPECT_EQ(p.starts, 2);  // killed and restarted on its store
    }
  }
  // The message process saw its NATS link go and come back.
  bool lost = false;
  for (const RealProcess& p : r->processes) {
    if (p.name == "message") lost = absl::StrContains(ReadAll(p.logs[0]), "NATS: lost the connection");
  }
  EXPECT_TRUE(lost);
  EXPECT_GT(r->acked, 150u);
  ExpectLogsExist(*r);
}

TEST(RealRunTest, AParleydThatDiesOnItsOwnFailsTheRun) {
  // Someone else kills the message process mid-run (as an abort on a broken
  // invariant would): the run must fail with process_exit naming it, even
  // though the heal restarts it and the delivery checkers may pass.
  RealRunOptions o = Options("real_partitions", "exit");
  o.duration_s = 8;  // the partitions at 1.5 s and 4.5 s, the device offline at 3 s
  o.settle_s = 20;
  std::atomic<int> message_pid{0};
  o.started = [&](const std::string& name, int pid) {
    if (name == "message") message_pid = pid;
  };
  std::atomic<bool> done{false};
  std::thread killer([&] {
    // About 4 s into the workload (start and setup take 2-3 s).
    for (int i = 0; i < 70 && !done; ++i) absl::SleepFor(absl::Milliseconds(100));
    if (!done && message_pid > 0) kill(message_pid, SIGKILL);
  });
  absl::StatusOr<RealRunResult> r = RunReal(o);
  done = true;
  killer.join();
  ASSERT_TRUE(r.ok()) << r.status();
  std::printf("%s\n", r->Summary().c_str());
  EXPECT_FALSE(r->passed);
  ASSERT_FALSE(r->violations.empty());
  EXPECT_EQ(r->violations[0].checker, "process_exit");
  EXPECT_TRUE(absl::StrContains(r->violations[0].explanation, "message (pid")) << r->violations[0].explanation;
  EXPECT_TRUE(absl::StrContains(r->violations[0].explanation, "signal 9")) << r->violations[0].explanation;
  for (const RealProcess& p : r->processes) {
    if (p.name == "message") {
      EXPECT_EQ(p.starts, 2);  // restarted at the heal
    }
  }
}

TEST(RealRunTest, APlantedServerBugIsCaughtInARealRun) {
  // seq_in_memory in every parleyd (--planted_bug): a shard's seq counter is
  // not persisted, so after the message process's kill -9 and restart it
  // assigns a seq again; the shard's paired check aborts parleyd (the
  // simulator's "invariant" checker catches the same) and the runner reports
  // the process's own exit.
  RealRunOptions o = Options("real_crashes", "server-bug");
  o.scenario.set_bug("seq_in_memory");
  o.settle_s = 15;
  absl::StatusOr<RealRunResult> r = RunReal(o);
  ASSERT_TRUE(r.ok()) << r.status();
  std::printf("%s\n", r->Summary().c_str());
  EXPECT_FALSE(r->passed);
  std::string caught;
  for (const sim::Violation& v : r->violations) {
    std::printf("  %s: %s\n", v.checker.c_str(), v.explanation.c_str());
    if (v.checker == "process_exit" && absl::StrContains(v.explanation, "message (pid") &&
        absl::StrContains(v.explanation, "signal 6")) {
      caught = v.explanation;
    }
  }
  EXPECT_FALSE(caught.empty()) << "no abort of the message process reported";
  bool logged = false;
  for (const RealProcess& p : r->processes) {
    for (const std::string& log : p.logs) {
      if (p.name == "message") logged = logged || absl::StrContains(ReadAll(log), "planted bug seq_in_memory");
    }
  }
  EXPECT_TRUE(logged) << "parleyd did not say it runs with a planted bug";
}

TEST(RealRunTest, APlantedClientBugIsCaughtInARealRun) {
  // The client delivers a seq it already delivered (a push and a sync racing,
  // a reconnect): no_duplicates must see it, as it does in the simulator.
  // Thread timing is not replayed, so up to 3 seeds.
  std::string caught;
  for (uint64_t seed = 1; seed <= 3 && caught.empty(); ++seed) {
    RealRunOptions o = Options("real_crashes", absl::StrCat("bug-", seed));
    o.scenario.set_bug("no_client_dedup");
    o.seed = seed;
    absl::StatusOr<RealRunResult> r = RunReal(o);
    ASSERT_TRUE(r.ok()) << r.status();
    std::printf("seed %llu: %s\n", static_cast<unsigned long long>(seed), r->Summary().c_str());
    for (const sim::Violation& v : r->violations) {
      if (v.checker == "no_duplicates") caught = v.explanation;
    }
    EXPECT_TRUE(absl::StrContains(ReadAll(r->report_path), "\"bug\": \"no_client_dedup\""));
  }
  EXPECT_FALSE(caught.empty()) << "no_client_dedup not caught in 3 real runs";
  std::printf("caught: %s\n", caught.c_str());
}

}  // namespace
}  // namespace parley
