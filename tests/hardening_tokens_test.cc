// Issue 17, tokens, over real TCP against real parleyd (their own
// nats-server, LevelDB and key files): no built-in key, the key file made
// 0600 and reused, short keys refused at start, canonical signatures only,
// revocation at every gateway (logout, change_password), bounded epochs.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/client/client.h"
#include "core/gateway/gateway.h"
#include "core/user/token.h"
#include "fakes/mem_store.h"
#include "gtest/gtest.h"
#include "server/client_driver.h"
#include "server/frame.h"
#include "server/parleyd.h"
#include "server/tcp_client_host.h"
#include "tests/process_util.h"

namespace parley {
namespace {

std::string Tmp(const std::string& name) { return std::string(std::getenv("TEST_TMPDIR")) + "/" + name; }

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::unique_ptr<Parleyd> StartParleyd(ParleydOptions o) {
  o.listen = "127.0.0.1:0";
  o.minimal_password_cost = true;
  auto d = Parleyd::Start(o, [](const std::string&) {});
  EXPECT_TRUE(d.ok()) << d.status();
  return d.ok() ? std::move(*d) : nullptr;
}

// A raw client connection: frames in, replies out by correlation id.
class Conn {
 public:
  explicit Conn(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    EXPECT_EQ(connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    timeval tv{10, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  ~Conn() { Close(); }
  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }
  Reply Call(const Request& request) {
    Envelope e;
    e.set_correlation_id(++next_id_);
    *e.mutable_request() = request;
    const std::string frame = EncodeFrame(e);
    if (send(fd_, frame.data(), frame.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(frame.size())) {
      return Reply();
    }
    char chunk[4096];
    for (;;) {
      Envelope got;
      while (DecodeFrame(&buffer_, 1 << 20, &got) == FrameResult::kFrame) {
        if (got.has_reply() && got.correlation_id() == next_id_) return got.reply();
      }
      const ssize_t n = recv(fd_, chunk, sizeof(chunk), 0);
      if (n <= 0) {
        Reply closed;
        closed.mutable_status()->set_code(CODE_UNAVAILABLE);
        closed.mutable_status()->set_message("connection closed");
        return closed;
      }
      buffer_.append(chunk, n);
    }
  }
  Reply Register(const std::string& name, const std::string& password) {
    Request r;
    r.mutable_register_()->set_name(name);
    r.mutable_register_()->set_password(password);
    return Call(r);
  }
  Reply Login(const std::string& name, const std::string& password, const std::string& device) {
    Request r;
    r.mutable_login()->set_name(name);
    r.mutable_login()->set_password(password);
    r.mutable_login()->set_device_id(device);
    return Call(r);
  }
  Reply Bind(const std::string& token, const std::string& device, uint64_t epoch) {
    Request r;
    r.mutable_gateway_login()->set_token(token);
    r.mutable_gateway_login()->set_device_id(device);
    r.mutable_gateway_login()->set_epoch(epoch);
    return Call(r);
  }
  ErrorCode Ping() {
    Request r;
    r.mutable_ping();
    return Call(r).status().code();
  }
  ErrorCode Logout() {
    Request r;
    r.mutable_gateway_logout();
    return Call(r).status().code();
  }

 private:
  int fd_ = -1;
  uint64_t next_id_ = 0;
  std::string buffer_;
};

// Registers `name` and returns a token for `device`.
std::string TokenFor(int port, const std::string& name, const std::string& password,
                     const std::string& device, uint64_t* user_id = nullptr) {
  Conn c(port);
  Reply reg = c.Register(name, password);
  EXPECT_TRUE(reg.status().code() == CODE_OK || reg.status().code() == CODE_ALREADY_EXISTS);
  Reply login = c.Login(name, password, device);
  EXPECT_EQ(login.status().code(), CODE_OK) << login.status().message();
  if (user_id != nullptr) *user_id = login.login().user_id();
  return login.login().token();
}

TEST(HardeningTokensTest, ADefaultParleydRefusesTokensOfTheOldBuiltInKeyOrAnyFixedKey) {
  ParleydOptions o;
  o.data_dir = Tmp("forged");
  auto d = StartParleyd(o);
  ASSERT_NE(d, nullptr);
  uint64_t alice = 0;
  const std::string real = TokenFor(d->listen_port(), "alice", "password-alice", "phone", &alice);
  ASSERT_NE(alice, 0u);
  for (const std::string& key :
       {TestTokenKey(), std::string(32, '\0'), std::string(32, 'k'), std::string("parley")}) {
    const std::string padded = key.size() >= 32 ? key : key + std::string(32 - key.size(), '\0');
    TokenClaims claims;
    claims.user_id = alice;
    claims.expires = absl::Now() + absl::Hours(1);
    claims.device_id = "phone";
    const std::string forged = TokenSigner::Create(padded)->Sign(claims);
    Conn c(d->listen_port());
    EXPECT_EQ(c.Bind(forged, "phone", 1).status().code(), CODE_UNAUTHENTICATED) << key;
    // The old token form (user.expiry.mac) too.
    EXPECT_EQ(c.Bind(TokenSigner::Create(padded)->Sign(alice, absl::Now() + absl::Hours(1)),
                     "phone", 1)
                  .status()
                  .code(),
              CODE_UNAUTHENTICATED);
  }
  Conn ok(d->listen_port());
  EXPECT_EQ(ok.Bind(real, "phone", 1).status().code(), CODE_OK);
}

TEST(HardeningTokensTest, TheKeyFileIsMade0600AndReusedSoATokenSurvivesARestart) {
  ParleydOptions o;
  o.data_dir = Tmp("restart");
  auto d = StartParleyd(o);
  ASSERT_NE(d, nullptr);
  const std::string path = o.data_dir + "/token.key";
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  const std::string key = ReadAll(path);
  EXPECT_EQ(key.size(), 32u);
  EXPECT_NE(key, TestTokenKey().substr(0, 32));
  const std::string token = TokenFor(d->listen_port(), "alice", "password-alice", "phone");
  {
    Conn c(d->listen_port());
    ASSERT_EQ(c.Bind(token, "phone", 1).status().code(), CODE_OK);
  }
  d->Stop();
  d.reset();
  d = StartParleyd(o);
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(ReadAll(path), key);
  Conn c(d->listen_port());
  EXPECT_EQ(c.Bind(token, "phone", 2).status().code(), CODE_OK);

  // Another data dir gets another key: the token is refused there.
  ParleydOptions other;
  other.data_dir = Tmp("restart-other");
  auto e = StartParleyd(other);
  ASSERT_NE(e, nullptr);
  EXPECT_NE(ReadAll(other.data_dir + "/token.key"), key);
  Conn f(e->listen_port());
  EXPECT_EQ(f.Bind(token, "phone", 1).status().code(), CODE_UNAUTHENTICATED);
}

TEST(HardeningTokensTest, AShortOrUnsafeKeyRefusesToStartWithAClearError) {
  auto start = [](ParleydOptions o) {
    o.listen = "127.0.0.1:0";
    auto d = Parleyd::Start(o, [](const std::string&) {});
    return d.ok() ? absl::OkStatus() : d.status();
  };
  ParleydOptions o;
  o.data_dir = Tmp("short");
  o.token_key = "k";
  absl::Status s = start(o);
  EXPECT_TRUE(absl::IsInvalidArgument(s) && absl::StrContains(s.message(), "at least 32 bytes"))
      << s;
  o.token_key = std::string(31, 'k');
  s = start(o);
  EXPECT_TRUE(absl::IsInvalidArgument(s) && absl::StrContains(s.message(), "at least 32 bytes"))
      << s;

  o.token_key.clear();
  o.token_key_file = Tmp("short.key");
  s = start(o);  // absent: not made up (several parleyd must share one)
  EXPECT_TRUE(absl::IsNotFound(s) && absl::StrContains(s.message(), "does not exist")) << s;
  {
    std::ofstream(o.token_key_file) << "sixteen-bytes-ok";
  }
  chmod(o.token_key_file.c_str(), 0600);
  s = start(o);
  EXPECT_TRUE(absl::IsInvalidArgument(s) && absl::StrContains(s.message(), "at least 32 bytes"))
      << s;
  {
    std::ofstream(o.token_key_file) << std::string(40, 'x');
  }
  chmod(o.token_key_file.c_str(), 0644);
  s = start(o);
  EXPECT_TRUE(absl::IsInvalidArgument(s) && absl::StrContains(s.message(), "chmod 600")) << s;

  // The binary (whatever its build mode) exits 1 and says why.
  const std::string log = Tmp("short.log");
  const pid_t pid = Spawn({"server/parleyd", "--data_dir=" + Tmp("short-bin"),
                           "--listen=127.0.0.1:0", "--token_key=tooshort"},
                          log);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << status;
  EXPECT_TRUE(absl::StrContains(ReadAll(log), "--token_key must be at least 32 bytes"))
      << ReadAll(log);
}

TEST(HardeningTokensTest, ASignatureWithPaddingOrAnotherSpellingIsRefused) {
  ParleydOptions o;
  o.data_dir = Tmp("padding");
  auto d = StartParleyd(o);
  ASSERT_NE(d, nullptr);
  const std::string token = TokenFor(d->listen_port(), "alice", "password-alice", "phone");
  for (const std::string& bad : {token + "=", token + "==", token + " ", token + "\n"}) {
    Conn c(d->listen_port());
    EXPECT_EQ(c.Bind(bad, "phone", 1).status().code(), CODE_UNAUTHENTICATED) << bad;
  }
  Conn c(d->listen_port());
  EXPECT_EQ(c.Bind(token, "phone", 1).status().code(), CODE_OK);
}

// Two parleyd sharing one NATS and one key file: A with every role and
// gateway 1, B with gateway 2 only.
class TwoGatewaysTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string dir = Tmp(::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir);
    const std::string flag = SharedTokenKeyFlag(dir + "/token.key");
    ASSERT_FALSE(flag.empty());
    ParleydOptions a;
    a.data_dir = dir + "/a";
    a.token_key_file = dir + "/token.key";
    a_ = StartParleyd(a);
    ASSERT_NE(a_, nullptr);
    ParleydOptions b;
    b.data_dir = dir + "/b";
    b.token_key_file = dir + "/token.key";
    b.nats_url = a_->nats_url();
    b.roles = "gateway";
    b.gateway_id = "2";
    b_ = StartParleyd(b);
    ASSERT_NE(b_, nullptr);
  }
  void TearDown() override {
    b_.reset();
    a_.reset();
  }
  std::unique_ptr<Parleyd> a_, b_;
};

TEST_F(TwoGatewaysTest, ALoggedOutDevicesTokenStopsWorkingAtTheOtherGateway) {
  const std::string token = TokenFor(a_->listen_port(), "alice", "password-alice", "phone");
  {
    Conn b(b_->listen_port());  // the shared key: B takes A's token
    ASSERT_EQ(b.Bind(token, "phone", 1).status().code(), CODE_OK);
  }  // a dropped connection is not a logout: the token lives on
  Conn a(a_->listen_port());
  ASSERT_EQ(a.Bind(token, "phone", 2).status().code(), CODE_OK);
  ASSERT_EQ(a.Logout(), CODE_OK);
  Conn b(b_->listen_port());
  Reply refused = b.Bind(token, "phone", 3);
  EXPECT_EQ(refused.status().code(), CODE_UNAUTHENTICATED) << refused.status().message();
  Conn again(a_->listen_port());
  EXPECT_EQ(again.Bind(token, "phone", 4).status().code(), CODE_UNAUTHENTICATED);
  // Logging in again gives a token that works.
  Conn fresh(b_->listen_port());
  EXPECT_EQ(fresh.Bind(TokenFor(a_->listen_port(), "alice", "password-alice", "phone"), "phone", 5)
                .status()
                .code(),
            CODE_OK);
}

TEST_F(TwoGatewaysTest, ChangePasswordEndsEveryOldTokenAndSessionAndTheNewPasswordWorks) {
  const std::string phone = TokenFor(a_->listen_port(), "bob", "password-bob", "phone");
  const std::string laptop = TokenFor(a_->listen_port(), "bob", "password-bob", "laptop");
  Conn a(a_->listen_port());
  ASSERT_EQ(a.Bind(phone, "phone", 1).status().code(), CODE_OK);
  Conn b(b_->listen_port());
  ASSERT_EQ(b.Bind(laptop, "laptop", 1).status().code(), CODE_OK);

  Request change;
  change.mutable_change_password()->set_old_password("password-wrong");
  change.mutable_change_password()->set_new_password("password-bob-2");
  EXPECT_EQ(a.Call(change).status().code(), CODE_PERMISSION_DENIED);
  change.mutable_change_password()->set_old_password("password-bob");
  Reply changed = a.Call(change);
  ASSERT_EQ(changed.status().code(), CODE_OK) << changed.status().message();

  // The laptop's session at the other gateway ends within the token check (5 s).
  const absl::Time start = absl::Now();
  ErrorCode code = CODE_OK;
  while (absl::Now() - start < absl::Seconds(8)) {
    code = b.Ping();
    if (code != CODE_OK) break;
    absl::SleepFor(absl::Milliseconds(200));
  }
  EXPECT_EQ(code, CODE_UNAUTHENTICATED);
  const absl::Duration took = absl::Now() - start;
  EXPECT_LT(took, absl::Seconds(7)) << took;
  EXPECT_EQ(a.Ping(), CODE_OK);  // the caller's session goes on

  for (const std::string& old : {phone, laptop}) {
    Conn c(b_->listen_port());
    EXPECT_EQ(c.Bind(old, old == phone ? "phone" : "laptop", 5).status().code(),
              CODE_UNAUTHENTICATED);
  }
  Conn c(a_->listen_port());
  EXPECT_EQ(c.Login("bob", "password-bob", "laptop").status().code(), CODE_UNAUTHENTICATED);
  Reply fresh = c.Login("bob", "password-bob-2", "laptop");
  ASSERT_EQ(fresh.status().code(), CODE_OK);
  Conn d(b_->listen_port());
  EXPECT_EQ(d.Bind(fresh.login().token(), "laptop", 6).status().code(), CODE_OK);
  Conn e(b_->listen_port());  // the reply's token, for the caller's device
  EXPECT_EQ(e.Bind(changed.change_password().token(), "phone", 7).status().code(), CODE_OK);
}

TEST_F(TwoGatewaysTest, AHugeEpochDoesNotLockTheRealDeviceOut) {
  const std::string token = TokenFor(a_->listen_port(), "carol", "password-carol", "phone");
  Conn attacker(b_->listen_port());
  Reply huge = attacker.Bind(token, "phone", ~uint64_t{0});
  EXPECT_EQ(huge.status().code(), CODE_OUT_OF_RANGE) << huge.status().message();
  EXPECT_EQ(attacker.Bind(token, "phone", uint64_t{1} << 60).status().code(), CODE_OUT_OF_RANGE);
  // The largest jump allowed from nothing.
  ASSERT_EQ(attacker.Bind(token, "phone", kMaxEpochStep).status().code(), CODE_OK);

  // The reference client on the same device (its epoch counter at 0) gets in
  // while the attacker's session stays alive.
  ClientOptions co;
  co.name = "carol";
  co.password = "password-carol";
  co.device_id = "phone";
  co.fixed_gateway = "gw.1";
  auto host = std::make_unique<TcpClientHost>(
      "client.carol", std::vector<std::string>{absl::StrCat("127.0.0.1:", a_->listen_port())},
      std::make_unique<MemStore>(), 11);
  host->Start([co](Env* e) { return std::make_unique<Client>(e, co); });
  bool online = false;
  const absl::Time start = absl::Now();
  while (!online && absl::Now() - start < absl::Seconds(15)) {
    attacker.Ping();
    online = WaitForClient(
        *host, [](Client* c) { return c->state() == Client::State::kOnline; },
        absl::Milliseconds(500));
  }
  EXPECT_TRUE(online);
  host->Stop();
}

}  // namespace
}  // namespace parley
