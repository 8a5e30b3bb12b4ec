// Same seed, same run: the event hash and the history are identical; another
// seed gives another run.
#include "gtest/gtest.h"
#include "sim/simulation.h"

namespace parley {
namespace sim {
namespace {

Scenario Small() {
  Scenario s = DefaultScenario();
  s.set_name("determinism");
  s.mutable_workload()->set_users(25);
  s.mutable_workload()->set_groups(3);
  s.mutable_workload()->set_group_size(5);
  s.mutable_workload()->set_duration_s(10);
  s.mutable_workload()->set_send_rate_per_s(20);
  // Every fault kind, often.
  s.mutable_faults()->set_partition_rate_per_s(0.5);
  s.mutable_faults()->set_crash_rate_per_s(0.5);
  s.mutable_faults()->set_bus_fault_rate_per_s(0.5);
  s.mutable_faults()->set_loss_max(0.05);
  s.mutable_faults()->set_duplicate_max(0.05);
  s.set_settle_s(20);
  return s;
}

TEST(DeterminismTest, SameSeedSameHashAndHistory) {
  const Scenario s = Small();
  for (uint64_t seed : {1, 2, 3}) {
    RunOptions options;
    options.trace = true;
    RunResult a = RunScenario(s, seed, options);
    RunResult b = RunScenario(s, seed, options);
    EXPECT_GT(a.events, 10000u);
    EXPECT_EQ(a.hash, b.hash) << "seed " << seed;
    EXPECT_EQ(a.events, b.events);
    EXPECT_EQ(a.config, b.config);
    EXPECT_EQ(a.history.SerializeAsString(), b.history.SerializeAsString());
    ASSERT_EQ(a.trace.size(), b.trace.size());
    EXPECT_TRUE(a.trace == b.trace);
  }
}

TEST(DeterminismTest, DifferentSeedsDiffer) {
  const Scenario s = Small();
  RunResult a = RunScenario(s, 11);
  RunResult b = RunScenario(s, 12);
  EXPECT_NE(a.hash, b.hash);
  EXPECT_NE(a.history.SerializeAsString(), b.history.SerializeAsString());
}

TEST(DeterminismTest, ScenarioFilesAreValidatedWithLineNumbers) {
  absl::StatusOr<Scenario> bad = ParseScenario("workload { users: 5\n  duration_s: oops }", "x");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("line 2"), std::string::npos) << bad.status();
  absl::StatusOr<Scenario> unknown = ParseScenario("workload { userz: 5 }", "y");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("userz"), std::string::npos) << unknown.status();
  EXPECT_FALSE(ParseScenario("name: \"no users\"", "z").ok());
  EXPECT_FALSE(LoadScenario("/nonexistent/scenario.textproto").ok());
}

}  // namespace
}  // namespace sim
}  // namespace parley
