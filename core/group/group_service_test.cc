#include "core/group/group_service.h"

#include "core/group/group_keys.h"
#include "core/services.h"
#include "core/status.h"
#include "core/testing/bugs.h"
#include "fakes/core_cluster.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace parley {
namespace {

using ::testing::ElementsAre;

CoreClusterOptions SmallGroups() {
  CoreClusterOptions options;
  options.group.max_members = 4;
  return options;
}

class GroupServiceTest : public ::testing::Test {
 protected:
  GroupServiceTest() : c_(SmallGroups()) {
    owner_ = c_.Register("owner", "Owner");
    for (const char* name : {"ann", "ben", "cat", "dan", "eve"}) {
      users_.push_back(c_.Register(name, name));
    }
    stranger_ = c_.Register("stranger");
    for (uint64_t u : users_) EXPECT_TRUE(c_.Befriend(owner_, u).ok());
    c_.Settle();
  }

  Reply Do(uint64_t who, const Request& request) { return c_.Call(group_, request, who); }
  Reply Create(uint64_t who, std::vector<uint64_t> members, const std::string& name = "g",
               bool open = false) {
    Request r;
    r.mutable_create_group()->set_name(name);
    r.mutable_create_group()->set_open(open);
    for (uint64_t m : members) r.mutable_create_group()->add_member_ids(m);
    return Do(who, r);
  }
  // An open group (anyone not kicked may join); returns its id.
  uint64_t CreateOpen(uint64_t who, std::vector<uint64_t> members) {
    Reply reply = Create(who, std::move(members), "open", /*open=*/true);
    EXPECT_EQ(reply.status().code(), CODE_OK) << reply.status().message();
    EXPECT_TRUE(reply.create_group().group().open());
    return reply.create_group().group().group_id();
  }
  Reply SetOpen(uint64_t who, uint64_t group, bool open, const std::string& request_id = "") {
    Request r;
    r.mutable_set_group_open()->set_group_id(group);
    r.mutable_set_group_open()->set_open(open);
    return c_.net().Call(group_, r, who, absl::Seconds(10), request_id);
  }
  Group ReadGroup(uint64_t group) {
    Request r;
    r.mutable_group_info()->set_group_id(group);
    return c_.Call(group_, r).group_info().group();
  }
  bool Banned(uint64_t group, uint64_t user) {
    return c_.GroupStore().data().count(group_keys::Ban(group, user)) > 0;
  }
  // The reads as a client (auth_user_id = who) would make them.
  Reply InfoAs(uint64_t who, uint64_t group) {
    Request r;
    r.mutable_group_info()->set_group_id(group);
    return Do(who, r);
  }
  Reply MemberIdsAs(uint64_t who, uint64_t group) {
    Request r;
    r.mutable_member_ids()->set_group_id(group);
    return Do(who, r);
  }
  Reply IsMemberAs(uint64_t who, uint64_t group, uint64_t user) {
    Request r;
    r.mutable_is_member()->set_group_id(group);
    r.mutable_is_member()->set_user_id(user);
    return Do(who, r);
  }
  Reply UserGroupsAs(uint64_t who, uint64_t user) {
    Request r;
    r.mutable_user_groups()->set_user_id(user);
    return Do(who, r);
  }
  Reply HistoryAs(uint64_t who, uint64_t user) {
    Request r;
    r.mutable_membership_history()->set_user_id(user);
    return Do(who, r);
  }
  Reply Invite(uint64_t who, uint64_t group, std::vector<uint64_t> ids) {
    Request r;
    r.mutable_invite()->set_group_id(group);
    for (uint64_t id : ids) r.mutable_invite()->add_user_ids(id);
    return Do(who, r);
  }
  Reply Join(uint64_t who, uint64_t group) {
    Request r;
    r.mutable_join_group()->set_group_id(group);
    return Do(who, r);
  }
  Reply Leave(uint64_t who, uint64_t group) {
    Request r;
    r.mutable_leave_group()->set_group_id(group);
    return Do(who, r);
  }
  Reply Kick(uint64_t who, uint64_t group, uint64_t user) {
    Request r;
    r.mutable_kick()->set_group_id(group);
    r.mutable_kick()->set_user_id(user);
    return Do(who, r);
  }
  Reply Dissolve(uint64_t who, uint64_t group) {
    Request r;
    r.mutable_dissolve()->set_group_id(group);
    return Do(who, r);
  }
  std::vector<uint64_t> MemberIds(uint64_t group) {
    Request r;
    r.mutable_member_ids()->set_group_id(group);
    Reply reply = c_.Call(group_, r);
    return {reply.member_ids().member_ids().begin(), reply.member_ids().member_ids().end()};
  }
  bool IsMember(uint64_t group, uint64_t user) {
    Request r;
    r.mutable_is_member()->set_group_id(group);
    r.mutable_is_member()->set_user_id(user);
    return c_.Call(group_, r).is_member().is_member();
  }
  GroupInfoReply Info(uint64_t group) {
    Request r;
    r.mutable_group_info()->set_group_id(group);
    return c_.Call(group_, r).group_info();
  }
  std::vector<MembershipChanged> MembershipEvents() {
    std::vector<MembershipChanged> out;
    for (const Event& e : c_.net().bus_log()) {
      if (e.has_membership_changed()) out.push_back(e.membership_changed());
    }
    return out;
  }

  CoreCluster c_;
  const std::string group_ = CoreCluster::Address(kGroupService);
  uint64_t owner_ = 0, stranger_ = 0;
  std::vector<uint64_t> users_;
};

TEST_F(GroupServiceTest, CreateWithFriendsEmitsOneEventPerMember) {
  Reply reply = Create(owner_, {users_[1], users_[0]}, "book club");
  ASSERT_EQ(reply.status().code(), CODE_OK) << reply.status().message();
  const Group& g = reply.create_group().group();
  EXPECT_EQ(g.name(), "book club");
  EXPECT_EQ(g.owner_id(), owner_);
  EXPECT_EQ(g.member_count(), 3u);
  EXPECT_EQ(g.version(), 3u);
  EXPECT_THAT(MemberIds(g.group_id()), ElementsAre(owner_, users_[0], users_[1]));
  c_.Settle();
  std::vector<MembershipChanged> events = MembershipEvents();
  ASSERT_EQ(events.size(), 3u);
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_TRUE(events[i].joined());
    EXPECT_EQ(events[i].version(), i + 1);  // each change its own version
  }
}

TEST_F(GroupServiceTest, CreateRefusesNonFriendsBadNamesAndOversize) {
  EXPECT_EQ(Create(owner_, {users_[0], stranger_}).status().code(), CODE_PERMISSION_DENIED);
  EXPECT_EQ(Create(owner_, {}, "").status().code(), CODE_INVALID_ARGUMENT);
  EXPECT_EQ(Create(owner_, {}, std::string(65, 'n')).status().code(), CODE_INVALID_ARGUMENT);
  EXPECT_EQ(Create(owner_, users_).status().code(), CODE_RESOURCE_EXHAUSTED);  // 6 > 4
  EXPECT_EQ(Create(0, {}).status().code(), CODE_UNAUTHENTICATED);
  EXPECT_TRUE(c_.GroupStore().data().empty() ||
              c_.GroupStore().data().count(group_keys::kNextGroupId) == 0);
}

TEST_F(GroupServiceTest, CreatingWithABlockedFriendIsRefused) {
  Request block;
  block.mutable_block()->set_target_id(owner_);
  block.mutable_block()->set_blocked(true);
  ASSERT_EQ(c_.Call(CoreCluster::Address(kFriendService), block, users_[0]).status().code(),
            CODE_OK);
  EXPECT_EQ(Create(owner_, {users_[0]}).status().code(), CODE_PERMISSION_DENIED);
}

TEST_F(GroupServiceTest, InviteTakesOnlyTheInvitersFriends) {
  const uint64_t g = Create(owner_, {users_[0]}).create_group().group().group_id();
  EXPECT_EQ(Invite(owner_, g, {stranger_}).status().code(), CODE_PERMISSION_DENIED);
  Reply ok = Invite(owner_, g, {users_[1]});
  ASSERT_EQ(ok.status().code(), CODE_OK) << ok.status().message();
  EXPECT_TRUE(IsMember(g, users_[1]));
  // A non-member may not invite; ann (a member) has no friends but the owner.
  EXPECT_EQ(Invite(stranger_, g, {users_[2]}).status().code(), CODE_PERMISSION_DENIED);
  EXPECT_EQ(Invite(users_[0], g, {users_[2]}).status().code(), CODE_PERMISSION_DENIED);
  EXPECT_EQ(Invite(owner_, 999, {users_[2]}).status().code(), CODE_NOT_FOUND);
  EXPECT_EQ(Invite(owner_, g, {}).status().code(), CODE_INVALID_ARGUMENT);
  EXPECT_FALSE(IsMember(g, stranger_));
}

TEST_F(GroupServiceTest, AFullGroupRefusesInvitesAndJoins) {
  const uint64_t g = CreateOpen(owner_, {users_[0], users_[1], users_[2]});
  EXPECT_EQ(Invite(owner_, g, {users_[3], users_[4]}).status().code(), CODE_RESOURCE_EXHAUSTED);
  EXPECT_EQ(Join(stranger_, g).status().code(), CODE_RESOURCE_EXHAUSTED);
  EXPECT_EQ(MemberIds(g).size(), 4u);
  ASSERT_EQ(Leave(users_[0], g).status().code(), CODE_OK);
  EXPECT_EQ(Join(stranger_, g).status().code(), CODE_OK);
  EXPECT_EQ(MemberIds(g).size(), 4u);
}

// A request_id names one request: a retry repeats it and gets the first
// answer; the same id on another operation is refused, not answered with the
// first one's reply (which would claim an effect that never happened).
TEST_F(GroupServiceTest, ARequestIdReusedForAnotherOperationIsRefused) {
  const uint64_t g = CreateOpen(owner_, {});
  ASSERT_EQ(SetOpen(owner_, g, false, "rid-1").status().code(), CODE_OK);
  EXPECT_EQ(SetOpen(owner_, g, false, "rid-1").status().code(), CODE_OK);  // a retry
  Request kick;
  kick.mutable_kick()->set_group_id(g);
  kick.mutable_kick()->set_user_id(users_[0]);
  const Reply reused = c_.net().Call(group_, kick, owner_, absl::Seconds(10), "rid-1");
  EXPECT_EQ(reused.status().code(), CODE_INVALID_ARGUMENT) << reused.status().message();
  EXPECT_NE(reused.status().message().find("another operation"), std::string::npos);
}

TEST_F(GroupServiceTest, JoinAndLeave) {
  const uint64_t g = CreateOpen(owner_, {});
  ASSERT_EQ(Join(stranger_, g).status().code(), CODE_OK);
  EXPECT_EQ(Join(stranger_, g).status().code(), CODE_ALREADY_EXISTS);
  EXPECT_TRUE(IsMember(g, stranger_));
  ASSERT_EQ(Leave(stranger_, g).status().code(), CODE_OK);
  EXPECT_FALSE(IsMember(g, stranger_));
  EXPECT_EQ(Leave(stranger_, g).status().code(), CODE_NOT_FOUND);
  EXPECT_EQ(Leave(owner_, g).status().code(), CODE_FAILED_PRECONDITION);
  EXPECT_EQ(Join(stranger_, 999).status().code(), CODE_NOT_FOUND);
}

TEST_F(GroupServiceTest, OnlyTheOwnerKicks) {
  const uint64_t g = Create(owner_, {users_[0], users_[1]}).create_group().group().group_id();
  EXPECT_EQ(Kick(users_[0], g, users_[1]).status().code(), CODE_PERMISSION_DENIED);
  EXPECT_TRUE(IsMember(g, users_[1]));
  EXPECT_EQ(Kick(owner_, g, owner_).status().code(), CODE_INVALID_ARGUMENT);
  EXPECT_EQ(Kick(owner_, g, stranger_).status().code(), CODE_NOT_FOUND);
  ASSERT_EQ(Kick(owner_, g, users_[1]).status().code(), CODE_OK);
  EXPECT_FALSE(IsMember(g, users_[1]));
  c_.Settle();
  const MembershipChanged last = MembershipEvents().back();
  EXPECT_EQ(last.user_id(), users_[1]);
  EXPECT_FALSE(last.joined());
  EXPECT_EQ(last.reason(), MembershipChanged::KICK);
}

TEST_F(GroupServiceTest, OnlyTheOwnerDissolvesAndThenNothingIsMember) {
  const uint64_t g = Create(owner_, {users_[0]}).create_group().group().group_id();
  EXPECT_EQ(Dissolve(users_[0], g).status().code(), CODE_PERMISSION_DENIED);
  ASSERT_EQ(Dissolve(owner_, g).status().code(), CODE_OK);
  EXPECT_FALSE(IsMember(g, owner_));
  EXPECT_FALSE(IsMember(g, users_[0]));
  EXPECT_TRUE(Info(g).group().dissolved());
  EXPECT_EQ(Info(g).members_size(), 0);
  EXPECT_EQ(Join(stranger_, g).status().code(), CODE_FAILED_PRECONDITION);
  EXPECT_EQ(Dissolve(owner_, g).status().code(), CODE_FAILED_PRECONDITION);
  Request groups;
  groups.mutable_user_groups()->set_user_id(users_[0]);
  EXPECT_EQ(c_.Call(group_, groups).user_groups().group_ids_size(), 0);
}

TEST_F(GroupServiceTest, UserGroupsAndInfo) {
  const uint64_t g1 = Create(owner_, {users_[0]}, "one").create_group().group().group_id();
  const uint64_t g2 = Create(owner_, {}, "two", /*open=*/true).create_group().group().group_id();
  ASSERT_EQ(Join(users_[0], g2).status().code(), CODE_OK);
  Request r;
  r.mutable_user_groups()->set_user_id(users_[0]);
  Reply reply = c_.Call(group_, r);
  EXPECT_THAT(reply.user_groups().group_ids(), ElementsAre(g1, g2));
  c_.Settle();
  GroupInfoReply info = Info(g1);
  EXPECT_EQ(info.group().name(), "one");
  ASSERT_EQ(info.members_size(), 2);
  EXPECT_TRUE(info.members(0).is_owner());
  EXPECT_EQ(info.members(1).nickname(), "ann");
  Request missing;
  missing.mutable_group_info()->set_group_id(12345);
  EXPECT_EQ(c_.Call(group_, missing).status().code(), CODE_NOT_FOUND);
}

TEST_F(GroupServiceTest, MembershipHistoryKeepsEveryInterval) {
  const uint64_t g = CreateOpen(owner_, {});                                // v1
  ASSERT_EQ(Join(stranger_, g).status().code(), CODE_OK);                  // v2
  ASSERT_EQ(Leave(stranger_, g).status().code(), CODE_OK);                 // v3
  ASSERT_EQ(Join(users_[0], g).status().code(), CODE_OK);                  // v4
  ASSERT_EQ(Join(stranger_, g).status().code(), CODE_OK);                  // v5
  Request r;
  r.mutable_membership_history()->set_user_id(stranger_);
  Reply reply = c_.Call(group_, r);
  ASSERT_EQ(reply.membership_history().groups_size(), 1);
  const GroupMembership& m = reply.membership_history().groups(0);
  EXPECT_EQ(m.group_id(), g);
  ASSERT_EQ(m.intervals_size(), 2);
  EXPECT_EQ(m.intervals(0).join_version(), 2u);
  EXPECT_EQ(m.intervals(0).leave_version(), 3u);
  EXPECT_EQ(m.intervals(1).join_version(), 5u);
  EXPECT_EQ(m.intervals(1).leave_version(), 0u);
}

TEST_F(GroupServiceTest, RetriedCreateMakesOneGroup) {
  Request r;
  r.mutable_create_group()->set_name("once");
  Reply a = c_.net().Call(group_, r, owner_, absl::Seconds(10), "client#create-1");
  Reply b = c_.net().Call(group_, r, owner_, absl::Seconds(10), "client#create-1");
  ASSERT_EQ(a.status().code(), CODE_OK);
  EXPECT_EQ(a.create_group().group().group_id(), b.create_group().group().group_id());
  Request groups;
  groups.mutable_user_groups()->set_user_id(owner_);
  EXPECT_EQ(c_.Call(group_, groups).user_groups().group_ids_size(), 1);
}

TEST_F(GroupServiceTest, MemberEntriesFollowProfileChanges) {
  const uint64_t g = Create(owner_, {users_[0]}).create_group().group().group_id();
  Request update;
  update.mutable_update_profile()->set_nickname("Annie");
  update.mutable_update_profile()->set_avatar("annie.png");
  ASSERT_EQ(c_.Call(CoreCluster::Address(kUserService), update, users_[0]).status().code(),
            CODE_OK);
  c_.Settle();
  GroupInfoReply info = Info(g);
  ASSERT_EQ(info.members_size(), 2);
  EXPECT_EQ(info.members(1).nickname(), "Annie");
  EXPECT_EQ(info.members(1).avatar(), "annie.png");
  EXPECT_EQ(info.members(1).profile_version(), 2u);
}

TEST_F(GroupServiceTest, DuplicateAndOlderProfileEventsChangeNothing) {
  const uint64_t g = Create(owner_, {users_[0]}).create_group().group().group_id();
  Request update;
  update.mutable_update_profile()->set_nickname("Annie");
  c_.Call(CoreCluster::Address(kUserService), update, users_[0]);
  c_.Settle();
  const auto before = c_.GroupStore().data();
  for (auto [version, nickname] : {std::make_pair(2, "Annie"), std::make_pair(1, "ann")}) {
    Event e;
    e.set_event_id("test/" + std::to_string(version));
    e.set_version(version);
    e.mutable_user_profile_changed()->set_user_id(users_[0]);
    e.mutable_user_profile_changed()->set_version(version);
    e.mutable_user_profile_changed()->set_nickname(nickname);
    c_.net().InjectEvent(group_, e);
  }
  c_.Settle();
  EXPECT_EQ(c_.GroupStore().data(), before);
  EXPECT_EQ(Info(g).members(1).nickname(), "Annie");
  EXPECT_EQ(c_.net().NodeAs<GroupService>(group_)->stats().profile_events_ignored, 2u);
}

// ---- access policy: open and closed groups, kicks, members-only reads -------------------

TEST_F(GroupServiceTest, CreateTakesOpenFromTheRequestAndDefaultsToClosed) {
  Reply closed = Create(owner_, {users_[0]});
  ASSERT_EQ(closed.status().code(), CODE_OK) << closed.status().message();
  EXPECT_FALSE(closed.create_group().group().open());
  Reply open = Create(owner_, {users_[0]}, "o", /*open=*/true);
  ASSERT_EQ(open.status().code(), CODE_OK) << open.status().message();
  EXPECT_TRUE(open.create_group().group().open());
  EXPECT_TRUE(ReadGroup(open.create_group().group().group_id()).open());
}

TEST_F(GroupServiceTest, OnlyTheOwnerOpensOrClosesAndTheVersionStays) {
  const uint64_t g = Create(owner_, {users_[0]}).create_group().group().group_id();
  const uint64_t version = ReadGroup(g).version();
  c_.Settle();
  const size_t events = c_.net().bus_log().size();
  EXPECT_EQ(SetOpen(owner_, 999, true).status().code(), CODE_NOT_FOUND);
  EXPECT_EQ(SetOpen(users_[0], g, true).status().code(), CODE_PERMISSION_DENIED);  // a member
  EXPECT_EQ(SetOpen(stranger_, g, true).status().code(), CODE_PERMISSION_DENIED);
  EXPECT_EQ(SetOpen(0, g, true).status().code(), CODE_UNAUTHENTICATED);
  EXPECT_FALSE(ReadGroup(g).open());
  Reply opened = SetOpen(owner_, g, true);
  ASSERT_EQ(opened.status().code(), CODE_OK) << opened.status().message();
  EXPECT_TRUE(opened.membership().group().open());
  EXPECT_EQ(opened.membership().group().version(), version);
  EXPECT_TRUE(ReadGroup(g).open());
  EXPECT_EQ(ReadGroup(g).version(), version);  // not a membership change
  ASSERT_EQ(SetOpen(owner_, g, true).status().code(), CODE_OK);  // already so: fine
  ASSERT_EQ(SetOpen(owner_, g, false).status().code(), CODE_OK);
  EXPECT_FALSE(ReadGroup(g).open());
  EXPECT_EQ(ReadGroup(g).version(), version);
  c_.Settle();
  EXPECT_EQ(c_.net().bus_log().size(), events);  // no event either
  ASSERT_EQ(Dissolve(owner_, g).status().code(), CODE_OK);
  EXPECT_EQ(SetOpen(owner_, g, true).status().code(), CODE_FAILED_PRECONDITION);
  EXPECT_EQ(SetOpen(stranger_, g, true).status().code(), CODE_FAILED_PRECONDITION);  // before owner
}

TEST_F(GroupServiceTest, ARetriedSetGroupOpenIsAnsweredFromTheRequestLog) {
  const uint64_t g = Create(owner_, {}).create_group().group().group_id();
  ASSERT_EQ(SetOpen(owner_, g, true, "client#open-1").status().code(), CODE_OK);
  ASSERT_EQ(SetOpen(owner_, g, false, "client#close-1").status().code(), CODE_OK);
  // A late retry of the first call must not reopen the group.
  Reply retry = SetOpen(owner_, g, true, "client#open-1");
  ASSERT_EQ(retry.status().code(), CODE_OK);
  EXPECT_TRUE(retry.membership().group().open());  // the recorded reply
  EXPECT_FALSE(ReadGroup(g).open());
  EXPECT_EQ(Join(stranger_, g).status().code(), CODE_PERMISSION_DENIED);
}

TEST_F(GroupServiceTest, AClosedGroupTakesMembersOnlyByInvitation) {
  const uint64_t g = Create(owner_, {users_[0]}).create_group().group().group_id();
  EXPECT_EQ(Join(stranger_, g).status().code(), CODE_PERMISSION_DENIED);
  EXPECT_EQ(Join(users_[1], g).status().code(), CODE_PERMISSION_DENIED);  // a friend too
  EXPECT_FALSE(IsMember(g, stranger_));
  ASSERT_EQ(Invite(owner_, g, {users_[1]}).status().code(), CODE_OK);
  EXPECT_TRUE(IsMember(g, users_[1]));
  ASSERT_EQ(SetOpen(owner_, g, true).status().code(), CODE_OK);
  ASSERT_EQ(Join(stranger_, g).status().code(), CODE_OK);
  EXPECT_TRUE(IsMember(g, stranger_));
  ASSERT_EQ(SetOpen(owner_, g, false).status().code(), CODE_OK);
  EXPECT_EQ(Join(users_[2], g).status().code(), CODE_PERMISSION_DENIED);
}

TEST_F(GroupServiceTest, JoinChecksInTheSpecifiedOrder) {
  // No group, then dissolved, before anything else.
  EXPECT_EQ(Join(stranger_, 999).status().code(), CODE_NOT_FOUND);
  const uint64_t dissolved = Create(owner_, {}).create_group().group().group_id();
  ASSERT_EQ(Dissolve(owner_, dissolved).status().code(), CODE_OK);
  EXPECT_EQ(Join(stranger_, dissolved).status().code(), CODE_FAILED_PRECONDITION);  // and closed
  // Already a member before closed.
  const uint64_t closed = Create(owner_, {users_[0]}).create_group().group().group_id();
  EXPECT_EQ(Join(users_[0], closed).status().code(), CODE_ALREADY_EXISTS);
  // Closed before full; kicked before full (max_members is 4).
  const uint64_t full = Create(owner_, {users_[0], users_[1], users_[2]}).create_group()
                            .group().group_id();
  EXPECT_EQ(Join(stranger_, full).status().code(), CODE_PERMISSION_DENIED);
  ASSERT_EQ(SetOpen(owner_, full, true).status().code(), CODE_OK);
  EXPECT_EQ(Join(stranger_, full).status().code(), CODE_RESOURCE_EXHAUSTED);
  ASSERT_EQ(Kick(owner_, full, users_[2]).status().code(), CODE_OK);
  ASSERT_EQ(Join(stranger_, full).status().code(), CODE_OK);  // full again
  EXPECT_EQ(Join(users_[2], full).status().code(), CODE_PERMISSION_DENIED);  // kicked, not full
}

TEST_F(GroupServiceTest, AKickedUserMayNotRejoinUntilInvited) {
  const uint64_t g = CreateOpen(owner_, {users_[0]});
  ASSERT_EQ(Join(stranger_, g).status().code(), CODE_OK);
  ASSERT_EQ(Kick(owner_, g, stranger_).status().code(), CODE_OK);
  EXPECT_TRUE(Banned(g, stranger_));
  EXPECT_EQ(Join(stranger_, g).status().code(), CODE_PERMISSION_DENIED);
  EXPECT_FALSE(IsMember(g, stranger_));
  // Kicking a friend, then inviting it back, lifts the ban for good.
  ASSERT_EQ(Kick(owner_, g, users_[0]).status().code(), CODE_OK);
  EXPECT_EQ(Join(users_[0], g).status().code(), CODE_PERMISSION_DENIED);
  ASSERT_EQ(Invite(owner_, g, {users_[0]}).status().code(), CODE_OK);
  EXPECT_FALSE(Banned(g, users_[0]));
  EXPECT_TRUE(IsMember(g, users_[0]));
  ASSERT_EQ(Leave(users_[0], g).status().code(), CODE_OK);
  EXPECT_EQ(Join(users_[0], g).status().code(), CODE_OK);
  // The ban is per group.
  const uint64_t other = CreateOpen(owner_, {});
  EXPECT_EQ(Join(stranger_, other).status().code(), CODE_OK);
}

TEST_F(GroupServiceTest, LeavingIsNotABan) {
  const uint64_t g = CreateOpen(owner_, {});
  ASSERT_EQ(Join(stranger_, g).status().code(), CODE_OK);
  ASSERT_EQ(Leave(stranger_, g).status().code(), CODE_OK);
  EXPECT_FALSE(Banned(g, stranger_));
  EXPECT_EQ(Join(stranger_, g).status().code(), CODE_OK);
}

TEST_F(GroupServiceTest, CreateClearsABanOfItsMembers) {
  // Group ids are never reused, so only a stray record can be there: plant
  // one for the id the next group gets, and see Create delete it.
  const uint64_t g = Create(owner_, {}).create_group().group().group_id();
  WriteBatch stray;
  stray.Put(group_keys::Ban(g + 1, users_[0]), "");
  ASSERT_TRUE(c_.GroupStore().Write(stray).ok());
  Reply next = Create(owner_, {users_[0]});
  ASSERT_EQ(next.create_group().group().group_id(), g + 1);
  EXPECT_FALSE(Banned(g + 1, users_[0]));
}

TEST_F(GroupServiceTest, PlantedJoinIgnoresPolicyLetsAnyoneJoin) {
  const uint64_t closed = Create(owner_, {}).create_group().group().group_id();
  const uint64_t open = CreateOpen(owner_, {users_[0]});
  ASSERT_EQ(Kick(owner_, open, users_[0]).status().code(), CODE_OK);
  ScopedBug bug(Bug::kJoinIgnoresPolicy);
  EXPECT_EQ(Join(stranger_, closed).status().code(), CODE_OK);
  EXPECT_EQ(Join(users_[0], open).status().code(), CODE_OK);
}

TEST_F(GroupServiceTest, PlantedKickWithoutBanLetsTheKickedRejoin) {
  const uint64_t g = CreateOpen(owner_, {users_[0]});
  {
    ScopedBug bug(Bug::kKickWithoutBan);
    ASSERT_EQ(Kick(owner_, g, users_[0]).status().code(), CODE_OK);
  }
  EXPECT_FALSE(Banned(g, users_[0]));
  EXPECT_EQ(Join(users_[0], g).status().code(), CODE_OK);
}

TEST_F(GroupServiceTest, GroupInfoAndMemberIdsAreForMembersOnly) {
  const uint64_t g = CreateOpen(owner_, {users_[0]});
  for (uint64_t member : {owner_, users_[0]}) {
    Reply info = InfoAs(member, g);
    ASSERT_EQ(info.status().code(), CODE_OK) << info.status().message();
    EXPECT_EQ(info.group_info().members_size(), 2);
    Reply ids = MemberIdsAs(member, g);
    ASSERT_EQ(ids.status().code(), CODE_OK) << ids.status().message();
    EXPECT_THAT(ids.member_ids().member_ids(), ElementsAre(owner_, users_[0]));
  }
  // A friend of the owner is no member.
  EXPECT_EQ(InfoAs(users_[1], g).status().code(), CODE_PERMISSION_DENIED);
  EXPECT_EQ(MemberIdsAs(users_[1], g).status().code(), CODE_PERMISSION_DENIED);
  EXPECT_EQ(InfoAs(stranger_, g).status().code(), CODE_PERMISSION_DENIED);
  EXPECT_FALSE(InfoAs(stranger_, g).has_group_info());
  EXPECT_EQ(InfoAs(stranger_, 999).status().code(), CODE_NOT_FOUND);
  EXPECT_EQ(MemberIdsAs(stranger_, 999).status().code(), CODE_NOT_FOUND);
  // A former member no longer sees them.
  ASSERT_EQ(Join(stranger_, g).status().code(), CODE_OK);
  EXPECT_EQ(InfoAs(stranger_, g).status().code(), CODE_OK);
  ASSERT_EQ(Leave(stranger_, g).status().code(), CODE_OK);
  EXPECT_EQ(InfoAs(stranger_, g).status().code(), CODE_PERMISSION_DENIED);
  EXPECT_EQ(MemberIdsAs(stranger_, g).status().code(), CODE_PERMISSION_DENIED);
  // A dissolved group has no members: nobody sees it as a client.
  ASSERT_EQ(Dissolve(owner_, g).status().code(), CODE_OK);
  EXPECT_EQ(InfoAs(owner_, g).status().code(), CODE_PERMISSION_DENIED);
  EXPECT_EQ(MemberIdsAs(owner_, g).status().code(), CODE_PERMISSION_DENIED);
  // Internal callers (auth_user_id 0) are answered as before.
  EXPECT_EQ(InfoAs(0, g).status().code(), CODE_OK);
  EXPECT_TRUE(InfoAs(0, g).group_info().group().dissolved());
  EXPECT_EQ(MemberIdsAs(0, g).status().code(), CODE_OK);
}

TEST_F(GroupServiceTest, IsMemberIsForMembersOrAboutOneself) {
  const uint64_t g = Create(owner_, {users_[0]}).create_group().group().group_id();
  Reply self = IsMemberAs(stranger_, g, stranger_);
  ASSERT_EQ(self.status().code(), CODE_OK) << self.status().message();
  EXPECT_FALSE(self.is_member().is_member());
  Reply member = IsMemberAs(users_[0], g, owner_);
  ASSERT_EQ(member.status().code(), CODE_OK);
  EXPECT_TRUE(member.is_member().is_member());
  EXPECT_EQ(IsMemberAs(users_[0], g, stranger_).status().code(), CODE_OK);
  EXPECT_EQ(IsMemberAs(stranger_, g, owner_).status().code(), CODE_PERMISSION_DENIED);
  EXPECT_EQ(IsMemberAs(stranger_, g, users_[0]).status().code(), CODE_PERMISSION_DENIED);
  EXPECT_EQ(IsMemberAs(stranger_, 999, stranger_).status().code(), CODE_NOT_FOUND);
  EXPECT_EQ(IsMemberAs(0, g, users_[0]).status().code(), CODE_OK);  // internal
}

TEST_F(GroupServiceTest, PlantedInfoForAnyoneAnswersNonMembers) {
  const uint64_t g = Create(owner_, {users_[0]}).create_group().group().group_id();
  ScopedBug bug(Bug::kInfoForAnyone);
  EXPECT_EQ(InfoAs(stranger_, g).status().code(), CODE_OK);
  EXPECT_EQ(MemberIdsAs(stranger_, g).status().code(), CODE_OK);
  EXPECT_EQ(IsMemberAs(stranger_, g, owner_).status().code(), CODE_OK);
}

TEST_F(GroupServiceTest, AUsersGroupsAndHistoryAreItsOwn) {
  const uint64_t g = Create(owner_, {users_[0]}).create_group().group().group_id();
  for (uint64_t named : {uint64_t{0}, users_[0]}) {
    Reply groups = UserGroupsAs(users_[0], named);
    ASSERT_EQ(groups.status().code(), CODE_OK) << groups.status().message();
    EXPECT_THAT(groups.user_groups().group_ids(), ElementsAre(g));
    Reply history = HistoryAs(users_[0], named);
    ASSERT_EQ(history.status().code(), CODE_OK) << history.status().message();
    ASSERT_EQ(history.membership_history().groups_size(), 1);
    EXPECT_EQ(history.membership_history().groups(0).group_id(), g);
  }
  // Not even a fellow member's.
  EXPECT_EQ(UserGroupsAs(owner_, users_[0]).status().code(), CODE_PERMISSION_DENIED);
  EXPECT_EQ(UserGroupsAs(stranger_, users_[0]).status().code(), CODE_PERMISSION_DENIED);
  EXPECT_EQ(HistoryAs(owner_, users_[0]).status().code(), CODE_PERMISSION_DENIED);
  EXPECT_EQ(HistoryAs(stranger_, users_[0]).status().code(), CODE_PERMISSION_DENIED);
  // Internal callers name anyone (and must name someone).
  EXPECT_THAT(UserGroupsAs(0, users_[0]).user_groups().group_ids(), ElementsAre(g));
  EXPECT_EQ(HistoryAs(0, users_[0]).membership_history().groups_size(), 1);
  EXPECT_EQ(UserGroupsAs(0, 0).status().code(), CODE_INVALID_ARGUMENT);
}

TEST_F(GroupServiceTest, CreateAndInviteRefuseABlockEitherWay) {
  // The owner blocks a friend: creating with it, or inviting it, is refused.
  Request block;
  block.mutable_block()->set_target_id(users_[0]);
  block.mutable_block()->set_blocked(true);
  ASSERT_EQ(c_.Call(CoreCluster::Address(kFriendService), block, owner_).status().code(),
            CODE_OK);
  EXPECT_EQ(Create(owner_, {users_[0]}).status().code(), CODE_PERMISSION_DENIED);
  const uint64_t g = Create(owner_, {users_[1]}).create_group().group().group_id();
  EXPECT_EQ(Invite(owner_, g, {users_[0]}).status().code(), CODE_PERMISSION_DENIED);
  // A friend blocks the owner: the same.
  block.mutable_block()->set_target_id(owner_);
  ASSERT_EQ(c_.Call(CoreCluster::Address(kFriendService), block, users_[2]).status().code(),
            CODE_OK);
  EXPECT_EQ(Invite(owner_, g, {users_[2]}).status().code(), CODE_PERMISSION_DENIED);
  EXPECT_EQ(Invite(owner_, g, {users_[3], users_[2]}).status().code(), CODE_PERMISSION_DENIED);
  EXPECT_FALSE(IsMember(g, users_[0]));
  EXPECT_FALSE(IsMember(g, users_[2]));
  EXPECT_FALSE(IsMember(g, users_[3]));  // refused as a whole
  // Unblocked friends are still invited.
  ASSERT_EQ(Invite(owner_, g, {users_[3]}).status().code(), CODE_OK);
}


Reply Rename(CoreCluster& c, const std::string& group, uint64_t who, uint64_t g,
             const std::string& name, const std::string& request_id = "") {
  Request r;
  r.mutable_rename_group()->set_group_id(g);
  r.mutable_rename_group()->set_name(name);
  return c.net().Call(group, r, who, absl::Seconds(10), request_id);
}
Reply Transfer(CoreCluster& c, const std::string& group, uint64_t who, uint64_t g, uint64_t to,
               const std::string& request_id = "") {
  Request r;
  r.mutable_transfer_ownership()->set_group_id(g);
  r.mutable_transfer_ownership()->set_new_owner_id(to);
  return c.net().Call(group, r, who, absl::Seconds(10), request_id);
}

TEST_F(GroupServiceTest, OnlyTheOwnerRenamesInTheDocumentedOrderAndTheVersionStays) {
  const uint64_t g = Create(owner_, {users_[0]}, "before").create_group().group().group_id();
  const uint64_t version = ReadGroup(g).version();
  c_.Settle();
  const size_t events = c_.net().bus_log().size();
  // No group, then (for the owner) a bad name; a non-owner is refused before
  // its arguments are looked at.
  EXPECT_EQ(Rename(c_, group_, owner_, 999, "x").status().code(), CODE_NOT_FOUND);
  EXPECT_EQ(Rename(c_, group_, users_[0], g, "x").status().code(), CODE_PERMISSION_DENIED);
  EXPECT_EQ(Rename(c_, group_, stranger_, g, "").status().code(), CODE_PERMISSION_DENIED);
  EXPECT_EQ(Rename(c_, group_, 0, g, "x").status().code(), CODE_UNAUTHENTICATED);
  EXPECT_EQ(Rename(c_, group_, owner_, g, "").status().code(), CODE_INVALID_ARGUMENT);
  EXPECT_EQ(Rename(c_, group_, owner_, g, std::string(65, 'n')).status().code(),
            CODE_INVALID_ARGUMENT);
  EXPECT_EQ(ReadGroup(g).name(), "before");
  Reply renamed = Rename(c_, group_, owner_, g, std::string(64, 'n'));
  ASSERT_EQ(renamed.status().code(), CODE_OK) << renamed.status().message();
  EXPECT_EQ(renamed.membership().group().name(), std::string(64, 'n'));
  EXPECT_EQ(renamed.membership().group().version(), version);
  ASSERT_EQ(Rename(c_, group_, owner_, g, "after").status().code(), CODE_OK);
  EXPECT_EQ(ReadGroup(g).name(), "after");
  EXPECT_EQ(ReadGroup(g).version(), version);  // not a membership change
  c_.Settle();
  EXPECT_EQ(c_.net().bus_log().size(), events);  // no event either
  ASSERT_EQ(Dissolve(owner_, g).status().code(), CODE_OK);
  EXPECT_EQ(Rename(c_, group_, owner_, g, "late").status().code(), CODE_FAILED_PRECONDITION);
  EXPECT_EQ(Rename(c_, group_, stranger_, g, "").status().code(), CODE_FAILED_PRECONDITION);
}

TEST_F(GroupServiceTest, ARetriedRenameIsAnsweredFromTheRequestLog) {
  const uint64_t g = Create(owner_, {}, "one").create_group().group().group_id();
  ASSERT_EQ(Rename(c_, group_, owner_, g, "two", "rid-two").status().code(), CODE_OK);
  ASSERT_EQ(Rename(c_, group_, owner_, g, "three", "rid-three").status().code(), CODE_OK);
  Reply retry = Rename(c_, group_, owner_, g, "two", "rid-two");  // a late retry
  ASSERT_EQ(retry.status().code(), CODE_OK);
  EXPECT_EQ(retry.membership().group().name(), "two");  // the recorded reply
  EXPECT_EQ(ReadGroup(g).name(), "three");
}

TEST_F(GroupServiceTest, TransferRefusesInTheDocumentedOrder) {
  const uint64_t g = Create(owner_, {users_[0]}).create_group().group().group_id();
  EXPECT_EQ(Transfer(c_, group_, owner_, 999, users_[0]).status().code(), CODE_NOT_FOUND);
  EXPECT_EQ(Transfer(c_, group_, users_[0], g, users_[0]).status().code(),
            CODE_PERMISSION_DENIED);
  EXPECT_EQ(Transfer(c_, group_, stranger_, g, 0).status().code(), CODE_PERMISSION_DENIED);
  EXPECT_EQ(Transfer(c_, group_, 0, g, users_[0]).status().code(), CODE_UNAUTHENTICATED);
  EXPECT_EQ(Transfer(c_, group_, owner_, g, 0).status().code(), CODE_INVALID_ARGUMENT);
  EXPECT_EQ(Transfer(c_, group_, owner_, g, owner_).status().code(), CODE_INVALID_ARGUMENT);
  EXPECT_EQ(Transfer(c_, group_, owner_, g, stranger_).status().code(),
            CODE_FAILED_PRECONDITION);
  ASSERT_EQ(Leave(users_[0], g).status().code(), CODE_OK);
  EXPECT_EQ(Transfer(c_, group_, owner_, g, users_[0]).status().code(),
            CODE_FAILED_PRECONDITION);  // a former member
  EXPECT_EQ(ReadGroup(g).owner_id(), owner_);
  ASSERT_EQ(Dissolve(owner_, g).status().code(), CODE_OK);
  EXPECT_EQ(Transfer(c_, group_, owner_, g, users_[0]).status().code(),
            CODE_FAILED_PRECONDITION);
  EXPECT_EQ(Transfer(c_, group_, stranger_, g, 0).status().code(), CODE_FAILED_PRECONDITION);
}

TEST_F(GroupServiceTest, AfterATransferOnlyTheNewOwnerRulesAndTheOldMayLeave) {
  const uint64_t g =
      Create(owner_, {users_[0], users_[1], users_[2]}).create_group().group().group_id();
  const uint64_t version = ReadGroup(g).version();
  c_.Settle();
  const size_t events = c_.net().bus_log().size();
  Reply moved = Transfer(c_, group_, owner_, g, users_[0]);
  ASSERT_EQ(moved.status().code(), CODE_OK) << moved.status().message();
  EXPECT_EQ(moved.membership().group().owner_id(), users_[0]);
  EXPECT_EQ(moved.membership().group().version(), version);  // not a membership change
  EXPECT_EQ(ReadGroup(g).owner_id(), users_[0]);
  EXPECT_EQ(ReadGroup(g).version(), version);
  c_.Settle();
  EXPECT_EQ(c_.net().bus_log().size(), events);  // no event
  // Both member entries changed with the group record.
  const GroupInfoReply info = Info(g);
  for (const Member& m : info.members()) {
    EXPECT_EQ(m.is_owner(), m.user_id() == users_[0]) << m.user_id();
  }
  // The old owner is now an ordinary member.
  EXPECT_EQ(Kick(owner_, g, users_[1]).status().code(), CODE_PERMISSION_DENIED);
  EXPECT_TRUE(IsMember(g, users_[1]));
  EXPECT_EQ(SetOpen(owner_, g, true).status().code(), CODE_PERMISSION_DENIED);
  EXPECT_EQ(Rename(c_, group_, owner_, g, "mine").status().code(), CODE_PERMISSION_DENIED);
  EXPECT_EQ(Transfer(c_, group_, owner_, g, users_[2]).status().code(), CODE_PERMISSION_DENIED);
  EXPECT_EQ(Dissolve(owner_, g).status().code(), CODE_PERMISSION_DENIED);
  // The new owner kicks, opens, renames; may not leave or kick itself.
  ASSERT_EQ(Kick(users_[0], g, users_[1]).status().code(), CODE_OK);
  EXPECT_FALSE(IsMember(g, users_[1]));
  EXPECT_EQ(Kick(users_[0], g, users_[0]).status().code(), CODE_INVALID_ARGUMENT);
  ASSERT_EQ(SetOpen(users_[0], g, true).status().code(), CODE_OK);
  ASSERT_EQ(Rename(c_, group_, users_[0], g, "new").status().code(), CODE_OK);
  EXPECT_EQ(Leave(users_[0], g).status().code(), CODE_FAILED_PRECONDITION);
  // The old owner leaves like any member.
  ASSERT_EQ(Leave(owner_, g).status().code(), CODE_OK);
  EXPECT_FALSE(IsMember(g, owner_));
  // Handing it on again, then dissolving, is the current owner's.
  ASSERT_EQ(Transfer(c_, group_, users_[0], g, users_[2]).status().code(), CODE_OK);
  EXPECT_EQ(Dissolve(users_[0], g).status().code(), CODE_PERMISSION_DENIED);
  ASSERT_EQ(Dissolve(users_[2], g).status().code(), CODE_OK);
}

TEST_F(GroupServiceTest, ARetriedTransferIsAnsweredFromTheRequestLog) {
  const uint64_t g = Create(owner_, {users_[0]}).create_group().group().group_id();
  ASSERT_EQ(Transfer(c_, group_, owner_, g, users_[0], "rid-t").status().code(), CODE_OK);
  ASSERT_EQ(Transfer(c_, group_, users_[0], g, owner_, "rid-back").status().code(), CODE_OK);
  // A late retry of the first call does not hand the group over again.
  Reply retry = Transfer(c_, group_, owner_, g, users_[0], "rid-t");
  ASSERT_EQ(retry.status().code(), CODE_OK);
  EXPECT_EQ(retry.membership().group().owner_id(), users_[0]);  // the recorded reply
  EXPECT_EQ(ReadGroup(g).owner_id(), owner_);
}

}  // namespace
}  // namespace parley
