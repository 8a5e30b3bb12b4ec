// The access-policy model and its checkers (access_control, privacy, recall)
// and the unread checker's settled-state counts, on hand-built histories: one
// that passes, and violations each must catch.
#include "sim/policy.h"

#include <string>
#include <vector>

#include "core/proto/common.pb.h"
#include "gtest/gtest.h"
#include "sim/checkers.h"

namespace parley {
namespace sim {
namespace {

// ---- Timeline ---------------------------------------------------------------------------------

TEST(TimelineTest, KnownBeforeAndAfterAChange) {
  Timeline t;
  t.Change(10, 20, true);
  EXPECT_EQ(t.During(0, 5), std::optional<bool>(false));
  EXPECT_EQ(t.During(30, 40), std::optional<bool>(true));
}

TEST(TimelineTest, UnknownWhileAChangesWindowOverlaps) {
  Timeline t;
  t.Change(10, 20, true);
  EXPECT_EQ(t.During(15, 25), std::nullopt);
  EXPECT_EQ(t.During(0, 10), std::nullopt);
  EXPECT_EQ(t.During(20, 30), std::nullopt);
  EXPECT_EQ(t.During(12, 18), std::nullopt);
}

TEST(TimelineTest, UnknownForeverAfterAChangeWithUnknownOutcome) {
  Timeline t;
  t.Change(10, 20, false);
  t.Change(30, kNeverUs, true);
  EXPECT_EQ(t.During(22, 28), std::optional<bool>(false));
  EXPECT_EQ(t.During(100, 200), std::nullopt);
  EXPECT_EQ(t.During(1000000, 2000000), std::nullopt);
}

TEST(TimelineTest, OverlappingEarlierChangesWithDifferentValuesAreUnknown) {
  Timeline t;
  t.Change(10, 30, true);
  t.Change(20, 40, false);
  EXPECT_EQ(t.During(50, 60), std::nullopt);

  Timeline same;  // overlapping, same value: known
  same.Change(10, 30, true);
  same.Change(20, 40, true);
  EXPECT_EQ(same.During(50, 60), std::optional<bool>(true));

  Timeline apart;  // one after the other: the later one wins
  apart.Change(10, 20, true);
  apart.Change(30, 40, false);
  EXPECT_EQ(apart.During(50, 60), std::optional<bool>(false));
}

TEST(TimelineTest, ExcludingLeavesOutAStep) {
  int a = 0, b = 0;
  Timeline t;
  t.Change(10, 20, true, &a);
  t.Change(50, 60, false, &b);
  EXPECT_EQ(t.During(55, 58), std::nullopt);
  EXPECT_EQ(t.During(55, 58, &b), std::optional<bool>(true));
  EXPECT_EQ(t.During(55, 58, &a), std::nullopt);  // b still overlaps
  EXPECT_EQ(t.During(70, 80, &a), std::optional<bool>(false));
  Timeline u;
  u.Change(10, kNeverUs, true, &a);
  EXPECT_EQ(u.During(100, 200), std::nullopt);
  EXPECT_EQ(u.During(100, 200, &a), std::optional<bool>(false));
}

TEST(OutcomeUnknownTest, TransportErrorsOnly) {
  EXPECT_TRUE(OutcomeUnknown(CODE_UNAVAILABLE));
  EXPECT_TRUE(OutcomeUnknown(CODE_DEADLINE_EXCEEDED));
  EXPECT_FALSE(OutcomeUnknown(CODE_OK));
  EXPECT_FALSE(OutcomeUnknown(CODE_PERMISSION_DENIED));
  EXPECT_FALSE(OutcomeUnknown(CODE_NOT_FOUND));
}

// ---- the checkers -----------------------------------------------------------------------------

// Users: alice (1) owns group 10, bob (2) is her friend, carol (3) a stranger.
constexpr uint64_t kAlice = 1, kBob = 2, kCarol = 3;
constexpr uint64_t kGroup = 10;
const char kGroupConv[] = "g:10";
const char kPrivate[] = "p:1:2";  // alice and bob

class PolicyTest : public ::testing::Test {
 protected:
  static MembershipInterval Interval(uint64_t join, uint64_t leave) {
    MembershipInterval i;
    i.set_join_version(join);
    i.set_leave_version(leave);
    return i;
  }
  static std::string Client(uint64_t user) { return "u" + std::to_string(user) + ".d1"; }

  HistoryEntry* Add(HistoryEntry::Kind kind, uint64_t user, int64_t time_us) {
    HistoryEntry* e = history_.add_entries();
    e->set_index(history_.entries_size() - 1);
    e->set_kind(kind);
    e->set_client(Client(user));
    e->set_user_id(user);
    e->set_time_us(time_us);
    return e;
  }
  // A request of `user` sent at `from` and answered `code` at `to`.
  HistoryEntry* Req(const std::string& detail, uint64_t user, int64_t from, int64_t to,
                    int32_t code = CODE_OK) {
    HistoryEntry* e = Add(HistoryEntry::REQUEST, user, to);
    e->set_detail(detail);
    e->set_invoked_us(from);
    e->set_code(code);
    return e;
  }
  HistoryEntry* GroupReq(const std::string& detail, uint64_t user, int64_t from, int64_t to,
                         int32_t code = CODE_OK, uint64_t target = 0, uint64_t version = 0) {
    HistoryEntry* e = Req(detail, user, from, to, code);
    e->set_group_id(kGroup);
    e->set_target_id(target);
    e->set_version(version);
    return e;
  }
  HistoryEntry* Invoke(uint64_t user, const std::string& conv, const std::string& id,
                       int64_t time_us, const std::string& body = "") {
    HistoryEntry* e = Add(HistoryEntry::SEND_INVOKED, user, time_us);
    e->set_conversation(conv);
    e->set_client_msg_id(id);
    e->set_sender_id(user);
    e->set_body(body);
    return e;
  }
  HistoryEntry* Recall(uint64_t user, const std::string& conv, uint64_t seq,
                       const std::string& id, int64_t time_us) {
    HistoryEntry* e = Invoke(user, conv, id, time_us);
    e->set_detail("recall");
    e->set_seq(seq);
    return e;
  }
  HistoryEntry* Acked(uint64_t user, const std::string& conv, uint64_t seq, const std::string& id,
                      int64_t time_us) {
    HistoryEntry* e = Add(HistoryEntry::SEND_ACKED, user, time_us);
    e->set_conversation(conv);
    e->set_seq(seq);
    e->set_client_msg_id(id);
    e->set_sender_id(user);
    return e;
  }
  HistoryEntry* Failed(uint64_t user, const std::string& conv, const std::string& id,
                       int64_t time_us, int32_t code) {
    HistoryEntry* e = Add(HistoryEntry::SEND_FAILED, user, time_us);
    e->set_conversation(conv);
    e->set_client_msg_id(id);
    e->set_sender_id(user);
    e->set_code(code);
    return e;
  }
  Message& Store(const std::string& conv, uint64_t seq, uint64_t sender, const std::string& id,
                 uint64_t group_version = 0) {
    Message& m = state_.messages[conv][seq];
    m.set_conversation(conv);
    m.set_seq(seq);
    m.set_sender_id(sender);
    m.set_client_msg_id(id);
    m.set_group_version(group_version);
    return m;
  }
  static Message Served(const Message& stored, const std::string& body) {
    Message m = stored;
    m.set_body(body);
    return m;
  }

  // alice and bob become friends (10-20); alice creates closed group 10 with
  // bob (30-40, version 1).
  void Base() {
    Req("add_friend", kAlice, 10, 20)->set_target_id(kBob);
    HistoryEntry* c = GroupReq("create_group", kAlice, 30, 40, CODE_OK, 0, 1);
    c->add_ids(kBob);
    c->set_flag(false);
    state_.intervals[{kAlice, kGroup}] = {Interval(1, 0)};
    state_.intervals[{kBob, kGroup}] = {Interval(1, 0)};
  }

  std::optional<Violation> Check(const std::string& name) {
    std::string error;
    std::vector<Violation> v = RunCheckers({name}, history_, state_, &error);
    EXPECT_TRUE(error.empty()) << error;
    if (v.empty()) return std::nullopt;
    EXPECT_EQ(v[0].checker, name);
    return v[0];
  }
  // The named checker finds a violation whose explanation contains `why`.
  void ExpectViolation(const std::string& name, const std::string& why) {
    std::optional<Violation> v = Check(name);
    ASSERT_TRUE(v.has_value()) << name << " found nothing; expected: " << why;
    EXPECT_EQ(v->checker, name);
    EXPECT_NE(v->explanation.find(why), std::string::npos)
        << "explanation: " << v->explanation << "\nexpected to contain: " << why;
  }
  void ExpectPass(const std::string& name) {
    std::optional<Violation> v = Check(name);
    EXPECT_FALSE(v.has_value()) << v->checker << ": " << v->explanation;
  }

  History history_;
  FinalState state_;
};

// ---- access_control ---------------------------------------------------------------------------

TEST_F(PolicyTest, AccessControlPassesAGoodHistory) {
  Base();
  // A stranger's join of the closed group is refused.
  GroupReq("join_group", kCarol, 50, 60, CODE_PERMISSION_DENIED);
  // alice kicks bob (version 2), opens the group; bob's rejoin is refused.
  GroupReq("kick", kAlice, 70, 80, CODE_OK, kBob, 2);
  GroupReq("set_group_open", kAlice, 90, 100)->set_flag(true);
  GroupReq("join_group", kBob, 110, 120, CODE_PERMISSION_DENIED);
  // alice re-invites bob (version 3); bob leaves (4) and joins the open group (5).
  GroupReq("invite", kAlice, 130, 140, CODE_OK, 0, 3)->add_ids(kBob);
  GroupReq("leave_group", kBob, 150, 160, CODE_OK, 0, 4);
  GroupReq("join_group", kBob, 170, 180, CODE_OK, 0, 5);
  // carol joins the open group (6).
  GroupReq("join_group", kCarol, 185, 188, CODE_OK, 0, 6);
  // Members read the group; a non-member's group_info is refused; carol asks about herself.
  GroupReq("group_info", kBob, 190, 195);
  GroupReq("member_ids", kCarol, 190, 195);
  GroupReq("is_member", kCarol, 190, 195, CODE_OK, kAlice);
  Req("read", kBob, 196, 198)->set_conversation(kGroupConv);
  Req("ack", kAlice, 196, 198)->set_conversation(kPrivate);
  Req("user_groups", kBob, 196, 198)->set_target_id(kBob);
  Req("user_groups", kCarol, 196, 198)->set_target_id(kAlice);
  history_.mutable_entries(history_.entries_size() - 1)->set_code(CODE_PERMISSION_DENIED);
  Req("membership_history", kCarol, 196, 198, CODE_PERMISSION_DENIED);
  // Sends by a friend and by a member, acked; a stranger's send refused.
  Invoke(kAlice, kPrivate, "a-1", 200, "body-a-1");
  Acked(kAlice, kPrivate, 1, "a-1", 210);
  Invoke(kBob, kGroupConv, "b-1", 200, "body-b-1");
  Acked(kBob, kGroupConv, 1, "b-1", 210);
  Invoke(kCarol, "p:2:3", "c-1", 200, "body-c-1");
  Failed(kCarol, "p:2:3", "c-1", 210, CODE_PERMISSION_DENIED);
  // alice recalls her own message.
  Recall(kAlice, kPrivate, 1, "a-r", 220);
  Acked(kAlice, kPrivate, 2, "a-r", 230);
  // bob blocks alice; alice's next private send is refused.
  Req("block", kBob, 240, 250)->set_target_id(kAlice);
  history_.mutable_entries(history_.entries_size() - 1)->set_flag(true);
  Invoke(kAlice, kPrivate, "a-2", 260, "body-a-2");
  Failed(kAlice, kPrivate, "a-2", 270, CODE_PERMISSION_DENIED);

  state_.intervals[{kBob, kGroup}] = {Interval(1, 2), Interval(3, 4), Interval(5, 0)};
  state_.intervals[{kCarol, kGroup}] = {Interval(6, 0)};
  Store(kPrivate, 1, kAlice, "a-1").set_recalled(true);
  Store(kPrivate, 2, kAlice, "a-r").set_kind(Message::RECALL);
  state_.messages[kPrivate][2].set_recalled_seq(1);
  Store(kGroupConv, 1, kBob, "b-1", 5);
  state_.read_cursors[{kGroupConv, kBob}] = 1;
  state_.read_cursors[{kPrivate, kAlice}] = 2;
  ExpectPass("access_control");
  ExpectPass("privacy");
  ExpectPass("recall");
}

TEST_F(PolicyTest, AccessControlCatchesAGrantedJoinOfAClosedGroup) {
  Base();
  GroupReq("join_group", kCarol, 50, 60);
  ExpectViolation("access_control", "was granted join_group although group 10 is closed");
}

TEST_F(PolicyTest, AccessControlCatchesAGrantedRejoinAfterAKick) {
  Base();
  GroupReq("kick", kAlice, 50, 60, CODE_OK, kBob, 2);
  GroupReq("set_group_open", kAlice, 70, 80)->set_flag(true);
  GroupReq("join_group", kBob, 90, 100);
  state_.intervals[{kBob, kGroup}] = {Interval(1, 2)};
  ExpectViolation("access_control", "was kicked from group 10 and not invited since");
}

TEST_F(PolicyTest, AccessControlCatchesAKickByANonOwner) {
  Base();
  GroupReq("kick", kBob, 50, 60, CODE_OK, kAlice);
  ExpectViolation("access_control", "was granted kick although only the owner of group 10 may kick");
}

TEST_F(PolicyTest, AccessControlCatchesADissolveByANonOwner) {
  Base();
  GroupReq("dissolve", kBob, 50, 60);
  ExpectViolation("access_control",
                  "was granted dissolve although only the owner of group 10 may dissolve");
}

TEST_F(PolicyTest, AccessControlCatchesASetGroupOpenByANonOwner) {
  Base();
  GroupReq("set_group_open", kBob, 50, 60)->set_flag(true);
  ExpectViolation("access_control", "only the owner of group 10 may set_group_open");
}

TEST_F(PolicyTest, AccessControlCatchesAnInviteByANonMember) {
  Base();
  Req("add_friend", kCarol, 40, 45)->set_target_id(4);
  GroupReq("invite", kCarol, 50, 60)->add_ids(4);
  ExpectViolation("access_control", "only members invite to group 10");
}

TEST_F(PolicyTest, AccessControlCatchesGroupInfoForANonMember) {
  Base();
  GroupReq("group_info", kCarol, 50, 60);
  ExpectViolation("access_control", "group_info of group 10 is for its members");
}

TEST_F(PolicyTest, AccessControlCatchesUserGroupsOfAnotherUser) {
  Base();
  Req("user_groups", kCarol, 50, 60)->set_target_id(kAlice);
  ExpectViolation("access_control", "user_groups of user 1 is for that user only");
}

TEST_F(PolicyTest, AccessControlCatchesAReadOfAForeignGroup) {
  Base();
  Req("read", kCarol, 50, 60)->set_conversation(kGroupConv);
  ExpectViolation("access_control", "granted read although user 3 is not a member of group 10");
}

TEST_F(PolicyTest, AccessControlCatchesAnAckOfAForeignPrivateConversation) {
  Base();
  Req("ack", kCarol, 50, 60)->set_conversation(kPrivate);
  ExpectViolation("access_control", "granted ack although p:1:2 is not user 3's");
}

TEST_F(PolicyTest, AccessControlCatchesASendAcrossABlock) {
  Base();
  Req("block", kBob, 50, 60)->set_target_id(kAlice);
  history_.mutable_entries(history_.entries_size() - 1)->set_flag(true);
  Invoke(kAlice, kPrivate, "a-1", 70, "body");
  Acked(kAlice, kPrivate, 1, "a-1", 80);
  ExpectViolation("access_control",
                  "granted send_private although a block stands between users 1 and 2");
}

TEST_F(PolicyTest, AccessControlCatchesANonMembersGroupSend) {
  Base();
  Invoke(kCarol, kGroupConv, "c-1", 70, "body");
  Acked(kCarol, kGroupConv, 1, "c-1", 80);
  ExpectViolation("access_control", "granted send_group although user 3 is not a member of group 10");
}

TEST_F(PolicyTest, AccessControlCatchesARecallOfAnotherUsersMessage) {
  Base();
  Invoke(kAlice, kPrivate, "a-1", 70, "body");
  Acked(kAlice, kPrivate, 1, "a-1", 80);
  Recall(kBob, kPrivate, 1, "b-r", 90);
  Acked(kBob, kPrivate, 2, "b-r", 100);
  ExpectViolation("access_control", "granted recall although only the sender (user 1) recalls p:1:2#1");
}

TEST_F(PolicyTest, AccessControlCatchesAnInternalOperationAnswered) {
  Base();
  Req("membership_history", kBob, 50, 60)->set_target_id(kBob);
  ExpectViolation("access_control", "membership_history is an internal operation");
}

TEST_F(PolicyTest, AccessControlCatchesAForbiddenRequestRefusedWithTheWrongCode) {
  Base();
  GroupReq("join_group", kCarol, 50, 60, CODE_NOT_FOUND);
  ExpectViolation("access_control",
                  "refused with CODE_NOT_FOUND; the policy refuses it with CODE_PERMISSION_DENIED");
}

TEST_F(PolicyTest, AccessControlCatchesAnAllowedRequestRefusedPermissionDenied) {
  Base();
  GroupReq("group_info", kBob, 50, 60, CODE_PERMISSION_DENIED);
  ExpectViolation("access_control",
                  "group_info was refused PERMISSION_DENIED although the policy allows it");
}

TEST_F(PolicyTest, AccessControlCatchesAnUnansweredForbiddenSendInTheStore) {
  Base();
  Invoke(kCarol, kGroupConv, "c-1", 70, "body");  // never answered
  Store(kGroupConv, 1, kCarol, "c-1", 1);
  ExpectViolation("access_control", "send_group c-1 is in the store although");
}

TEST_F(PolicyTest, AccessControlCatchesAMembershipNoRequestJustifies) {
  Base();
  state_.intervals[{kCarol, kGroup}] = {Interval(2, 0)};
  ExpectViolation("access_control",
                  "user 3 became a member of group 10 1 times (first at version 2) but only 0");
}

TEST_F(PolicyTest, AccessControlCatchesAReadCursorInAForeignConversation) {
  Base();
  state_.read_cursors[{kPrivate, kCarol}] = 1;
  ExpectViolation("access_control", "user 3 has a read cursor (1) in p:1:2");
}

TEST_F(PolicyTest, AccessControlCatchesAJoinAckedAtAVersionTheLogLacks) {
  Base();
  GroupReq("set_group_open", kAlice, 50, 60)->set_flag(true);
  GroupReq("join_group", kCarol, 70, 80, CODE_OK, 0, 2);
  state_.intervals[{kCarol, kGroup}] = {Interval(3, 0)};
  ExpectViolation("access_control", "join_group of group 10 was acked at version 2");
}

TEST_F(PolicyTest, AccessControlDoesNotJudgeAForbiddenRequestOfUnknownOutcome) {
  Base();
  GroupReq("join_group", kCarol, 50, 60, CODE_UNAVAILABLE);
  GroupReq("group_info", kCarol, 50, 60, CODE_DEADLINE_EXCEEDED);
  GroupReq("join_group", kCarol, 70, 80)->set_no_reply(true);
  Invoke(kCarol, kGroupConv, "c-1", 70, "body");
  Failed(kCarol, kGroupConv, "c-1", 80, CODE_UNAVAILABLE);
  ExpectPass("access_control");
}

TEST_F(PolicyTest, AccessControlDoesNotJudgeAJoinRacingAnOpenFlagChange) {
  Base();
  GroupReq("set_group_open", kAlice, 50, 70)->set_flag(true);
  GroupReq("join_group", kCarol, 60, 65, CODE_OK, 0, 2);  // inside the change's window
  state_.intervals[{kCarol, kGroup}] = {Interval(2, 0)};
  ExpectPass("access_control");
  // Closing while a join is in flight: a refusal is not judged either.
  GroupReq("set_group_open", kAlice, 100, 120)->set_flag(false);
  GroupReq("join_group", 4, 110, 115, CODE_PERMISSION_DENIED);
  ExpectPass("access_control");
}

// ---- privacy ----------------------------------------------------------------------------------

TEST_F(PolicyTest, PrivacyPassesAGoodHistory) {
  Base();
  Store(kPrivate, 1, kAlice, "a-1");
  Store(kGroupConv, 1, kAlice, "a-2", 1);
  HistoryEntry* d = Add(HistoryEntry::DELIVERED, kBob, 100);
  d->set_conversation(kPrivate);
  d->set_seq(1);
  GroupReq("member_ids", kBob, 100, 110)->add_reply_ids(kAlice);
  GroupReq("group_info", kBob, 100, 110);
  GroupReq("is_member", kBob, 100, 110, CODE_OK, kCarol);
  GroupReq("is_member", kCarol, 100, 110, CODE_OK, kCarol);  // about itself
  GroupReq("member_ids", kCarol, 100, 110, CODE_PERMISSION_DENIED);
  Req("user_groups", kBob, 100, 110)->set_target_id(kBob);
  Req("user_groups", kCarol, 100, 110);  // target 0: itself
  Req("update_profile", kCarol, 100, 110)->add_reply_ids(kCarol);
  HistoryEntry* l = Req("list_conversations", kBob, 100, 110);
  l->add_conversations(kPrivate);
  l->add_conversations(kGroupConv);
  Req("read", kBob, 100, 110)->set_conversation(kGroupConv);
  HistoryEntry* s = Req("sync", kBob, 100, 110);
  *s->add_received() = Served(state_.messages[kPrivate][1], "body-1");
  *s->add_received() = Served(state_.messages[kGroupConv][1], "body-2");
  s->add_conversations(kPrivate);
  s->add_conversations(kGroupConv);
  ExpectPass("privacy");
}

TEST_F(PolicyTest, PrivacyCatchesADeliveryOfAnotherPairsConversation) {
  Base();
  Store(kPrivate, 1, kAlice, "a-1");
  HistoryEntry* d = Add(HistoryEntry::DELIVERED, kCarol, 100);
  d->set_conversation(kPrivate);
  d->set_seq(1);
  ExpectViolation("privacy", "was delivered p:1:2#1, a conversation of two other users");
}

TEST_F(PolicyTest, PrivacyCatchesMemberIdsForANonMember) {
  Base();
  GroupReq("member_ids", kCarol, 100, 110)->add_reply_ids(kAlice);
  ExpectViolation("privacy", "was served member_ids of group 10 (1 member ids) while not a member");
}

TEST_F(PolicyTest, PrivacyCatchesGroupInfoForANonMember) {
  Base();
  GroupReq("group_info", kCarol, 100, 110);
  ExpectViolation("privacy", "was served group_info of group 10");
}

TEST_F(PolicyTest, PrivacyCatchesIsMemberAboutAnotherUserForANonMember) {
  Base();
  GroupReq("is_member", kCarol, 100, 110, CODE_OK, kBob);
  ExpectViolation("privacy", "was served is_member of group 10");
}

TEST_F(PolicyTest, PrivacyCatchesUserGroupsOfAnotherUser) {
  Base();
  Req("user_groups", kCarol, 100, 110)->set_target_id(kAlice);
  ExpectViolation("privacy", "was served the groups of user 1");
}

TEST_F(PolicyTest, PrivacyCatchesAnUpdateOfAnotherUsersProfile) {
  Base();
  HistoryEntry* e = Req("update_profile", kCarol, 100, 110);
  e->add_reply_ids(kAlice);
  e->set_forged("auth_user_id");
  ExpectViolation("privacy", "changed the profile of user 1 (forged auth_user_id)");
}

TEST_F(PolicyTest, PrivacyCatchesAListingOfAGroupTheUserIsNotIn) {
  Base();
  HistoryEntry* l = Req("list_conversations", kCarol, 100, 110);
  l->add_conversations("p:1:3");
  l->add_conversations(kGroupConv);
  ExpectViolation("privacy",
                  "served list_conversations state of g:10 of group 10, which it was not a member of");
}

TEST_F(PolicyTest, PrivacyCatchesASyncServingAMessageOutsideTheMembership) {
  Base();
  state_.intervals[{kBob, kGroup}] = {Interval(1, 2)};  // bob left at version 2
  Store(kGroupConv, 1, kAlice, "a-1", 1);
  Store(kGroupConv, 2, kAlice, "a-2", 3);
  HistoryEntry* s = Req("sync", kBob, 100, 110);
  *s->add_received() = Served(state_.messages[kGroupConv][1], "body-1");  // fine: version 1
  *s->add_received() = Served(state_.messages[kGroupConv][2], "body-2");  // version 3: not his
  ExpectViolation("privacy", "was served g:10#2 (group version 3) by a sync, outside what it may read");
}

TEST_F(PolicyTest, PrivacyCatchesASyncPageOfAForeignPrivateConversation) {
  Base();
  Req("sync", kCarol, 100, 110)->add_conversations(kPrivate);
  ExpectViolation("privacy", "was served a sync page of p:1:2, never its conversation");
}

// ---- recall -----------------------------------------------------------------------------------

class RecallTest : public PolicyTest {
 protected:
  // alice sends p:1:2#1 (served once before the recall) and recalls it (ack at 130).
  void Good() {
    Base();
    Invoke(kAlice, kPrivate, "a-1", 100, "secret-body-1");
    Acked(kAlice, kPrivate, 1, "a-1", 110);
    Recall(kAlice, kPrivate, 1, "a-r", 120);
    Acked(kAlice, kPrivate, 2, "a-r", 130);
    Store(kPrivate, 1, kAlice, "a-1").set_recalled(true);
    Message& r = Store(kPrivate, 2, kAlice, "a-r");
    r.set_kind(Message::RECALL);
    r.set_recalled_seq(1);
    state_.store_blob = std::string("msg/p:1:2/1 recalled") + '\0' + "msg/p:1:2/2 recall";
    state_.body_served_us[{kPrivate, 1}] = 115;
    // bob syncs after the ack: the tombstone, no body.
    *Req("sync", kBob, 140, 150)->add_received() = state_.messages[kPrivate][1];
  }
};

TEST_F(RecallTest, PassesAGoodRecall) {
  Good();
  ExpectPass("recall");
}

TEST_F(RecallTest, CatchesABodyServedAfterTheAck) {
  Good();
  state_.body_served_us[{kPrivate, 1}] = 2130;
  ExpectViolation("recall", "a shard served the body of p:1:2#1 2 ms after its recall was acked");
}

TEST_F(RecallTest, CatchesAnOriginalNotMarkedRecalled) {
  Good();
  state_.messages[kPrivate][1].set_recalled(false);
  ExpectViolation("recall", "the stored original is not marked recalled");
}

TEST_F(RecallTest, CatchesTheBodyStillInAStore) {
  Good();
  state_.store_blob += "msg/p:1:2/1 secret-body-1";
  ExpectViolation("recall", "the body of p:1:2#1 is still in a store after its recall was acked");
}

TEST_F(RecallTest, CatchesASyncAfterTheAckServingTheBody) {
  Good();
  *Req("sync", kBob, 160, 170)->add_received() =
      Served(state_.messages[kPrivate][1], "secret-body-1");
  ExpectViolation("recall", "was served the body of p:1:2#1 by a sync sent after its recall was acked");
}

TEST_F(RecallTest, ASyncSentBeforeTheAckMayServeTheBody) {
  Good();
  *Req("sync", kBob, 125, 135)->add_received() =
      Served(state_.messages[kPrivate][1], "secret-body-1");
  ExpectPass("recall");
}

TEST_F(RecallTest, CatchesARecallEntryOfAnotherSender) {
  Good();
  state_.messages[kPrivate][2].set_sender_id(kBob);
  ExpectViolation("recall", "user 2 recalled p:1:2#1 (p:1:2#2), a message of user 1");
}

// ---- unread: the counts list_conversations served once the run had settled -------------------

class UnreadTest : public PolicyTest {
 protected:
  UnreadTest() {
    state_.quiet_since_us = 1000;
    // bob's membership of group 10: versions [1, 3) and from 4 on.
    state_.intervals[{kBob, kGroup}] = {Interval(1, 3), Interval(4, 0)};
    Store(kGroupConv, 1, kAlice, "a-1", 1).set_recalled(true);  // recalled
    Store(kGroupConv, 2, kBob, "b-1", 1);                       // bob's own
    Store(kGroupConv, 3, kAlice, "a-2", 2);                     // counts
    Message& r = Store(kGroupConv, 4, kAlice, "a-r", 2);        // the recall entry
    r.set_kind(Message::RECALL);
    r.set_recalled_seq(1);
    Store(kGroupConv, 5, kAlice, "a-3", 3);  // while bob was out
    Store(kGroupConv, 6, kAlice, "a-4", 4);  // counts
    Store(kPrivate, 1, kAlice, "p-1");       // counts
    Store(kPrivate, 2, kBob, "p-2");         // bob's own
  }
  // bob lists his conversations at `invoked_us`, told `unread` for g:10 (read to `read`).
  void List(int64_t invoked_us, uint64_t read, uint64_t unread) {
    HistoryEntry* l = Req("list_conversations", kBob, invoked_us, invoked_us + 10);
    ConversationState* g = l->add_states();
    g->set_conversation(kGroupConv);
    g->set_max_seq(6);
    g->set_read_seq(read);
    g->set_unread(unread);
    ConversationState* p = l->add_states();
    p->set_conversation(kPrivate);
    p->set_max_seq(2);
    p->set_read_seq(0);
    p->set_unread(1);
  }
};

TEST_F(UnreadTest, PassesTheRightCounts) {
  List(2000, 0, 2);  // #3 and #6
  List(2100, 3, 1);  // #6
  List(2200, 6, 0);
  ExpectPass("unread");
}

TEST_F(UnreadTest, CatchesCountingOwnMessages) {
  Store(kGroupConv, 7, kBob, "b-2", 4);
  state_.messages[kGroupConv].erase(5);
  state_.messages[kGroupConv].erase(4);
  state_.messages[kGroupConv].erase(1);
  // left: #2 own, #3, #6, #7 own -> 2; counting own gives 4.
  HistoryEntry* l = Req("list_conversations", kBob, 2000, 2010);
  ConversationState* g = l->add_states();
  g->set_conversation(kGroupConv);
  g->set_max_seq(7);
  g->set_unread(4);
  ExpectViolation("unread", "was told 4 unread in g:10 (read to 0, max 7); other users' visible "
                            "messages after its cursor: 2");
}

TEST_F(UnreadTest, CatchesCountingRecallEntries) {
  List(2000, 3, 2);  // #4 (a RECALL) and #6
  ExpectViolation("unread", "was told 2 unread in g:10 (read to 3, max 6); other users' visible "
                            "messages after its cursor: 1");
}

TEST_F(UnreadTest, CatchesCountingRecalledMessages) {
  state_.messages[kGroupConv].erase(5);
  state_.messages[kGroupConv].erase(4);
  state_.messages[kGroupConv].erase(2);
  // left: #1 recalled, #3, #6 -> 2; counting the recalled one gives 3.
  HistoryEntry* l = Req("list_conversations", kBob, 2000, 2010);
  ConversationState* g = l->add_states();
  g->set_conversation(kGroupConv);
  g->set_max_seq(6);
  g->set_unread(3);
  ExpectViolation("unread", "was told 3 unread in g:10 (read to 0, max 6); other users' visible "
                            "messages after its cursor: 2");
}

TEST_F(UnreadTest, CatchesCountingMessagesOutsideTheMembership) {
  List(2000, 4, 2);  // #5 (version 3, bob out) and #6
  ExpectViolation("unread", "was told 2 unread in g:10 (read to 4, max 6); other users' visible "
                            "messages after its cursor: 1");
}

TEST_F(UnreadTest, CatchesAPrivateCountWithOwnMessages) {
  HistoryEntry* l = Req("list_conversations", kBob, 2000, 2010);
  ConversationState* p = l->add_states();
  p->set_conversation(kPrivate);
  p->set_max_seq(2);
  p->set_unread(2);
  ExpectViolation("unread", "was told 2 unread in p:1:2");
}

TEST_F(UnreadTest, DoesNotJudgeAListSentBeforeTheRunSettled) {
  List(500, 0, 5);
  ExpectPass("unread");
  List(2000, 0, 2);
  ExpectPass("unread");
  List(2100, 0, 5);
  ExpectViolation("unread", "was told 5 unread in g:10");
}

// ---- ownership transfer, rename, history ------------------------------------------------------

TEST_F(PolicyTest, AfterATransferOnlyTheNewOwnerRulesTheGroup) {
  Base();
  GroupReq("transfer_ownership", kAlice, 50, 60, CODE_OK, kBob);
  // bob kicks alice (version 2) and renames: allowed.
  GroupReq("kick", kBob, 70, 80, CODE_OK, kAlice, 2);
  GroupReq("rename_group", kBob, 90, 100);
  state_.intervals[{kAlice, kGroup}] = {Interval(1, 2)};
  ExpectPass("access_control");
}

TEST_F(PolicyTest, AccessControlCatchesTheOldOwnerStillRulingAfterATransfer) {
  Base();
  GroupReq("transfer_ownership", kAlice, 50, 60, CODE_OK, kBob);
  GroupReq("rename_group", kAlice, 70, 80);
  ExpectViolation("access_control", "was granted rename_group although only the owner of group 10");
}

TEST_F(PolicyTest, AccessControlCatchesATransferToANonMember) {
  Base();
  GroupReq("transfer_ownership", kAlice, 50, 60, CODE_OK, kCarol);
  ExpectViolation("access_control", "user 3 is not a member of group 10");
}

TEST_F(PolicyTest, ATransferWhoseOutcomeIsUnknownLeavesOwnershipUnjudged) {
  Base();
  GroupReq("transfer_ownership", kAlice, 50, 60, CODE_UNAVAILABLE, kBob);
  GroupReq("rename_group", kAlice, 70, 80);
  GroupReq("rename_group", kBob, 90, 100);
  ExpectPass("access_control");
}

TEST_F(PolicyTest, AccessControlCatchesHistoryOfAGroupNeverJoined) {
  Base();
  HistoryEntry* h = Req("history", kCarol, 50, 60);
  h->set_conversation("g:10");
  ExpectViolation("access_control", "user 3 was never a member of group 10");
}

TEST_F(PolicyTest, PrivacyCatchesHistoryServingMessagesOutsideTheMembership) {
  Base();
  state_.intervals[{kBob, kGroup}] = {Interval(1, 3)};
  Store("g:10", 1, kAlice, "a1", 2);
  const Message& late = Store("g:10", 2, kAlice, "a2", 4);  // after bob left (version 3)
  HistoryEntry* h = Req("history", kBob, 50, 60);
  h->set_conversation("g:10");
  *h->add_received() = Served(state_.messages["g:10"][1], "b");
  ExpectPass("privacy");
  *h->add_received() = Served(late, "b");
  ExpectViolation("privacy", "g:10#2");
}

}  // namespace
}  // namespace sim
}  // namespace parley
