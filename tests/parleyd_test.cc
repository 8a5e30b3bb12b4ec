// parleyd end to end: a real nats-server (its own child), LevelDB files, the
// JetStream bus and TCP clients running the reference client. Then bad input
// over TCP: each gets an error frame or a clean close, and the good client
// keeps being served.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <thread>

#include "core/client/client.h"
#include "core/status.h"
#include "fakes/mem_store.h"
#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "server/frame.h"
#include "server/parleyd.h"
#include "server/client_driver.h"
#include "server/tcp_client_host.h"

namespace parley {
namespace {

// A raw loopback connection to `port` for hand-built or hostile input, its
// reads timing out after `timeout_s`; -1 if it cannot connect.
int DialLoopback(int port, int timeout_s) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  timeval tv{timeout_s, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return fd;
}

// Reads one frame from `fd`; bytes read past it stay in `unread` (one read
// may carry several frames: the server writes a run's frames together).
// nullopt on close or timeout.
std::optional<Envelope> ReadFrameFrom(int fd, std::string* unread) {
  char chunk[4096];
  for (;;) {
    Envelope e;
    if (DecodeFrame(unread, 1 << 20, &e) == FrameResult::kFrame) return e;
    const ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
    if (n <= 0) return std::nullopt;
    unread->append(chunk, n);
  }
}

// Sends `request` as correlation id `id` (claiming to be `forged_user` when
// set) and returns its reply, passing over other frames; an empty Reply on
// close or timeout.
Reply CallRaw(int fd, std::string* unread, uint64_t id, const Request& request,
              uint64_t forged_user = 0) {
  Envelope q;
  q.set_correlation_id(id);
  q.set_auth_user_id(forged_user);
  *q.mutable_request() = request;
  const std::string f = EncodeFrame(q);
  send(fd, f.data(), f.size(), 0);
  for (;;) {
    std::optional<Envelope> got = ReadFrameFrom(fd, unread);
    if (!got.has_value()) return Reply();
    if (got->has_reply() && got->correlation_id() == id) return got->reply();
  }
}

class ParleydTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ParleydOptions o;
    o.data_dir = std::string(std::getenv("TEST_TMPDIR")) + "/parleyd";
    o.listen = "127.0.0.1:0";
    o.minimal_password_cost = true;
    auto d = Parleyd::Start(o, [](const std::string&) {});
    ASSERT_TRUE(d.ok()) << d.status();
    server_ = d->release();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  std::string Address() { return "127.0.0.1:" + std::to_string(server_->listen_port()); }

  std::unique_ptr<TcpClientHost> NewClient(const std::string& name) {
    ClientOptions o;
    o.name = name;
    o.password = "password-" + name;
    o.fixed_gateway = "gw.1";
    auto host = std::make_unique<TcpClientHost>("client." + name, std::vector<std::string>{Address()},
                                                std::make_unique<MemStore>(), 7);
    host->Start([o](Env* e) { return std::make_unique<Client>(e, o); });
    return host;
  }
  // A raw connection for hostile input.
  int Dial() {
    const int fd = DialLoopback(server_->listen_port(), 5);
    EXPECT_GE(fd, 0);
    Unread()[fd].clear();  // a reused fd number starts empty
    return fd;
  }
  // Bytes read past the last frame, per connection (one read may carry
  // several frames: the server writes a run's frames together).
  static std::map<int, std::string>& Unread() {
    static auto* unread = new std::map<int, std::string>;
    return *unread;
  }
  // Reads one frame; nullopt on close or timeout.
  static std::optional<Envelope> ReadFrame(int fd) { return ReadFrameFrom(fd, &Unread()[fd]); }
  static bool ClosedByServer(int fd) {
    char c;
    return recv(fd, &c, 1, 0) == 0;
  }

  static Parleyd* server_;
};
Parleyd* ParleydTest::server_ = nullptr;

TEST_F(ParleydTest, TwoTcpClientsChatAndAnOfflineOneCatchesUp) {
  auto alice = NewClient("alice");
  auto bob = NewClient("bob");
  auto online = [](Client* c) { return c->state() == Client::State::kOnline; };
  ASSERT_TRUE(WaitForClient(*alice, online));
  ASSERT_TRUE(WaitForClient(*bob, online));
  uint64_t bob_id = 0;
  bob->RunOnLoop([&](Node* n) { bob_id = dynamic_cast<Client*>(n)->user_id(); });
  Request add;
  add.mutable_add_friend()->set_friend_id(bob_id);
  ASSERT_EQ(CallClient(*alice, add).status().code(), CODE_OK);

  alice->RunOnLoop([&](Node* n) { dynamic_cast<Client*>(n)->SendPrivate(bob_id, "hi bob"); });
  ASSERT_TRUE(WaitForClient(*bob, [](Client* c) { return c->delivered().size() == 1; }));

  // Bob goes offline; alice keeps writing; bob comes back and catches up in order.
  bob->RunOnLoop([](Node* n) { dynamic_cast<Client*>(n)->Disconnect(); });
  for (int i = 0; i < 5; ++i) {
    alice->RunOnLoop([&, i](Node* n) {
      dynamic_cast<Client*>(n)->SendPrivate(bob_id, "m" + std::to_string(i));
    });
  }
  ASSERT_TRUE(WaitForClient(*alice, [](Client* c) { return c->pending_sends() == 0; }));
  bob->RunOnLoop([](Node* n) { dynamic_cast<Client*>(n)->Connect(); });
  ASSERT_TRUE(WaitForClient(*bob, [](Client* c) { return c->delivered().size() == 6; }));
  bob->RunOnLoop([](Node* n) {
    const auto& d = dynamic_cast<Client*>(n)->delivered();
    for (size_t i = 0; i < d.size(); ++i) EXPECT_EQ(d[i].seq(), i + 1);
    EXPECT_EQ(d.back().body(), "m4");
  });
  alice->Stop();
  bob->Stop();
}

TEST_F(ParleydTest, BadInputGetsAnErrorOrACleanCloseAndOthersAreServed) {
  auto good = NewClient("carol");
  ASSERT_TRUE(WaitForClient(*good, [](Client* c) { return c->state() == Client::State::kOnline; }));

  // A request before login.
  int fd = Dial();
  Envelope e;
  e.set_correlation_id(5);
  e.mutable_request()->mutable_list_friends();
  e.set_auth_user_id(1);  // a forged user id changes nothing
  const std::string frame = EncodeFrame(e);
  ASSERT_EQ(send(fd, frame.data(), frame.size(), 0), static_cast<ssize_t>(frame.size()));
  std::optional<Envelope> reply = ReadFrame(fd);
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->correlation_id(), 5u);
  EXPECT_EQ(reply->reply().status().code(), CODE_UNAUTHENTICATED);
  close(fd);

  // Garbage bytes: an error frame, then a clean close.
  fd = Dial();
  const std::string garbage = "\x05hello";
  send(fd, garbage.data(), garbage.size(), 0);
  reply = ReadFrame(fd);
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->reply().status().code(), CODE_INVALID_ARGUMENT);
  EXPECT_TRUE(ClosedByServer(fd));
  close(fd);

  // An oversized frame (announced length past the limit).
  fd = Dial();
  const std::string huge = "\xff\xff\x7f";  // ~2 MiB
  send(fd, huge.data(), huge.size(), 0);
  reply = ReadFrame(fd);
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->reply().status().code(), CODE_RESOURCE_EXHAUSTED);
  EXPECT_TRUE(ClosedByServer(fd));
  close(fd);

  // A flood past the rate limit: refused with RESOURCE_EXHAUSTED.
  fd = Dial();
  std::string flood;
  for (int i = 0; i < 1000; ++i) {
    Envelope p;
    p.set_correlation_id(i + 1);
    p.mutable_request()->mutable_ping();
    flood += EncodeFrame(p);
  }
  send(fd, flood.data(), flood.size(), 0);
  int limited = 0;
  for (int i = 0; i < 1000; ++i) {
    reply = ReadFrame(fd);
    if (!reply.has_value()) break;
    if (reply->reply().status().code() == CODE_RESOURCE_EXHAUSTED) ++limited;
  }
  EXPECT_GT(limited, 0);
  close(fd);

  // A raw session: register, log in, bind the connection; then a forged
  // sender and a non-member group post.
  fd = Dial();
  auto call = [&](uint64_t id, const Request& r, uint64_t forged_user = 0) {
    return CallRaw(fd, &Unread()[fd], id, r, forged_user);
  };
  Request reg;
  reg.mutable_register_()->set_name("mallory");
  reg.mutable_register_()->set_password("password-mallory");
  const uint64_t mallory = call(100, reg).register_().user_id();
  ASSERT_NE(mallory, 0u);
  Request login;
  login.mutable_login()->set_name("mallory");
  login.mutable_login()->set_password("password-mallory");
  const std::string token = call(101, login).login().token();
  Request bind;
  bind.mutable_gateway_login()->set_token(token);
  bind.mutable_gateway_login()->set_device_id("raw");
  bind.mutable_gateway_login()->set_epoch(1);
  ASSERT_EQ(call(102, bind).status().code(), CODE_OK);
  uint64_t carol_id = 0;
  good->RunOnLoop([&](Node* n) { carol_id = dynamic_cast<Client*>(n)->user_id(); });
  // Claiming to be carol writing to mallory: the gateway uses the session's
  // user, so this is mallory writing to herself, which is invalid (had the
  // forged id been used it would have been a valid carol -> mallory send).
  Request forged;
  forged.mutable_send_private()->set_to_user_id(mallory);
  forged.mutable_send_private()->set_client_msg_id("forged");
  forged.mutable_send_private()->set_body("I am carol");
  EXPECT_EQ(call(103, forged, carol_id).status().code(), CODE_INVALID_ARGUMENT);
  // A group mallory is not in.
  Request create;
  create.mutable_create_group()->set_name("carols");
  const uint64_t group = CallClient(*good, create).create_group().group().group_id();
  ASSERT_NE(group, 0u);
  Request post;
  post.mutable_send_group()->set_group_id(group);
  post.mutable_send_group()->set_client_msg_id("intrude");
  post.mutable_send_group()->set_body("let me in");
  EXPECT_EQ(call(104, post).status().code(), CODE_PERMISSION_DENIED);
  close(fd);

  // The good client is still served.
  Request list;
  list.mutable_list_friends();
  EXPECT_EQ(CallClient(*good, list).status().code(), CODE_OK);
  good->Stop();
}

// The suite above runs on the default (--loops=0: a loop for every node).
// One shared loop and two shared loops (the user node has its own beside
// them) serve a chat the same way.
TEST(ParleydLoopsTest, AChatWorksWithOneAndWithTwoSharedLoops) {
  for (int loops : {1, 2}) {
    SCOPED_TRACE(loops);
    ParleydOptions o;
    o.data_dir = std::string(std::getenv("TEST_TMPDIR")) + "/loops-" + std::to_string(loops);
    o.listen = "127.0.0.1:0";
    o.minimal_password_cost = true;
    o.loops = loops;
    auto d = Parleyd::Start(o, [](const std::string&) {});
    ASSERT_TRUE(d.ok()) << d.status();
    const std::string address = "127.0.0.1:" + std::to_string((*d)->listen_port());
    auto client = [&](const std::string& name) {
      ClientOptions co;
      co.name = name;
      co.password = "password-" + name;
      co.fixed_gateway = "gw.1";
      auto host = std::make_unique<TcpClientHost>("client." + name, std::vector<std::string>{address},
                                                  std::make_unique<MemStore>(), 7);
      host->Start([co](Env* e) { return std::make_unique<Client>(e, co); });
      return host;
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
    alice->RunOnLoop([&](Node* n) {
      for (int i = 0; i < 20; ++i) dynamic_cast<Client*>(n)->SendPrivate(bob_id, "m" + std::to_string(i));
    });
    ASSERT_TRUE(WaitForClient(*bob, [](Client* c) { return c->delivered().size() == 20; }));
    bob->RunOnLoop([](Node* n) {
      const auto& got = dynamic_cast<Client*>(n)->delivered();
      for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i].seq(), i + 1);
    });
    alice->Stop();
    bob->Stop();
    (*d)->Stop();
  }
}

// --max_backend_calls bounds what the gateway has in flight to the services:
// a burst of requests on one connection past it is refused at once with
// RESOURCE_EXHAUSTED "gateway overloaded" (none is forwarded); with no bound
// the same burst is all served.
TEST(ParleydBackendCallsTest, TheFlagBoundsTheGatewaysCallsInFlight) {
  for (uint64_t bound : {uint64_t{1}, uint64_t{0}}) {
    SCOPED_TRACE(bound);
    ParleydOptions o;
    o.data_dir = std::string(std::getenv("TEST_TMPDIR")) + "/backend-" + std::to_string(bound);
    o.listen = "127.0.0.1:0";
    o.minimal_password_cost = true;
    o.max_backend_calls = bound;
    auto d = Parleyd::Start(o, [](const std::string&) {});
    ASSERT_TRUE(d.ok()) << d.status();
    const int fd = DialLoopback((*d)->listen_port(), 10);
    ASSERT_GE(fd, 0);
    std::string unread;
    auto call = [&](uint64_t id, const Request& r) { return CallRaw(fd, &unread, id, r); };
    Request reg;
    reg.mutable_register_()->set_name("busy");
    reg.mutable_register_()->set_password("password-busy");
    ASSERT_NE(call(1, reg).register_().user_id(), 0u);
    Request login;
    login.mutable_login()->set_name("busy");
    login.mutable_login()->set_password("password-busy");
    const std::string token = call(2, login).login().token();
    Request bind;
    bind.mutable_gateway_login()->set_token(token);
    bind.mutable_gateway_login()->set_device_id("raw");
    bind.mutable_gateway_login()->set_epoch(1);
    ASSERT_EQ(call(3, bind).status().code(), CODE_OK);
    // 50 friend-list reads in one write: the gateway reads them in one go.
    constexpr int kBurst = 50;
    std::string burst;
    for (int i = 0; i < kBurst; ++i) {
      Envelope q;
      q.set_correlation_id(100 + i);
      q.mutable_request()->mutable_list_friends();
      burst += EncodeFrame(q);
    }
    ASSERT_EQ(send(fd, burst.data(), burst.size(), 0), static_cast<ssize_t>(burst.size()));
    int ok = 0, overloaded = 0, other = 0;
    std::set<uint64_t> answered;
    while (answered.size() < kBurst) {
      std::optional<Envelope> got = ReadFrameFrom(fd, &unread);
      ASSERT_TRUE(got.has_value()) << answered.size() << " of " << kBurst << " answered";
      if (!got->has_reply() || got->correlation_id() < 100) continue;
      if (!answered.insert(got->correlation_id()).second) continue;
      const auto& status = got->reply().status();
      if (status.code() == CODE_OK) {
        ++ok;
      } else if (status.code() == CODE_RESOURCE_EXHAUSTED &&
                 absl::StrContains(status.message(), "gateway overloaded")) {
        ++overloaded;
      } else {
        ++other;
      }
    }
    EXPECT_EQ(other, 0);
    EXPECT_GT(ok, 0);
    if (bound == 1) {
      EXPECT_GT(overloaded, 0);
    } else {
      EXPECT_EQ(overloaded, 0);
    }
    close(fd);
    (*d)->Stop();
  }
}

TEST(ParleydOptionsTest, BadSettingsAreClearErrors) {
  auto start = [](std::function<void(ParleydOptions*)> change) {
    ParleydOptions o;
    o.data_dir = std::string(std::getenv("TEST_TMPDIR")) + "/bad";
    change(&o);
    auto d = Parleyd::Start(o, [](const std::string&) {});
    return d.ok() ? absl::OkStatus() : d.status();
  };
  absl::Status s = start([](ParleydOptions* o) { o->roles = "gateway,pager"; });
  EXPECT_TRUE(absl::IsInvalidArgument(s) && absl::StrContains(s.message(), "pager")) << s;
  s = start([](ParleydOptions* o) { o->event_bus = "kafka"; });
  EXPECT_TRUE(absl::IsInvalidArgument(s) && absl::StrContains(s.message(), "event_bus")) << s;
  s = start([](ParleydOptions* o) { o->shards = 0; });
  EXPECT_TRUE(absl::IsInvalidArgument(s) && absl::StrContains(s.message(), "shards")) << s;
  s = start([](ParleydOptions* o) { o->loops = -1; });
  EXPECT_TRUE(absl::IsInvalidArgument(s) && absl::StrContains(s.message(), "--loops")) << s;
  s = start([](ParleydOptions* o) { o->loops = 1000; });
  EXPECT_TRUE(absl::IsInvalidArgument(s) && absl::StrContains(s.message(), "--loops")) << s;
  s = start([](ParleydOptions* o) { o->client_requests_per_s = 0; });
  EXPECT_TRUE(absl::IsInvalidArgument(s) && absl::StrContains(s.message(), "client_requests_per_s")) << s;
}

}  // namespace
}  // namespace parley
