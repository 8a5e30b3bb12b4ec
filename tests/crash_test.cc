// Crash tests with real processes: two parleyd on one nats-server — A with
// every role and gateway 1, B with only gateway 2 — and clients on B. B is
// killed with SIGKILL under load; its clients reconnect to A and the load
// generator's checkers pass: nothing acked is lost, nothing is duplicated.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "server/load.h"
#include "server/nats_server_process.h"
#include "tests/process_util.h"

namespace parley {
namespace {

TEST(CrashTest, KillingAGatewayProcessUnderLoadLosesNothing) {
  const std::string tmp = std::getenv("TEST_TMPDIR");
  auto nats = NatsServerProcess::Start(tmp + "/nats");
  ASSERT_TRUE(nats.ok()) << nats.status();
  const int port_a = FreePort(), port_b = FreePort();
  const std::string bin = "server/parleyd";
  const std::string key = SharedTokenKeyFlag(tmp + "/token.key");  // both gateways verify tokens
  const pid_t a = Spawn({bin, "--nats=" + (*nats)->url(), "--data_dir=" + tmp + "/a",
                         absl::StrCat("--listen=127.0.0.1:", port_a), "--gateway_id=1",
                         "--minimal_password_cost", key},
                        tmp + "/a.log");
  const pid_t b = Spawn({bin, "--nats=" + (*nats)->url(), "--data_dir=" + tmp + "/b",
                         absl::StrCat("--listen=127.0.0.1:", port_b), "--gateway_id=2",
                         "--roles=gateway", "--minimal_password_cost", key},
                        tmp + "/b.log");
  for (int i = 0; i < 200 && !(Listening(port_a) && Listening(port_b)); ++i) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_TRUE(Listening(port_a) && Listening(port_b));
  absl::SleepFor(absl::Seconds(1));  // gateways registered, services discovered

  LoadOptions l;
  l.servers = {absl::StrCat("127.0.0.1:", port_b), absl::StrCat("127.0.0.1:", port_a)};
  l.clients = 8;
  l.duration_s = 6;
  l.group_size = 4;
  l.rate_per_s = 200;
  l.run_id = "crash";
  std::thread killer([b] {
    absl::SleepFor(absl::Seconds(4));  // setup plus some load first
    kill(b, SIGKILL);
  });
  absl::StatusOr<LoadResult> r = RunLoad(l);
  killer.join();
  waitpid(b, nullptr, 0);
  kill(a, SIGINT);
  int status = 0;
  waitpid(a, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "parleyd A did not drain cleanly";
  ASSERT_TRUE(r.ok()) << r.status();
  for (const sim::Violation& v : r->violations) ADD_FAILURE() << v.checker << ": " << v.explanation;
  EXPECT_GT(r->acked, 100u);
  EXPECT_EQ(r->lost, 0u);
  EXPECT_EQ(r->duplicated, 0u);
  std::printf("%s\n", r->LoadLine().c_str());
}

}  // namespace
}  // namespace parley

namespace parley {
namespace {

TEST(CrashTest, KillingTheMessageProcessAndRestartingItLosesNoAckedMessage) {
  const std::string tmp = std::getenv("TEST_TMPDIR");
  auto nats = NatsServerProcess::Start(tmp + "/nats-m");
  ASSERT_TRUE(nats.ok()) << nats.status();
  const int port = FreePort();
  const std::string bin = "server/parleyd";
  const pid_t a = Spawn({bin, "--nats=" + (*nats)->url(), "--data_dir=" + tmp + "/ma",
                         absl::StrCat("--listen=127.0.0.1:", port),
                         "--roles=registry,kv,user,friend,group,gateway", "--minimal_password_cost"},
                        tmp + "/ma.log");
  const std::vector<std::string> m_args = {bin, "--nats=" + (*nats)->url(),
                                           "--data_dir=" + tmp + "/mm", "--roles=message"};
  pid_t m = Spawn(m_args, tmp + "/mm.log");
  for (int i = 0; i < 200 && !Listening(port); ++i) absl::SleepFor(absl::Milliseconds(50));
  ASSERT_TRUE(Listening(port));
  absl::SleepFor(absl::Seconds(1));

  LoadOptions l;
  l.servers = {absl::StrCat("127.0.0.1:", port)};
  l.clients = 8;
  l.duration_s = 8;
  l.group_size = 4;
  l.rate_per_s = 150;
  l.run_id = "msgcrash";
  std::thread killer([&] {
    absl::SleepFor(absl::Seconds(4));
    kill(m, SIGKILL);  // mid-commit, mid-dispatch: whatever it was doing
    waitpid(m, nullptr, 0);
    absl::SleepFor(absl::Seconds(1));
    m = Spawn(m_args, tmp + "/mm2.log");  // the same data dir
  });
  absl::StatusOr<LoadResult> r = RunLoad(l);
  killer.join();
  kill(m, SIGINT);
  waitpid(m, nullptr, 0);
  kill(a, SIGINT);
  waitpid(a, nullptr, 0);
  ASSERT_TRUE(r.ok()) << r.status();
  for (const sim::Violation& v : r->violations) ADD_FAILURE() << v.checker << ": " << v.explanation;
  EXPECT_GT(r->acked, 100u);
  EXPECT_EQ(r->lost, 0u);
  EXPECT_EQ(r->duplicated, 0u);
  std::printf("%s\n", r->LoadLine().c_str());
}

}  // namespace
}  // namespace parley

#include "core/client/client.h"
#include "core/status.h"
#include "fakes/mem_store.h"
#include "server/client_driver.h"
#include "server/tcp_client_host.h"

namespace parley {
namespace {

TEST(CrashTest, NatsServerRestartedOnItsStoreLosesNoEvent) {
  const std::string tmp = std::getenv("TEST_TMPDIR");
  const int nats_port = FreePort();
  auto nats = NatsServerProcess::Start(tmp + "/nats-r", absl::Seconds(10), "/usr/sbin/nats-server",
                                       nats_port);
  ASSERT_TRUE(nats.ok()) << nats.status();
  const int port = FreePort();
  const pid_t d = Spawn({"server/parleyd", "--nats=" + (*nats)->url(), "--data_dir=" + tmp + "/r",
                         absl::StrCat("--listen=127.0.0.1:", port), "--minimal_password_cost"},
                        tmp + "/r.log");
  for (int i = 0; i < 200 && !Listening(port); ++i) absl::SleepFor(absl::Milliseconds(50));
  ASSERT_TRUE(Listening(port));
  auto client = [&](const std::string& name) {
    ClientOptions o;
    o.name = name;
    o.password = "password-" + name;
    o.fixed_gateway = "gw";
    auto h = std::make_unique<TcpClientHost>("client." + name,
                                             std::vector<std::string>{absl::StrCat("127.0.0.1:", port)},
                                             std::make_unique<MemStore>(), 3);
    h->Start([o](Env* e) { return std::make_unique<Client>(e, o); });
    return h;
  };
  auto alice = client("alice");
  auto bob = client("bob");
  auto online = [](Client* c) { return c->state() == Client::State::kOnline; };
  ASSERT_TRUE(WaitForClient(*alice, online));
  ASSERT_TRUE(WaitForClient(*bob, online));
  uint64_t bob_id = 0;
  bob->RunOnLoop([&](Node* n) { bob_id = dynamic_cast<Client*>(n)->user_id(); });
  Request add;
  add.mutable_add_friend()->set_friend_id(bob_id);
  ASSERT_EQ(CallClient(*alice, add).status().code(), CODE_OK);
  Request create;
  create.mutable_create_group()->set_name("pair");
  create.mutable_create_group()->add_member_ids(bob_id);
  const uint64_t group = CallClient(*alice, create).create_group().group().group_id();
  ASSERT_NE(group, 0u);

  // nats-server goes down and comes back on the same port and store.
  ASSERT_TRUE((*nats)->Stop().ok());
  absl::SleepFor(absl::Milliseconds(500));
  nats = NatsServerProcess::Start(tmp + "/nats-r", absl::Seconds(10), "/usr/sbin/nats-server",
                                  nats_port);
  ASSERT_TRUE(nats.ok()) << nats.status();

  // The profile change is an event through JetStream: alice's friend list
  // must converge to it.
  Request update;
  update.mutable_update_profile()->set_nickname("Robert");
  Reply updated;
  for (int i = 0; i < 50; ++i) {
    updated = CallClient(*bob, update);
    if (updated.status().code() == CODE_OK) break;
    absl::SleepFor(absl::Milliseconds(200));
  }
  ASSERT_EQ(updated.status().code(), CODE_OK) << updated.status().message();
  bool converged = false;
  for (int i = 0; i < 100 && !converged; ++i) {
    Request list;
    list.mutable_list_friends();
    const Reply r = CallClient(*alice, list);
    converged = r.list_friends().list().friends_size() == 1 &&
                r.list_friends().list().friends(0).nickname() == "Robert";
    if (!converged) absl::SleepFor(absl::Milliseconds(200));
  }
  EXPECT_TRUE(converged) << "the profile event was lost across the nats-server restart";
  // The group's member entry for bob converges too.
  bool member_converged = false;
  for (int i = 0; i < 100 && !member_converged; ++i) {
    Request info;
    info.mutable_group_info()->set_group_id(group);
    const Reply r = CallClient(*alice, info);
    for (const Member& m : r.group_info().members()) {
      if (m.user_id() == bob_id && m.nickname() == "Robert") member_converged = true;
    }
    if (!member_converged) absl::SleepFor(absl::Milliseconds(200));
  }
  EXPECT_TRUE(member_converged) << "group member entries never saw the profile change";
  // And messages still flow.
  alice->RunOnLoop([&](Node* n) { dynamic_cast<Client*>(n)->SendPrivate(bob_id, "after restart"); });
  EXPECT_TRUE(WaitForClient(*bob, [](Client* c) {
    return !c->delivered().empty() && c->delivered().back().body() == "after restart";
  }));
  alice->Stop();
  bob->Stop();
  kill(d, SIGINT);
  waitpid(d, nullptr, 0);
}

}  // namespace
}  // namespace parley
