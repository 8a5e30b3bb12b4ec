#include "core/check.h"

#include <stdexcept>
#include <thread>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace parley {
namespace {

struct Seen {
  std::string condition;
  std::string message;
  int line = 0;
};
thread_local std::vector<Seen> seen;

void Record(const char* file, int line, const char* condition, const std::string& message) {
  seen.push_back({condition, message, line});
}

struct Invariant : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void Throw(const char* file, int line, const char* condition, const std::string& message) {
  throw Invariant(std::string(condition) + " " + message);
}

int calls = 0;
int Counted(int v) {
  ++calls;
  return v;
}

TEST(CheckTest, PassingChecksCallNothingAndBuildNoMessage) {
  seen.clear();
  ScopedCheckFailureHandler handler(&Record);
  bool built = false;
  auto message = [&built] {
    built = true;
    return "expensive";
  };
  PARLEY_CHECK(1 + 1 == 2) << message();
  PARLEY_CHECK_EQ(2, 2) << message();
  PARLEY_CHECK_LT(1, 2);
  PARLEY_CHECK_LE(2, 2);
  PARLEY_CHECK_GT(3, 2);
  PARLEY_CHECK_GE(3, 3);
  PARLEY_CHECK_NE(3, 4);
  EXPECT_TRUE(seen.empty());
  EXPECT_FALSE(built);
}

TEST(CheckTest, FailureReachesTheHandlerWithConditionAndMessage) {
  seen.clear();
  ScopedCheckFailureHandler handler(&Record);
  const int line = __LINE__ + 1;
  PARLEY_CHECK(1 > 2) << "seq " << 7;
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].condition, "1 > 2");
  EXPECT_EQ(seen[0].message, "seq 7");
  EXPECT_EQ(seen[0].line, line);
}

TEST(CheckTest, ComparisonsReportBothValuesAndEvaluateOnce) {
  seen.clear();
  calls = 0;
  ScopedCheckFailureHandler handler(&Record);
  PARLEY_CHECK_EQ(Counted(3), Counted(4)) << "why";
  EXPECT_EQ(calls, 2);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].condition, "Counted(3) == Counted(4) (3 vs 4)");
  EXPECT_EQ(seen[0].message, "why");
}

TEST(CheckTest, NoDanglingElse) {
  seen.clear();
  ScopedCheckFailureHandler handler(&Record);
  bool else_taken = false;
  if (false)
    PARLEY_CHECK(false);
  else
    else_taken = true;
  EXPECT_TRUE(else_taken);
  EXPECT_TRUE(seen.empty());
}

TEST(CheckTest, AThrowingHandlerUnwindsOutOfTheCheck) {
  ScopedCheckFailureHandler handler(&Throw);
  std::vector<int> state = {1};
  try {
    PARLEY_CHECK_EQ(state.size(), 2u) << "state";
    state.push_back(2);  // not reached
    FAIL() << "the check should have thrown";
  } catch (const Invariant& e) {
    EXPECT_NE(std::string(e.what()).find("state.size() == 2u"), std::string::npos) << e.what();
  }
  EXPECT_EQ(state.size(), 1u);
}

TEST(CheckTest, HandlersNestAndAreRestored) {
  EXPECT_EQ(SetCheckFailureHandler(nullptr), nullptr);  // the default
  {
    ScopedCheckFailureHandler outer(&Record);
    {
      ScopedCheckFailureHandler inner(&Throw);
      EXPECT_THROW(PARLEY_CHECK(false), Invariant);
    }
    seen.clear();
    PARLEY_CHECK(false);
    EXPECT_EQ(seen.size(), 1u);
  }
  EXPECT_EQ(SetCheckFailureHandler(nullptr), nullptr);
}

TEST(CheckTest, HandlersArePerThread) {
  ScopedCheckFailureHandler handler(&Throw);
  bool other_thread_default = false;
  std::thread t([&] { other_thread_default = SetCheckFailureHandler(nullptr) == nullptr; });
  t.join();
  EXPECT_TRUE(other_thread_default);
}

TEST(CheckDeathTest, DefaultHandlerAborts) {
  EXPECT_DEATH(PARLEY_CHECK_LE(5, 4) << "too big", "check failed: 5 <= 4 \\(5 vs 4\\) too big");
}

}  // namespace
}  // namespace parley
