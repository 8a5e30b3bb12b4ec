// NATS robustness with real processes on loopback (and
// parley_load's reporting): a parleyd restarted keeps its embedded
// nats-server's port (<data_dir>/nats/port); a gateway-only parleyd pointed
// at another parleyd's embedded nats-server logs the loss when that parleyd
// restarts, refuses logins at once with UNAVAILABLE during the outage, and
// serves logins again after it; parley_load says each phase, the final
// logged-in line and where the wall time went. Every loop is bounded.
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "server/frame.h"
#include "tests/process_util.h"

namespace parley {
namespace {

std::string Tmp() { return std::getenv("TEST_TMPDIR"); }

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

int PortFile(const std::string& data_dir) {
  int port = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(ReadAll(data_dir + "/nats/port")), &port)) return 0;
  return port;
}

// Stops `pid` with SIGTERM (SIGKILL after 10 s); true if it exited 0.
bool StopProcess(pid_t pid) {
  kill(pid, SIGTERM);
  for (int i = 0; i < 100; ++i) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) && WEXITSTATUS(status) == 0;
    absl::SleepFor(absl::Milliseconds(100));
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  return false;
}

bool WaitListening(int port, absl::Duration within = absl::Seconds(20)) {
  const absl::Time deadline = absl::Now() + within;
  while (absl::Now() < deadline) {
    if (Listening(port)) return true;
    absl::SleepFor(absl::Milliseconds(50));
  }
  return false;
}

bool WaitForLog(const std::string& log, const std::string& text, absl::Duration within) {
  const absl::Time deadline = absl::Now() + within;
  while (absl::Now() < deadline) {
    if (absl::StrContains(ReadAll(log), text)) return true;
    absl::SleepFor(absl::Milliseconds(50));
  }
  return absl::StrContains(ReadAll(log), text);
}

// One request on a fresh connection; the reply, or an error reply saying
// what went wrong on our side (DEADLINE_EXCEEDED: none within `wait`).
Reply Call(int port, const Request& request, absl::Duration wait) {
  Reply failed;
  failed.mutable_status()->set_code(CODE_DEADLINE_EXCEEDED);
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    failed.mutable_status()->set_code(CODE_UNAVAILABLE);
    failed.mutable_status()->set_message("cannot connect");
    return failed;
  }
  Envelope e;
  e.set_correlation_id(7);
  e.set_timeout_us(absl::ToInt64Microseconds(wait));
  *e.mutable_request() = request;
  const std::string frame = EncodeFrame(e);
  (void)!send(fd, frame.data(), frame.size(), MSG_NOSIGNAL);
  std::string in;
  const absl::Time deadline = absl::Now() + wait;
  while (absl::Now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) continue;
    char buf[4096];
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    in.append(buf, n);
    Envelope reply;
    if (DecodeFrame(&in, kDefaultMaxFrameBytes, &reply) == FrameResult::kFrame && reply.has_reply()) {
      close(fd);
      return reply.reply();
    }
  }
  close(fd);
  return failed;
}

Request Register(const std::string& name) {
  Request r;
  r.mutable_register_()->set_name(name);
  r.mutable_register_()->set_password("password-" + name);
  return r;
}

Request Login(const std::string& name) {
  Request r;
  r.mutable_login()->set_name(name);
  r.mutable_login()->set_password("password-" + name);
  return r;
}

TEST(NatsRobustnessTest, ARestartedParleydKeepsItsNatsPort) {
  const std::string dir = Tmp() + "/keep";
  const int listen = FreePort();
  const std::vector<std::string> args = {"server/parleyd", "--data_dir=" + dir,
                                         absl::StrCat("--listen=127.0.0.1:", listen),
                                         "--minimal_password_cost", "--event_bus=local"};
  pid_t p = Spawn(args, Tmp() + "/keep1.log");
  ASSERT_TRUE(WaitListening(listen)) << ReadAll(Tmp() + "/keep1.log");
  const int first = PortFile(dir);
  ASSERT_GT(first, 0) << "no " << dir << "/nats/port";
  EXPECT_TRUE(absl::StrContains(ReadAll(Tmp() + "/keep1.log"), absl::StrCat("nats://127.0.0.1:", first)));
  EXPECT_TRUE(StopProcess(p));
  p = Spawn(args, Tmp() + "/keep2.log");
  ASSERT_TRUE(WaitListening(listen)) << ReadAll(Tmp() + "/keep2.log");
  EXPECT_EQ(PortFile(dir), first);
  const std::string log2 = ReadAll(Tmp() + "/keep2.log");
  EXPECT_TRUE(absl::StrContains(log2, absl::StrCat("started nats-server at nats://127.0.0.1:", first)))
      << log2;
  EXPECT_TRUE(absl::StrContains(log2, "kept from")) << log2;
  EXPECT_TRUE(StopProcess(p));

  // Its port taken by someone else: a free one, said in the log, and kept.
  const int blocker = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(first);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(blocker, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(blocker, 1), 0);
  p = Spawn(args, Tmp() + "/keep3.log");
  ASSERT_TRUE(WaitListening(listen, absl::Seconds(30))) << ReadAll(Tmp() + "/keep3.log");
  const std::string log3 = ReadAll(Tmp() + "/keep3.log");
  EXPECT_TRUE(absl::StrContains(log3, absl::StrCat("port ", first))) << log3;
  EXPECT_TRUE(absl::StrContains(log3, "is taken")) << log3;
  EXPECT_NE(PortFile(dir), first);
  EXPECT_GT(PortFile(dir), 0);
  EXPECT_TRUE(StopProcess(p));
  close(blocker);

  // An explicit --nats_port is used as given.
  const int pinned = FreePort();
  std::vector<std::string> pinned_args = args;
  pinned_args.push_back(absl::StrCat("--nats_port=", pinned));
  p = Spawn(pinned_args, Tmp() + "/keep4.log");
  ASSERT_TRUE(WaitListening(listen)) << ReadAll(Tmp() + "/keep4.log");
  EXPECT_EQ(PortFile(dir), pinned);
  EXPECT_TRUE(Listening(pinned));
  EXPECT_TRUE(StopProcess(p));
}

TEST(NatsRobustnessTest, AGatewayOnlyParleydSurvivesTheOtherParleydsRestart) {
  const std::string key = SharedTokenKeyFlag(Tmp() + "/token.key");
  const std::string dir_a = Tmp() + "/a";
  const int port_a = FreePort(), port_b = FreePort();
  const std::vector<std::string> a_args = {"server/parleyd", "--data_dir=" + dir_a,
                                           absl::StrCat("--listen=127.0.0.1:", port_a),
                                           "--gateway_id=1", "--minimal_password_cost", key};
  pid_t a = Spawn(a_args, Tmp() + "/a1.log");
  ASSERT_TRUE(WaitListening(port_a)) << ReadAll(Tmp() + "/a1.log");
  const int nats_port = PortFile(dir_a);
  ASSERT_GT(nats_port, 0);
  const std::string b_log = Tmp() + "/b.log";
  const pid_t b = Spawn({"server/parleyd", absl::StrCat("--nats=nats://127.0.0.1:", nats_port),
                         "--roles=gateway", "--data_dir=" + Tmp() + "/b",
                         absl::StrCat("--listen=127.0.0.1:", port_b), "--gateway_id=2",
                         "--minimal_password_cost", key, "--report_interval=1s"},
                        b_log);
  ASSERT_TRUE(WaitListening(port_b)) << ReadAll(b_log);

  // Through B (bounded: services are discovered within a few seconds).
  Reply r;
  for (int i = 0; i < 40; ++i) {
    r = Call(port_b, Register("alice"), absl::Seconds(3));
    if (r.status().code() == CODE_OK || r.status().code() == CODE_ALREADY_EXISTS) break;
    absl::SleepFor(absl::Milliseconds(250));
  }
  ASSERT_TRUE(r.status().code() == CODE_OK || r.status().code() == CODE_ALREADY_EXISTS)
      << r.ShortDebugString();
  r = Call(port_b, Login("alice"), absl::Seconds(5));
  ASSERT_EQ(r.status().code(), CODE_OK) << r.ShortDebugString();
  EXPECT_TRUE(WaitForLog(b_log, "clients: 0 connected (+", absl::Seconds(5))) << ReadAll(b_log);

  // A goes (its nats-server with it): B notices, says so, and refuses
  // logins at once rather than letting them time out.
  ASSERT_TRUE(StopProcess(a));
  ASSERT_TRUE(WaitForLog(b_log, "NATS: lost the connection", absl::Seconds(10))) << ReadAll(b_log);
  const absl::Time asked = absl::Now();
  r = Call(port_b, Login("alice"), absl::Seconds(5));
  EXPECT_EQ(r.status().code(), CODE_UNAVAILABLE) << r.ShortDebugString();
  EXPECT_TRUE(absl::StrContains(r.status().message(), "lost its NATS connection")) << r.ShortDebugString();
  EXPECT_LT(absl::Now() - asked, absl::Seconds(1));
  r = Call(port_b, Register("bob"), absl::Seconds(5));
  EXPECT_EQ(r.status().code(), CODE_UNAVAILABLE) << r.ShortDebugString();

  // A comes back on the same nats port; B reconnects and serves logins again.
  a = Spawn(a_args, Tmp() + "/a2.log");
  ASSERT_TRUE(WaitListening(port_a)) << ReadAll(Tmp() + "/a2.log");
  EXPECT_EQ(PortFile(dir_a), nats_port);
  ASSERT_TRUE(WaitForLog(b_log, "NATS: reconnected", absl::Seconds(15))) << ReadAll(b_log);
  for (int i = 0; i < 40; ++i) {
    r = Call(port_b, Login("alice"), absl::Seconds(3));
    if (r.status().code() == CODE_OK) break;
    absl::SleepFor(absl::Milliseconds(250));
  }
  EXPECT_EQ(r.status().code(), CODE_OK) << r.ShortDebugString();
  EXPECT_TRUE(WaitForLog(b_log, "logins refused without NATS", absl::Seconds(5))) << ReadAll(b_log);
  EXPECT_TRUE(StopProcess(b));
  EXPECT_TRUE(StopProcess(a));
}

TEST(NatsRobustnessTest, ParleyLoadSaysEachPhaseAndWhereTheTimeWent) {
  const int port = FreePort();
  const pid_t p = Spawn({"server/parleyd", "--data_dir=" + Tmp() + "/load",
                         absl::StrCat("--listen=127.0.0.1:", port), "--minimal_password_cost"},
                        Tmp() + "/load-parleyd.log");
  ASSERT_TRUE(WaitListening(port));
  absl::SleepFor(absl::Milliseconds(500));
  const std::string out = Tmp() + "/load.out";
  const std::string cmd =
      absl::StrCat("timeout 120 server/parley_load --server=127.0.0.1:", port,
                   " --clients=6 --duration_s=1 --group_size=3 > ", out, " 2>&1");
  const int rc = std::system(cmd.c_str());
  const std::string text = ReadAll(out);
  EXPECT_EQ(rc, 0) << text;
  for (const char* want :
       {"logging in 6 clients", "6/6 clients logged in", "setup:", "sending for 1 s", "draining:",
        "checking a history", "syncs: ", "at login or reconnect", "reconnects: ", "send retries",
        "wall time: ", "login ", "setup ", "sending ", "draining ", "checking ", "LOAD clients=6"}) {
    EXPECT_TRUE(absl::StrContains(text, want)) << "missing '" << want << "' in\n" << text;
  }
  EXPECT_TRUE(StopProcess(p));
}

}  // namespace
}  // namespace parley
