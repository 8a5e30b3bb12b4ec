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

namespace parley {
namespace {

int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

pid_t Spawn(const std::vector<std::string>& args, const std::string& log) {
  const pid_t pid = fork();
  if (pid == 0) {
    FILE* out = freopen(log.c_str(), "w", stderr);
    (void)out;
    std::vector<char*> argv;
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

bool Listening(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return ok;
}

TEST(CrashTest, KillingAGatewayProcessUnderLoadLosesNothing) {
  const std::string tmp = std::getenv("TEST_TMPDIR");
  auto nats = NatsServerProcess::Start(tmp + "/nats");
  ASSERT_TRUE(nats.ok()) << nats.status();
  const int port_a = FreePort(), port_b = FreePort();
  const std::string bin = "server/parleyd";
  const pid_t a = Spawn({bin, "--nats=" + (*nats)->url(), "--data_dir=" + tmp + "/a",
                         absl::StrCat("--listen=127.0.0.1:", port_a), "--gateway_id=1",
                         "--minimal_password_cost"},
                        tmp + "/a.log");
  const pid_t b = Spawn({bin, "--nats=" + (*nats)->url(), "--data_dir=" + tmp + "/b",
                         absl::StrCat("--listen=127.0.0.1:", port_b), "--gateway_id=2",
                         "--roles=gateway", "--minimal_password_cost"},
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
