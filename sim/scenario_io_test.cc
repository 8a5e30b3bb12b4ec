#include "sim/scenario_io.h"

#include <string>

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

}  // namespace
}  // namespace sim
}  // namespace parley
