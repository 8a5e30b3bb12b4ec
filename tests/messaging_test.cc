// How a message travels from one user to every recipient's devices, online or
// offline, through gateways, message shards, kv presence and clients — without
// loss, duplicates or reordering.
#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/client/client.h"
#include "core/message/conversation.h"
#include "core/message/message_keys.h"
#include "core/services.h"
#include "core/status.h"
#include "fakes/core_cluster.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sim/kernel.h"

namespace parley {
namespace {

// Records what the apps saw.
class Recorder : public ClientObserver {
 public:
  void OnDelivered(const std::string& client, const Message& m) override {
    delivered[client].push_back(m);
  }
  void OnSendAcked(const std::string& client, const std::string& id, const SendReply& ack) override {
    acked[id] = ack;
  }
  void OnSendFailed(const std::string& client, const std::string& id,
                    const absl::Status& status) override {
    failed[id] = status;
  }
  std::map<std::string, std::vector<Message>> delivered;
  std::map<std::string, SendReply> acked;
  std::map<std::string, absl::Status> failed;
};

CoreClusterOptions Messaging(int gateways = 3, uint32_t shards = 2) {
  CoreClusterOptions o;
  o.gateways = gateways;
  o.shards = shards;
  return o;
}

class MessagingTest : public ::testing::Test {
 protected:
  explicit MessagingTest(CoreClusterOptions options = Messaging()) : c_(options) {}

  std::string AddClient(const std::string& name, const std::string& device = "d1",
                        const std::string& gateway = "", ClientOptions o = ClientOptions()) {
    o.observer = &rec_;
    o.preferred_gateway = gateway;
    const std::string address = c_.AddClient(name, device, o);
    WaitOnline(address);
    return address;
  }
  void WaitOnline(const std::string& address) {
    for (int i = 0; i < 200 && c_.client(address)->state() != Client::State::kOnline; ++i) {
      c_.net().Advance(absl::Milliseconds(50));
    }
    ASSERT_EQ(c_.client(address)->state(), Client::State::kOnline) << address;
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
  uint64_t CreateGroup(const std::string& owner, const std::vector<std::string>& members,
                       bool open = false) {
    Request r;
    r.mutable_create_group()->set_name("g");
    r.mutable_create_group()->set_open(open);
    for (const std::string& m : members) r.mutable_create_group()->add_member_ids(Id(m));
    Reply reply = Do(owner, r);
    EXPECT_EQ(reply.status().code(), CODE_OK) << reply.status().message();
    return reply.create_group().group().group_id();
  }
  // The seqs `client` delivered for `conversation`, in delivery order.
  std::vector<uint64_t> Seqs(const std::string& client, const std::string& conversation) {
    std::vector<uint64_t> out;
    for (const Message& m : rec_.delivered[client]) {
      if (m.conversation() == conversation) out.push_back(m.seq());
    }
    return out;
  }
  std::vector<std::string> Bodies(const std::string& client, const std::string& conversation) {
    std::vector<std::string> out;
    for (const Message& m : rec_.delivered[client]) {
      if (m.conversation() == conversation) out.push_back(m.body());
    }
    return out;
  }
  uint64_t MaxSeqStored(const std::string& conversation) {
    const uint32_t shard = ShardOf(conversation, 2);
    KeyValue last;
    if (!c_.net().store(ShardAddress(shard)).Last(message_keys::MessagePrefix(conversation), &last).ok()) {
      return 0;
    }
    return LastIdOf(last.first);
  }
  uint64_t TotalPushes() {
    uint64_t n = 0;
    for (uint32_t k = 0; k < 2; ++k) n += c_.shard(k)->stats().pushes;
    return n;
  }
  void Settle() { c_.net().Advance(absl::Seconds(3)); }
  MemStore& ShardStore(const std::string& conversation) {
    return c_.net().store(ShardAddress(ShardOf(conversation, 2)));
  }
  // The store keys of the shard of `conversation` whose value holds `text`.
  std::vector<std::string> KeysHolding(const std::string& conversation, const std::string& text) {
    std::vector<std::string> out;
    for (const auto& [key, value] : ShardStore(conversation).data()) {
      if (value.find(text) != std::string::npos) out.push_back(key);
    }
    return out;
  }
  Reply RecallOf(const std::string& client, const std::string& conversation, uint64_t seq,
                 const std::string& id) {
    Request recall;
    recall.mutable_recall()->set_conversation(conversation);
    recall.mutable_recall()->set_seq(seq);
    recall.mutable_recall()->set_client_msg_id(id);
    return Do(client, recall);
  }
  Reply Cursor(const std::string& client, const std::string& conversation, uint64_t seq,
               bool read) {
    Request r;
    if (read) {
      r.mutable_read()->set_conversation(conversation);
      r.mutable_read()->set_seq(seq);
      r.mutable_read()->set_device_id("d1");
    } else {
      r.mutable_ack()->set_conversation(conversation);
      r.mutable_ack()->set_seq(seq);
      r.mutable_ack()->set_device_id("d1");
    }
    return Do(client, r);
  }
  // The user's membership history, as the group service tells it.
  GroupMembership MembershipOf(uint64_t user, uint64_t group) {
    Request r;
    r.mutable_membership_history()->set_user_id(user);
    GroupMembership out;
    out.set_group_id(group);
    const Reply reply = c_.Call(CoreCluster::Address(kGroupService), r);
    for (const GroupMembership& g : reply.membership_history().groups()) {
      if (g.group_id() == group) out = g;
    }
    return out;
  }

  Recorder rec_;
  CoreCluster c_;
};

std::vector<uint64_t> Range(uint64_t from, uint64_t to) {
  std::vector<uint64_t> out;
  for (uint64_t i = from; i <= to; ++i) out.push_back(i);
  return out;
}

TEST_F(MessagingTest, OfflineUserComesBackAndGetsEverythingOnceInOrder) {
  const std::string alice = AddClient("alice");
  const std::string bob = AddClient("bob");
  Befriend(alice, bob);
  const std::string conv = PrivateConversationId(Id(alice), Id(bob));

  c_.client(alice)->SendPrivate(Id(bob), "hi");
  Settle();
  EXPECT_THAT(Bodies(bob, conv), ::testing::ElementsAre("hi"));  // online: pushed

  c_.client(bob)->Disconnect();
  for (int i = 1; i <= 5; ++i) c_.client(alice)->SendPrivate(Id(bob), absl::StrCat("m", i));
  Settle();
  EXPECT_EQ(Seqs(bob, conv).size(), 1u);  // nothing reaches an offline user

  c_.client(bob)->Connect();
  Settle();
  EXPECT_THAT(Seqs(bob, conv), ::testing::ElementsAreArray(Range(1, 6)));
  EXPECT_THAT(Bodies(bob, conv), ::testing::ElementsAre("hi", "m1", "m2", "m3", "m4", "m5"));
  EXPECT_THAT(Seqs(alice, conv), ::testing::ElementsAreArray(Range(1, 6)));  // its own, in order
  EXPECT_EQ(rec_.acked.size(), 6u);
}

TEST_F(MessagingTest, GroupMessageIsPushedOncePerGatewayAndSyncedByOfflineMembers) {
  const std::string owner = AddClient("owner", "d1", "gw.1");
  std::vector<std::string> online, offline;
  for (int i = 0; i < 6; ++i) {
    online.push_back(AddClient(absl::StrCat("online", i), "d1", absl::StrCat("gw.", i % 3 + 1)));
  }
  for (int i = 0; i < 2; ++i) offline.push_back(AddClient(absl::StrCat("offline", i)));
  std::vector<std::string> members = online;
  members.insert(members.end(), offline.begin(), offline.end());
  for (const std::string& m : members) Befriend(owner, m);
  const uint64_t group = CreateGroup(owner, members);
  for (const std::string& m : offline) c_.client(m)->Disconnect();
  Settle();

  const uint64_t pushes_before = TotalPushes();
  std::vector<uint64_t> gateway_pushes_before;
  for (int g = 0; g < 3; ++g) gateway_pushes_before.push_back(c_.gateway(g)->stats().pushes_received);
  c_.client(owner)->SendGroup(group, "hello group");
  Settle();

  // One push per gateway with online recipients: all three here.
  EXPECT_EQ(TotalPushes() - pushes_before, 3u);
  for (int g = 0; g < 3; ++g) {
    EXPECT_EQ(c_.gateway(g)->stats().pushes_received - gateway_pushes_before[g], 1u) << g;
  }
  const std::string conv = GroupConversationId(group);
  for (const std::string& m : online) EXPECT_THAT(Bodies(m, conv), ::testing::ElementsAre("hello group")) << m;
  for (const std::string& m : offline) EXPECT_TRUE(Seqs(m, conv).empty()) << m;

  for (const std::string& m : offline) c_.client(m)->Connect();
  Settle();
  for (const std::string& m : offline) {
    EXPECT_THAT(Bodies(m, conv), ::testing::ElementsAre("hello group")) << m;
  }
}

TEST_F(MessagingTest, RetriedSendWithTheSameIdCreatesOneMessage) {
  const std::string alice = AddClient("alice");
  const std::string bob = AddClient("bob");
  Befriend(alice, bob);
  const std::string conv = PrivateConversationId(Id(alice), Id(bob));
  const std::string shard = ShardAddress(ShardOf(conv, 2));

  // Before any ack: two copies of one send race to the shard.
  Request send;
  send.mutable_send_private()->set_to_user_id(Id(bob));
  send.mutable_send_private()->set_client_msg_id("web-1");
  send.mutable_send_private()->set_body("once");
  const uint64_t first = c_.net().Send(shard, send, Id(alice));
  const uint64_t second = c_.net().Send(shard, send, Id(alice));
  Settle();
  std::optional<Reply> a = c_.net().TakeReply(first), b = c_.net().TakeReply(second);
  ASSERT_TRUE(a.has_value() && b.has_value());
  EXPECT_EQ(a->send().seq(), 1u);
  EXPECT_EQ(b->send().seq(), 1u);

  // After the ack was lost: the client's acks never arrive, so it retries.
  c_.net().HoldNext([&](const std::string& to, const Envelope& e) {
    return to == alice && e.has_reply() && e.reply().has_send();
  });
  c_.net().HoldNext([&](const std::string& to, const Envelope& e) {
    return to == alice && e.has_reply() && e.reply().has_send();
  });
  const std::string id = c_.client(alice)->SendPrivate(Id(bob), "twice?");
  Settle();
  Settle();
  EXPECT_EQ(c_.net().held(), 2u);  // both acks of the first call were lost
  EXPECT_GE(c_.client(alice)->stats().send_retries, 1u);
  ASSERT_EQ(rec_.acked.count(id), 1u);
  EXPECT_EQ(rec_.acked[id].seq(), 2u);
  EXPECT_EQ(MaxSeqStored(conv), 2u);
  EXPECT_THAT(Bodies(bob, conv), ::testing::ElementsAre("once", "twice?"));
}

TEST_F(MessagingTest, PipelinedSendsGoOnTheWireTogetherAndEachIsDeliveredOnce) {
  ClientOptions pipelined;
  pipelined.max_sends_in_flight = 4;
  const std::string alice = AddClient("alice", "d1", "", pipelined);
  const std::string bob = AddClient("bob");
  Befriend(alice, bob);
  const std::string conv = PrivateConversationId(Id(alice), Id(bob));
  // Counted as they leave alice and as their replies reach her: the sends on
  // the wire at once.
  struct OnWire : sim::NetworkObserver {
    std::string client;
    size_t now = 0, most = 0;
    void OnLost(const std::string&, const std::string&, const Envelope&, bool) override {}
    void OnSent(const std::string& from, const std::string&, const Envelope& e, absl::Duration,
                bool duplicate) override {
      if (from == client && !duplicate && e.has_request() && e.request().has_send_private()) {
        most = std::max(most, ++now);
      }
    }
    void OnArrival(const std::string& to, const Envelope& e, bool) override {
      if (to == client && e.has_reply() && e.reply().has_send() && now > 0) --now;
    }
  } wire;
  wire.client = alice;
  c_.net().kernel().set_network_observer(&wire);
  for (int i = 0; i < 6; ++i) c_.client(alice)->SendPrivate(Id(bob), absl::StrCat("m", i));
  Settle();
  c_.net().kernel().set_network_observer(nullptr);
  const size_t most_on_wire = wire.most;
  EXPECT_EQ(most_on_wire, 4u);  // the window, not one at a time, not all six
  EXPECT_EQ(MaxSeqStored(conv), 6u);
  EXPECT_EQ(Seqs(bob, conv), Range(1, 6));
  EXPECT_EQ(Seqs(alice, conv), Range(1, 6));
  EXPECT_EQ(c_.client(alice)->pending_sends(), 0u);
}

TEST_F(MessagingTest, ASyncReadingMembershipBeforeALeaveShowsNothingSentAfterIt) {
  const std::string alice = AddClient("alice");
  const std::string bob = AddClient("bob");
  Befriend(alice, bob);
  const uint64_t group = CreateGroup(alice, {bob});
  const std::string conv = GroupConversationId(group);
  c_.client(alice)->SendGroup(group, "before");
  Settle();
  // What the gateway read of bob's membership before he left: open.
  const GroupMembership before = MembershipOf(Id(bob), group);
  ASSERT_EQ(before.intervals_size(), 1);
  ASSERT_EQ(before.intervals(0).leave_version(), 0u);
  ASSERT_GT(before.as_of_version(), 0u);
  Request leave;
  leave.mutable_leave_group()->set_group_id(group);
  ASSERT_EQ(Do(bob, leave).status().code(), CODE_OK);
  c_.client(alice)->SendGroup(group, "after");
  Settle();
  ASSERT_EQ(MaxSeqStored(conv), 2u);
  // The shard reads the messages after the leave, with the old membership.
  Request sync;
  sync.mutable_shard_sync()->set_user_id(Id(bob));
  *sync.mutable_shard_sync()->add_groups() = before;
  const Reply reply = c_.Call(ShardAddress(ShardOf(conv, 2)), sync);
  ASSERT_EQ(reply.status().code(), CODE_OK) << reply.status().message();
  std::vector<std::string> bodies;
  uint64_t through = 0;
  for (const ConversationPage& page : reply.sync().conversations()) {
    if (page.conversation() != conv) continue;
    for (const Message& m : page.messages()) bodies.push_back(m.body());
    through = page.through_seq();
    EXPECT_TRUE(page.has_more());  // the next sync, with a fresh read, decides
  }
  EXPECT_THAT(bodies, ::testing::ElementsAre("before"));
  EXPECT_EQ(through, 1u);  // the cursor does not pass the message held back
}

// The shards keep each conversation's max seq in memory (MessageOptions::
// max_seq_cache): with no cache, a cache of one (every other send evicts) and
// the default, seqs stay gapless across sends, evictions and restarts.
class SeqCacheTest : public MessagingTest, public ::testing::WithParamInterface<size_t> {
 protected:
  static CoreClusterOptions WithSeqCache(size_t entries) {
    CoreClusterOptions o = Messaging();
    o.message.max_seq_cache = entries;
    return o;
  }
  SeqCacheTest() : MessagingTest(WithSeqCache(GetParam())) {}
};

TEST_P(SeqCacheTest, SeqsStayGaplessAcrossEvictionsAndRestarts) {
  const std::string alice = AddClient("alice");
  std::vector<std::string> peers;
  for (const char* name : {"bob", "carol", "dave", "erin"}) {
    peers.push_back(AddClient(name));
    Befriend(alice, peers.back());
  }
  auto conv = [&](const std::string& peer) { return PrivateConversationId(Id(alice), Id(peer)); };
  for (int round = 0; round < 3; ++round) {
    for (const std::string& peer : peers) {
      c_.client(alice)->SendPrivate(Id(peer), absl::StrCat("m", round));
      Settle();
    }
  }
  // A reply to the peer: the same conversation from its other side.
  c_.client(peers[0])->SendPrivate(Id(alice), "reply");
  Settle();
  for (uint32_t k = 0; k < 2; ++k) {
    c_.net().Crash(ShardAddress(k));
    c_.net().Restart(ShardAddress(k));
  }
  Settle();
  for (const std::string& peer : peers) {
    c_.client(alice)->SendPrivate(Id(peer), "after restart");
    Settle();
  }
  for (size_t i = 0; i < peers.size(); ++i) {
    const std::vector<uint64_t> want =
        i == 0 ? std::vector<uint64_t>{1, 2, 3, 4, 5} : std::vector<uint64_t>{1, 2, 3, 4};
    EXPECT_EQ(Seqs(peers[i], conv(peers[i])), want) << peers[i];
    EXPECT_EQ(MaxSeqStored(conv(peers[i])), want.back()) << peers[i];
  }
}

INSTANTIATE_TEST_SUITE_P(CacheSizes, SeqCacheTest, ::testing::Values(0, 1, 16384),
                         [](const ::testing::TestParamInfo<size_t>& info) {
                           return absl::StrCat("entries_", info.param);
                         });

TEST_F(MessagingTest, ShardCrashAfterCommitBeforeDispatchReplaysWithoutDuplicates) {
  const std::string alice = AddClient("alice");
  const std::string bob = AddClient("bob");
  Befriend(alice, bob);
  const std::string conv = PrivateConversationId(Id(alice), Id(bob));
  const std::string shard = ShardAddress(ShardOf(conv, 2));

  // The dispatcher's presence lookup never arrives: the shard dies first.
  c_.net().HoldNext([&](const std::string& to, const Envelope& e) {
    return to == kKvAddress && e.has_request() && e.request().kv_get().prefixes_size() > 0;
  });
  c_.client(alice)->SendPrivate(Id(bob), "survives");
  c_.net().Advance(absl::Milliseconds(100));
  ASSERT_EQ(c_.net().held(), 1u);
  EXPECT_TRUE(Seqs(bob, conv).empty());
  // The pending dispatch names the message: the body is stored once.
  EXPECT_THAT(KeysHolding(conv, "survives"),
              ::testing::ElementsAre(message_keys::Message(conv, 1)));
  EXPECT_EQ(ShardStore(conv).data().count(message_keys::Dispatch(conv, 1)), 1u);
  c_.net().Crash(shard);
  c_.net().Restart(shard);
  Settle();

  EXPECT_EQ(c_.shard(ShardOf(conv, 2))->stats().dispatch_replayed, 1u);
  EXPECT_THAT(Bodies(bob, conv), ::testing::ElementsAre("survives"));
  // A later sync finds nothing new to deliver.
  c_.client(bob)->Disconnect();
  c_.client(bob)->Connect();
  Settle();
  EXPECT_THAT(Seqs(bob, conv), ::testing::ElementsAre(1u));
  EXPECT_THAT(Seqs(alice, conv), ::testing::ElementsAre(1u));
}

TEST_F(MessagingTest, AGapTriggersASyncAndTheStreamStaysGapless) {
  const std::string alice = AddClient("alice");
  const std::string bob = AddClient("bob");
  Befriend(alice, bob);
  const std::string conv = PrivateConversationId(Id(alice), Id(bob));
  // The push of seq 2 to bob is lost.
  c_.net().HoldNext([&](const std::string& to, const Envelope& e) {
    return to == bob && e.has_client_push() && e.client_push().message().seq() == 2;
  });
  for (int i = 1; i <= 3; ++i) c_.client(alice)->SendPrivate(Id(bob), absl::StrCat("m", i));
  Settle();
  EXPECT_EQ(c_.net().held(), 1u);
  EXPECT_GE(c_.client(bob)->stats().gap_syncs, 1u);
  EXPECT_THAT(Seqs(bob, conv), ::testing::ElementsAre(1u, 2u, 3u));
  EXPECT_THAT(Bodies(bob, conv), ::testing::ElementsAre("m1", "m2", "m3"));
  // The lost push arriving late is a duplicate the client drops.
  c_.net().ReleaseHeld();
  Settle();
  EXPECT_THAT(Seqs(bob, conv), ::testing::ElementsAre(1u, 2u, 3u));
  EXPECT_GE(c_.client(bob)->stats().duplicates_dropped, 1u);
}

TEST_F(MessagingTest, AnOvertakenPushWaitsForTheGapToFillWithoutASync) {
  const std::string alice = AddClient("alice");
  const std::string bob = AddClient("bob");
  Befriend(alice, bob);
  Settle();
  const std::string conv = PrivateConversationId(Id(alice), Id(bob));
  // The push of seq 2 to bob is late: seq 3 arrives first and waits.
  c_.net().HoldNext([&](const std::string& to, const Envelope& e) {
    return to == bob && e.has_client_push() && e.client_push().message().seq() == 2;
  });
  for (int i = 1; i <= 3; ++i) c_.client(alice)->SendPrivate(Id(bob), absl::StrCat("m", i));
  c_.net().Advance(absl::Milliseconds(100));
  ASSERT_EQ(c_.net().held(), 1u);
  EXPECT_THAT(Seqs(bob, conv), ::testing::ElementsAre(1u));  // 3 is not delivered out of order
  EXPECT_GE(c_.client(bob)->stats().early_arrivals, 1u);
  c_.net().ReleaseHeld();
  c_.net().Advance(absl::Milliseconds(50));  // well within the gap wait
  EXPECT_THAT(Seqs(bob, conv), ::testing::ElementsAre(1u, 2u, 3u));
  EXPECT_THAT(Bodies(bob, conv), ::testing::ElementsAre("m1", "m2", "m3"));
  EXPECT_EQ(c_.client(bob)->stats().gap_syncs, 0u);
}

// A client's own message (built from its send's ack) often overtakes the
// push of an earlier one: the push waits for a presence lookup, the ack does
// not. It waits for that push however long it takes, without a gap sync (under
// group load every such race used to cost one); if the push is lost, the
// periodic sync delivers both.
TEST_F(MessagingTest, AnOwnMessageAheadOfAPushWaitsWithoutAGapSync) {
  const std::string alice = AddClient("alice");
  const std::string bob = AddClient("bob");
  Befriend(alice, bob);
  Settle();
  const std::string conv = PrivateConversationId(Id(alice), Id(bob));
  for (bool lost : {false, true}) {
    const uint64_t base = Seqs(bob, conv).size();
    c_.net().HoldNext([&](const std::string& to, const Envelope& e) {
      return to == bob && e.has_client_push() && e.client_push().message().seq() == base + 1;
    });
    c_.client(alice)->SendPrivate(Id(bob), "from alice");
    c_.net().Advance(absl::Milliseconds(20));
    ASSERT_EQ(c_.net().held(), 1u);
    c_.client(bob)->SendPrivate(Id(alice), "from bob");
    c_.net().Advance(absl::Seconds(1));  // far past the gap wait
    EXPECT_EQ(Seqs(bob, conv).size(), base) << "bob's own message waits for alice's";
    EXPECT_EQ(c_.client(bob)->stats().gap_syncs, 0u);
    if (!lost) {
      c_.net().ReleaseHeld();
      c_.net().Advance(absl::Milliseconds(20));
    } else {
      c_.net().Advance(absl::Seconds(10));  // the periodic sync
    }
    EXPECT_EQ(Seqs(bob, conv).size(), base + 2) << (lost ? "lost" : "late");
  }
}

// The ack-push race at its source: alice's message is committed but its
// dispatch is still waiting for the presence lookup when bob's send commits
// after it. Bob's reply carries alice's message (SendReply.unseen), so bob
// delivers both at once: no early arrival, no gap sync; the push that comes
// later is a duplicate he drops.
TEST_F(MessagingTest, ASendsReplyCarriesThePeersMessagesStillBeingDispatched) {
  const std::string alice = AddClient("alice");
  const std::string bob = AddClient("bob");
  Befriend(alice, bob);
  Settle();
  const std::string conv = PrivateConversationId(Id(alice), Id(bob));
  const uint32_t shard = ShardOf(conv, 2);
  // The presence lookup of alice's dispatch is held (its retry comes 500 ms later).
  c_.net().HoldNext([&](const std::string& to, const Envelope& e) {
    return to == kKvAddress && e.has_request() && e.request().kv_get().prefixes_size() > 0 &&
           e.from() == ShardAddress(shard);
  });
  c_.client(alice)->SendPrivate(Id(bob), "from alice");
  c_.net().Advance(absl::Milliseconds(20));
  ASSERT_EQ(c_.net().held(), 1u);
  ASSERT_EQ(MaxSeqStored(conv), 1u);
  const uint64_t early_before = c_.client(bob)->stats().early_arrivals;
  const std::string id = c_.client(bob)->SendPrivate(Id(alice), "from bob");
  c_.net().Advance(absl::Milliseconds(30));  // bob's send, well before the lookup's retry
  ASSERT_EQ(rec_.acked.count(id), 1u);
  EXPECT_EQ(rec_.acked[id].seq(), 2u);
  EXPECT_THAT(Seqs(bob, conv), ::testing::ElementsAre(1u, 2u));
  EXPECT_THAT(Bodies(bob, conv), ::testing::ElementsAre("from alice", "from bob"));
  EXPECT_EQ(c_.client(bob)->stats().early_arrivals, early_before);
  EXPECT_EQ(c_.client(bob)->stats().gap_syncs, 0u);
  ASSERT_EQ(rec_.acked[id].unseen_size(), 1);
  EXPECT_EQ(rec_.acked[id].unseen(0).seq(), 1u);
  EXPECT_GE(c_.shard(shard)->stats().unseen_in_replies, 1u);
  // Alice's own copy came from her reply; the late push to bob is dropped.
  c_.net().ReleaseHeld();
  Settle();
  EXPECT_THAT(Seqs(bob, conv), ::testing::ElementsAre(1u, 2u));
  EXPECT_THAT(Seqs(alice, conv), ::testing::ElementsAre(1u, 2u));
  EXPECT_EQ(c_.client(bob)->stats().gap_syncs, 0u);
  EXPECT_EQ(c_.client(alice)->stats().gap_syncs, 0u);
}

// A conversation's pushes leave the shard in seq order: when the presence
// lookup of seq 1 is slow (here lost, retried after 500 ms), seq 2's pushes
// wait for it instead of overtaking it, so bob never holds a message ahead of
// a gap (and never gap-syncs).
TEST_F(MessagingTest, PushesOfAConversationLeaveInSeqOrder) {
  const std::string alice = AddClient("alice");
  const std::string bob = AddClient("bob");
  Befriend(alice, bob);
  Settle();
  const std::string conv = PrivateConversationId(Id(alice), Id(bob));
  const uint32_t shard = ShardOf(conv, 2);
  c_.net().HoldNext([&](const std::string& to, const Envelope& e) {
    return to == kKvAddress && e.has_request() && e.request().kv_get().prefixes_size() > 0 &&
           e.from() == ShardAddress(shard);
  });
  const uint64_t early_before = c_.client(bob)->stats().early_arrivals;
  c_.client(alice)->SendPrivate(Id(bob), "m1");
  c_.client(alice)->SendPrivate(Id(bob), "m2");
  c_.net().Advance(absl::Milliseconds(300));  // past bob's gap wait, before the retry
  ASSERT_EQ(c_.net().held(), 1u);
  EXPECT_THAT(Seqs(bob, conv), ::testing::IsEmpty());
  EXPECT_EQ(c_.client(bob)->stats().early_arrivals, early_before) << "seq 2 overtook seq 1";
  EXPECT_GE(c_.shard(shard)->stats().dispatch_parked, 1u);
  c_.net().Advance(absl::Milliseconds(500));  // the lookup's retry
  EXPECT_THAT(Bodies(bob, conv), ::testing::ElementsAre("m1", "m2"));
  EXPECT_EQ(c_.client(bob)->stats().early_arrivals, early_before);
  EXPECT_EQ(c_.client(bob)->stats().gap_syncs, 0u);
}

// A gap that stays open past the gap wait is filled by asking for just the
// gap: the messages after it are already here (waiting), and conversations
// without a gap are left to the periodic sync.
TEST_F(MessagingTest, AGapSyncAsksForJustTheGap) {
  const std::string alice = AddClient("alice");
  const std::string bob = AddClient("bob");
  const std::string carol = AddClient("carol");
  Befriend(alice, bob);
  Befriend(carol, bob);
  Settle();
  const std::string conv = PrivateConversationId(Id(alice), Id(bob));
  c_.net().HoldNext([&](const std::string& to, const Envelope& e) {
    return to == bob && e.has_client_push() && e.client_push().message().seq() == 2 &&
           e.client_push().message().conversation() == conv;
  });
  c_.net().HoldNext([&](const std::string& to, const Envelope& e) {
    return to == bob && e.has_client_push() && e.client_push().message().sender_id() == Id(carol);
  });
  const size_t syncs_before = c_.client(bob)->stats().sync_sizes.size();
  c_.client(carol)->SendPrivate(Id(bob), "no gap here");
  for (int i = 1; i <= 5; ++i) c_.client(alice)->SendPrivate(Id(bob), absl::StrCat("m", i));
  c_.net().Advance(absl::Milliseconds(600));  // past the gap wait, before a periodic sync
  ASSERT_EQ(c_.net().held(), 2u);
  EXPECT_EQ(c_.client(bob)->stats().gap_syncs, 1u);
  EXPECT_THAT(Seqs(bob, conv), ::testing::ElementsAre(1u, 2u, 3u, 4u, 5u));
  const std::vector<uint32_t>& sizes = c_.client(bob)->stats().sync_sizes;
  ASSERT_EQ(sizes.size(), syncs_before + 1);
  EXPECT_EQ(sizes.back(), 1u) << "the gap sync carries seq 2 only";
  EXPECT_THAT(Seqs(bob, PrivateConversationId(Id(carol), Id(bob))), ::testing::IsEmpty());
  c_.net().Advance(absl::Seconds(10));  // the periodic sync brings carol's
  EXPECT_THAT(Seqs(bob, PrivateConversationId(Id(carol), Id(bob))), ::testing::ElementsAre(1u));
}

TEST_F(MessagingTest, BadSendsAreRejectedAndNothingIsStored) {
  const std::string alice = AddClient("alice");
  const std::string bob = AddClient("bob");
  const std::string carol = AddClient("carol");
  Befriend(alice, bob);
  Befriend(alice, carol);
  const uint64_t group = CreateGroup(alice, {bob});
  const std::string pconv = PrivateConversationId(Id(alice), Id(bob));
  const std::string gconv = GroupConversationId(group);

  // A non-member's group send.
  const std::string nonmember = c_.client(carol)->SendGroup(group, "let me in");
  // A blocked sender.
  Request block;
  block.mutable_block()->set_target_id(Id(alice));
  block.mutable_block()->set_blocked(true);
  ASSERT_EQ(Do(bob, block).status().code(), CODE_OK);
  const std::string blocked = c_.client(alice)->SendPrivate(Id(bob), "hello?");
  // An oversized body.
  const std::string oversized = c_.client(carol)->SendPrivate(Id(alice), std::string(16 * 1024 + 1, 'x'));
  // Not friends.
  const std::string stranger = c_.client(carol)->SendPrivate(Id(bob), "hi stranger");
  Settle();

  EXPECT_EQ(rec_.failed[nonmember].code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(rec_.failed[blocked].code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(rec_.failed[oversized].code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(rec_.failed[stranger].code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(rec_.acked.empty());
  EXPECT_EQ(MaxSeqStored(pconv), 0u);
  EXPECT_EQ(MaxSeqStored(gconv), 0u);
  EXPECT_EQ(MaxSeqStored(PrivateConversationId(Id(alice), Id(carol))), 0u);
  EXPECT_EQ(c_.client(carol)->pending_sends(), 0u);
}

TEST_F(MessagingTest, AForgedSenderIdThroughTheGatewayIsIgnored) {
  const std::string alice = AddClient("alice");
  const std::string bob = AddClient("bob");
  Befriend(alice, bob);
  const uint64_t alice_id = Id(alice), bob_id = Id(bob);
  // A raw session at gw.1 for alice, then a send that claims to be bob.
  Request login;
  login.mutable_login()->set_name("alice");
  login.mutable_login()->set_password("password-alice");
  const std::string token = c_.Call(CoreCluster::Address(kUserService), login).login().token();
  Request open;
  open.mutable_gateway_login()->set_token(token);
  open.mutable_gateway_login()->set_device_id("raw");
  open.mutable_gateway_login()->set_epoch(1);
  ASSERT_EQ(c_.Call("gw.1", open).status().code(), CODE_OK);
  Request send;
  send.mutable_send_private()->set_to_user_id(alice_id);  // "bob" writing to alice
  send.mutable_send_private()->set_client_msg_id("forged-1");
  send.mutable_send_private()->set_body("I am bob");
  Reply reply = c_.Call("gw.1", send, /*auth_user_id=*/bob_id);
  // The gateway used the session's user: alice writing to herself is invalid.
  EXPECT_EQ(reply.status().code(), CODE_INVALID_ARGUMENT) << reply.status().message();
  EXPECT_EQ(MaxSeqStored(PrivateConversationId(alice_id, bob_id)), 0u);

  // Internal operations are not for clients, even logged in.
  Request internal;
  internal.mutable_check_friends()->set_owner_id(bob_id);
  EXPECT_EQ(c_.Call("gw.1", internal).status().code(), CODE_PERMISSION_DENIED);
  // No session, no service.
  Request list;
  list.mutable_list_friends();
  EXPECT_EQ(c_.Call("gw.2", list).status().code(), CODE_UNAUTHENTICATED);
  // A forged token.
  open.mutable_gateway_login()->set_token(token + "x");
  EXPECT_EQ(c_.Call("gw.2", open).status().code(), CODE_UNAUTHENTICATED);
}

// The sending device delivers its message from the ack; pushing it the same
// message would only be dropped as a duplicate. Its other devices are pushed.
TEST_F(MessagingTest, TheSendingDeviceIsNotPushedItsOwnMessage) {
  const std::string alice1 = AddClient("alice", "phone", "gw.1");
  const std::string alice2 = AddClient("alice", "laptop", "gw.1");
  const std::string bob = AddClient("bob");
  Befriend(alice1, bob);
  Settle();
  std::map<std::string, int> pushed;
  c_.net().HoldNext([&](const std::string& to, const Envelope& e) {
    if (e.has_client_push()) ++pushed[to];
    return false;  // only counting
  });
  const uint64_t group = CreateGroup(alice1, {bob});
  Settle();
  c_.client(alice1)->SendPrivate(Id(bob), "private");
  c_.client(alice1)->SendGroup(group, "group");
  Settle();
  EXPECT_EQ(pushed[alice1], 0);
  EXPECT_EQ(pushed[alice2], 2);
  EXPECT_EQ(pushed[bob], 2);
  for (const std::string& c : {alice1, alice2, bob}) {
    EXPECT_THAT(Bodies(c, PrivateConversationId(Id(alice1), Id(bob))),
                ::testing::ElementsAre("private")) << c;
    EXPECT_THAT(Bodies(c, GroupConversationId(group)), ::testing::ElementsAre("group")) << c;
    EXPECT_EQ(c_.client(c)->stats().duplicates_dropped, 0u) << c;
  }
}

TEST_F(MessagingTest, TwoDevicesBothReceiveAndReadOnOneLowersUnreadForTheUser) {
  const std::string alice = AddClient("alice");
  const std::string bob1 = AddClient("bob", "phone", "gw.1");
  const std::string bob2 = AddClient("bob", "laptop", "gw.2");
  ASSERT_EQ(Id(bob1), Id(bob2));
  Befriend(alice, bob1);
  const std::string conv = PrivateConversationId(Id(alice), Id(bob1));
  for (int i = 1; i <= 3; ++i) c_.client(alice)->SendPrivate(Id(bob1), absl::StrCat("m", i));
  Settle();
  EXPECT_THAT(Seqs(bob1, conv), ::testing::ElementsAre(1u, 2u, 3u));
  EXPECT_THAT(Seqs(bob2, conv), ::testing::ElementsAre(1u, 2u, 3u));
  // Each device acked for itself.
  const std::string shard = ShardAddress(ShardOf(conv, 2));
  std::string value;
  for (const char* device : {"phone", "laptop"}) {
    ASSERT_TRUE(c_.net().store(shard).Get(message_keys::Cursor(conv, Id(bob1), device), &value).ok())
        << device;
    CursorRecord cursor;
    cursor.ParseFromString(value);
    EXPECT_EQ(cursor.delivered_seq(), 3u) << device;
  }
  Request list;
  list.mutable_list_conversations();
  Reply before = Do(bob2, list);
  ASSERT_EQ(before.list_conversations().conversations_size(), 1);
  EXPECT_EQ(before.list_conversations().conversations(0).unread(), 3u);
  c_.client(bob1)->MarkRead(conv, 2);
  Settle();
  Reply after = Do(bob2, list);
  EXPECT_EQ(after.list_conversations().conversations(0).unread(), 1u);
  EXPECT_EQ(after.list_conversations().conversations(0).read_seq(), 2u);
}

TEST_F(MessagingTest, OfflineUserSyncsThousandsOfMessagesPageByPage) {
  ClientOptions paging;
  paging.sync_page = 100;
  const std::string carol = AddClient("carol", "d1", "", paging);
  std::vector<std::string> senders;
  for (int i = 0; i < 10; ++i) senders.push_back(AddClient(absl::StrCat("sender", i)));
  for (const std::string& s : senders) Befriend(s, carol);
  c_.client(carol)->Disconnect();
  Settle();
  const int per_sender = 300;
  for (const std::string& s : senders) {
    for (int m = 0; m < per_sender; ++m) c_.client(s)->SendPrivate(Id(carol), absl::StrCat(m));
  }
  for (int i = 0; i < 200; ++i) {
    size_t pending = 0;
    for (const std::string& s : senders) pending += c_.client(s)->pending_sends();
    if (pending == 0) break;
    c_.net().Advance(absl::Seconds(1));
  }
  const uint64_t syncs_before = c_.client(carol)->stats().syncs;
  c_.client(carol)->Connect();
  Settle();
  EXPECT_EQ(rec_.delivered[carol].size(), senders.size() * per_sender);
  for (const std::string& s : senders) {
    const std::string conv = PrivateConversationId(Id(s), Id(carol));
    ASSERT_THAT(Seqs(carol, conv), ::testing::ElementsAreArray(Range(1, per_sender))) << s;
  }
  // 3000 messages over two shards at 100 per shard per page.
  EXPECT_GE(c_.client(carol)->stats().syncs - syncs_before, 15u);
}

TEST_F(MessagingTest, RecallIsANewEntryOnlyTheSenderMayMakeInTime) {
  const std::string alice = AddClient("alice");
  const std::string bob = AddClient("bob");
  Befriend(alice, bob);
  const std::string conv = PrivateConversationId(Id(alice), Id(bob));
  c_.client(alice)->SendPrivate(Id(bob), "oops");
  Settle();
  Request recall;
  recall.mutable_recall()->set_conversation(conv);
  recall.mutable_recall()->set_seq(1);
  recall.mutable_recall()->set_client_msg_id("recall-1");
  EXPECT_EQ(Do(bob, recall).status().code(), CODE_PERMISSION_DENIED);
  Reply ok = Do(alice, recall);
  ASSERT_EQ(ok.status().code(), CODE_OK) << ok.status().message();
  EXPECT_EQ(ok.send().seq(), 2u);
  Settle();
  ASSERT_EQ(Seqs(bob, conv).size(), 2u);
  EXPECT_EQ(rec_.delivered[bob][1].kind(), Message::RECALL);
  EXPECT_EQ(rec_.delivered[bob][1].recalled_seq(), 1u);
  // Too late.
  c_.client(alice)->SendPrivate(Id(bob), "another");
  Settle();
  c_.net().Advance(absl::Minutes(3));
  recall.mutable_recall()->set_seq(3);
  recall.mutable_recall()->set_client_msg_id("recall-2");
  EXPECT_EQ(Do(alice, recall).status().code(), CODE_FAILED_PRECONDITION);
}

TEST_F(MessagingTest, AClientReconnectsToAnotherGatewayAfterACrash) {
  const std::string alice = AddClient("alice", "d1", "gw.1");
  const std::string bob = AddClient("bob", "d1", "gw.2");
  Befriend(alice, bob);
  const std::string conv = PrivateConversationId(Id(alice), Id(bob));
  c_.net().Crash("gw.2");
  c_.client(alice)->SendPrivate(Id(bob), "are you there?");
  for (int i = 0; i < 10; ++i) Settle();
  EXPECT_EQ(c_.client(bob)->state(), Client::State::kOnline);
  EXPECT_NE(c_.client(bob)->gateway(), "gw.2");
  EXPECT_THAT(Bodies(bob, conv), ::testing::ElementsAre("are you there?"));
}

TEST_F(MessagingTest, AClientPingsOnlyAfterAQuietIntervalAndStaysLoggedIn) {
  const std::string alice = AddClient("alice");  // ping_interval 1 s
  Client* c = c_.client(alice);
  const uint64_t reconnects = c->stats().reconnects;
  // Idle: a ping a second.
  uint64_t before = c->stats().pings;
  c_.net().Advance(absl::Seconds(10));
  EXPECT_GE(c->stats().pings - before, 8u);
  // Busy (an answered request every 200 ms): the replies stand in for pings,
  // and the gateway, which counts every request, keeps the session.
  before = c->stats().pings;
  Request list;
  list.mutable_list_friends();
  for (int i = 0; i < 50; ++i) {
    ASSERT_EQ(Do(alice, list).status().code(), CODE_OK);
    c_.net().Advance(absl::Milliseconds(200));
  }
  EXPECT_LE(c->stats().pings - before, 1u);
  // Quiet again: pings resume, and the session never lapsed.
  before = c->stats().pings;
  c_.net().Advance(absl::Seconds(10));
  EXPECT_GE(c->stats().pings - before, 8u);
  EXPECT_EQ(c->state(), Client::State::kOnline);
  EXPECT_EQ(c->stats().reconnects, reconnects);
  uint64_t expired = 0;
  for (int i = 0; i < 3; ++i) expired += c_.gateway(i)->stats().sessions_expired;
  EXPECT_EQ(expired, 0u);
}

TEST_F(MessagingTest, AClientAsksForTheGatewaysOnlyWhileNotOnline) {
  const std::string alice = AddClient("alice", "d1", "gw.2");
  Client* c = c_.client(alice);
  uint64_t before = c->discoveries();
  c_.net().Advance(absl::Seconds(10));  // discover_interval 500 ms
  EXPECT_EQ(c->discoveries(), before);
  // Offline, it keeps its list of gateways fresh for the next connect: at
  // once, then every interval.
  c->Disconnect();
  EXPECT_EQ(c->discoveries(), before + 1);
  c_.net().Advance(absl::Seconds(3));
  EXPECT_GE(c->discoveries() - before, 6u);
  c->Connect();
  WaitOnline(alice);
  EXPECT_EQ(c->gateway(), "gw.2");
  // Its gateway crashes: it asks at once, then connects elsewhere and stops
  // asking.
  before = c->discoveries();
  c_.net().Crash("gw.2");
  for (int i = 0; i < 200 && c->state() == Client::State::kOnline; ++i) {
    c_.net().Advance(absl::Milliseconds(50));
  }
  ASSERT_NE(c->state(), Client::State::kOnline);
  EXPECT_GT(c->discoveries(), before);
  WaitOnline(alice);
  EXPECT_NE(c->gateway(), "gw.2");
  before = c->discoveries();
  c_.net().Advance(absl::Seconds(10));
  EXPECT_EQ(c->discoveries(), before);
  EXPECT_EQ(c->state(), Client::State::kOnline);
}

TEST_F(MessagingTest, AClientRestartKeepsCursorsAndUnsentMessages) {
  const std::string alice = AddClient("alice");
  const std::string bob = AddClient("bob");
  Befriend(alice, bob);
  const std::string conv = PrivateConversationId(Id(alice), Id(bob));
  c_.client(alice)->SendPrivate(Id(bob), "before");
  Settle();
  ASSERT_EQ(Seqs(bob, conv).size(), 1u);
  // Bob's device restarts: its stored cursor means nothing is delivered twice.
  c_.net().Crash(bob);
  c_.net().Restart(bob);
  WaitOnline(bob);
  Settle();
  EXPECT_THAT(Seqs(bob, conv), ::testing::ElementsAre(1u));
  EXPECT_EQ(c_.client(bob)->cursor(conv), 1u);
  // Alice queues a message while her gateway is unreachable, then crashes:
  // the unsent message survives in her store and goes out after restart.
  c_.client(alice)->Disconnect();
  c_.client(alice)->SendPrivate(Id(bob), "queued");
  EXPECT_EQ(c_.client(alice)->pending_sends(), 1u);
  c_.net().Crash(alice);
  c_.net().Restart(alice);
  WaitOnline(alice);
  Settle();
  EXPECT_EQ(c_.client(alice)->pending_sends(), 0u);
  EXPECT_THAT(Bodies(bob, conv), ::testing::ElementsAre("before", "queued"));
}

TEST_F(MessagingTest, NewMembersDoNotSeeMessagesFromBeforeTheyJoined) {
  const std::string alice = AddClient("alice");
  const std::string bob = AddClient("bob");
  const std::string dave = AddClient("dave");
  Befriend(alice, bob);
  const uint64_t group = CreateGroup(alice, {bob}, /*open=*/true);
  const std::string conv = GroupConversationId(group);
  c_.client(alice)->SendGroup(group, "before dave");
  Settle();
  Request join;
  join.mutable_join_group()->set_group_id(group);
  ASSERT_EQ(Do(dave, join).status().code(), CODE_OK);
  c_.client(alice)->SendGroup(group, "after dave joined");
  Settle();
  EXPECT_THAT(Bodies(dave, conv), ::testing::ElementsAre("after dave joined"));
  Request leave;
  leave.mutable_leave_group()->set_group_id(group);
  ASSERT_EQ(Do(dave, leave).status().code(), CODE_OK);
  c_.client(alice)->SendGroup(group, "after dave left");
  Settle();
  c_.client(dave)->Disconnect();
  c_.client(dave)->Connect();
  Settle();
  EXPECT_THAT(Bodies(dave, conv), ::testing::ElementsAre("after dave joined"));
  EXPECT_THAT(Bodies(bob, conv),
              ::testing::ElementsAre("before dave", "after dave joined", "after dave left"));
}

// After a recall is acked its original survives only as a tombstone: sync
// serves it without the body (recalled), no key of the shard holds the body,
// and a client that was offline delivers the tombstone in order.
TEST_F(MessagingTest, ARecallLeavesATombstoneAndNoCopyOfTheBody) {
  const std::string alice = AddClient("alice");
  const std::string bob = AddClient("bob");
  Befriend(alice, bob);
  const std::string conv = PrivateConversationId(Id(alice), Id(bob));
  c_.client(bob)->Disconnect();
  c_.client(alice)->SendPrivate(Id(bob), "top secret");
  Settle();
  ASSERT_EQ(RecallOf(alice, conv, 1, "recall-1").status().code(), CODE_OK);
  EXPECT_THAT(KeysHolding(conv, "top secret"), ::testing::IsEmpty());

  Request sync;
  sync.mutable_sync();
  Reply synced = Do(alice, sync);
  ASSERT_EQ(synced.status().code(), CODE_OK);
  ASSERT_EQ(synced.sync().conversations_size(), 1);
  const ConversationPage& page = synced.sync().conversations(0);
  ASSERT_EQ(page.messages_size(), 2);
  EXPECT_EQ(page.messages(0).seq(), 1u);
  EXPECT_EQ(page.messages(0).body(), "");
  EXPECT_TRUE(page.messages(0).recalled());
  EXPECT_EQ(page.messages(1).kind(), Message::RECALL);

  c_.client(bob)->Connect();
  WaitOnline(bob);
  Settle();
  EXPECT_THAT(Seqs(bob, conv), ::testing::ElementsAre(1u, 2u));
  ASSERT_EQ(rec_.delivered[bob].size(), 2u);
  EXPECT_TRUE(rec_.delivered[bob][0].recalled());
  EXPECT_EQ(rec_.delivered[bob][0].body(), "");
  EXPECT_EQ(c_.client(bob)->cursor(conv), 2u);
  EXPECT_THAT(KeysHolding(conv, "top secret"), ::testing::IsEmpty());
}

// The original's dispatch is still waiting for its presence lookup when the
// recall commits: the push it then builds carries no body.
TEST_F(MessagingTest, ADispatchInFlightWhenARecallCommitsPushesNoBody) {
  const std::string alice = AddClient("alice");
  const std::string bob = AddClient("bob");
  Befriend(alice, bob);
  Settle();
  const std::string conv = PrivateConversationId(Id(alice), Id(bob));
  std::vector<Message> pushed;
  c_.net().HoldNext([&](const std::string& to, const Envelope& e) {
    if (to == bob && e.has_client_push()) pushed.push_back(e.client_push().message());
    return false;  // only watching
  });
  c_.net().HoldNext([&](const std::string& to, const Envelope& e) {
    return to == kKvAddress && e.has_request() && e.request().kv_get().prefixes_size() > 0;
  });
  c_.client(alice)->SendPrivate(Id(bob), "top secret");
  c_.net().Advance(absl::Milliseconds(20));
  ASSERT_EQ(c_.net().held(), 1u);
  ASSERT_EQ(RecallOf(alice, conv, 1, "recall-1").status().code(), CODE_OK);
  EXPECT_THAT(KeysHolding(conv, "top secret"), ::testing::IsEmpty());
  c_.net().ReleaseHeld();
  Settle();
  ASSERT_EQ(pushed.size(), 2u);
  for (const Message& m : pushed) EXPECT_EQ(m.body(), "") << m.seq();
  EXPECT_TRUE(pushed[0].recalled() || pushed[1].recalled());
  EXPECT_THAT(Seqs(bob, conv), ::testing::ElementsAre(1u, 2u));
  EXPECT_THAT(Bodies(bob, conv), ::testing::ElementsAre("", ""));
}

// The shard dies with the original's dispatch still pending and its recall
// committed: the restarted shard reads the message back from its key, so the
// replayed push is the tombstone.
TEST_F(MessagingTest, ADispatchReplayedAfterARecallPushesNoBody) {
  const std::string alice = AddClient("alice");
  const std::string bob = AddClient("bob");
  Befriend(alice, bob);
  Settle();
  const std::string conv = PrivateConversationId(Id(alice), Id(bob));
  const std::string shard = ShardAddress(ShardOf(conv, 2));
  std::vector<Message> pushed;
  c_.net().HoldNext([&](const std::string& to, const Envelope& e) {
    if (to == bob && e.has_client_push()) pushed.push_back(e.client_push().message());
    return false;  // only watching
  });
  c_.net().HoldNext([&](const std::string& to, const Envelope& e) {
    return to == kKvAddress && e.has_request() && e.request().kv_get().prefixes_size() > 0;
  });
  c_.client(alice)->SendPrivate(Id(bob), "top secret");
  c_.net().Advance(absl::Milliseconds(20));
  ASSERT_EQ(c_.net().held(), 1u);
  ASSERT_EQ(RecallOf(alice, conv, 1, "recall-1").status().code(), CODE_OK);
  EXPECT_THAT(KeysHolding(conv, "top secret"), ::testing::IsEmpty());
  c_.net().Crash(shard);
  c_.net().Restart(shard);
  Settle();
  EXPECT_GE(c_.shard(ShardOf(conv, 2))->stats().dispatch_replayed, 1u);
  for (const Message& m : pushed) EXPECT_EQ(m.body(), "") << m.seq();
  EXPECT_THAT(Seqs(bob, conv), ::testing::ElementsAre(1u, 2u));
  EXPECT_THAT(Bodies(bob, conv), ::testing::ElementsAre("", ""));
  ASSERT_FALSE(rec_.delivered[bob].empty());
  EXPECT_TRUE(rec_.delivered[bob][0].recalled());
}

TEST_F(MessagingTest, RecallRefusalsComeInTheSpecsOrder) {
  const std::string alice = AddClient("alice");
  const std::string bob = AddClient("bob");
  Befriend(alice, bob);
  const std::string conv = PrivateConversationId(Id(alice), Id(bob));
  c_.client(alice)->SendPrivate(Id(bob), "oops");
  Settle();
  EXPECT_EQ(RecallOf(alice, conv, 9, "r-missing").status().code(), CODE_NOT_FOUND);
  EXPECT_EQ(RecallOf(bob, conv, 1, "r-bob").status().code(), CODE_PERMISSION_DENIED);
  ASSERT_EQ(RecallOf(alice, conv, 1, "r-1").status().code(), CODE_OK);
  // A retry of the same recall is its ack again, not a refusal.
  Reply retried = RecallOf(alice, conv, 1, "r-1");
  EXPECT_EQ(retried.status().code(), CODE_OK);
  EXPECT_EQ(retried.send().seq(), 2u);
  EXPECT_EQ(RecallOf(alice, conv, 2, "r-recall").status().code(), CODE_INVALID_ARGUMENT);
  EXPECT_EQ(RecallOf(alice, conv, 1, "r-2").status().code(), CODE_FAILED_PRECONDITION);
  EXPECT_EQ(RecallOf(bob, conv, 1, "r-bob-2").status().code(), CODE_PERMISSION_DENIED);
  EXPECT_EQ(MaxSeqStored(conv), 2u);  // one recall entry
}

TEST_F(MessagingTest, OnlyCurrentMembersMoveAGroupsCursors) {
  const std::string alice = AddClient("alice");
  const std::string bob = AddClient("bob");
  const std::string carol = AddClient("carol");
  const std::string dave = AddClient("dave");
  for (const std::string& m : {bob, carol, dave}) Befriend(alice, m);
  const uint64_t group = CreateGroup(alice, {bob, dave});
  const std::string conv = GroupConversationId(group);
  c_.client(alice)->SendGroup(group, "hello");
  Settle();
  Request leave;
  leave.mutable_leave_group()->set_group_id(group);
  ASSERT_EQ(Do(dave, leave).status().code(), CODE_OK);
  for (bool read : {true, false}) {
    Reply member = Cursor(bob, conv, 1, read);
    EXPECT_EQ(member.status().code(), CODE_OK) << member.status().message();
    Reply stranger = Cursor(carol, conv, 1, read);
    EXPECT_EQ(stranger.status().code(), CODE_PERMISSION_DENIED) << read;
    EXPECT_EQ(stranger.status().message(), absl::StrCat("not a member of group ", group));
    EXPECT_EQ(Cursor(dave, conv, 1, read).status().code(), CODE_PERMISSION_DENIED) << read;
  }
  std::string value;
  EXPECT_FALSE(ShardStore(conv).Get(message_keys::Read(conv, Id(carol)), &value).ok());
  EXPECT_FALSE(ShardStore(conv).Get(message_keys::Cursor(conv, Id(carol), "d1"), &value).ok());
}

// Unread counts what others wrote that the user may see: not its own
// messages, not recall entries or recalled messages, nothing from outside
// its membership.
TEST_F(MessagingTest, UnreadCountsOnlyOthersVisibleLiveMessages) {
  const std::string alice = AddClient("alice");
  const std::string bob = AddClient("bob");
  const std::string dave = AddClient("dave");
  Befriend(alice, bob);
  Befriend(alice, dave);
  const uint64_t group = CreateGroup(alice, {bob});
  const std::string conv = GroupConversationId(group);
  c_.client(alice)->SendGroup(group, "a1");  // 1
  Settle();
  c_.client(bob)->SendGroup(group, "b1");  // 2
  Settle();
  Request invite;
  invite.mutable_invite()->set_group_id(group);
  invite.mutable_invite()->add_user_ids(Id(dave));
  ASSERT_EQ(Do(alice, invite).status().code(), CODE_OK);
  c_.client(alice)->SendGroup(group, "a2");  // 3
  Settle();
  c_.client(alice)->SendGroup(group, "a3");  // 4
  Settle();
  ASSERT_EQ(RecallOf(alice, conv, 4, "recall-a3").status().code(), CODE_OK);  // 5
  c_.client(dave)->SendGroup(group, "d1");  // 6
  Settle();
  ASSERT_EQ(MaxSeqStored(conv), 6u);

  // Through the read's reply: bob has a1, a2, d1 unread; after reading 1, two.
  Reply bob_read = Cursor(bob, conv, 0, /*read=*/true);
  ASSERT_EQ(bob_read.status().code(), CODE_OK);
  EXPECT_EQ(bob_read.cursor().unread(), 3u);
  EXPECT_EQ(Cursor(bob, conv, 1, /*read=*/true).cursor().unread(), 2u);
  // Dave joined after a1 and b1: only a2.
  EXPECT_EQ(Cursor(dave, conv, 0, /*read=*/true).cursor().unread(), 1u);
  // An ack's reply carries no count (acks are the hot path): 0.
  EXPECT_EQ(Cursor(dave, conv, 0, /*read=*/false).cursor().unread(), 0u);

  // Through the shard's list (the gateway passes current memberships).
  auto listed = [&](const std::string& client) {
    Request r;
    r.mutable_shard_list_conversations()->set_user_id(Id(client));
    *r.mutable_shard_list_conversations()->add_groups() = MembershipOf(Id(client), group);
    Reply reply = c_.Call(ShardAddress(ShardOf(conv, 2)), r);
    for (const ConversationState& state : reply.list_conversations().conversations()) {
      if (state.conversation() == conv) return state;
    }
    ADD_FAILURE() << conv << " not listed for " << client;
    return ConversationState();
  };
  EXPECT_EQ(listed(bob).unread(), 2u);
  EXPECT_EQ(listed(bob).read_seq(), 1u);
  EXPECT_EQ(listed(dave).unread(), 1u);
  EXPECT_EQ(listed(alice).unread(), 2u);  // b1 and d1
  // Through the gateway, which sends the current memberships.
  Request glist;
  glist.mutable_list_conversations();
  const Reply dave_list = Do(dave, glist);
  ASSERT_EQ(dave_list.list_conversations().conversations_size(), 1);
  EXPECT_EQ(dave_list.list_conversations().conversations(0).conversation(), conv);
  EXPECT_EQ(dave_list.list_conversations().conversations(0).unread(), 1u);

  // Private: one's own messages do not count either.
  const std::string pconv = PrivateConversationId(Id(alice), Id(bob));
  c_.client(alice)->SendPrivate(Id(bob), "p1");
  Settle();
  c_.client(bob)->SendPrivate(Id(alice), "p2");
  Settle();
  c_.client(alice)->SendPrivate(Id(bob), "p3");
  Settle();
  Request list;
  list.mutable_list_conversations();
  const Reply bob_list = Do(bob, list);
  bool found = false;
  for (const ConversationState& state : bob_list.list_conversations().conversations()) {
    if (state.conversation() != pconv) continue;
    found = true;
    EXPECT_EQ(state.unread(), 2u);
  }
  EXPECT_TRUE(found) << pconv;
  EXPECT_EQ(Cursor(alice, pconv, 0, /*read=*/true).cursor().unread(), 1u);
}

// An ack the shard refuses (the user left the group before it arrived) is
// not sent again with every later ack.
TEST_F(MessagingTest, TheClientDoesNotResendARefusedAck) {
  const std::string alice = AddClient("alice");
  ClientOptions slow_acks;
  slow_acks.ack_delay = absl::Seconds(1);
  const std::string dave = AddClient("dave", "d1", "", slow_acks);
  Befriend(alice, dave);
  const uint64_t group = CreateGroup(alice, {dave});
  const std::string conv = GroupConversationId(group);
  Settle();
  int acks = 0;
  std::vector<ErrorCode> answers;
  c_.net().HoldNext([&](const std::string& to, const Envelope& e) {
    if (e.has_request() && e.request().has_ack() && e.request().ack().conversation() == conv &&
        e.auth_user_id() == Id(dave) && to == ShardAddress(ShardOf(conv, 2))) {
      ++acks;
    }
    return false;  // only counting
  });
  c_.client(alice)->SendGroup(group, "hello");
  for (int i = 0; i < 50 && Seqs(dave, conv).empty(); ++i) c_.net().Advance(absl::Milliseconds(2));
  ASSERT_EQ(Seqs(dave, conv).size(), 1u);
  Request leave;
  leave.mutable_leave_group()->set_group_id(group);
  ASSERT_EQ(Do(dave, leave).status().code(), CODE_OK);
  EXPECT_EQ(acks, 0) << "the ack waits for its delay";
  Settle();
  EXPECT_EQ(acks, 1);
  // Later deliveries flush acks again; the refused one is not among them.
  for (int i = 0; i < 3; ++i) {
    c_.client(alice)->SendPrivate(Id(dave), absl::StrCat("p", i));
    Settle();
  }
  EXPECT_EQ(Seqs(dave, PrivateConversationId(Id(alice), Id(dave))).size(), 3u);
  EXPECT_EQ(acks, 1);
}

// CallForged (the simulator's attackers): the envelope to the gateway carries
// the forged identity; the gateway acts as the session's user regardless.
TEST_F(MessagingTest, AForgedCallCarriesTheForgedIdentityAndTheGatewayIgnoresIt) {
  const std::string alice = AddClient("alice");
  const std::string bob = AddClient("bob");
  Befriend(alice, bob);
  Request send;
  send.mutable_send_private()->set_to_user_id(Id(alice));  // "bob" writing to alice
  send.mutable_send_private()->set_client_msg_id("forged-1");
  send.mutable_send_private()->set_body("I am bob");
  std::optional<Reply> reply;
  c_.client(alice)->CallForged(send, Id(bob), "", [&](const Reply& r) { reply = r; });
  Settle();
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->status().code(), CODE_INVALID_ARGUMENT) << reply->status().message();
  EXPECT_EQ(MaxSeqStored(PrivateConversationId(Id(alice), Id(bob))), 0u);

  // With a forged sender address too: the transport stamps the true sender,
  // so the gateway still sees alice's session and the reply comes back to her.
  std::optional<Envelope> sent;
  c_.net().HoldNext([&](const std::string& to, const Envelope& e) {
    if (!(e.has_request() && e.request().has_send_private()) || sent.has_value()) return false;
    sent = e;  // the first: what the client sent to its gateway
    return false;  // only watched, delivered as usual
  });
  reply.reset();
  c_.client(alice)->CallForged(send, Id(bob), bob, [&](const Reply& r) { reply = r; });
  Settle();
  ASSERT_TRUE(sent.has_value());
  EXPECT_EQ(sent->from(), alice);
  EXPECT_EQ(sent->auth_user_id(), Id(bob));
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->status().code(), CODE_INVALID_ARGUMENT) << reply->status().message();
  EXPECT_EQ(MaxSeqStored(PrivateConversationId(Id(alice), Id(bob))), 0u);
}


// ---- history (paging backwards) -----------------------------------------------------------

Request HistoryOf(const std::string& conversation, uint64_t before_seq, uint32_t limit) {
  Request r;
  r.mutable_history()->set_conversation(conversation);
  r.mutable_history()->set_before_seq(before_seq);
  r.mutable_history()->set_limit(limit);
  return r;
}

std::vector<uint64_t> SeqsOf(const HistoryReply& page) {
  std::vector<uint64_t> out;
  for (const Message& m : page.messages()) out.push_back(m.seq());
  return out;
}

class HistoryTest : public MessagingTest {
 protected:
  // Sends `n` private messages from `from` to `to` and waits for their acks.
  void SendMany(const std::string& from, const std::string& to, int n, size_t body_bytes = 0) {
    for (int i = 0; i < n; ++i) {
      std::string body = absl::StrCat("m", i + 1);
      if (body.size() < body_bytes) body.resize(body_bytes, 'x');
      c_.client(from)->SendPrivate(Id(to), body);
    }
    for (int i = 0; i < 200 && c_.client(from)->pending_sends() > 0; ++i) {
      c_.net().Advance(absl::Milliseconds(500));
    }
    ASSERT_EQ(c_.client(from)->pending_sends(), 0u);
  }
  HistoryReply History(const std::string& client, const std::string& conversation,
                       uint64_t before_seq = 0, uint32_t limit = 0) {
    Reply reply = Do(client, HistoryOf(conversation, before_seq, limit));
    EXPECT_EQ(reply.status().code(), CODE_OK) << reply.status().message();
    return reply.history();
  }
};

TEST_F(HistoryTest, PagesBackwardsAcrossALongConversation) {
  const std::string alice = AddClient("alice");
  const std::string bob = AddClient("bob");
  Befriend(alice, bob);
  const std::string conv = PrivateConversationId(Id(alice), Id(bob));
  SendMany(alice, bob, 260);
  ASSERT_EQ(MaxSeqStored(conv), 260u);
  // The newest 50 by default, oldest first.
  HistoryReply page = History(bob, conv);
  EXPECT_THAT(SeqsOf(page), ::testing::ElementsAreArray(Range(211, 260)));
  EXPECT_EQ(page.messages(0).body(), "m211");
  EXPECT_TRUE(page.has_more());
  EXPECT_EQ(page.next_before_seq(), 211u);
  // A limit above the maximum is the maximum (200); before_seq past the end
  // is the end.
  page = History(alice, conv, 1000, 1000);
  EXPECT_THAT(SeqsOf(page), ::testing::ElementsAreArray(Range(61, 260)));
  // Paging down with small pages reaches seq 1 once, each seq once.
  std::vector<uint64_t> seen;
  uint64_t before = 0;
  int pages = 0;
  for (; pages < 100; ++pages) {
    page = History(bob, conv, before, 70);
    std::vector<uint64_t> seqs = SeqsOf(page);
    seen.insert(seen.begin(), seqs.begin(), seqs.end());
    if (!page.has_more()) break;
    ASSERT_EQ(page.next_before_seq(), seqs.front());
    before = page.next_before_seq();
  }
  EXPECT_EQ(pages, 3);  // 70 + 70 + 70 + 50
  EXPECT_THAT(seen, ::testing::ElementsAreArray(Range(1, 260)));
  EXPECT_EQ(page.next_before_seq(), 1u);
  // Exactly a page left: has_more is false, not a guess.
  page = History(bob, conv, 11, 10);
  EXPECT_THAT(SeqsOf(page), ::testing::ElementsAreArray(Range(1, 10)));
  EXPECT_FALSE(page.has_more());
  // Nothing before seq 1.
  page = History(bob, conv, 1, 10);
  EXPECT_EQ(page.messages_size(), 0);
  EXPECT_FALSE(page.has_more());
  EXPECT_EQ(page.next_before_seq(), 0u);
}

TEST_F(HistoryTest, APageEndsAtTheReplyByteBudget) {
  const std::string alice = AddClient("alice");
  const std::string bob = AddClient("bob");
  Befriend(alice, bob);
  const std::string conv = PrivateConversationId(Id(alice), Id(bob));
  SendMany(alice, bob, 40, 16 * 1024);  // 640 KiB: more than one reply's budget
  HistoryReply page = History(bob, conv, 0, 200);
  ASSERT_GT(page.messages_size(), 0);
  EXPECT_LT(page.messages_size(), 40);
  size_t bytes = 0;
  for (const Message& m : page.messages()) bytes += SyncReplyCost(m.ByteSizeLong());
  EXPECT_LE(bytes, kDefaultSyncReplyBytes);
  EXPECT_TRUE(page.has_more());
  EXPECT_EQ(page.messages(page.messages_size() - 1).seq(), 40u);
  EXPECT_EQ(page.next_before_seq(), page.messages(0).seq());
  // The rest in one more page.
  HistoryReply rest = History(bob, conv, page.next_before_seq(), 200);
  EXPECT_EQ(rest.messages_size() + page.messages_size(), 40);
  EXPECT_FALSE(rest.has_more());
}

TEST_F(HistoryTest, PrivateHistoryIsForTheParticipantsAndBadIdsAreRefused) {
  const std::string alice = AddClient("alice");
  const std::string bob = AddClient("bob");
  const std::string carol = AddClient("carol");
  Befriend(alice, bob);
  const std::string conv = PrivateConversationId(Id(alice), Id(bob));
  SendMany(alice, bob, 3);
  EXPECT_EQ(Do(carol, HistoryOf(conv, 0, 0)).status().code(), CODE_PERMISSION_DENIED);
  for (const char* bad : {"", "x", "p:1", "g:0", "p:2:1", "g:abc"}) {
    EXPECT_EQ(Do(alice, HistoryOf(bad, 0, 0)).status().code(), CODE_INVALID_ARGUMENT) << bad;
  }
  // A conversation with no messages yet: an empty page.
  const std::string empty = PrivateConversationId(Id(alice), Id(carol));
  HistoryReply page = History(alice, empty);
  EXPECT_EQ(page.messages_size(), 0);
  EXPECT_FALSE(page.has_more());
  // Straight to the shard: no login, no history.
  const Reply anonymous = c_.Call(ShardAddress(ShardOf(conv, 2)), HistoryOf(conv, 0, 0), 0);
  EXPECT_EQ(anonymous.status().code(), CODE_UNAUTHENTICATED);
}

TEST_F(HistoryTest, RecalledMessagesComeWithoutTheirBody) {
  const std::string alice = AddClient("alice");
  const std::string bob = AddClient("bob");
  Befriend(alice, bob);
  const std::string conv = PrivateConversationId(Id(alice), Id(bob));
  c_.client(alice)->SendPrivate(Id(bob), "top secret");
  c_.client(alice)->SendPrivate(Id(bob), "fine");
  Settle();
  ASSERT_EQ(RecallOf(alice, conv, 1, "recall-1").status().code(), CODE_OK);  // seq 3
  for (const std::string& who : {alice, bob}) {
    HistoryReply page = History(who, conv);
    ASSERT_THAT(SeqsOf(page), ::testing::ElementsAre(1u, 2u, 3u));
    EXPECT_TRUE(page.messages(0).recalled());
    EXPECT_EQ(page.messages(0).body(), "");
    EXPECT_EQ(page.messages(1).body(), "fine");
    EXPECT_EQ(page.messages(2).kind(), Message::RECALL);
    EXPECT_EQ(page.messages(2).recalled_seq(), 1u);
    for (const Message& m : page.messages()) {
      EXPECT_EQ(m.body().find("top secret"), std::string::npos);
    }
  }
}

TEST_F(HistoryTest, AGroupsHistoryFollowsTheMembershipIntervals) {
  const std::string alice = AddClient("alice");
  const std::string bob = AddClient("bob");
  const std::string dave = AddClient("dave");
  const std::string carol = AddClient("carol");
  Befriend(alice, bob);
  const uint64_t group = CreateGroup(alice, {bob}, /*open=*/true);
  const std::string conv = GroupConversationId(group);
  auto send = [&](const std::string& body) {
    c_.client(alice)->SendGroup(group, body);
    Settle();
  };
  send("before dave 1");  // 1
  send("before dave 2");  // 2
  Request join;
  join.mutable_join_group()->set_group_id(group);
  ASSERT_EQ(Do(dave, join).status().code(), CODE_OK);
  send("with dave 1");  // 3
  send("with dave 2");  // 4
  Request leave;
  leave.mutable_leave_group()->set_group_id(group);
  ASSERT_EQ(Do(dave, leave).status().code(), CODE_OK);
  send("after dave 1");  // 5
  send("after dave 2");  // 6

  // A member sees all of it.
  HistoryReply page = History(bob, conv);
  EXPECT_THAT(SeqsOf(page), ::testing::ElementsAreArray(Range(1, 6)));
  // A former member sees what was sent while it was in, and no more: its
  // history stops at its leave, and has_more knows nothing older is its.
  page = History(dave, conv);
  EXPECT_THAT(SeqsOf(page), ::testing::ElementsAre(3u, 4u));
  EXPECT_EQ(page.messages(0).body(), "with dave 1");
  EXPECT_FALSE(page.has_more());
  EXPECT_EQ(page.next_before_seq(), 3u);
  page = History(dave, conv, 0, 1);
  EXPECT_THAT(SeqsOf(page), ::testing::ElementsAre(4u));
  EXPECT_TRUE(page.has_more());
  page = History(dave, conv, page.next_before_seq(), 1);
  EXPECT_THAT(SeqsOf(page), ::testing::ElementsAre(3u));
  EXPECT_FALSE(page.has_more());
  EXPECT_EQ(History(dave, conv, 3, 10).messages_size(), 0);
  // Back in: the new interval adds what is sent from then on.
  ASSERT_EQ(Do(dave, join).status().code(), CODE_OK);
  send("dave again");  // 7
  page = History(dave, conv);
  EXPECT_THAT(SeqsOf(page), ::testing::ElementsAre(3u, 4u, 7u));
  // Never a member: refused, for a group that exists and one that does not.
  EXPECT_EQ(Do(carol, HistoryOf(conv, 0, 0)).status().code(), CODE_PERMISSION_DENIED);
  EXPECT_EQ(Do(carol, HistoryOf(GroupConversationId(9999), 0, 0)).status().code(),
            CODE_PERMISSION_DENIED);
  // After a dissolve the former members keep their history.
  Request dissolve;
  dissolve.mutable_dissolve()->set_group_id(group);
  ASSERT_EQ(Do(alice, dissolve).status().code(), CODE_OK);
  page = History(bob, conv);
  EXPECT_THAT(SeqsOf(page), ::testing::ElementsAreArray(Range(1, 7)));
}

}  // namespace
}  // namespace parley
