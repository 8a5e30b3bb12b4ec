// A run's fixed fault schedule replays exactly what the run did: the same
// faults (halves and eviction victims included) and the very same events.
#include <string>

#include "gtest/gtest.h"
#include "sim/nemesis.h"
#include "sim/simulation.h"

namespace parley {
namespace sim {
namespace {

Scenario Small() {
  absl::StatusOr<Scenario> s = ParseScenario(R"(
    name: "replay"
    topology { gateways: 2 shards: 2 user_replicas: 2 friend_replicas: 2 group_replicas: 2
               friend_cache_ttl_ms: 3000 }
    workload { users: 20 groups: 3 group_size: 5 friends_per_user: 3 duration_s: 15
               send_rate_per_s: 10 private_fraction: 0.5 list_friends_rate_per_s: 2
               churn_rate_per_s: 0.5 offline_s: 3 }
    faults { random: false loss_max: 0.02 duplicate_max: 0.02 reorder_jitter_ms: 20
             partition_rate_per_s: 1.5 crash_rate_per_s: 0.3 bus_fault_rate_per_s: 1.5
             clock_skew_max_ms: 300 fault_duration_max_s: 3 }
    settle_s: 10
  )", "replay");
  EXPECT_TRUE(s.ok()) << s.status();
  return *s;
}

TEST(ReplayTest, TheFixedScheduleReplaysTheRunExactly) {
  const Scenario scenario = Small();
  RunOptions options;
  options.keep_history = false;
  for (uint64_t seed : {1, 2, 3}) {
    const RunResult first = RunScenario(scenario, seed, options);
    ASSERT_TRUE(first.error.empty()) << first.error;
    bool halves = false, evict = false;
    for (const ScriptedFault& f : first.faults) {
      halves |= f.kind() == ScriptedFault::PARTITION_HALVES;
      evict |= f.kind() == ScriptedFault::KV_EVICT;
      if (f.kind() == ScriptedFault::PARTITION_HALVES) {
        EXPECT_GT(f.side_size(), 0);
      }
      if (f.kind() == ScriptedFault::KV_EVICT) {
        EXPECT_NE(f.victims_seed(), 0u);
      }
    }
    Scenario fixed = scenario;
    *fixed.mutable_faults() = first.fixed_faults.faults();
    const RunResult replay = RunScenario(fixed, seed, options);
    EXPECT_EQ(replay.hash, first.hash) << "seed " << seed;
    ASSERT_EQ(replay.faults.size(), first.faults.size()) << "seed " << seed;
    for (size_t i = 0; i < first.faults.size(); ++i) {
      EXPECT_EQ(replay.faults[i].SerializeAsString(), first.faults[i].SerializeAsString());
    }
    // The config lists every scheduled fault.
    EXPECT_NE(first.config.find("schedule: "), std::string::npos);
    // Fixed rates this high draw both kinds on every seed: the test covers
    // what used to be drawn at play time.
    EXPECT_TRUE(halves && evict) << "seed " << seed;
  }
}

TEST(ReplayTest, CuttingAFaultLeavesTheOthersAsTheyWere) {
  const Scenario scenario = Small();
  RunOptions options;
  options.keep_history = false;
  const RunResult first = RunScenario(scenario, 4, options);
  ASSERT_GE(first.faults.size(), 3u);
  Scenario cut = scenario;
  *cut.mutable_faults() = first.fixed_faults.faults();
  cut.mutable_faults()->mutable_script()->DeleteSubrange(1, 1);
  const RunResult replay = RunScenario(cut, 4, options);
  ASSERT_EQ(replay.faults.size(), first.faults.size() - 1);
  EXPECT_EQ(replay.faults[0].SerializeAsString(), first.faults[0].SerializeAsString());
  EXPECT_EQ(replay.faults[1].SerializeAsString(), first.faults[2].SerializeAsString());
}

// Counting events by kind only watches: the run, its event count and hash
// are the same, and the kinds add up to every event, messages named by the
// receiver's role and what they carry.
TEST(EventKindsTest, CountingIsTheSameRunAndAddsUpToEveryEvent) {
  const Scenario scenario = Small();
  RunOptions plain;
  plain.keep_history = false;
  RunOptions counting = plain;
  counting.count_kinds = true;
  const RunResult a = RunScenario(scenario, 5, plain);
  const RunResult b = RunScenario(scenario, 5, counting);
  EXPECT_TRUE(a.event_kinds.empty());
  EXPECT_EQ(a.hash, b.hash);
  EXPECT_EQ(a.events, b.events);
  uint64_t sum = 0;
  for (const auto& [kind, n] : b.event_kinds) sum += n;
  EXPECT_EQ(sum, b.events);
  EXPECT_GT(b.event_kinds.count("message ->gw request send_private"), 0u);
  EXPECT_GT(b.event_kinds.count("message ->svc.message request send_private"), 0u);
  EXPECT_GT(b.event_kinds.count("message ->client reply send"), 0u);
  EXPECT_GT(b.event_kinds.count("timer at client"), 0u);
}

TEST(NemesisTest, EveryFaultKindHasOneRow) {
  const google::protobuf::EnumDescriptor* kinds = ScriptedFault::Kind_descriptor();
  for (int i = 0; i < kinds->value_count(); ++i) {
    const auto kind = static_cast<ScriptedFault::Kind>(kinds->value(i)->number());
    if (kind == ScriptedFault::KIND_UNSPECIFIED) continue;
    int rows = 0;
    for (const FaultKind& k : FaultKinds()) rows += k.kind == kind;
    EXPECT_EQ(rows, 1) << kinds->value(i)->name();
    const FaultKind* row = FindFaultKind(kind);
    ASSERT_NE(row, nullptr);
    EXPECT_NE(row->apply, nullptr);
    EXPECT_EQ(row->heal == nullptr, row->heal_label == nullptr) << kinds->value(i)->name();
  }
}

}  // namespace
}  // namespace sim
}  // namespace parley
