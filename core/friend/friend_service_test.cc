#include "core/friend/friend_service.h"

#include "core/friend/friend_keys.h"
#include "core/services.h"
#include "core/status.h"
#include "fakes/core_cluster.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace parley {
namespace {

using ::testing::ElementsAre;

class FriendServiceTest : public ::testing::Test {
 protected:
  FriendServiceTest() {
    alice_ = c_.Register("alice", "Alice");
    bob_ = c_.Register("bob", "Bob");
    carol_ = c_.Register("carol", "Carol");
    c_.Settle();
  }

  Reply Do(uint64_t who, const Request& request) { return c_.Call(friend_, request, who); }
  Reply Add(uint64_t who, uint64_t other) {
    Request r;
    r.mutable_add_friend()->set_friend_id(other);
    return Do(who, r);
  }
  Reply Remove(uint64_t who, uint64_t other) {
    Request r;
    r.mutable_remove_friend()->set_friend_id(other);
    return Do(who, r);
  }
  Reply Block(uint64_t who, uint64_t target, bool blocked) {
    Request r;
    r.mutable_block()->set_target_id(target);
    r.mutable_block()->set_blocked(blocked);
    return Do(who, r);
  }
  Reply List(uint64_t who) {
    Request r;
    r.mutable_list_friends();
    return Do(who, r);
  }
  std::vector<uint64_t> FriendIds(uint64_t who) {
    Reply reply = List(who);
    EXPECT_EQ(reply.status().code(), CODE_OK) << reply.status().message();
    std::vector<uint64_t> ids;
    for (const FriendEntry& e : reply.list_friends().list().friends()) ids.push_back(e.friend_id());
    return ids;
  }
  // The cached list of `owner` in kv, if any.
  std::optional<FriendList> Cached(uint64_t owner) {
    Request r;
    r.mutable_kv_get()->add_keys(friend_keys::CacheKey(owner));
    Reply reply = c_.Call(kKvAddress, r);
    if (reply.kv_get().entries_size() == 0) return std::nullopt;
    FriendList list;
    EXPECT_TRUE(list.ParseFromString(reply.kv_get().entries(0).value()));
    EXPECT_EQ(list.version(), reply.kv_get().entries(0).version());
    return list;
  }
  void UpdateNickname(uint64_t who, const std::string& nickname) {
    Request r;
    r.mutable_update_profile()->set_nickname(nickname);
    ASSERT_EQ(c_.Call(CoreCluster::Address(kUserService), r, who).status().code(), CODE_OK);
  }
  FriendService* service() { return c_.net().NodeAs<FriendService>(friend_); }

  CoreCluster c_;
  const std::string friend_ = CoreCluster::Address(kFriendService);
  uint64_t alice_ = 0, bob_ = 0, carol_ = 0;
};

TEST_F(FriendServiceTest, AddMakesFriendsInBothDirections) {
  Reply reply = Add(alice_, bob_);
  ASSERT_EQ(reply.status().code(), CODE_OK) << reply.status().message();
  EXPECT_THAT(FriendIds(alice_), ElementsAre(bob_));
  EXPECT_THAT(FriendIds(bob_), ElementsAre(alice_));
  Reply list = List(alice_);
  ASSERT_EQ(list.list_friends().list().friends_size(), 1);
  EXPECT_EQ(list.list_friends().list().friends(0).nickname(), "Bob");
}

TEST_F(FriendServiceTest, AddRefusesBadTargets) {
  EXPECT_EQ(Add(alice_, alice_).status().code(), CODE_INVALID_ARGUMENT);
  EXPECT_EQ(Add(alice_, 0).status().code(), CODE_INVALID_ARGUMENT);
  EXPECT_EQ(Add(alice_, 999).status().code(), CODE_NOT_FOUND);
  ASSERT_EQ(Add(alice_, bob_).status().code(), CODE_OK);
  EXPECT_EQ(Add(alice_, bob_).status().code(), CODE_ALREADY_EXISTS);
  EXPECT_EQ(Add(bob_, alice_).status().code(), CODE_ALREADY_EXISTS);
  EXPECT_EQ(Add(0, bob_).status().code(), CODE_UNAUTHENTICATED);
  EXPECT_THAT(FriendIds(alice_), ElementsAre(bob_));
}

TEST_F(FriendServiceTest, RemoveEndsTheFriendshipBothWays) {
  ASSERT_EQ(Add(alice_, bob_).status().code(), CODE_OK);
  ASSERT_EQ(Remove(bob_, alice_).status().code(), CODE_OK);
  EXPECT_TRUE(FriendIds(alice_).empty());
  EXPECT_TRUE(FriendIds(bob_).empty());
  EXPECT_EQ(Remove(alice_, bob_).status().code(), CODE_NOT_FOUND);  // a removed friend
}

TEST_F(FriendServiceTest, RemarkIsShownAndNeedsAFriend) {
  ASSERT_EQ(Add(alice_, bob_).status().code(), CODE_OK);
  Request r;
  r.mutable_set_remark()->set_friend_id(bob_);
  r.mutable_set_remark()->set_remark("from school");
  ASSERT_EQ(Do(alice_, r).status().code(), CODE_OK);
  EXPECT_EQ(List(alice_).list_friends().list().friends(0).remark(), "from school");
  r.mutable_set_remark()->set_remark(std::string(65, 'r'));
  EXPECT_EQ(Do(alice_, r).status().code(), CODE_INVALID_ARGUMENT);
  r.mutable_set_remark()->set_friend_id(carol_);
  r.mutable_set_remark()->set_remark("x");
  EXPECT_EQ(Do(alice_, r).status().code(), CODE_NOT_FOUND);
}

TEST_F(FriendServiceTest, BlockedUsersCannotAdd) {
  ASSERT_EQ(Block(alice_, carol_, true).status().code(), CODE_OK);
  EXPECT_EQ(Add(carol_, alice_).status().code(), CODE_PERMISSION_DENIED);
  EXPECT_EQ(Add(alice_, carol_).status().code(), CODE_FAILED_PRECONDITION);
  EXPECT_THAT(List(alice_).list_friends().list().blocked_ids(), ElementsAre(carol_));
  ASSERT_EQ(Block(alice_, carol_, false).status().code(), CODE_OK);
  EXPECT_EQ(Add(carol_, alice_).status().code(), CODE_OK);
  EXPECT_EQ(Block(alice_, alice_, true).status().code(), CODE_INVALID_ARGUMENT);
  EXPECT_EQ(Block(alice_, 999, true).status().code(), CODE_NOT_FOUND);
}

TEST_F(FriendServiceTest, CheckFriendsReportsFriendsAndBlocksBothWays) {
  Add(alice_, bob_);
  Block(carol_, alice_, true);
  Request r;
  r.mutable_check_friends()->set_owner_id(alice_);
  for (uint64_t id : {bob_, carol_}) r.mutable_check_friends()->add_user_ids(id);
  Reply reply = c_.Call(friend_, r);
  ASSERT_EQ(reply.status().code(), CODE_OK);
  EXPECT_THAT(reply.check_friends().friend_ids(), ElementsAre(bob_));
  EXPECT_THAT(reply.check_friends().blocked_ids(), ElementsAre(carol_));
}

TEST_F(FriendServiceTest, SecondReadComesFromTheCacheAtTheStoreVersion) {
  Add(alice_, bob_);
  c_.Settle();
  Reply first = List(alice_);
  Reply second = List(alice_);
  EXPECT_TRUE(second.list_friends().from_cache());
  EXPECT_EQ(second.list_friends().list().SerializeAsString(),
            service()->Render(alice_).SerializeAsString());
  EXPECT_EQ(first.list_friends().list().SerializeAsString(),
            second.list_friends().list().SerializeAsString());
}

TEST_F(FriendServiceTest, OneLoaderFillsAMissWhileOthersWait) {
  Add(alice_, bob_);
  c_.Settle();
  Request del;
  del.mutable_kv_delete()->set_key(friend_keys::CacheKey(alice_));
  ASSERT_TRUE(c_.Call(kKvAddress, del).kv_delete().deleted());
  const FriendStats before = service()->stats();

  Request list;
  list.mutable_list_friends();
  std::vector<uint64_t> calls;
  for (int i = 0; i < 5; ++i) calls.push_back(c_.net().Send(friend_, list, alice_));
  c_.Settle(absl::Seconds(1));
  for (uint64_t id : calls) {
    std::optional<Reply> reply = c_.net().TakeReply(id);
    ASSERT_TRUE(reply.has_value());
    EXPECT_THAT(std::vector<uint64_t>({reply->list_friends().list().friends(0).friend_id()}),
                ElementsAre(bob_));
  }
  EXPECT_EQ(service()->stats().fills_applied - before.fills_applied, 1u);
  EXPECT_GE(service()->stats().lock_waits - before.lock_waits, 1u);
}

TEST_F(FriendServiceTest, StaleFillRacingANewerEventNeverWins) {
  Add(alice_, bob_);
  c_.Settle();
  Request del;
  del.mutable_kv_delete()->set_key(friend_keys::CacheKey(alice_));
  ASSERT_TRUE(c_.Call(kKvAddress, del).kv_delete().deleted());
  const uint64_t old_version = service()->Render(alice_).version();

  // 1. A reader misses, takes the lock and renders the list at old_version;
  //    its fill is held on the way to kv.
  c_.net().HoldNext([](const std::string& to, const Envelope& e) {
    return to == kKvAddress && e.has_request() && e.request().has_kv_set();
  });
  Request list;
  list.mutable_list_friends();
  const uint64_t read = c_.net().Send(friend_, list, alice_);
  c_.net().Advance(absl::Milliseconds(50));
  ASSERT_EQ(c_.net().held(), 1u);

  // 2. Meanwhile alice befriends carol; the event refreshes the cache.
  //    (Well within the reader's kv timeout, so no retry of the fill is sent.)
  ASSERT_EQ(Add(alice_, carol_).status().code(), CODE_OK);
  c_.net().Advance(absl::Milliseconds(100));
  ASSERT_EQ(c_.net().held(), 1u);
  std::optional<FriendList> fresh = Cached(alice_);
  ASSERT_TRUE(fresh.has_value());
  EXPECT_GT(fresh->version(), old_version);
  EXPECT_EQ(fresh->friends_size(), 2);

  // 3. The stale fill finally arrives: it is refused.
  c_.net().ReleaseHeld();
  c_.Settle();
  ASSERT_TRUE(c_.net().TakeReply(read).has_value());
  std::optional<FriendList> after = Cached(alice_);
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->version(), fresh->version());
  EXPECT_EQ(after->friends_size(), 2);
  EXPECT_EQ(service()->stats().stale_fills_refused, 1u);
  EXPECT_THAT(FriendIds(alice_), ElementsAre(bob_, carol_));
}

TEST_F(FriendServiceTest, ProfileChangeRefreshesFriendListsAndTheirCache) {
  Add(alice_, bob_);
  c_.Settle();
  List(alice_);  // fill the cache
  UpdateNickname(bob_, "Robert");
  c_.Settle();
  std::optional<FriendList> cached = Cached(alice_);
  ASSERT_TRUE(cached.has_value());
  EXPECT_EQ(cached->friends(0).nickname(), "Robert");
  Reply reply = List(alice_);
  EXPECT_TRUE(reply.list_friends().from_cache());
  EXPECT_EQ(reply.list_friends().list().friends(0).nickname(), "Robert");
  EXPECT_EQ(reply.list_friends().list().friends(0).profile_version(), 2u);
}

TEST_F(FriendServiceTest, DuplicateAndOlderProfileEventsChangeNothing) {
  Add(alice_, bob_);
  UpdateNickname(bob_, "Robert");
  c_.Settle();
  const auto before = c_.FriendStore().data();

  auto profile_event = [&](uint64_t version, const std::string& nickname) {
    Event e;
    e.set_event_id("test/" + std::to_string(version));
    e.set_aggregate_id("user/" + std::to_string(bob_));
    e.set_version(version);
    e.mutable_user_profile_changed()->set_user_id(bob_);
    e.mutable_user_profile_changed()->set_version(version);
    e.mutable_user_profile_changed()->set_nickname(nickname);
    return e;
  };
  c_.net().InjectEvent(friend_, profile_event(2, "Robert"));   // duplicate
  c_.net().InjectEvent(friend_, profile_event(1, "Bob"));      // older, late
  c_.Settle();
  EXPECT_EQ(c_.FriendStore().data(), before);
  EXPECT_EQ(service()->Render(alice_).friends(0).nickname(), "Robert");
  EXPECT_GE(service()->stats().profile_events_ignored, 2u);
}

TEST_F(FriendServiceTest, ReplicasSharingKvServeTheSameLists) {
  CoreClusterOptions options;
  options.friend_replicas = 2;
  CoreCluster c(options);
  const uint64_t a = c.Register("anna");
  const uint64_t b = c.Register("bert");
  c.Settle();
  ASSERT_TRUE(c.Befriend(a, b).ok());
  c.Settle();
  Request list;
  list.mutable_list_friends();
  for (int replica = 0; replica < 2; ++replica) {
    Reply reply = c.Call(CoreCluster::Address(kFriendService, replica), list, a);
    ASSERT_EQ(reply.list_friends().list().friends_size(), 1);
    EXPECT_EQ(reply.list_friends().list().friends(0).friend_id(), b);
  }
}

// A block stops add_friend whichever side blocked: the blocked side is told
// PERMISSION_DENIED, the blocker FAILED_PRECONDITION (unblock first).
TEST_F(FriendServiceTest, ABlockEitherWayRefusesAddFriend) {
  // Strangers: bob blocks carol.
  ASSERT_EQ(Block(bob_, carol_, true).status().code(), CODE_OK);
  EXPECT_EQ(Add(carol_, bob_).status().code(), CODE_PERMISSION_DENIED);
  EXPECT_EQ(Add(bob_, carol_).status().code(), CODE_FAILED_PRECONDITION);
  // Friends: alice blocks bob, and then the friendship ends; neither may
  // add the other again while the block stands.
  ASSERT_EQ(Add(alice_, bob_).status().code(), CODE_OK);
  ASSERT_EQ(Block(alice_, bob_, true).status().code(), CODE_OK);
  EXPECT_EQ(Add(bob_, alice_).status().code(), CODE_ALREADY_EXISTS);  // still friends
  ASSERT_EQ(Remove(bob_, alice_).status().code(), CODE_OK);
  EXPECT_EQ(Add(bob_, alice_).status().code(), CODE_PERMISSION_DENIED);
  EXPECT_EQ(Add(alice_, bob_).status().code(), CODE_FAILED_PRECONDITION);
  EXPECT_TRUE(FriendIds(alice_).empty());
  EXPECT_TRUE(FriendIds(bob_).empty());
  EXPECT_TRUE(FriendIds(carol_).empty());
  // Unblocked, the add goes through.
  ASSERT_EQ(Block(alice_, bob_, false).status().code(), CODE_OK);
  EXPECT_EQ(Add(bob_, alice_).status().code(), CODE_OK);
}

// What group create and invite rely on: a block between friends is
// reported, in either direction, along with the friendship.
TEST_F(FriendServiceTest, CheckFriendsReportsABlockBetweenFriends) {
  ASSERT_EQ(Add(alice_, bob_).status().code(), CODE_OK);
  ASSERT_EQ(Add(alice_, carol_).status().code(), CODE_OK);
  ASSERT_EQ(Block(alice_, bob_, true).status().code(), CODE_OK);  // alice blocks
  ASSERT_EQ(Block(carol_, alice_, true).status().code(), CODE_OK);  // carol blocks alice
  Request r;
  r.mutable_check_friends()->set_owner_id(alice_);
  for (uint64_t id : {bob_, carol_}) r.mutable_check_friends()->add_user_ids(id);
  Reply reply = c_.Call(friend_, r);
  ASSERT_EQ(reply.status().code(), CODE_OK);
  EXPECT_THAT(reply.check_friends().friend_ids(), ElementsAre(bob_, carol_));
  EXPECT_THAT(reply.check_friends().blocked_ids(), ElementsAre(bob_, carol_));
}

// Group create and invite naming a blocked user (either way) are refused.
TEST_F(FriendServiceTest, GroupCreateAndInviteNamingABlockedUserAreRefused) {
  const std::string group = CoreCluster::Address(kGroupService);
  ASSERT_EQ(Add(alice_, bob_).status().code(), CODE_OK);
  ASSERT_EQ(Add(alice_, carol_).status().code(), CODE_OK);
  ASSERT_EQ(Block(bob_, alice_, true).status().code(), CODE_OK);   // bob blocks alice
  ASSERT_EQ(Block(alice_, carol_, true).status().code(), CODE_OK);  // alice blocks carol
  for (uint64_t other : {bob_, carol_}) {
    Request create;
    create.mutable_create_group()->set_name("g");
    create.mutable_create_group()->add_member_ids(other);
    EXPECT_EQ(c_.Call(group, create, alice_).status().code(), CODE_PERMISSION_DENIED) << other;
  }
  Request create;
  create.mutable_create_group()->set_name("alone");
  Reply created = c_.Call(group, create, alice_);
  ASSERT_EQ(created.status().code(), CODE_OK);
  for (uint64_t other : {bob_, carol_}) {
    Request invite;
    invite.mutable_invite()->set_group_id(created.create_group().group().group_id());
    invite.mutable_invite()->add_user_ids(other);
    EXPECT_EQ(c_.Call(group, invite, alice_).status().code(), CODE_PERMISSION_DENIED) << other;
  }
  // Lifted, the invite goes through.
  ASSERT_EQ(Block(bob_, alice_, false).status().code(), CODE_OK);
  Request invite;
  invite.mutable_invite()->set_group_id(created.create_group().group().group_id());
  invite.mutable_invite()->add_user_ids(bob_);
  EXPECT_EQ(c_.Call(group, invite, alice_).status().code(), CODE_OK);
}

}  // namespace
}  // namespace parley
