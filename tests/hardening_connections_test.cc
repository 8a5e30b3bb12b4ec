// Connection hardening over real TCP against real parleyd processes (each
// with its own nats-server and LevelDB files): login, frame and idle
// deadlines; 10,000 idle connections while a normal client is served (at
// the global cap the oldest connections that have not logged in are
// evicted, logged-in sessions never); the per-address cap; a wrong-password flood on one connection while three
// other clients log in at full password cost; failed logins slowing their
// address; the per-user rate limit across connections; registrations per
// address; an out-of-range timeout_us. Loopback only (source addresses in
// 127.0.0.0/8); every loop is bounded in count and in time.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "server/frame.h"
#include "tests/process_util.h"

namespace parley {
namespace {

// One parleyd process; SIGTERM (then SIGKILL) at the end.
class Server {
 public:
  Server(const std::string& name, std::vector<std::string> flags) {
    const std::string tmp = std::getenv("TEST_TMPDIR");
    port_ = FreePort();
    std::vector<std::string> args = {"server/parleyd", "--data_dir=" + tmp + "/" + name,
                                     absl::StrCat("--listen=127.0.0.1:", port_), "--event_bus=local"};
    args.insert(args.end(), flags.begin(), flags.end());
    log_ = tmp + "/" + name + ".log";
    pid_ = Spawn(args, log_);
    for (int i = 0; i < 300 && !Listening(port_); ++i) absl::SleepFor(absl::Milliseconds(50));
    absl::SleepFor(absl::Milliseconds(500));  // services registered with the registry
  }
  ~Server() {
    kill(pid_, SIGTERM);
    for (int i = 0; i < 100; ++i) {
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) return;
      absl::SleepFor(absl::Milliseconds(100));
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  int port() const { return port_; }
  bool up() const { return Listening(port_); }
  const std::string& log() const { return log_; }

 private:
  int port_ = 0;
  pid_t pid_ = -1;
  std::string log_;
};

void SleepUntil(absl::Time t) {
  const absl::Duration d = t - absl::Now();
  if (d > absl::ZeroDuration()) absl::SleepFor(d);
}

void RaiseFileLimit() {
  rlimit r{};
  getrlimit(RLIMIT_NOFILE, &r);
  r.rlim_cur = r.rlim_max;
  setrlimit(RLIMIT_NOFILE, &r);
}

// A raw client connection from `from_ip`.
class Conn {
 public:
  Conn(const std::string& from_ip, int port) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return;
    sockaddr_in local{};
    local.sin_family = AF_INET;
    inet_pton(AF_INET, from_ip.c_str(), &local.sin_addr);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&local), sizeof(local)) != 0) {
      Fail();
      return;
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      Fail();
      return;
    }
    fcntl(fd_, F_SETFL, fcntl(fd_, F_GETFL) | O_NONBLOCK);
  }
  ~Conn() {
    if (fd_ >= 0) close(fd_);
  }
  Conn(const Conn&) = delete;
  bool ok() const { return fd_ >= 0; }
  int fd() const { return fd_; }

  bool SendBytes(const std::string& bytes) {
    size_t sent = 0;
    const absl::Time until = absl::Now() + absl::Seconds(5);
    while (sent < bytes.size() && absl::Now() < until) {
      const ssize_t n = send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n > 0) {
        sent += n;
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        pollfd p{fd_, POLLOUT, 0};
        poll(&p, 1, 50);
      } else {
        return false;
      }
    }
    return sent == bytes.size();
  }
  bool Send(uint64_t correlation_id, const Request& request, uint64_t timeout_us = 5000000) {
    Envelope e;
    e.set_correlation_id(correlation_id);
    e.set_timeout_us(timeout_us);
    *e.mutable_request() = request;
    return SendBytes(EncodeFrame(e));
  }
  // The next frame within `wait`; nullopt on timeout or close (closed() says).
  std::optional<Envelope> Read(absl::Duration wait) {
    const absl::Time until = absl::Now() + wait;
    for (;;) {
      Envelope e;
      if (DecodeFrame(&buffer_, 1 << 20, &e) == FrameResult::kFrame) return e;
      if (closed_) return std::nullopt;
      char chunk[16384];
      const ssize_t n = recv(fd_, chunk, sizeof(chunk), 0);
      if (n > 0) {
        buffer_.append(chunk, n);
        continue;
      }
      if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
        closed_ = true;
        continue;
      }
      const absl::Duration left = until - absl::Now();
      if (left <= absl::ZeroDuration()) return std::nullopt;
      pollfd p{fd_, POLLIN, 0};
      poll(&p, 1, std::max<int>(1, std::min<int64_t>(100, absl::ToInt64Milliseconds(left))));
    }
  }
  // The reply to `correlation_id` within `wait` (other frames are skipped).
  std::optional<Reply> Call(uint64_t correlation_id, const Request& request,
                            absl::Duration wait = absl::Seconds(5), uint64_t timeout_us = 5000000) {
    if (!Send(correlation_id, request, timeout_us)) return std::nullopt;
    const absl::Time until = absl::Now() + wait;
    while (absl::Now() < until) {
      std::optional<Envelope> e = Read(until - absl::Now());
      if (!e) return std::nullopt;
      if (e->correlation_id() == correlation_id && e->has_reply()) return e->reply();
    }
    return std::nullopt;
  }
  // Waits up to `wait` for the server to close; keeps the last error message.
  bool WaitClosed(absl::Duration wait, std::string* last_error = nullptr) {
    const absl::Time until = absl::Now() + wait;
    while (absl::Now() < until) {
      std::optional<Envelope> e = Read(until - absl::Now());
      if (e && e->has_reply() && last_error != nullptr) *last_error = e->reply().status().message();
      if (!e && closed_) return true;
    }
    return false;
  }
  bool closed() const { return closed_; }

 private:
  void Fail() {
    close(fd_);
    fd_ = -1;
  }
  int fd_ = -1;
  std::string buffer_;
  bool closed_ = false;
};

Request RegisterReq(const std::string& name, const std::string& password) {
  Request r;
  r.mutable_register_()->set_name(name);
  r.mutable_register_()->set_password(password);
  return r;
}
Request LoginReq(const std::string& name, const std::string& password) {
  Request r;
  r.mutable_login()->set_name(name);
  r.mutable_login()->set_password(password);
  return r;
}
Request PingReq() {
  Request r;
  r.mutable_ping();
  return r;
}

// Registers (if asked), logs in and binds the connection; returns the user id or 0.
uint64_t LogIn(Conn& c, const std::string& name, bool do_register, const std::string& device = "d1") {
  const std::string password = "password-" + name;
  if (do_register) {
    std::optional<Reply> r = c.Call(1, RegisterReq(name, password), absl::Seconds(8));
    if (!r || (r->status().code() != CODE_OK && r->status().code() != CODE_ALREADY_EXISTS)) {
      ADD_FAILURE() << "register " << name << ": " << (r ? r->status().message() : "no reply");
      return 0;
    }
  }
  std::optional<Reply> r = c.Call(2, LoginReq(name, password), absl::Seconds(8));
  if (!r || r->status().code() != CODE_OK) {
    ADD_FAILURE() << "login " << name << ": " << (r ? r->status().message() : "no reply");
    return 0;
  }
  Request g;
  g.mutable_gateway_login()->set_token(r->login().token());
  g.mutable_gateway_login()->set_device_id(device);
  g.mutable_gateway_login()->set_epoch(1);
  std::optional<Reply> gr = c.Call(3, g);
  if (!gr || gr->status().code() != CODE_OK) {
    ADD_FAILURE() << "gateway_login " << name << ": " << (gr ? gr->status().message() : "no reply");
    return 0;
  }
  return gr->gateway_login().user_id();
}

// ---- Deadlines and caps -------------------------------------------------

class DeadlinesTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    RaiseFileLimit();
    server_ = new Server("deadlines", {"--minimal_password_cost", "--login_deadline=3s",
                                       "--frame_deadline=1s", "--idle_deadline=5s"});
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  static Server* server_;
};
Server* DeadlinesTest::server_ = nullptr;

TEST_F(DeadlinesTest, SlowPartialFrameIsClosed) {
  ASSERT_TRUE(server_->up());
  Conn c("127.0.0.1", server_->port());
  ASSERT_TRUE(c.ok());
  // A frame that announces 100 bytes, then one byte per second (slowloris).
  const absl::Time start = absl::Now();
  ASSERT_TRUE(c.SendBytes(std::string(1, '\x64')));
  std::string error;
  bool closed = false;
  for (int i = 0; i < 6 && !closed; ++i) {
    closed = c.WaitClosed(absl::Seconds(1), &error);
    if (!closed) c.SendBytes("x");
  }
  const absl::Duration took = absl::Now() - start;
  ASSERT_TRUE(closed) << "a frame trickling at 1 byte/s was not closed in 6 s";
  EXPECT_TRUE(absl::StrContains(error, "frame not finished")) << error;
  EXPECT_LT(took, absl::Milliseconds(2900)) << "closed by the frame deadline, before the login deadline";
}

TEST_F(DeadlinesTest, UnauthenticatedConnectionClosedAfterLoginDeadline) {
  ASSERT_TRUE(server_->up());
  Conn silent("127.0.0.1", server_->port());
  Conn pinging("127.0.0.1", server_->port());  // busy, but never logs in
  ASSERT_TRUE(silent.ok() && pinging.ok());
  const absl::Time start = absl::Now();
  std::string error;
  bool closed = false;
  for (int i = 0; i < 16 && !closed; ++i) {  // 8 s at most
    pinging.Send(100 + i, PingReq());
    closed = pinging.WaitClosed(absl::Milliseconds(500), &error);
  }
  ASSERT_TRUE(closed) << "a connection that never logs in was not closed in 8 s";
  EXPECT_TRUE(absl::StrContains(error, "no gateway_login")) << error;
  std::string silent_error;
  ASSERT_TRUE(silent.WaitClosed(absl::Seconds(3), &silent_error));
  EXPECT_TRUE(absl::StrContains(silent_error, "no gateway_login")) << silent_error;
  const absl::Duration took = absl::Now() - start;
  EXPECT_GE(took, absl::Milliseconds(2900));
  EXPECT_LT(took, absl::Seconds(6));
}

TEST_F(DeadlinesTest, IdleSessionClosedAfterIdleDeadline) {
  ASSERT_TRUE(server_->up());
  Conn c("127.0.0.1", server_->port());
  ASSERT_TRUE(c.ok());
  ASSERT_NE(LogIn(c, "idler", /*do_register=*/true), 0u);
  const absl::Time last_request = absl::Now();
  // Logged in: the login deadline (3 s) does not close it ...
  EXPECT_FALSE(c.WaitClosed(absl::Seconds(4))) << "a logged-in session was closed early";
  // ... the idle deadline (5 s without a request) does.
  std::string error;
  ASSERT_TRUE(c.WaitClosed(absl::Seconds(4), &error)) << "an idle session was not closed";
  EXPECT_TRUE(absl::StrContains(error, "idle")) << error;
  EXPECT_GE(absl::Now() - last_request, absl::Milliseconds(4900));
}

TEST_F(DeadlinesTest, PerAddressConnectionCap) {
  ASSERT_TRUE(server_->up());
  // The default cap is 1000 per address; 127.0.0.20 opens 1001.
  std::vector<std::unique_ptr<Conn>> conns;
  for (int i = 0; i < 1001; ++i) {
    conns.push_back(std::make_unique<Conn>("127.0.0.20", server_->port()));
    ASSERT_TRUE(conns.back()->ok()) << i;
  }
  std::string error;
  ASSERT_TRUE(conns.back()->WaitClosed(absl::Seconds(2), &error)) << "the 1001st was not refused";
  EXPECT_TRUE(absl::StrContains(error, "too many connections from 127.0.0.20")) << error;
  // The address's others are still open, and another address is served.
  EXPECT_FALSE(conns.front()->closed());
  Conn other("127.0.0.1", server_->port());
  std::optional<Reply> r = other.Call(7, PingReq());
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status().code(), CODE_UNAUTHENTICATED);
}

// Reads what has arrived without waiting: whether the server has closed `c`
// (keeping the last error message).
bool ClosedNow(Conn& c, std::string* last_error) {
  while (std::optional<Envelope> e = c.Read(absl::ZeroDuration())) {
    if (e->has_reply()) *last_error = e->reply().status().message();
  }
  return c.closed();
}

bool Pings(Conn& c, uint64_t correlation_id) {
  std::optional<Reply> r = c.Call(correlation_id, PingReq(), absl::Seconds(3));
  return r && r->status().code() == CODE_OK;
}

constexpr char kEvicted[] = "server full: closing connections that have not logged in";

// 20 logged-in sessions, then 10,000 idle connections from ten addresses
// (1,000 each: the per-address cap does not refuse them) fill the global cap
// (9,900: --max_connections=10000 less --connection_headroom=100). The login
// deadline is long (120 s), so it frees nothing during the test: a normal
// client from 127.0.0.1 is admitted and served at once because each
// connection past the cap evicts the oldest one that has not logged in —
// while the other idle ones stay open — and no logged-in session is evicted.
TEST(IdleConnectionsTest, TenThousandIdleConnectionsWhileANormalClientIsServed) {
  RaiseFileLimit();
  Server server("idle", {"--minimal_password_cost", "--login_deadline=120s"});
  ASSERT_TRUE(server.up());  // (not again below: it would connect, and evict)
  constexpr int kSessions = 20;
  std::vector<std::unique_ptr<Conn>> sessions;
  for (int i = 0; i < kSessions; ++i) {
    sessions.push_back(std::make_unique<Conn>("127.0.0.1", server.port()));
    ASSERT_NE(LogIn(*sessions.back(), absl::StrCat("keeper", i), /*do_register=*/true), 0u) << i;
  }
  const absl::Time start = absl::Now();
  std::vector<std::unique_ptr<Conn>> idle;
  idle.reserve(10000);
  for (int i = 0; i < 10000 && absl::Now() - start < absl::Seconds(30); ++i) {
    idle.push_back(std::make_unique<Conn>(absl::StrCat("127.0.0.", 2 + i / 1000), server.port()));
    ASSERT_TRUE(idle.back()->ok()) << "connect " << i << ": " << strerror(errno);
  }
  ASSERT_EQ(idle.size(), 10000u);
  const absl::Time opened = absl::Now();
  std::printf("opened 10000 idle connections in %.2f s\n", absl::ToDoubleSeconds(opened - start));

  // The normal client: one connection, registers, logs in, is served.
  Conn normal("127.0.0.1", server.port());
  ASSERT_TRUE(normal.ok());
  ASSERT_NE(LogIn(normal, "normal", /*do_register=*/true), 0u) << "the normal client was not admitted";
  ASSERT_TRUE(Pings(normal, 9));
  const absl::Duration served = absl::Now() - opened;
  std::printf("normal client served %.3f s after the idle connections were open\n",
              absl::ToDoubleSeconds(served));
  EXPECT_LT(served, absl::Seconds(2));

  // Each connection past the cap evicted the oldest idle one: 20 + 10,000 +
  // 1 connections for 9,900 places, so idle[0..120]; the rest are still open.
  const int evictions = kSessions + 10000 + 1 - 9900;
  int evicted = 0, open = 0, other = 0;
  std::string other_error;
  for (int i = 0; i < 10000; ++i) {
    std::string error;
    const bool closed = ClosedNow(*idle[i], &error);
    if (closed && absl::StrContains(error, kEvicted) && i < evictions) {
      ++evicted;
    } else if (!closed && i >= evictions) {
      ++open;
    } else {
      ++other;
      if (other_error.empty()) other_error = absl::StrCat("idle[", i, "] ", closed ? "closed: " : "open", error);
    }
  }
  std::printf("idle: %d evicted (oldest first), %d still open, %d other (%s)\n", evicted, open, other,
              other_error.c_str());
  EXPECT_EQ(evicted, evictions);
  EXPECT_EQ(open, 10000 - evictions);
  EXPECT_EQ(other, 0) << other_error;

  // The logged-in sessions were never evicted: each still answers.
  int answered = 0;
  for (int i = 0; i < kSessions; ++i) answered += Pings(*sessions[i], 100 + i) ? 1 : 0;
  EXPECT_EQ(answered, kSessions) << "a logged-in session was evicted";
  EXPECT_TRUE(Pings(normal, 10));
}

// A small cap (--max_connections=30 less --connection_headroom=10: 20): with
// 19 sessions logged in and one idle connection, a newcomer evicts the idle
// one (error frame, then closed; logged with a count) and logs in; with all
// 20 logged in, the next connection is refused "server full" and every
// session still answers.
TEST(IdleConnectionsTest, AtTheCapOnlyConnectionsThatHaveNotLoggedInAreEvicted) {
  Server server("cap", {"--minimal_password_cost", "--login_deadline=120s", "--max_connections=30",
                        "--connection_headroom=10"});
  ASSERT_TRUE(server.up());
  std::vector<std::unique_ptr<Conn>> sessions;
  for (int i = 0; i < 19; ++i) {
    sessions.push_back(std::make_unique<Conn>("127.0.0.1", server.port()));
    ASSERT_NE(LogIn(*sessions.back(), absl::StrCat("capped", i), /*do_register=*/true), 0u) << i;
  }
  Conn idle("127.0.0.2", server.port());
  ASSERT_TRUE(idle.ok());
  absl::SleepFor(absl::Milliseconds(200));
  std::string error;
  EXPECT_FALSE(ClosedNow(idle, &error)) << "below the cap: " << error;

  sessions.push_back(std::make_unique<Conn>("127.0.0.1", server.port()));
  ASSERT_NE(LogIn(*sessions.back(), "capped19", /*do_register=*/true), 0u) << "the newcomer was not admitted";
  ASSERT_TRUE(idle.WaitClosed(absl::Seconds(2), &error)) << "the idle connection was not evicted";
  EXPECT_EQ(error, kEvicted);

  // Every connection has logged in: the next one is refused, nobody evicted.
  Conn late("127.0.0.3", server.port());
  ASSERT_TRUE(late.ok());
  std::string late_error;
  ASSERT_TRUE(late.WaitClosed(absl::Seconds(2), &late_error)) << "not refused with all logged in";
  EXPECT_TRUE(absl::StrContains(late_error, "server full: 20 connections, all logged in")) << late_error;
  int answered = 0;
  for (size_t i = 0; i < sessions.size(); ++i) answered += Pings(*sessions[i], 100 + i) ? 1 : 0;
  EXPECT_EQ(answered, 20) << "a logged-in session was evicted";

  // The cap's log line counts the evictions.
  absl::SleepFor(absl::Milliseconds(200));
  std::string log;
  if (FILE* f = std::fopen(server.log().c_str(), "r")) {
    char buf[4096];
    for (size_t n; (n = std::fread(buf, 1, sizeof(buf), f)) > 0;) log.append(buf, n);
    std::fclose(f);
  }
  EXPECT_TRUE(absl::StrContains(log, "connection cap reached: 20 connections")) << log;
  EXPECT_TRUE(absl::StrContains(log, "evicted 1 that had not logged in")) << log;
}

// ---- Fair authentication, at full password cost -------------------------

class AuthTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // Full argon2id cost (no --minimal_password_cost).
    server_ = new Server("auth", {"--address_login_failures=3"});
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  static Server* server_;
};
Server* AuthTest::server_ = nullptr;

TEST_F(AuthTest, WrongPasswordFloodDoesNotKeepOthersFromLoggingIn) {
  ASSERT_TRUE(server_->up());
  const std::vector<std::string> names = {"victim", "carol", "dave"};
  {
    Conn setup("127.0.0.1", server_->port());
    for (const std::string& n : names) {
      std::optional<Reply> r = setup.Call(1, RegisterReq(n, "password-" + n), absl::Seconds(8));
      ASSERT_TRUE(r && (r->status().code() == CODE_OK || r->status().code() == CODE_ALREADY_EXISTS))
          << n << ": " << (r ? r->status().message() : "no reply");
    }
  }
  // The attacker: one connection from 127.0.0.2, wrong passwords for
  // "victim" at 190/s for 6 s (under the per-connection rate limit).
  Conn attacker("127.0.0.2", server_->port());
  ASSERT_TRUE(attacker.ok());
  std::map<std::string, int> answers;
  std::thread flood([&] {
    const absl::Time start = absl::Now();
    for (int i = 0; i < 1140 && absl::Now() - start < absl::Seconds(6); ++i) {
      attacker.Send(1000 + i, LoginReq("victim", "wrong-password"), /*timeout_us=*/10000000);
      while (std::optional<Envelope> e = attacker.Read(absl::ZeroDuration())) {
        const std::string m = e->reply().status().message();
        ++answers[m.substr(0, std::min<size_t>(m.size(), 40))];
      }
      SleepUntil(start + absl::Milliseconds(1000.0 * (i + 1) / 190));
    }
  });
  absl::SleepFor(absl::Milliseconds(1500));  // the flood is on
  // Three clients from 127.0.0.1, each on its own connection; the first
  // logs in as the flooded name with the right password.
  std::vector<absl::Duration> latency(names.size(), absl::InfiniteDuration());
  std::vector<std::string> outcome(names.size());
  std::vector<std::thread> logins;
  for (size_t k = 0; k < names.size(); ++k) {
    logins.emplace_back([&, k] {
      Conn c("127.0.0.1", server_->port());
      const absl::Time sent = absl::Now();
      std::optional<Reply> r = c.Call(5, LoginReq(names[k], "password-" + names[k]), absl::Seconds(5));
      outcome[k] = r ? (r->status().code() == CODE_OK ? "ok" : r->status().message()) : "no reply";
      if (r && r->status().code() == CODE_OK) latency[k] = absl::Now() - sent;
    });
  }
  for (std::thread& t : logins) t.join();
  flood.join();
  for (const auto& [m, n] : answers) std::printf("attacker got %d x '%s'\n", n, m.c_str());
  for (size_t k = 0; k < names.size(); ++k) {
    std::printf("login %s under the flood: %s in %s\n", names[k].c_str(), outcome[k].c_str(),
                absl::FormatDuration(latency[k]).c_str());
    EXPECT_EQ(outcome[k], "ok") << names[k];
    EXPECT_LT(latency[k], absl::Seconds(2)) << names[k];
  }
  int unauthenticated = 0, refused = 0;
  for (const auto& [m, n] : answers) {
    if (absl::StrContains(m, "wrong user name")) unauthenticated += n;
    if (absl::StrContains(m, "at a time") || absl::StrContains(m, "failed logins")) refused += n;
  }
  EXPECT_GT(unauthenticated, 0);
  EXPECT_LT(unauthenticated, 100) << "the flood's hashes are bounded by the waits";
  EXPECT_GT(refused, 500);
}

TEST_F(AuthTest, FailedLoginsSlowTheirAddressButLockNobodyOut) {
  ASSERT_TRUE(server_->up());
  {
    Conn setup("127.0.0.1", server_->port());
    std::optional<Reply> r = setup.Call(1, RegisterReq("erin", "password-erin"), absl::Seconds(8));
    ASSERT_TRUE(r && (r->status().code() == CODE_OK || r->status().code() == CODE_ALREADY_EXISTS));
  }
  // From 127.0.0.3, a fresh connection per wrong guess (so no connection's
  // own wait applies); past 3 failures the address is slowed.
  std::string refusal;
  for (int i = 0; i < 20 && refusal.empty(); ++i) {
    Conn c("127.0.0.3", server_->port());
    std::optional<Reply> r = c.Call(1, LoginReq("erin", "wrong-password"), absl::Seconds(5));
    ASSERT_TRUE(r.has_value()) << i;
    if (absl::StrContains(r->status().message(), "from 127.0.0.3")) refusal = r->status().message();
  }
  ASSERT_FALSE(refusal.empty()) << "the address was never slowed";
  EXPECT_TRUE(absl::StrContains(refusal, "too many failed logins from 127.0.0.3")) << refusal;
  // The user is not locked out: the right password from elsewhere works at once.
  Conn elsewhere("127.0.0.1", server_->port());
  std::optional<Reply> r = elsewhere.Call(2, LoginReq("erin", "password-erin"), absl::Seconds(5));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status().code(), CODE_OK) << r->status().message();
}

// ---- Rate limits, registrations, timeout_us -----------------------------

class LimitsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new Server("limits", {"--minimal_password_cost", "--address_registration_burst=5",
                                    "--address_registrations_per_s=0.5"});
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  static Server* server_;
};
Server* LimitsTest::server_ = nullptr;

TEST_F(LimitsTest, PerUserRateLimitAcrossConnections) {
  ASSERT_TRUE(server_->up());
  // One user on 10 connections (10 devices), each blasting pings under its
  // own per-connection limit (200/s, burst 400): 6,000 in about 2 s.
  std::vector<std::unique_ptr<Conn>> conns;
  for (int i = 0; i < 10; ++i) {
    conns.push_back(std::make_unique<Conn>("127.0.0.1", server_->port()));
    ASSERT_NE(LogIn(*conns.back(), "ratey", /*do_register=*/i == 0, absl::StrCat("dev", i)), 0u);
  }
  int ok = 0, user_limited = 0, other = 0, sent = 0;
  auto drain = [&](Conn& c, absl::Duration wait) {
    while (std::optional<Envelope> e = c.Read(wait)) {
      if (!e->has_reply()) continue;
      if (e->reply().status().code() == CODE_OK) {
        ++ok;
      } else if (absl::StrContains(e->reply().status().message(), "across its connections")) {
        ++user_limited;
      } else {
        ++other;
      }
    }
  };
  const absl::Time start = absl::Now();
  for (int round = 0; round < 20; ++round) {  // 20 rounds x 10 connections x 30 pings
    for (auto& c : conns) {
      std::string frames;
      for (int j = 0; j < 30; ++j) {
        Envelope e;
        e.set_correlation_id(100 + sent++);
        *e.mutable_request() = PingReq();
        frames += EncodeFrame(e);
      }
      c->SendBytes(frames);
      drain(*c, absl::ZeroDuration());
    }
    SleepUntil(start + absl::Milliseconds(100 * (round + 1)));
  }
  const double elapsed = absl::ToDoubleSeconds(absl::Now() - start);
  for (auto& c : conns) drain(*c, absl::Milliseconds(500));
  std::printf("one user, 10 connections, %d pings in %.2f s: %d ok (%.0f/s), %d refused for the user, %d other\n",
              sent, elapsed, ok, ok / elapsed, user_limited, other);
  EXPECT_EQ(ok + user_limited + other, sent);
  // 300/s with a burst of 600 for the user, whatever the connections.
  EXPECT_LE(ok, 600 + 300 * (elapsed + 0.5));
  EXPECT_GT(user_limited, 2000);
}

TEST_F(LimitsTest, RegistrationsPerAddress) {
  ASSERT_TRUE(server_->up());
  Conn c("127.0.0.4", server_->port());
  ASSERT_TRUE(c.ok());
  int ok = 0, refused = 0;
  std::string refusal;
  const absl::Time start = absl::Now();
  for (int i = 0; i < 20 && absl::Now() - start < absl::Seconds(10); ++i) {
    std::optional<Reply> r = c.Call(10 + i, RegisterReq(absl::StrCat("reg", i), "password-reg"));
    ASSERT_TRUE(r.has_value()) << i;
    if (r->status().code() == CODE_OK) {
      ++ok;
    } else if (absl::StrContains(r->status().message(), "too many registrations from 127.0.0.4")) {
      ++refused;
      refusal = r->status().message();
    }
  }
  const double elapsed = absl::ToDoubleSeconds(absl::Now() - start);
  std::printf("20 registrations from one address in %.2f s: %d ok, %d refused (%s)\n", elapsed, ok, refused,
              refusal.c_str());
  EXPECT_LE(ok, 5 + 0.5 * elapsed + 1);
  EXPECT_EQ(ok + refused, 20);
  // Another address still registers.
  Conn other("127.0.0.5", server_->port());
  std::optional<Reply> r = other.Call(1, RegisterReq("reg_other", "password-reg"));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status().code(), CODE_OK) << r->status().message();
}

TEST_F(LimitsTest, OutOfRangeTimeoutIsRefused) {
  ASSERT_TRUE(server_->up());
  Conn c("127.0.0.6", server_->port());
  ASSERT_TRUE(c.ok());
  for (uint64_t timeout_us : {uint64_t{1} << 63, ~uint64_t{0}, uint64_t{3600} * 1000000 * 24}) {
    std::optional<Reply> r =
        c.Call(timeout_us % 1000 + 1, LoginReq("nobody", "whatever-password"), absl::Seconds(3), timeout_us);
    ASSERT_TRUE(r.has_value()) << timeout_us << " was dropped silently";
    EXPECT_EQ(r->status().code(), CODE_INVALID_ARGUMENT) << timeout_us;
    EXPECT_TRUE(absl::StrContains(r->status().message(), "timeout_us")) << r->status().message();
  }
  // A sane one is served as before.
  std::optional<Reply> r = c.Call(77, PingReq(), absl::Seconds(3), 5000000);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status().code(), CODE_UNAUTHENTICATED);
}

}  // namespace
}  // namespace parley
