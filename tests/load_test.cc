// parley_load against an in-process parleyd (real nats-server, LevelDB, TCP):
// the checkers pass on what the clients saw, with and without churn, and the
// last line has the LOAD form.
#include <cstdlib>
#include <regex>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "server/load.h"
#include "server/parleyd.h"

namespace parley {
namespace {

TEST(LoadTest, ClientsSeeEverythingOnceAndInOrder) {
  ParleydOptions o;
  o.data_dir = std::string(std::getenv("TEST_TMPDIR")) + "/parleyd";
  o.listen = "127.0.0.1:0";
  o.minimal_password_cost = true;
  auto d = Parleyd::Start(o, [](const std::string&) {});
  ASSERT_TRUE(d.ok()) << d.status();
  for (bool churn : {false, true}) {
    LoadOptions l;
    l.servers = {"127.0.0.1:" + std::to_string((*d)->listen_port())};
    l.clients = 8;
    l.duration_s = 2;
    l.group_size = 4;
    l.churn = churn;
    l.run_id = churn ? "c" : "n";
    absl::StatusOr<LoadResult> r = RunLoad(l);
    ASSERT_TRUE(r.ok()) << r.status();
    for (const sim::Violation& v : r->violations) ADD_FAILURE() << v.checker << ": " << v.explanation;
    EXPECT_GT(r->acked, 50u);
    EXPECT_GT(r->delivered, r->acked);
    EXPECT_EQ(r->lost, 0u);
    EXPECT_EQ(r->failed, 0u) << "sends refused (the default client_rate stays under parleyd's limit)";
    EXPECT_EQ(r->duplicated, 0u);
    EXPECT_EQ(r->reordered, 0u);
    EXPECT_TRUE(std::regex_match(
        r->LoadLine(),
        std::regex("LOAD clients=8 sent=\\d+ acked=\\d+ delivered=\\d+ lost=0 duplicated=0 "
                   "reordered=0 msgs_per_s=[0-9.]+ p50_ms=[0-9.]+ p99_ms=[0-9.]+")))
        << r->LoadLine();
  }
}

// At the full argon2id cost (~0.1 s a hash, one at a time) a crowd of 40
// registers and logins queues for seconds. Each client waits one long attempt
// and parleyd drops requests that waited past their caller's timeout, so
// every client gets in; with short timeouts and retries piling onto the
// queue, none ever did.
TEST(LoadTest, ACrowdOfLoginsAtFullPasswordCostAllGetIn) {
  ParleydOptions o;
  o.data_dir = std::string(std::getenv("TEST_TMPDIR")) + "/parleyd-crowd";
  o.listen = "127.0.0.1:0";
  auto d = Parleyd::Start(o, [](const std::string&) {});
  ASSERT_TRUE(d.ok()) << d.status();
  LoadOptions l;
  l.servers = {"127.0.0.1:" + std::to_string((*d)->listen_port())};
  l.clients = 40;
  l.duration_s = 1;
  l.group_size = 4;
  l.run_id = "crowd";
  std::vector<std::string> progress;
  l.progress = [&progress](const std::string& line) { progress.push_back(line); };
  absl::StatusOr<LoadResult> r = RunLoad(l);
  ASSERT_TRUE(r.ok()) << r.status();
  for (const sim::Violation& v : r->violations) ADD_FAILURE() << v.checker << ": " << v.explanation;
  EXPECT_GT(r->acked, 0u);
  ASSERT_FALSE(progress.empty());
  EXPECT_EQ(progress.front(), "logging in 40 clients");
}

// The shapes //bench:server_bench measures (issue 15), briefly, against one
// in-process parleyd with its limits lifted.
class ShapesTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ParleydOptions o;
    o.data_dir = std::string(std::getenv("TEST_TMPDIR")) + "/parleyd-shapes";
    o.listen = "127.0.0.1:0";
    o.minimal_password_cost = true;
    o.client_requests_per_s = 100000;
    o.client_burst = 100000;
    o.client_limits.user_requests_per_s = 100000;
    o.client_limits.user_burst = 100000;
    auto d = Parleyd::Start(o, [](const std::string&) {});
    ASSERT_TRUE(d.ok()) << d.status();
    parleyd_ = d->release();
  }
  static void TearDownTestSuite() {
    if (parleyd_ != nullptr) parleyd_->Stop();
    delete parleyd_;
    parleyd_ = nullptr;
  }
  static LoadOptions Options(const std::string& run_id) {
    LoadOptions l;
    l.servers = {"127.0.0.1:" + std::to_string(parleyd_->listen_port())};
    l.run_id = run_id;
    l.warmup_s = 0.5;
    l.duration_s = 1.5;
    l.client_rate = 0;
    l.body_bytes = 100;
    l.settle_s = 1.5;
    return l;
  }
  static void ExpectClean(const LoadResult& r) {
    for (const sim::Violation& v : r.violations) ADD_FAILURE() << v.checker << ": " << v.explanation;
    EXPECT_EQ(r.lost, 0u);
    EXPECT_EQ(r.duplicated, 0u);
    EXPECT_EQ(r.reordered, 0u);
    EXPECT_EQ(r.failed, 0u);
  }
  static Parleyd* parleyd_;
};
Parleyd* ShapesTest::parleyd_ = nullptr;

// 1:1 pairs, 4 outstanding per sender: each pair's one conversation carries
// all its traffic, every client had exactly 4 sends outstanding at its most,
// and the window's figures are there.
TEST_F(ShapesTest, PairsClosedLoopKeepsKOutstandingAndDeliversToThePeer) {
  LoadOptions l = Options("pairs");
  l.clients = 8;
  l.pairs = true;
  l.in_flight = 4;
  bool window_started = false, window_ended = false;
  l.on_window = [&](bool start) { (start ? window_started : window_ended) = true; };
  absl::StatusOr<LoadResult> r = RunLoad(l);
  ASSERT_TRUE(r.ok()) << r.status();
  ExpectClean(*r);
  EXPECT_TRUE(window_started && window_ended);
  EXPECT_EQ(r->conversations, 4u) << "4 pairs, each talking only to each other";
  EXPECT_EQ(r->max_outstanding, 4u);
  EXPECT_GT(r->window_acked, 20u);
  EXPECT_LT(r->window_acked, r->acked) << "the warm-up's sends are not in the window";
  EXPECT_GT(r->window_deliveries, 0u);
  EXPECT_GT(r->deliveries_per_s, 0);
  EXPECT_GT(r->p99_ms, 0);
  EXPECT_GE(r->p999_ms, r->p99_ms);
  EXPECT_GT(r->load_cpu_s, 0);
  EXPECT_GT(r->send_replies["CODE_OK"], 0u);
}

// Open loop: about the offered rate is acked in the window, and the warm-up
// (as long as the window) is not counted in it: counted, the rate would
// read about twice what was offered.
TEST_F(ShapesTest, OpenLoopSendsAtTheOfferedRateAndLeavesTheWarmUpOut) {
  LoadOptions l = Options("open");
  l.clients = 8;
  l.pairs = true;
  l.rate_per_s = 200;
  l.warmup_s = 1;
  l.duration_s = 1;
  absl::StatusOr<LoadResult> r = RunLoad(l);
  ASSERT_TRUE(r.ok()) << r.status();
  ExpectClean(*r);
  EXPECT_GT(r->msgs_per_s, 120);
  EXPECT_LT(r->msgs_per_s, 280);
  EXPECT_GT(r->sent, 320u) << "warm-up and window both send";
  EXPECT_EQ(r->conversations, 4u);
}

// Open loop past what 2 outstanding per sender carry: the rest is shed and
// counted, never queued.
TEST_F(ShapesTest, OpenLoopShedsPastTheBacklogBound) {
  LoadOptions l = Options("shed");
  l.clients = 4;
  l.pairs = true;
  l.rate_per_s = 20000;
  l.max_backlog = 2;
  absl::StatusOr<LoadResult> r = RunLoad(l);
  ASSERT_TRUE(r.ok()) << r.status();
  ExpectClean(*r);
  EXPECT_LE(r->max_outstanding, 2u);
  EXPECT_GT(r->shed, 0u);
  EXPECT_GT(r->acked, 0u);
}

// Groups of 4 with 2 senders each, 2 outstanding per sender: only the
// groups' conversations carry messages, each send reaching the 3 others.
TEST_F(ShapesTest, GroupsShapeSendsOnlyToTheGroups) {
  LoadOptions l = Options("groups");
  l.clients = 8;
  l.groups = 2;
  l.group_size = 4;
  l.group_senders = 2;
  l.group_fraction = 1;
  l.in_flight = 2;
  absl::StatusOr<LoadResult> r = RunLoad(l);
  ASSERT_TRUE(r.ok()) << r.status();
  ExpectClean(*r);
  EXPECT_EQ(r->conversations, 2u);
  EXPECT_EQ(r->max_outstanding, 2u);
  EXPECT_GT(r->window_deliveries, 2 * r->window_acked) << "each group send reaches 3 other members";
}

TEST_F(ShapesTest, OfflineCatchUpIsMeasured) {
  OfflineOptions o;
  o.servers = {"127.0.0.1:" + std::to_string(parleyd_->listen_port())};
  o.messages = 100;
  o.repeats = 2;
  o.run_id = "t";
  absl::StatusOr<OfflineResult> r = RunOffline(o);
  ASSERT_TRUE(r.ok()) << r.status();
  for (const sim::Violation& v : r->violations) ADD_FAILURE() << v.checker << ": " << v.explanation;
  EXPECT_EQ(r->delivered, 200u);
  ASSERT_EQ(r->login_ms.size(), 2u);
  ASSERT_EQ(r->all_ms.size(), 2u);
  EXPECT_GT(r->login_median_ms, 0);
  EXPECT_GT(r->all_median_ms, 0);
}

TEST_F(ShapesTest, SerialLoginsAreMeasured) {
  LoginOptions o;
  o.servers = {"127.0.0.1:" + std::to_string(parleyd_->listen_port())};
  o.count = 5;
  o.run_id = "t";
  absl::StatusOr<LoginResult> r = RunLogins(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->login_ms.size(), 5u);
  EXPECT_GT(r->login_p50_ms, 0);
  EXPECT_GE(r->session_p50_ms, r->login_p50_ms);
}

TEST(LoadTest, RefusesNonLoopbackTargetsAndBadBounds) {
  LoadOptions l;
  l.servers = {"10.0.0.1:7700"};
  EXPECT_FALSE(RunLoad(l).ok());
  l.servers = {"127.0.0.1:7700"};
  l.clients = 100000;
  EXPECT_FALSE(RunLoad(l).ok());
  l.clients = 5;
  l.duration_s = 0;
  EXPECT_FALSE(RunLoad(l).ok());
  l.duration_s = 1;
  l.client_rate = -1;
  EXPECT_FALSE(RunLoad(l).ok());
  l.client_rate = 100;
  l.client_threads = 0;
  EXPECT_FALSE(RunLoad(l).ok());
  l.client_threads = 2;
  l.pairs = true;  // an odd count cannot pair up
  EXPECT_FALSE(RunLoad(l).ok());
  l.pairs = false;
  l.groups = 2;  // 5 clients are not 2 groups of 10
  EXPECT_FALSE(RunLoad(l).ok());
  l.groups = 0;
  l.in_flight = 0;
  EXPECT_FALSE(RunLoad(l).ok());
}

}  // namespace
}  // namespace parley
