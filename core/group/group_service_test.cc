#include "core/group/group_service.h"

#include "core/group/group_keys.h"
#include "core/services.h"
#include "core/status.h"
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
  Reply Create(uint64_t who, std::vector<uint64_t> members, const std::string& name = "g") {
    Request r;
    r.mutable_create_group()->set_name(name);
    for (uint64_t m : members) r.mutable_create_group()->add_member_ids(m);
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
  const uint64_t g =
      Create(owner_, {users_[0], users_[1], users_[2]}).create_group().group().group_id();
  EXPECT_EQ(Invite(owner_, g, {users_[3], users_[4]}).status().code(), CODE_RESOURCE_EXHAUSTED);
  EXPECT_EQ(Join(stranger_, g).status().code(), CODE_RESOURCE_EXHAUSTED);
  EXPECT_EQ(MemberIds(g).size(), 4u);
  ASSERT_EQ(Leave(users_[0], g).status().code(), CODE_OK);
  EXPECT_EQ(Join(stranger_, g).status().code(), CODE_OK);
  EXPECT_EQ(MemberIds(g).size(), 4u);
}

TEST_F(GroupServiceTest, JoinAndLeave) {
  const uint64_t g = Create(owner_, {}).create_group().group().group_id();
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
  const uint64_t g2 = Create(owner_, {}, "two").create_group().group().group_id();
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
  const uint64_t g = Create(owner_, {}).create_group().group().group_id();  // v1
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

}  // namespace
}  // namespace parley
