// What explains a history: the kernel's network observer is told every fate
// and changes nothing; a run that explains itself records the network steps
// and each delivered copy's origin, and is otherwise the very same run.
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "sim/history.h"
#include "sim/kernel.h"
#include "sim/simulation.h"

namespace parley {
namespace sim {
namespace {

class Sink : public Node {
 public:
  void Start() override {}
  void OnEnvelope(const Envelope&) override { ++received; }
  void OnEvent(const Event&, uint64_t) override {}
  void OnPublishAck(const std::string&) override {}
  void OnTimer(TimerId) override {}
  int received = 0;
};

struct Told : NetworkObserver {
  void OnLost(const std::string& from, const std::string& to, const Envelope&,
              bool blocked) override {
    said.push_back((blocked ? "blocked " : "lost ") + from + "->" + to);
  }
  void OnSent(const std::string& from, const std::string& to, const Envelope&,
              absl::Duration delay, bool duplicate) override {
    said.push_back((duplicate ? "copy " : "sent ") + from + "->" + to);
    delays.push_back(delay);
  }
  void OnArrival(const std::string& to, const Envelope&, bool up) override {
    said.push_back((up ? "arrived " : "down ") + to);
  }
  std::vector<std::string> said;
  std::vector<absl::Duration> delays;
};

Kernel::Options Net(double loss, double duplicate) {
  Kernel::Options options;
  options.network.jitter = absl::ZeroDuration();
  options.network.latency = absl::Milliseconds(2);
  options.network.loss = loss;
  options.network.duplicate = duplicate;
  return options;
}

void AddSinks(Kernel& k) {
  for (const char* a : {"a", "b"}) k.AddNode(a, [](Env*) { return std::make_unique<Sink>(); });
}

Envelope Push() {
  Envelope e;
  e.mutable_client_push()->mutable_message()->set_conversation("g:1");
  return e;
}

TEST(NetworkObserverTest, IsToldEveryFate) {
  {
    Kernel k(Net(1, 0));
    Told told;
    k.set_network_observer(&told);
    AddSinks(k);
    k.Transmit("a", "b", Push());
    EXPECT_EQ(told.said, std::vector<std::string>{"lost a->b"});
  }
  {
    Kernel k(Net(0, 1));
    Told told;
    k.set_network_observer(&told);
    AddSinks(k);
    k.Transmit("a", "b", Push());
    k.RunUntil(k.Now() + absl::Seconds(1));
    EXPECT_EQ(told.said, (std::vector<std::string>{"copy a->b", "sent a->b", "arrived b",
                                                   "arrived b"}));
    EXPECT_EQ(told.delays, (std::vector<absl::Duration>{absl::Milliseconds(2),
                                                        absl::Milliseconds(2)}));
    EXPECT_EQ(dynamic_cast<Sink*>(k.node("b"))->received, 2);
  }
  {
    Kernel k(Net(0, 0));
    Told told;
    k.set_network_observer(&told);
    AddSinks(k);
    const Kernel::FilterId cut = k.Block("a", "b");
    k.Transmit("a", "b", Push());
    k.RemoveFilter(cut);
    k.Transmit("a", "b", Push());
    k.Crash("b");
    k.RunUntil(k.Now() + absl::Seconds(1));
    EXPECT_EQ(told.said, (std::vector<std::string>{"blocked a->b", "sent a->b", "down b"}));
  }
}

TEST(NetworkObserverTest, ChangesNothing) {
  auto run = [](bool observed) {
    Kernel k(Net(0.3, 0.3));
    Told told;
    if (observed) k.set_network_observer(&told);
    AddSinks(k);
    for (int i = 0; i < 200; ++i) k.Transmit(i % 2 ? "a" : "b", i % 2 ? "b" : "a", Push());
    k.RunUntil(k.Now() + absl::Seconds(1));
    return k.hash();
  };
  EXPECT_EQ(run(true), run(false));
}

Scenario Small() {
  absl::StatusOr<Scenario> s = ParseScenario(R"(
    name: "explain"
    topology { gateways: 2 shards: 2 user_replicas: 2 friend_replicas: 2 group_replicas: 2
               friend_cache_ttl_ms: 3000 }
    workload { users: 20 groups: 3 group_size: 5 friends_per_user: 3 duration_s: 15
               send_rate_per_s: 10 private_fraction: 0.5 list_friends_rate_per_s: 2
               churn_rate_per_s: 0.5 offline_s: 3 }
    faults { random: false loss_max: 0.05 duplicate_max: 0.05 reorder_jitter_ms: 20
             partition_rate_per_s: 1.5 crash_rate_per_s: 0.3 fault_duration_max_s: 3 }
    settle_s: 10
  )", "explain");
  EXPECT_TRUE(s.ok()) << s.status();
  return *s;
}

TEST(ExplainTest, ARunThatExplainsItselfIsTheSameRun) {
  RunOptions plain, explained;
  explained.explain = true;
  const RunResult a = RunScenario(Small(), 3, plain);
  const RunResult b = RunScenario(Small(), 3, explained);
  ASSERT_TRUE(a.error.empty()) << a.error;
  EXPECT_EQ(a.hash, b.hash);
  EXPECT_EQ(a.events, b.events);
  EXPECT_EQ(a.history.network_size(), 0);
  ASSERT_EQ(a.history.entries_size(), b.history.entries_size());
  for (int i = 0; i < a.history.entries_size(); ++i) {
    EXPECT_TRUE(a.history.entries(i).origin().empty());
    HistoryEntry without = b.history.entries(i);
    without.clear_origin();
    without.clear_gateway();
    ASSERT_EQ(without.SerializeAsString(), a.history.entries(i).SerializeAsString()) << i;
  }
}

TEST(ExplainTest, RecordsOriginsAndFates) {
  RunOptions options;
  options.explain = true;
  const RunResult r = RunScenario(Small(), 3, options);
  ASSERT_TRUE(r.error.empty()) << r.error;
  std::set<std::string> origins;
  int delivered = 0;
  for (const HistoryEntry& e : r.history.entries()) {
    if (e.kind() != HistoryEntry::DELIVERED) continue;
    ++delivered;
    origins.insert(e.origin());
    EXPECT_EQ(e.gateway().rfind("gw.", 0), 0u) << Describe(e);
    EXPECT_NE(Describe(e).find(" via " + e.origin() + " from " + e.gateway()), std::string::npos);
  }
  ASSERT_GT(delivered, 100);
  EXPECT_EQ(origins, (std::set<std::string>{"ack", "push", "sync"}));

  std::set<HistoryEntry::Fate> fates;
  std::set<std::string> carried;
  int64_t last_us = 0;
  uint64_t last_index = 0;
  for (const HistoryEntry& n : r.history.network()) {
    fates.insert(n.fate());
    carried.insert(n.detail().substr(0, n.detail().find('(')));
    EXPECT_EQ(n.kind(), HistoryEntry::NETWORK);
    EXPECT_GE(n.time_us(), last_us);
    EXPECT_GE(n.index(), last_index);
    EXPECT_LE(n.index(), static_cast<uint64_t>(r.history.entries_size()));
    last_us = n.time_us();
    last_index = n.index();
    EXPECT_FALSE(n.conversation().empty()) << Describe(n);  // sends resolved too
    if (n.fate() == HistoryEntry::DELAYED) {
      EXPECT_GT(n.delay_us(), n.usual_delay_us()) << Describe(n);
    }
  }
  EXPECT_EQ(fates, (std::set<HistoryEntry::Fate>{HistoryEntry::LOST, HistoryEntry::BLOCKED,
                                                  HistoryEntry::DUPLICATED, HistoryEntry::DELAYED,
                                                  HistoryEntry::RECEIVER_DOWN}));
  EXPECT_EQ(carried, (std::set<std::string>{"client_push", "push", "send", "send_reply",
                                            "sync_reply"}));
}

TEST(ProgressTest, IsToldHowFarTheRunIsAndChangesNothing) {
  std::vector<RunProgress> told;
  RunOptions watched;
  watched.progress = [&](const RunProgress& p) { told.push_back(p); };
  const RunResult a = RunScenario(Small(), 2, RunOptions());
  const RunResult b = RunScenario(Small(), 2, watched);
  EXPECT_EQ(a.hash, b.hash);
  EXPECT_EQ(a.events, b.events);
  ASSERT_GT(told.size(), 100u);
  for (size_t i = 1; i < told.size(); ++i) {
    EXPECT_GT(told[i].sim_s, told[i - 1].sim_s);
    EXPECT_GE(told[i].events, told[i - 1].events);
    EXPECT_EQ(told[i].total_s, told[0].total_s);
  }
  EXPECT_DOUBLE_EQ(told.back().sim_s, told.back().total_s);
  EXPECT_DOUBLE_EQ(told.back().sim_s, b.sim_seconds);
  EXPECT_LE(told.back().events, b.events);
}

TEST(MemoryEstimateTest, GrowsWithTheUsersAndNamesThem) {
  Scenario s = Small();
  const MemoryEstimate small = EstimateMemory(s);
  s.mutable_workload()->set_users(100000);
  const MemoryEstimate huge = EstimateMemory(s);
  EXPECT_LT(small.mb, 32u);
  EXPECT_GT(huge.mb, 3000u);  // measured ~48 KB per user with 20% second devices
  EXPECT_EQ(huge.driver, "workload.users=100000");
}

TEST(ExplainTest, DescribesANetworkStep) {
  HistoryEntry n;
  n.set_kind(HistoryEntry::NETWORK);
  n.set_index(12);
  n.set_time_us(1700000000000000LL + 3199000);
  n.set_fate(HistoryEntry::DELAYED);
  n.set_detail("client_push");
  n.set_from("gw.2");
  n.set_to("client.user3.d1");
  n.set_user_id(168);
  n.set_conversation("p:1:3");
  n.set_seq(4);
  n.set_delay_us(23412);
  n.set_usual_delay_us(3000);
  EXPECT_EQ(Describe(n),
            "~12 t=3199ms NETWORK DELAYED client_push gw.2 -> client.user3.d1 (user 168) p:1:3#4: "
            "23.412ms on the link (usually at most 3ms)");
  n.set_fate(HistoryEntry::LOST);
  EXPECT_EQ(Describe(n),
            "~12 t=3199ms NETWORK LOST client_push gw.2 -> client.user3.d1 (user 168) p:1:3#4: "
            "dropped by the link's loss");
}

}  // namespace
}  // namespace sim
}  // namespace parley
