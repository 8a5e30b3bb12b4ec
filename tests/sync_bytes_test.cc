// Sync pages are bounded by bytes as well as by count:
// a sync asking for 1000 messages of 16 KiB used to build a ~16 MB reply,
// which the connection's output limit (8 MiB) answered by closing it. Now a
// page ends once its messages reach kDefaultSyncReplyBytes, with has_more and
// a through_seq the client pages on from — in a shard, in the gateway's merge
// of the shards' parts, and over real TCP against a real parleyd.
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/client/client.h"
#include "core/message/conversation.h"
#include "core/status.h"
#include "fakes/core_cluster.h"
#include "fakes/mem_store.h"
#include "gtest/gtest.h"
#include "server/client_driver.h"
#include "server/parleyd.h"
#include "server/tcp_client_host.h"

namespace parley {
namespace {

constexpr size_t kBody = 16 * 1024;  // MessageOptions.max_body_bytes
// A reply's bytes beyond its messages' budgeted cost (pages, headers).
constexpr size_t kSlack = 8 * 1024;

std::string BigBody(int i) {
  std::string body(kBody, 'a' + i % 26);
  const std::string tag = absl::StrCat("#", i, "#");
  body.replace(0, tag.size(), tag);
  return body;
}

class Recorder : public ClientObserver {
 public:
  void OnDelivered(const std::string& client, const Message& m) override {
    delivered[client].push_back(m);
  }
  std::map<std::string, std::vector<Message>> delivered;
};

class SyncBytesTest : public ::testing::Test {
 protected:
  static CoreClusterOptions Options() {
    CoreClusterOptions o;
    o.gateways = 1;
    o.shards = 2;
    return o;
  }
  SyncBytesTest() : c_(Options()) {}

  std::string AddClient(const std::string& name, ClientOptions o = ClientOptions()) {
    o.observer = &rec_;
    const std::string address = c_.AddClient(name, "d1", o);
    for (int i = 0; i < 200 && c_.client(address)->state() != Client::State::kOnline; ++i) {
      c_.net().Advance(absl::Milliseconds(50));
    }
    EXPECT_EQ(c_.client(address)->state(), Client::State::kOnline) << address;
    return address;
  }
  uint64_t Id(const std::string& address) { return c_.client(address)->user_id(); }
  Reply Do(const std::string& address, const Request& request) {
    std::optional<Reply> result;
    c_.client(address)->Call(request, [&](const Reply& r) { result = r; });
    for (int i = 0; i < 400 && !result.has_value(); ++i) c_.net().Advance(absl::Milliseconds(10));
    return result.value_or(ErrorReply(absl::DeadlineExceededError("no reply")));
  }
  void Befriend(const std::string& a, const std::string& b) {
    Request r;
    r.mutable_add_friend()->set_friend_id(Id(b));
    ASSERT_EQ(Do(a, r).status().code(), CODE_OK);
  }
  void SendAll(const std::vector<std::string>& senders, const std::string& to, int each) {
    for (const std::string& s : senders) {
      for (int m = 0; m < each; ++m) c_.client(s)->SendPrivate(Id(to), BigBody(m));
    }
    for (int i = 0; i < 300; ++i) {
      size_t pending = 0;
      for (const std::string& s : senders) pending += c_.client(s)->pending_sends();
      if (pending == 0) break;
      c_.net().Advance(absl::Seconds(1));
    }
  }

  Recorder rec_;
  CoreCluster c_;
};

TEST_F(SyncBytesTest, ASyncOfLargeMessagesIsPagedByBytesAndPagingReachesEveryMessage) {
  ClientOptions paging;
  paging.sync_page = 1000;
  const std::string carol = AddClient("carol", paging);
  // Four senders: their conversations land on both shards, so the gateway's
  // merge sees two full parts and must trim.
  std::vector<std::string> senders;
  for (int i = 0; i < 4; ++i) senders.push_back(AddClient(absl::StrCat("sender", i)));
  for (const std::string& s : senders) Befriend(s, carol);
  c_.client(carol)->Disconnect();
  c_.net().Advance(absl::Seconds(3));
  const int each = 60;  // 4 x 60 x 16 KiB: ~3.8 MiB, over seven budgets
  SendAll(senders, carol, each);

  c_.client(carol)->Connect();
  for (int i = 0; i < 200 && c_.client(carol)->state() != Client::State::kOnline; ++i) {
    c_.net().Advance(absl::Milliseconds(10));
  }
  // The client pages on its own (has_more): everything arrives once, in order.
  c_.net().Advance(absl::Seconds(10));
  std::map<std::string, std::vector<uint64_t>> seqs;
  for (const Message& m : rec_.delivered[carol]) seqs[m.conversation()].push_back(m.seq());
  ASSERT_EQ(seqs.size(), senders.size());
  for (const auto& [conv, got] : seqs) {
    ASSERT_EQ(got.size(), static_cast<size_t>(each)) << conv;
    for (int i = 0; i < each; ++i) ASSERT_EQ(got[i], static_cast<uint64_t>(i + 1)) << conv;
  }
  // No single sync carried more than the budget allows.
  const size_t per_page = kDefaultSyncReplyBytes / SyncReplyCost(kBody + 64) + 1;
  for (uint32_t n : c_.client(carol)->stats().sync_sizes) EXPECT_LE(n, per_page);
  EXPECT_GE(c_.client(carol)->stats().syncs, 7u);
}

// A device back from offline gets its backlog in as few round trips as the
// byte budget allows: the reference client asks for the server's most per
// sync, so 1000 small messages come in one reply (at 200 a page: five).
TEST_F(SyncBytesTest, AThousandOfflineMessagesArriveInOneSyncRoundTrip) {
  const std::string carol = AddClient("carol");
  const std::string dave = AddClient("dave");
  Befriend(dave, carol);
  c_.client(carol)->Disconnect();
  c_.net().Advance(absl::Seconds(3));
  for (int m = 0; m < 1000; ++m) c_.client(dave)->SendPrivate(Id(carol), absl::StrCat("hello ", m));
  for (int i = 0; i < 600 && c_.client(dave)->pending_sends() > 0; ++i) {
    c_.net().Advance(absl::Milliseconds(100));
  }
  ASSERT_EQ(c_.client(dave)->pending_sends(), 0u);
  const uint64_t syncs_before = c_.client(carol)->stats().syncs;
  rec_.delivered[carol].clear();
  c_.client(carol)->Connect();
  // Well before the first periodic sync (at least 2.5 s after the login).
  for (int i = 0; i < 200 && rec_.delivered[carol].size() < 1000; ++i) {
    c_.net().Advance(absl::Milliseconds(10));
  }
  ASSERT_EQ(rec_.delivered[carol].size(), 1000u);
  for (size_t i = 0; i < 1000; ++i) ASSERT_EQ(rec_.delivered[carol][i].seq(), i + 1);
  EXPECT_EQ(c_.client(carol)->stats().syncs - syncs_before, 1u)
      << "the login's sync should carry the whole backlog";
}

TEST_F(SyncBytesTest, EachReplyStaysWithinTheBudgetAndThroughSeqIsExact) {
  const std::string carol = AddClient("carol");
  std::vector<std::string> senders;
  for (int i = 0; i < 4; ++i) senders.push_back(AddClient(absl::StrCat("sender", i)));
  for (const std::string& s : senders) Befriend(s, carol);
  const int each = 50;
  SendAll(senders, carol, each);
  std::map<std::string, uint64_t> cursors;
  std::map<std::string, std::vector<uint64_t>> seqs;
  int replies = 0;
  for (bool more = true; more; ++replies) {
    ASSERT_LT(replies, 100);
    Request r;
    r.mutable_sync()->set_max_messages(1000);
    for (const auto& [conv, seq] : cursors) {
      Cursor* cur = r.mutable_sync()->add_cursors();
      cur->set_conversation(conv);
      cur->set_seq(seq);
    }
    const Reply reply = Do(carol, r);
    ASSERT_EQ(reply.status().code(), CODE_OK) << reply.status().message();
    EXPECT_LE(reply.ByteSizeLong(), kDefaultSyncReplyBytes + kSlack);
    size_t messages = 0;
    for (const ConversationPage& page : reply.sync().conversations()) {
      messages += page.messages_size();
      uint64_t last = cursors[page.conversation()];
      for (const Message& m : page.messages()) {
        EXPECT_GT(m.seq(), last);
        last = m.seq();
        seqs[page.conversation()].push_back(m.seq());
        EXPECT_EQ(m.body(), BigBody(static_cast<int>(m.seq() - 1)));
      }
      // through_seq: everything before it was considered, nothing skipped.
      EXPECT_GE(page.through_seq(), last);
      EXPECT_EQ(page.has_more(), page.through_seq() < page.max_seq());
      cursors[page.conversation()] = page.through_seq();
    }
    more = reply.sync().has_more();
    if (more) {
      EXPECT_GT(messages, 0u) << "a page with more to come carries at least one message";
    }
  }
  EXPECT_GE(replies, 7);  // 200 x 16 KiB in pages of at most 512 KiB
  ASSERT_EQ(seqs.size(), senders.size());
  for (const auto& [conv, got] : seqs) {
    ASSERT_EQ(got.size(), static_cast<size_t>(each)) << conv;
    for (int i = 0; i < each; ++i) EXPECT_EQ(got[i], static_cast<uint64_t>(i + 1)) << conv;
  }
}

TEST_F(SyncBytesTest, AShardsPartIsBoundedByItsOwnBudget) {
  const std::string carol = AddClient("carol");
  const std::string dave = AddClient("dave");
  Befriend(dave, carol);
  SendAll({dave}, carol, 80);
  const std::string conv = PrivateConversationId(Id(carol), Id(dave));
  Request r;
  r.mutable_shard_sync()->set_user_id(Id(carol));
  r.mutable_shard_sync()->set_max_messages(1000);
  const Reply reply = c_.Call(ShardAddress(ShardOf(conv, 2)), r, Id(carol));
  ASSERT_EQ(reply.status().code(), CODE_OK) << reply.status().message();
  EXPECT_LE(reply.ByteSizeLong(), kDefaultSyncReplyBytes + kSlack);
  ASSERT_EQ(reply.sync().conversations_size(), 1);
  const ConversationPage& page = reply.sync().conversations(0);
  ASSERT_GT(page.messages_size(), 0);
  EXPECT_LT(page.messages_size(), 80);
  EXPECT_TRUE(page.has_more());
  EXPECT_TRUE(reply.sync().has_more());
  EXPECT_EQ(page.through_seq(), page.messages(page.messages_size() - 1).seq());
}

// Over real TCP against a real parleyd (nats-server, LevelDB): the sync that
// used to close the connection is served in pages, and the reference client
// (sync_page 1000) pages through 1000 messages of 16 KiB: one ~16 MB reply
// before, which the 8 MiB output cap answered by closing the connection.
TEST(SyncBytesTcpTest, AHugeSyncOverTcpIsServedInPagesAndTheConnectionStays) {
  ParleydOptions o;
  o.data_dir = std::string(std::getenv("TEST_TMPDIR")) + "/parleyd";
  o.listen = "127.0.0.1:0";
  o.minimal_password_cost = true;
  auto d = Parleyd::Start(o, [](const std::string&) {});
  ASSERT_TRUE(d.ok()) << d.status();
  const std::string address = "127.0.0.1:" + std::to_string((*d)->listen_port());
  auto client = [&](const std::string& name, uint32_t page) {
    ClientOptions co;
    co.name = name;
    co.password = "password-" + name;
    co.fixed_gateway = "gw.1";
    co.sync_page = page;
    auto host = std::make_unique<TcpClientHost>("client." + name, std::vector<std::string>{address},
                                                std::make_unique<MemStore>(), 7);
    host->Start([co](Env* e) { return std::make_unique<Client>(e, co); });
    return host;
  };
  auto online = [](Client* c) { return c->state() == Client::State::kOnline; };
  auto alice = client("alice", 200);
  auto bob = client("bob", 1000);
  ASSERT_TRUE(WaitForClient(*alice, online));
  ASSERT_TRUE(WaitForClient(*bob, online));
  uint64_t bob_id = 0;
  bob->RunOnLoop([&](Node* n) { bob_id = dynamic_cast<Client*>(n)->user_id(); });
  Request add;
  add.mutable_add_friend()->set_friend_id(bob_id);
  ASSERT_EQ(CallClient(*alice, add).status().code(), CODE_OK);
  bob->RunOnLoop([](Node* n) { dynamic_cast<Client*>(n)->Disconnect(); });

  constexpr int kMessages = 1000;
  for (int sent = 0; sent < kMessages;) {
    // In runs, paced under the rate limits (200/s per connection).
    const int run = std::min(100, kMessages - sent);
    alice->RunOnLoop([&, sent, run](Node* n) {
      for (int i = sent; i < sent + run; ++i) dynamic_cast<Client*>(n)->SendPrivate(bob_id, BigBody(i));
    });
    sent += run;
    ASSERT_TRUE(WaitForClient(*alice, [](Client* c) { return c->pending_sends() == 0; },
                              absl::Seconds(60)));
    absl::SleepFor(absl::Milliseconds(600));  // under the rate limits: no send refused
  }

  // A raw sync of everything with max_messages=1000: one bounded page.
  bob->RunOnLoop([](Node* n) { dynamic_cast<Client*>(n)->Connect(); });
  const bool all = WaitForClient(
      *bob, [](Client* c) { return c->delivered().size() == kMessages; }, absl::Seconds(30));
  if (!all) {
    bob->RunOnLoop([](Node* n) {
      Client* c = dynamic_cast<Client*>(n);
      ADD_FAILURE() << "bob did not page through every message: delivered "
                    << c->delivered().size() << ", syncs " << c->stats().syncs << ", reconnects "
                    << c->stats().reconnects << ", state " << static_cast<int>(c->state());
    });
    absl::SleepFor(absl::Milliseconds(200));
    return;
  }
  uint64_t reconnects = 0;
  std::vector<uint64_t> seqs;
  bob->RunOnLoop([&](Node* n) {
    Client* c = dynamic_cast<Client*>(n);
    reconnects = c->stats().reconnects;
    for (const Message& m : c->delivered()) seqs.push_back(m.seq());
  });
  EXPECT_EQ(reconnects, 0u) << "the connection was closed under a sync";
  ASSERT_EQ(seqs.size(), static_cast<size_t>(kMessages));
  for (int i = 0; i < kMessages; ++i) ASSERT_EQ(seqs[i], static_cast<uint64_t>(i + 1));

  Request sync;
  sync.mutable_sync()->set_max_messages(1000);
  const Reply reply = CallClient(*bob, sync, absl::Seconds(20));
  ASSERT_EQ(reply.status().code(), CODE_OK) << reply.status().message();
  EXPECT_TRUE(reply.sync().has_more());
  EXPECT_LE(reply.ByteSizeLong(), kDefaultSyncReplyBytes + kSlack);
  ASSERT_EQ(reply.sync().conversations_size(), 1);
  EXPECT_GT(reply.sync().conversations(0).messages_size(), 0);
  alice.reset();
  bob.reset();
  d->reset();
}

}  // namespace
}  // namespace parley
