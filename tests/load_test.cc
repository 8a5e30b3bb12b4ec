// parley_load against an in-process parleyd (real nats-server, LevelDB, TCP):
// the checkers pass on what the clients saw, with and without churn, and the
// last line has the LOAD form.
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
}

}  // namespace
}  // namespace parley
