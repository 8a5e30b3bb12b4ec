#include "sim/scenario_io.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "google/protobuf/text_format.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "sim/simulation.h"

namespace parley {
namespace sim {
namespace {

TEST(ScenarioIoTest, DefaultScenarioIsTheFile) {
  absl::StatusOr<Scenario> file = LoadScenario("scenarios/default.textproto");
  ASSERT_TRUE(file.ok()) << file.status();
  const Scenario builtin = DefaultScenario();
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(builtin, *file))
      << builtin.DebugString() << "\nvs\n" << file->DebugString();
  EXPECT_EQ(builtin.name(), "default");
}

TEST(ScenarioIoTest, ErrorsNameLineAndColumn) {
  absl::StatusOr<Scenario> s = ParseScenario("workload {\n  users: x }", "bad");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(std::string(s.status().message()).find("bad: line 2, column"), std::string::npos)
      << s.status();
}

TEST(ScenarioIoTest, RefusesAScenarioWithoutUsers) {
  EXPECT_FALSE(ParseScenario("workload { duration_s: 1 }", "empty").ok());
}

// Every scenario shipped in scenarios/ loads (and so passes validation).
TEST(ScenarioIoTest, EveryScenarioFileLoads) {
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator("scenarios")) {
    if (entry.path().extension() != ".textproto") continue;
    ++files;
    absl::StatusOr<Scenario> s = LoadScenario(entry.path().string());
    EXPECT_TRUE(s.ok()) << entry.path() << ": " << s.status();
  }
  EXPECT_GE(files, 16);
}

// The smoke scenario's values with one change: what the CLI test does too.
constexpr char kSmallBase[] = R"(
  name: "small"
  topology { gateways: 2 shards: 2 user_replicas: 2 friend_replicas: 2 group_replicas: 2 }
  workload { users: 30 duration_s: 20 second_device_fraction: 0.3 }
)";

// The small base with `extra` over it (the last value of a field wins).
absl::Status Parse(const std::string& extra) {
  Scenario s;
  if (!google::protobuf::TextFormat::MergeFromString(std::string(kSmallBase) + extra, &s)) {
    return absl::InternalError("the test's text does not parse");
  }
  return ValidateScenario(s, "t");
}

// Refused with the field's name (and the scenario's) in the message.
void ExpectRefused(const std::string& extra, const std::string& words) {
  absl::Status s = Parse(extra);
  EXPECT_FALSE(s.ok()) << extra;
  EXPECT_NE(std::string(s.message()).find(words), std::string::npos)
      << extra << " -> " << s.message() << " (wanted: " << words << ")";
  EXPECT_EQ(std::string(s.message()).rfind("t: ", 0), 0u) << s.message();
}

TEST(ScenarioIoTest, TheSmallBaseIsValid) { EXPECT_TRUE(Parse("").ok()) << Parse(""); }

TEST(ScenarioIoTest, RefusesValuesOutOfRange) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"topology { gateways: 0 }", "topology.gateways is 0, must be in [1, 1000]"},
      {"topology { shards: 0 }", "topology.shards is 0, must be in [1, 1000]"},
      {"topology { user_replicas: 0 }", "topology.user_replicas is 0"},
      {"topology { friend_replicas: 0 }", "topology.friend_replicas is 0"},
      {"topology { group_replicas: 2000 }", "topology.group_replicas is 2000"},
      {"topology { client_discover_interval_ms: 60001 }",
       "topology.client_discover_interval_ms is 60001, must be in [0, 60000]"},
      {"topology { client_ping_interval_ms: 5000 }",
       "topology.client_ping_interval_ms is 5000, must be in [0, 3000]"},
      {"topology { client_sync_interval_ms: 70000 }", "topology.client_sync_interval_ms is 70000"},
      {"topology { client_ack_delay_ms: 6000 }", "topology.client_ack_delay_ms is 6000"},
      {"topology { client_start_delay_ms: 3000 }",
       "topology.client_start_delay_ms is 3000, must be in [0, 1000]"},
      {"network { latency_ms: -50 }", "network.latency_ms is -50, must be in [0, 60000]"},
      {"network { jitter_ms: -1 }", "network.jitter_ms is -1"},
      {"settle_s: -10", "settle_s is -10, must be in [0, 86400]"},
      {"faults { loss_max: 1.5 }", "faults.loss_max is 1.5, must be in [0, 1]"},
      {"faults { duplicate_max: -0.1 }", "faults.duplicate_max is -0.1"},
      {"faults { crash_rate_per_s: -1 }", "faults.crash_rate_per_s is -1"},
      {"workload { private_fraction: 3 }", "workload.private_fraction is 3, must be in [0, 1]"},
      {"workload { profile_second_edit_fraction: 2 }",
       "workload.profile_second_edit_fraction is 2, must be in [0, 1]"},
      {"workload { send_rate_per_s: -1 }", "workload.send_rate_per_s is -1"},
      {"workload { duration_s: -5 }", "workload.duration_s is -5, must be in (0, 86400]"},
      {"workload { duration_s: nan }", "workload.duration_s is nan"},
      {"workload { offline_s: inf }", "workload.offline_s is inf"},
  };
  for (const auto& [extra, words] : cases) ExpectRefused(extra, words);
}

TEST(ScenarioIoTest, APartialScenarioIsToldAboutBases) {
  absl::StatusOr<Scenario> s = ParseScenario("workload { duration_s: 5 }", "partial");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(std::string(s.status().message()).find("workload.users is 0"), std::string::npos);
  EXPECT_NE(std::string(s.status().message()).find("base: \"default\""), std::string::npos);
}

TEST(ScenarioIoTest, FaultTargetsMustBeNodesOfTheTopology) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"faults { script { at_s: 1 kind: CRASH target: \"gw.7\" duration_s: 1 } }",
       "faults.script[0].target \"gw.7\" is no node of this scenario"},
      {"faults { script { at_s: 1 kind: PARTITION_NODE target: \"svc.nosuch.9\" } }",
       "faults.script[0].target \"svc.nosuch.9\""},
      {"faults { script { at_s: 1 kind: CRASH } }", "faults.script[0]: CRASH needs a target"},
      {"faults { script { at_s: 1 kind: CLIENT_OFFLINE } }", "CLIENT_OFFLINE needs a target"},
      {"faults { script { at_s: 1 kind: DISK_SLOW target: \"client.user1.d1\" } }",
       "\"client.user1.d1\" is no node"},
      {"faults { script { at_s: 1 kind: CLIENT_OFFLINE target: \"client.user30.d1\" } }",
       "N < 30"},
      {"faults { script { at_s: 1 kind: CLIENT_OFFLINE target: \"client.user1.d3\" } }",
       "client.user1.d3"},
      {"faults { script { at_s: 1 kind: CLIENT_OFFLINE target: \"client.user01.d1\" } }",
       "client.user01.d1"},
      {"faults { script { at_s: 1 kind: BUS_STORM target: \"gw.1\" } }", "BUS_STORM takes no target"},
      {"faults { script { at_s: 1 kind: PARTITION_HALVES side: \"gw.3\" } }", "side[0] \"gw.3\""},
      {"faults { script { at_s: 1 } }", "faults.script[0].kind must be set"},
      {"faults { script { at_s: 500 kind: BUS_STORM } }",
       "faults.script[0].at_s is 500, must be in [0, 20)"},
      {"faults { script { at_s: 20 kind: BUS_STORM } }", "at_s is 20"},
      {"faults { script { at_s: -1 kind: BUS_STORM } }", "at_s is -1"},
      {"faults { script { at_s: 1 kind: DISK_READ_FAIL target: \"gw.1\" amount_ms: 150 } }",
       "faults.script[0].amount_ms (a percentage here) is 150"},
      {"faults { script { at_s: 1 kind: BUS_STORM } script { at_s: 2 kind: CRASH target: \"x\" } }",
       "faults.script[1].target \"x\""},
  };
  for (const auto& [extra, words] : cases) ExpectRefused(extra, words);
  for (const std::string& ok : {
           "faults { script { at_s: 1 kind: CRASH target: \"gw.2\" duration_s: 1 } }",
           "faults { script { at_s: 1 kind: CRASH target: \"svc.message.1\" } }",
           "faults { script { at_s: 1 kind: CLOCK_SKEW target: \"svc.kv\" amount_ms: -1500 } }",
           "faults { script { at_s: 1 kind: CLIENT_OFFLINE target: \"client.user29.d2\" } }",
           "faults { script { at_s: 19.9 kind: PARTITION_HALVES side: \"svc.registry\" } }",
           "faults { script { at_s: 0 kind: DISK_WRITE_FAIL target: \"svc.group.2\" amount_ms: 100 } }",
       }) {
    EXPECT_TRUE(Parse(ok).ok()) << ok << ": " << Parse(ok);
  }
}

TEST(ScenarioIoTest, CheckersAndBugsMustExist) {
  ExpectRefused("checkers: \"no_lost_ack\" checkers: \"nosuch\"", "checkers[1] \"nosuch\" is no checker");
  ExpectRefused("bug: \"nosuch\"", "bug:");
  EXPECT_TRUE(Parse("checkers: \"no_lost_ack\" bug: \"canary\"").ok());
}

TEST(ScenarioIoTest, DefaultBaseFillsWhatTheScenarioLeavesOut) {
  absl::StatusOr<Scenario> s =
      ParseScenario("base: \"default\" workload { users: 7 } topology { gateways: 5 }", "mine");
  ASSERT_TRUE(s.ok()) << s.status();
  const Scenario d = DefaultScenario();
  EXPECT_EQ(s->name(), "mine");
  EXPECT_EQ(s->base(), "");
  EXPECT_EQ(s->workload().users(), 7u);
  EXPECT_EQ(s->topology().gateways(), 5u);
  EXPECT_EQ(s->topology().shards(), d.topology().shards());
  EXPECT_EQ(s->workload().duration_s(), d.workload().duration_s());
  EXPECT_EQ(s->settle_s(), d.settle_s());
  EXPECT_TRUE(s->faults().random());
  // The merged scenario is validated as a whole.
  EXPECT_FALSE(ParseScenario("base: \"default\" faults { loss_max: 2 }", "x").ok());
  EXPECT_FALSE(ParseScenario("base: \"nosuch\"", "x").ok());
}

class ScenarioFiles : public ::testing::Test {
 protected:
  void Write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ + "/" + name + ".textproto") << text;
  }
  const std::string dir_ = [] {
    std::string d = std::string(std::getenv("TEST_TMPDIR")) + "/bases";
    std::filesystem::create_directories(d);
    return d;
  }();
};

TEST_F(ScenarioFiles, BaseFileBesideAndRepeatedFieldsAppend) {
  Write("parent", std::string(kSmallBase) +
                      "faults { script { at_s: 1 kind: BUS_STORM } } checkers: \"no_lost_ack\"");
  Write("child",
        "base: \"parent\" workload { users: 10 } faults { script { at_s: 2 kind: CRASH "
        "target: \"gw.1\" } } checkers: \"order\"");
  absl::StatusOr<Scenario> s = LoadScenario(dir_ + "/child.textproto");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->name(), dir_ + "/child.textproto");  // not the parent's "small"
  EXPECT_EQ(s->workload().users(), 10u);
  EXPECT_EQ(s->topology().gateways(), 2u);
  ASSERT_EQ(s->faults().script_size(), 2);
  EXPECT_EQ(s->faults().script(0).kind(), ScriptedFault::BUS_STORM);
  EXPECT_EQ(s->faults().script(1).kind(), ScriptedFault::CRASH);
  ASSERT_EQ(s->checkers_size(), 2);
  EXPECT_EQ(s->checkers(1), "order");
}

TEST_F(ScenarioFiles, BadBasesAreRefused) {
  Write("loop_a", "base: \"loop_b\"");
  Write("loop_b", "base: \"loop_a\"");
  absl::StatusOr<Scenario> loop = LoadScenario(dir_ + "/loop_a.textproto");
  ASSERT_FALSE(loop.ok());
  EXPECT_NE(std::string(loop.status().message()).find("a cycle?"), std::string::npos) << loop.status();

  Write("orphan", "base: \"missing\"");
  absl::StatusOr<Scenario> orphan = LoadScenario(dir_ + "/orphan.textproto");
  ASSERT_FALSE(orphan.ok());
  EXPECT_NE(std::string(orphan.status().message()).find("base \"missing\""), std::string::npos)
      << orphan.status();

  Write("escape", "base: \"../etc/passwd\"");
  EXPECT_FALSE(LoadScenario(dir_ + "/escape.textproto").ok());

  // A partial base file is fine once the whole is valid; an invalid whole is not.
  Write("half", "base: \"default\" workload { users: 3 }");  // a base with a base
  Write("whole", std::string("base: \"half\"") + " workload { duration_s: 5 }");
  EXPECT_TRUE(LoadScenario(dir_ + "/whole.textproto").ok()) << LoadScenario(dir_ + "/whole.textproto").status();
  Write("broken", "base: \"half\" network { latency_ms: -50 }");
  absl::StatusOr<Scenario> broken = LoadScenario(dir_ + "/broken.textproto");
  ASSERT_FALSE(broken.ok());
  EXPECT_NE(std::string(broken.status().message()).find("network.latency_ms is -50"),
            std::string::npos);
}

}  // namespace
}  // namespace sim
}  // namespace parley
