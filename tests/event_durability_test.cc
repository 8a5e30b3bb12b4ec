// The outbox's retention backstop against nats-server losing acked events
// (with Debian's nats-server 2.9.10, which cannot fsync
// before its ack). Real processes on loopback: nats-server on a fixed port,
// parleyd A (registry, kv, user, message, gateway: the producer of profile
// events) and parleyd B (friend, group: their consumers).
//
// A power failure is played by rewinding nats-server's store: stop it
// gracefully, snapshot its jetstream directory, restart it; with B down (so
// nothing is consumed) two profile changes go to JetStream and are acked;
// then kill -9 nats-server, put the old snapshot back (the acked events are
// gone from the stream) and restart it on the same port. B comes back and the
// friend list and the group's member entries must converge to the new
// profiles: with retention they do (A publishes its retained events again on
// the reconnect, or at its own restart), with --event_retention=0 they never
// do, which the last case checks so that the test is known to see the loss.
#include <nats/nats.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/client/client.h"
#include "core/status.h"
#include "fakes/mem_store.h"
#include "gtest/gtest.h"
#include "server/client_driver.h"
#include "server/jetstream_bus.h"
#include "server/nats_server_process.h"
#include "server/tcp_client_host.h"
#include "tests/process_util.h"

namespace parley {
namespace {

namespace fs = std::filesystem;

constexpr char kNats[] = "/usr/sbin/nats-server";

// The stream's last sequence and dedup window, over a connection of its own;
// {-1, 0} if it cannot be read.
struct StreamState {
  int64_t last_seq = -1;
  int64_t duplicates_ns = 0;
};
StreamState ReadStream(const std::string& url) {
  StreamState out;
  natsConnection* conn = nullptr;
  if (natsConnection_ConnectTo(&conn, url.c_str()) != NATS_OK) return out;
  jsCtx* js = nullptr;
  if (natsConnection_JetStream(&js, conn, nullptr) == NATS_OK) {
    jsStreamInfo* info = nullptr;
    jsErrCode err = static_cast<jsErrCode>(0);
    if (js_GetStreamInfo(&info, js, "PARLEY_EVENTS", nullptr, &err) == NATS_OK) {
      out.last_seq = static_cast<int64_t>(info->State.LastSeq);
      out.duplicates_ns = info->Config->Duplicates;
      jsStreamInfo_Destroy(info);
    }
    jsCtx_Destroy(js);
  }
  natsConnection_Destroy(conn);
  return out;
}

void CopyTree(const fs::path& from, const fs::path& to) {
  fs::remove_all(to);
  fs::copy(from, to, fs::copy_options::recursive);
}

struct Case {
  std::string name;
  std::string retention;    // --event_retention
  bool restart_producer;    // A dies with nats-server (the power failure takes both)
  bool expect_converged;
};

class EventDurabilityTest : public ::testing::TestWithParam<Case> {};

TEST_P(EventDurabilityTest, AckedEventsLostByNatsServerStillReachTheConsumers) {
  const Case& c = GetParam();
  const std::string tmp = std::string(std::getenv("TEST_TMPDIR")) + "/" + c.name;
  const std::string nats_dir = tmp + "/nats";
  const int nats_port = FreePort();
  auto start_nats = [&] {
    return NatsServerProcess::Start(nats_dir, absl::Seconds(10), kNats, nats_port, {},
                                    /*sync_always=*/false);
  };
  auto nats = start_nats();
  ASSERT_TRUE(nats.ok()) << nats.status();
  const std::string url = (*nats)->url();
  const int port = FreePort();
  const std::string key = SharedTokenKeyFlag(tmp + "-token.key");
  const std::string retention = "--event_retention=" + c.retention;
  const std::vector<std::string> a_args = {
      "server/parleyd", "--nats=" + url, "--data_dir=" + tmp + "/a",
      absl::StrCat("--listen=127.0.0.1:", port), "--roles=registry,kv,user,message,gateway",
      "--minimal_password_cost", key, retention};
  const std::vector<std::string> b_args = {"server/parleyd", "--nats=" + url,
                                           "--data_dir=" + tmp + "/b", "--roles=friend,group",
                                           "--minimal_password_cost", key, retention};
  pid_t a = Spawn(a_args, tmp + "-a1.log");
  pid_t b = Spawn(b_args, tmp + "-b1.log");
  for (int i = 0; i < 200 && !Listening(port); ++i) absl::SleepFor(absl::Milliseconds(50));
  ASSERT_TRUE(Listening(port));

  auto client = [&](const std::string& name) {
    ClientOptions o;
    o.name = name;
    o.password = "password-" + name;
    o.fixed_gateway = "gw";
    auto h = std::make_unique<TcpClientHost>(
        "client." + name, std::vector<std::string>{absl::StrCat("127.0.0.1:", port)},
        std::make_unique<MemStore>(), 3);
    h->Start([o](Env* e) { return std::make_unique<Client>(e, o); });
    return h;
  };
  auto alice = client("alice");
  auto bob = client("bob");
  auto online = [](Client* cl) { return cl->state() == Client::State::kOnline; };
  ASSERT_TRUE(WaitForClient(*alice, online));
  ASSERT_TRUE(WaitForClient(*bob, online));
  uint64_t alice_id = 0, bob_id = 0;
  alice->RunOnLoop([&](Node* n) { alice_id = dynamic_cast<Client*>(n)->user_id(); });
  bob->RunOnLoop([&](Node* n) { bob_id = dynamic_cast<Client*>(n)->user_id(); });
  auto call = [](TcpClientHost& h, const Request& r) {  // retried while B or nats is away
    Reply reply;
    for (int i = 0; i < 50; ++i) {
      reply = CallClient(h, r);
      if (reply.status().code() == CODE_OK) break;
      absl::SleepFor(absl::Milliseconds(200));
    }
    return reply;
  };
  Request add;
  add.mutable_add_friend()->set_friend_id(bob_id);
  ASSERT_EQ(call(*alice, add).status().code(), CODE_OK);
  Request create;
  create.mutable_create_group()->set_name("pair");
  create.mutable_create_group()->add_member_ids(bob_id);
  const uint64_t group = call(*alice, create).create_group().group().group_id();
  ASSERT_NE(group, 0u);

  // Whether alice's view shows bob as `bob_nick` (friend list and member
  // entry) and alice's own member entry as `alice_nick`.
  auto converged = [&](const std::string& bob_nick, const std::string& alice_nick) {
    Request list;
    list.mutable_list_friends();
    const Reply l = CallClient(*alice, list);
    if (l.list_friends().list().friends_size() != 1 ||
        l.list_friends().list().friends(0).nickname() != bob_nick) {
      return false;
    }
    Request info;
    info.mutable_group_info()->set_group_id(group);
    const Reply g = CallClient(*alice, info);
    int ok = 0;
    for (const Member& m : g.group_info().members()) {
      if (m.user_id() == bob_id && m.nickname() == bob_nick) ++ok;
      if (m.user_id() == alice_id && m.nickname() == alice_nick) ++ok;
    }
    return ok == 2;
  };
  auto wait_converged = [&](const std::string& bob_nick, const std::string& alice_nick,
                            absl::Duration limit) {
    const absl::Time deadline = absl::Now() + limit;
    while (absl::Now() < deadline) {
      if (converged(bob_nick, alice_nick)) return true;
      absl::SleepFor(absl::Milliseconds(200));
    }
    return false;
  };
  // A first profile change that everyone sees: the state at the snapshot.
  Request first;
  first.mutable_update_profile()->set_nickname("Bobby");
  ASSERT_EQ(call(*bob, first).status().code(), CODE_OK);
  first.mutable_update_profile()->set_nickname("Al");
  ASSERT_EQ(call(*alice, first).status().code(), CODE_OK);
  ASSERT_TRUE(wait_converged("Bobby", "Al", absl::Seconds(20)));
  absl::SleepFor(absl::Milliseconds(500));  // the consumers' acks reach nats-server

  // B goes away (nothing consumes what comes next); nats-server is stopped
  // cleanly, its store copied aside, and started again.
  kill(b, SIGINT);
  waitpid(b, nullptr, 0);
  ASSERT_TRUE((*nats)->Stop().ok());
  CopyTree(nats_dir + "/jetstream", tmp + "/snapshot");
  nats = start_nats();
  ASSERT_TRUE(nats.ok()) << nats.status();
  StreamState before;
  for (int i = 0; i < 100 && before.last_seq < 0; ++i) {
    before = ReadStream(url);
    if (before.last_seq < 0) absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_GE(before.last_seq, 0);
  if (c.retention != "0") {
    EXPECT_GE(before.duplicates_ns, absl::ToInt64Nanoseconds(absl::Minutes(3)));
  }

  // Two profile changes: JetStream stores and acks their events.
  Request update;
  update.mutable_update_profile()->set_nickname("Robert");
  ASSERT_EQ(call(*bob, update).status().code(), CODE_OK);
  update.mutable_update_profile()->set_nickname("Alicia");
  ASSERT_EQ(call(*alice, update).status().code(), CODE_OK);
  StreamState after = before;
  for (int i = 0; i < 100 && after.last_seq < before.last_seq + 2; ++i) {
    absl::SleepFor(absl::Milliseconds(100));
    after = ReadStream(url);
  }
  ASSERT_GE(after.last_seq, before.last_seq + 2) << "the profile events never reached JetStream";
  absl::SleepFor(absl::Milliseconds(300));  // the acks reach A's outbox

  // The power failure: nats-server dies without syncing and comes back with
  // its store as it was before the changes.
  kill((*nats)->pid(), SIGKILL);
  (*nats)->Stop().IgnoreError();  // reaps it
  if (c.restart_producer) {
    kill(a, SIGKILL);
    waitpid(a, nullptr, 0);
  }
  CopyTree(tmp + "/snapshot", nats_dir + "/jetstream");
  nats = start_nats();
  ASSERT_TRUE(nats.ok()) << nats.status();
  StreamState rewound;
  for (int i = 0; i < 100 && rewound.last_seq < 0; ++i) {
    rewound = ReadStream(url);
    if (rewound.last_seq < 0) absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_LT(rewound.last_seq, after.last_seq) << "the rewind did not take the acked events";
  if (c.restart_producer) {
    a = Spawn(a_args, tmp + "-a2.log");
    for (int i = 0; i < 200 && !Listening(port); ++i) absl::SleepFor(absl::Milliseconds(50));
    ASSERT_TRUE(Listening(port));
  }
  b = Spawn(b_args, tmp + "-b2.log");

  const absl::Time t0 = absl::Now();
  const bool ok = wait_converged("Robert", "Alicia",
                                 c.expect_converged ? absl::Seconds(30) : absl::Seconds(10));
  std::printf("%s: converged=%d after %.1f s; stream last seq %lld before the changes, %lld "
              "after, %lld rewound, %lld at the end\n",
              c.name.c_str(), ok, absl::ToDoubleSeconds(absl::Now() - t0),
              static_cast<long long>(before.last_seq), static_cast<long long>(after.last_seq),
              static_cast<long long>(rewound.last_seq),
              static_cast<long long>(ReadStream(url).last_seq));
  if (c.expect_converged) {
    EXPECT_TRUE(ok) << "the acked events lost by nats-server never reached the consumers";
  } else {
    EXPECT_FALSE(ok) << "without retention the rewind should have lost the profile events";
  }
  alice->Stop();
  bob->Stop();
  kill(b, SIGINT);
  waitpid(b, nullptr, 0);
  kill(a, SIGINT);
  waitpid(a, nullptr, 0);
}

INSTANTIATE_TEST_SUITE_P(
    Backstop, EventDurabilityTest,
    ::testing::Values(Case{"reconnect", "3m", false, true},
                      Case{"producer_restart", "3m", true, true},
                      Case{"no_retention", "0", false, false}),
    [](const ::testing::TestParamInfo<Case>& info) { return info.param.name; });

// JetStreamBus::Create on a stream made with a shorter dedup window updates it.
TEST(JetStreamStreamTest, AnExistingStreamGetsTheLongerDedupWindow) {
  const std::string tmp = std::string(std::getenv("TEST_TMPDIR")) + "/update";
  auto nats = NatsServerProcess::Start(tmp, absl::Seconds(10), kNats, -1, {}, false);
  ASSERT_TRUE(nats.ok()) << nats.status();
  natsConnection* conn = nullptr;
  ASSERT_EQ(natsConnection_ConnectTo(&conn, (*nats)->url().c_str()), NATS_OK);
  for (absl::Duration window : {absl::Minutes(2), absl::Minutes(4), absl::Minutes(4)}) {
    JetStreamBus::Options o;
    o.duplicates_window = window;
    auto bus = JetStreamBus::Create(conn, o);
    ASSERT_TRUE(bus.ok()) << bus.status();
    bus->reset();
    EXPECT_EQ(ReadStream((*nats)->url()).duplicates_ns, absl::ToInt64Nanoseconds(window));
  }
  natsConnection_Destroy(conn);
}

}  // namespace
}  // namespace parley
