// Storage faults reach the core through FaultyStoreEnv: a failed read or
// write becomes a retryable error, a redelivery or a fail-stop, never a wrong
// answer. The planted bug ignore_read_error shows what the old behaviour did.
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/client/client.h"
#include "core/friend/friend_keys.h"
#include "core/friend/friend_service.h"
#include "core/group/group_service.h"
#include "core/services.h"
#include "core/status.h"
#include "core/testing/bugs.h"
#include "fakes/core_cluster.h"
#include "fakes/faulty_store.h"
#include "gtest/gtest.h"

namespace parley {
namespace {

// Adds `make(env)` at `address` over a FaultyStoreEnv, keeping every
// incarnation's Env (a restart makes a new one) and pointing at the latest.
class FaultyNodes {
 public:
  explicit FaultyNodes(uint64_t seed = 7) : seed_(seed) {}
  template <typename Make>
  void Add(FakeCluster& net, const std::string& address, Make make, MemStore* store = nullptr) {
    net.Add(address, [this, make](Env* env) {
      envs_.push_back(std::make_unique<FaultyStoreEnv>(env, seed_ + envs_.size()));
      if (configure_) configure_(envs_.back()->faulty());
      return make(envs_.back().get());
    }, store);
  }
  FaultyStoreEnv& env() { return *envs_.back(); }
  FaultyStore& store() { return envs_.back()->faulty(); }
  size_t incarnations() const { return envs_.size(); }
  // Applied to the store of every later incarnation too.
  void Configure(std::function<void(FaultyStore&)> configure) {
    configure_ = std::move(configure);
    configure_(store());
  }

 private:
  uint64_t seed_;
  std::vector<std::unique_ptr<FaultyStoreEnv>> envs_;
  std::function<void(FaultyStore&)> configure_;
};

void FailAllReads(FaultyStore& s) { s.FailReads(FaultyStore::kMillion); }
void FailAllWrites(FaultyStore& s) { s.FailWrites(FaultyStore::kMillion); }
void Healthy(FaultyStore& s) { s.Heal(); }

// ---- friend lists ----------------------------------------------------------------------

class FriendStorageFaultsTest : public ::testing::Test {
 protected:
  static CoreClusterOptions Options() {
    CoreClusterOptions o;
    o.friend_replicas = 0;  // the one friend service is the faulty one
    o.friends.cache_ttl = absl::Seconds(5);
    return o;
  }
  FriendStorageFaultsTest() : c_(Options()) {
    FriendOptions o = Options().friends;
    o.instance_id = "1";
    friends_.Add(c_.net(), friend_, [o](Env* env) { return std::make_unique<FriendService>(env, o); });
    c_.net().Advance(absl::Seconds(1));  // registered and discovered
    alice_ = c_.Register("alice", "Alice");
    bob_ = c_.Register("bob", "Bob");
    EXPECT_TRUE(c_.Befriend(alice_, bob_).ok());
    c_.Settle();
    // The cached lists expire: the next list reads the store.
    c_.net().Advance(absl::Seconds(6));
  }
  Reply List(uint64_t who) {
    Request r;
    r.mutable_list_friends();
    return c_.Call(friend_, r, who);
  }

  CoreCluster c_;
  FaultyNodes friends_;
  const std::string friend_ = CoreCluster::Address(kFriendService);
  uint64_t alice_ = 0, bob_ = 0;
};

TEST_F(FriendStorageFaultsTest, AFailedReadIsRetryableAndNeverCached) {
  friends_.Configure(&FailAllReads);
  Reply reply = List(alice_);
  EXPECT_EQ(reply.status().code(), CODE_UNAVAILABLE) << reply.status().message();
  EXPECT_GT(friends_.store().stats().failed_reads, 0u);
  friends_.Configure(&Healthy);
  reply = List(alice_);
  ASSERT_EQ(reply.status().code(), CODE_OK) << reply.status().message();
  ASSERT_EQ(reply.list_friends().list().friends_size(), 1);
  EXPECT_EQ(reply.list_friends().list().friends(0).friend_id(), bob_);
}

TEST_F(FriendStorageFaultsTest, PlantedIgnoreReadErrorCachesAnEmptyList) {
  ScopedBug bug(Bug::kIgnoreReadError);
  // Only the scan of alice's friends fails; her list's version reads fine.
  const std::string rows = friend_keys::FriendPrefix(alice_);
  friends_.Configure([rows](FaultyStore& s) {
    s.FailReads(FaultyStore::kMillion);
    s.OnlyUnder(rows);
  });
  Reply wrong = List(alice_);
  ASSERT_EQ(wrong.status().code(), CODE_OK) << wrong.status().message();
  EXPECT_EQ(wrong.list_friends().list().friends_size(), 0);
  List(alice_);  // renders the unread list as empty, and caches it
  friends_.Configure(&Healthy);
  Reply reply = List(alice_);
  ASSERT_EQ(reply.status().code(), CODE_OK) << reply.status().message();
  EXPECT_TRUE(reply.list_friends().from_cache());
  EXPECT_EQ(reply.list_friends().list().friends_size(), 0);  // the wrong answer
}

TEST_F(FriendStorageFaultsTest, TheSameFaultWithoutTheBugIsRetryable) {
  const std::string rows = friend_keys::FriendPrefix(alice_);
  friends_.Configure([rows](FaultyStore& s) {
    s.FailReads(FaultyStore::kMillion);
    s.OnlyUnder(rows);
  });
  EXPECT_EQ(List(alice_).status().code(), CODE_UNAVAILABLE);
  friends_.Configure(&Healthy);
  Reply reply = List(alice_);
  ASSERT_EQ(reply.status().code(), CODE_OK) << reply.status().message();
  EXPECT_EQ(reply.list_friends().list().friends_size(), 1);
}

TEST_F(FriendStorageFaultsTest, AFailedReadRefusesAChange) {
  const uint64_t carol = c_.Register("carol", "Carol");
  friends_.Configure(&FailAllReads);
  // "Not a friend yet" must not be concluded from a read that failed.
  EXPECT_TRUE(absl::IsUnavailable(c_.Befriend(alice_, carol)));
  friends_.Configure(&Healthy);
  EXPECT_TRUE(c_.Befriend(alice_, carol).ok());
}

TEST_F(FriendStorageFaultsTest, AnEventWhoseEffectWasNotStoredIsNotAcked) {
  friends_.Configure(&FailAllWrites);
  Request r;
  r.mutable_update_profile()->set_nickname("Bobby");
  ASSERT_EQ(c_.Call(CoreCluster::Address(kUserService), r, bob_).status().code(), CODE_OK);
  c_.Settle();  // the profile event reaches the friend service, which cannot store it
  friends_.Configure(&Healthy);
  c_.Settle(absl::Seconds(10));  // redelivered, since it was not acked
  FriendService* service = c_.net().NodeAs<FriendService>(friend_);
  ASSERT_NE(service, nullptr);
  ASSERT_EQ(service->Render(alice_).friends_size(), 1);
  EXPECT_EQ(service->Render(alice_).friends(0).nickname(), "Bobby");
}

// ---- group members ---------------------------------------------------------------------

TEST(GroupStorageFaultsTest, MembersThatCannotBeReadAreNotNone) {
  CoreClusterOptions o;
  o.group_replicas = 0;
  CoreCluster c(o);
  FaultyNodes groups;
  GroupOptions g;
  g.instance_id = "1";
  const std::string address = CoreCluster::Address(kGroupService);
  groups.Add(c.net(), address, [g](Env* env) { return std::make_unique<GroupService>(env, g); });
  c.net().Advance(absl::Seconds(1));
  const uint64_t alice = c.Register("alice", "Alice");
  c.Settle();
  Request create;
  create.mutable_create_group()->set_name("g");
  Reply created = c.Call(address, create, alice);
  ASSERT_EQ(created.status().code(), CODE_OK) << created.status().message();
  const uint64_t group_id = created.create_group().group().group_id();
  groups.Configure(&FailAllReads);
  Request ids;
  ids.mutable_member_ids()->set_group_id(group_id);
  // Internal callers (the message shard) ask with no auth user.
  Reply reply = c.Call(address, ids);
  EXPECT_EQ(reply.status().code(), CODE_UNAVAILABLE) << reply.status().message();
  EXPECT_EQ(reply.member_ids().member_ids_size(), 0);
  groups.Configure(&Healthy);
  reply = c.Call(address, ids);
  ASSERT_EQ(reply.status().code(), CODE_OK) << reply.status().message();
  EXPECT_EQ(reply.member_ids().member_ids_size(), 1);
}

TEST(GroupStorageFaultsTest, AStoreUnreadableAtStartIsRestartedUntilItReads) {
  CoreClusterOptions o;
  o.group_replicas = 0;
  CoreCluster c(o);
  FaultyNodes groups;
  GroupOptions g;
  g.instance_id = "1";
  const std::string address = CoreCluster::Address(kGroupService);
  groups.Add(c.net(), address, [g](Env* env) { return std::make_unique<GroupService>(env, g); });
  groups.Configure(&FailAllReads);
  c.net().Crash(address);
  c.net().Restart(address);  // its start cannot read the store: it fail-stops
  EXPECT_FALSE(c.net().NodeAs<GroupService>(address)->healthy());
  EXPECT_EQ(groups.env().fail_stops().size(), 1u);
  c.net().Advance(absl::Milliseconds(1500));  // restarted, and fails again
  EXPECT_GE(groups.incarnations(), 3u);
  groups.Configure(&Healthy);
  c.net().Advance(absl::Seconds(2));
  ASSERT_TRUE(c.net().IsUp(address));
  EXPECT_TRUE(c.net().NodeAs<GroupService>(address)->healthy());
}

// ---- the client's message counter ------------------------------------------------------

class Acks : public ClientObserver {
 public:
  void OnSendAcked(const std::string& client, const std::string& id, const SendReply& ack) override {
    acked[id] = ack;
  }
  void OnSendFailed(const std::string& client, const std::string& id,
                    const absl::Status& status) override {
    failed[id] = status;
  }
  std::map<std::string, SendReply> acked;
  std::map<std::string, absl::Status> failed;
};

class ClientStorageFaultsTest : public ::testing::Test {
 protected:
  static CoreClusterOptions Options() {
    CoreClusterOptions o;
    o.gateways = 1;
    o.shards = 1;
    return o;
  }
  ClientStorageFaultsTest() : c_(Options()) {
    ClientOptions o;
    o.name = "alice";
    o.device_id = "d1";
    o.password = "password-alice";
    o.observer = &acks_;
    clients_.Add(c_.net(), alice_, [o](Env* env) { return std::make_unique<Client>(env, o); });
    bob_ = c_.AddClient("bob");
    WaitOnline(alice_);
    WaitOnline(bob_);
    EXPECT_TRUE(c_.Befriend(Id(alice_), Id(bob_)).ok());
    c_.Settle();
  }
  void WaitOnline(const std::string& address) {
    for (int i = 0; i < 200 && (c_.client(address) == nullptr ||
                                c_.client(address)->state() != Client::State::kOnline);
         ++i) {
      c_.net().Advance(absl::Milliseconds(50));
    }
    ASSERT_NE(c_.client(address), nullptr);
    ASSERT_EQ(c_.client(address)->state(), Client::State::kOnline) << address;
  }
  uint64_t Id(const std::string& address) { return c_.client(address)->user_id(); }

  CoreCluster c_;
  FaultyNodes clients_;
  Acks acks_;
  const std::string alice_ = "client.alice.d1";
  std::string bob_;
};

TEST_F(ClientStorageFaultsTest, ASendWhoseCounterCannotBeStoredIsNeverSent) {
  const std::string first = c_.client(alice_)->SendPrivate(Id(bob_), "one");
  c_.Settle();
  ASSERT_EQ(acks_.acked.count(first), 1u);
  clients_.Configure(&FailAllWrites);
  const std::string lost = c_.client(alice_)->SendPrivate(Id(bob_), "two");
  EXPECT_EQ(clients_.env().fail_stops().size(), 1u);
  clients_.Configure(&Healthy);
  c_.Settle();  // crashed, restarted a second later from its store
  EXPECT_GE(clients_.incarnations(), 2u);
  EXPECT_EQ(acks_.acked.count(lost), 0u);  // never sent, so never acked
  WaitOnline(alice_);
  // The counter restarts from the store: the id of the lost send names this
  // one, which the server has never seen, so it gets its own seq.
  const std::string next = c_.client(alice_)->SendPrivate(Id(bob_), "three");
  EXPECT_EQ(next, lost);
  c_.Settle();
  ASSERT_EQ(acks_.acked.count(next), 1u);
  EXPECT_EQ(acks_.acked[next].seq(), acks_.acked[first].seq() + 1);
}

TEST_F(ClientStorageFaultsTest, PermanentSendErrorsAreReportedNotRetried) {
  // Not friends with carol: PERMISSION_DENIED, reported once.
  const uint64_t carol = c_.Register("carol", "Carol");
  const std::string id = c_.client(alice_)->SendPrivate(carol, "hi");
  c_.Settle();
  ASSERT_EQ(acks_.failed.count(id), 1u);
  EXPECT_TRUE(absl::IsPermissionDenied(acks_.failed[id])) << acks_.failed[id];
  EXPECT_EQ(c_.client(alice_)->pending_sends(), 0u);
}

// ---- everything at once -----------------------------------------------------------------

class Deliveries : public Acks {
 public:
  void OnDelivered(const std::string& client, const Message& m) override {
    delivered[client].push_back(m);
  }
  std::map<std::string, std::vector<Message>> delivered;
};

// Random read and write failures on the friend and group services and on the
// sender's device: no invariant breaks (a failed PARLEY_CHECK aborts), and
// once the disks heal every acked message reaches the recipient exactly once.
void Soak(uint64_t seed) {
  SCOPED_TRACE(absl::StrCat("seed ", seed));
  CoreClusterOptions o;
  o.cluster.seed = seed;
  o.gateways = 1;
  o.shards = 1;
  o.friend_replicas = 0;
  o.group_replicas = 0;
  CoreCluster c(o);
  FaultyNodes friends(seed * 100 + 1), groups(seed * 100 + 2), senders(seed * 100 + 3);
  FriendOptions f;
  f.instance_id = "1";
  friends.Add(c.net(), CoreCluster::Address(kFriendService),
              [f](Env* env) { return std::make_unique<FriendService>(env, f); });
  GroupOptions g;
  g.instance_id = "1";
  groups.Add(c.net(), CoreCluster::Address(kGroupService),
             [g](Env* env) { return std::make_unique<GroupService>(env, g); });
  Deliveries seen;
  ClientOptions co;
  co.name = "alice";
  co.device_id = "d1";
  co.password = "password-alice";
  co.observer = &seen;
  const std::string alice = "client.alice.d1";
  senders.Add(c.net(), alice, [co](Env* env) { return std::make_unique<Client>(env, co); });
  ClientOptions bo;
  bo.observer = &seen;
  const std::string bob = c.AddClient("bob", "d1", bo);
  auto online = [&c](const std::string& a) {
    return c.net().IsUp(a) && c.client(a) != nullptr &&
           c.client(a)->state() == Client::State::kOnline;
  };
  for (int i = 0; i < 200 && !(online(alice) && online(bob)); ++i) {
    c.net().Advance(absl::Milliseconds(50));
  }
  ASSERT_TRUE(online(alice) && online(bob));
  const uint64_t bob_id = c.client(bob)->user_id();
  ASSERT_TRUE(c.Befriend(c.client(alice)->user_id(), bob_id).ok());
  c.Settle();

  auto faults = [](uint32_t reads, uint32_t writes) {
    return [reads, writes](FaultyStore& s) {
      s.FailReads(reads);
      s.FailWrites(writes);
    };
  };
  friends.Configure(faults(200000, 200000));
  groups.Configure(faults(200000, 200000));
  senders.Configure(faults(0, 100000));
  int queued = 0;
  for (int i = 0; i < 60; ++i) {
    if (c.net().IsUp(alice) && c.client(alice) != nullptr) {
      c.client(alice)->SendPrivate(bob_id, absl::StrCat("m", i));
      ++queued;
    }
    c.net().Advance(absl::Milliseconds(200));
  }
  friends.Configure(&Healthy);
  groups.Configure(&Healthy);
  senders.Configure(&Healthy);
  c.Settle(absl::Seconds(30));

  std::printf("SOAK seed=%llu queued=%d acked=%zu failed=%zu bob_got=%zu alice_incarnations=%zu "
              "friend_failed_reads=%llu group_failed_reads=%llu\n",
              (unsigned long long)seed, queued, seen.acked.size(), seen.failed.size(), seen.delivered[bob].size(),
              senders.incarnations(),
              (unsigned long long)friends.store().stats().failed_reads,
              (unsigned long long)groups.store().stats().failed_reads);
  EXPECT_GT(queued, 0);
  ASSERT_TRUE(c.net().IsUp(alice));
  EXPECT_EQ(c.client(alice)->pending_sends(), 0u);  // every stored send was answered
  EXPECT_GT(senders.incarnations(), 1u);             // the sender did fail-stop
  EXPECT_GT(friends.store().stats().failed_reads + groups.store().stats().failed_reads, 0u);
  EXPECT_FALSE(seen.acked.empty());
  std::map<std::string, int> times;  // client_msg_id -> deliveries to bob
  uint64_t last = 0;
  for (const Message& m : seen.delivered[bob]) {
    EXPECT_GT(m.seq(), last) << "bob saw " << m.conversation() << "#" << m.seq() << " again";
    last = m.seq();
    ++times[m.client_msg_id()];
  }
  for (const auto& [id, ack] : seen.acked) {
    EXPECT_EQ(times[id], 1) << id << " was acked as seq " << ack.seq();
  }
}

TEST(StorageFaultsSoakTest, NoInvariantBreaksAndNoAckIsLost) {
  for (uint64_t seed = 1; seed <= 8; ++seed) Soak(seed);
}

}  // namespace
}  // namespace parley
