// Every checker on hand-built histories: one that passes, and violations it
// must catch.
#include "sim/checkers.h"

#include "gtest/gtest.h"

namespace parley {
namespace sim {
namespace {

// Two users in a private conversation and a group, with two devices for bob.
class CheckersTest : public ::testing::Test {
 protected:
  CheckersTest() {
    state_.clients = {{"alice.d1", 1}, {"bob.d1", 2}, {"bob.d2", 2}};
    AddMessage("p:1:2", 1, 1, "a-1");
    AddMessage("p:1:2", 2, 2, "b-1");
    // Group 5: alice member from version 1, bob from 1 to 3 (left), back at 5.
    state_.intervals[{1, 5}] = {Interval(1, 0)};
    state_.intervals[{2, 5}] = {Interval(1, 3), Interval(5, 0)};
    AddMessage("g:5", 1, 1, "a-2", /*group_version=*/2);  // both see it
    AddMessage("g:5", 2, 1, "a-3", /*group_version=*/4);  // only alice
  }

  static MembershipInterval Interval(uint64_t join, uint64_t leave) {
    MembershipInterval i;
    i.set_join_version(join);
    i.set_leave_version(leave);
    return i;
  }
  void AddMessage(const std::string& conv, uint64_t seq, uint64_t sender, const std::string& id,
                  uint64_t group_version = 0) {
    Message& m = state_.messages[conv][seq];
    m.set_conversation(conv);
    m.set_seq(seq);
    m.set_sender_id(sender);
    m.set_client_msg_id(id);
    m.set_group_version(group_version);
  }
  HistoryEntry* Add(HistoryEntry::Kind kind, const std::string& client, uint64_t user) {
    HistoryEntry* e = history_.add_entries();
    e->set_index(history_.entries_size() - 1);
    e->set_kind(kind);
    e->set_client(client);
    e->set_user_id(user);
    return e;
  }
  void Invoke(const std::string& client, uint64_t user, const std::string& conv,
              const std::string& id) {
    HistoryEntry* e = Add(HistoryEntry::SEND_INVOKED, client, user);
    e->set_conversation(conv);
    e->set_client_msg_id(id);
  }
  void Ack(const std::string& client, uint64_t user, const std::string& conv, uint64_t seq,
           const std::string& id) {
    HistoryEntry* e = Add(HistoryEntry::SEND_ACKED, client, user);
    e->set_conversation(conv);
    e->set_seq(seq);
    e->set_client_msg_id(id);
    e->set_sender_id(user);
  }
  void Deliver(const std::string& client, uint64_t user, const std::string& conv, uint64_t seq) {
    const Message& m = state_.messages.at(conv).at(seq);
    HistoryEntry* e = Add(HistoryEntry::DELIVERED, client, user);
    e->set_conversation(conv);
    e->set_seq(seq);
    e->set_sender_id(m.sender_id());
    e->set_client_msg_id(m.client_msg_id());
    *e->mutable_message() = m;
  }
  // A complete, correct run: every device got what it may see, in order.
  void GoodHistory() {
    Invoke("alice.d1", 1, "p:1:2", "a-1");
    Ack("alice.d1", 1, "p:1:2", 1, "a-1");
    Invoke("bob.d1", 2, "p:1:2", "b-1");
    Ack("bob.d1", 2, "p:1:2", 2, "b-1");
    Invoke("alice.d1", 1, "g:5", "a-2");
    Ack("alice.d1", 1, "g:5", 1, "a-2");
    Invoke("alice.d1", 1, "g:5", "a-3");
    Ack("alice.d1", 1, "g:5", 2, "a-3");
    for (const char* client : {"alice.d1", "bob.d1", "bob.d2"}) {
      const uint64_t user = client[0] == 'a' ? 1 : 2;
      Deliver(client, user, "p:1:2", 1);
      Deliver(client, user, "p:1:2", 2);
      Deliver(client, user, "g:5", 1);
      if (user == 1) Deliver(client, user, "g:5", 2);
    }
  }
  std::optional<Violation> Check(const std::string& name) {
    std::string error;
    std::vector<Violation> v = RunCheckers({name}, history_, state_, &error);
    EXPECT_TRUE(error.empty()) << error;
    if (v.empty()) return std::nullopt;
    EXPECT_EQ(v[0].checker, name);
    return v[0];
  }

  History history_;
  FinalState state_;
};

TEST_F(CheckersTest, AGoodRunPassesEveryChecker) {
  GoodHistory();
  std::string error;
  std::vector<Violation> v = RunCheckers({}, history_, state_, &error);
  EXPECT_TRUE(error.empty());
  for (const Violation& x : v) ADD_FAILURE() << x.checker << ": " << x.explanation;
}

TEST_F(CheckersTest, UnknownCheckerIsAnError) {
  std::string error;
  RunCheckers({"no_such_checker"}, history_, state_, &error);
  EXPECT_NE(error.find("no_such_checker"), std::string::npos);
}

TEST_F(CheckersTest, NoLostAckCatchesAMissingDeviceAndAMissingMessage) {
  GoodHistory();
  // bob.d2 never got p:1:2#2.
  History h;
  for (const HistoryEntry& e : history_.entries()) {
    if (e.client() == "bob.d2" && e.kind() == HistoryEntry::DELIVERED && e.seq() == 2 &&
        e.conversation() == "p:1:2") {
      continue;
    }
    *h.add_entries() = e;
  }
  history_ = h;
  std::optional<Violation> v = Check("no_lost_ack");
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->explanation, "p:1:2#2, acked to bob.d1 (user 2), never reached bob.d2 (user 2)");
  // An ack for a message the shard does not have.
  GoodHistory();
  Ack("alice.d1", 1, "p:1:2", 9, "a-9");
  ASSERT_TRUE(Check("no_lost_ack").has_value());
}

TEST_F(CheckersTest, NoLostAckCatchesAnAckedMessageOverwrittenByAnother) {
  GoodHistory();
  Ack("bob.d1", 2, "p:1:2", 1, "b-9");  // acked as #1, but #1 holds a-1
  std::optional<Violation> v = Check("no_lost_ack");
  ASSERT_TRUE(v.has_value());
  EXPECT_NE(v->explanation.find("overwritten"), std::string::npos) << v->explanation;
}

TEST_F(CheckersTest, NoLostAckDoesNotDemandMessagesOutsideMembership) {
  GoodHistory();  // bob never got g:5#2, sent while he was out: fine
  EXPECT_FALSE(Check("no_lost_ack").has_value());
}

TEST_F(CheckersTest, NoDuplicatesCatchesTheSameSeqTwice) {
  GoodHistory();
  Deliver("bob.d1", 2, "p:1:2", 1);  // the set of seqs is unchanged: only a count sees it
  std::optional<Violation> v = Check("no_duplicates");
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->entry, history_.entries_size() - 1);
}

TEST_F(CheckersTest, NoDuplicatesCatchesOneClientMessageUnderTwoSeqs) {
  GoodHistory();
  AddMessage("p:1:2", 3, 1, "a-1");  // a retry stored again
  Deliver("bob.d1", 2, "p:1:2", 3);
  ASSERT_TRUE(Check("no_duplicates").has_value());
}

TEST_F(CheckersTest, OrderCatchesReorderingAndGaps) {
  Deliver("bob.d1", 2, "p:1:2", 2);
  Deliver("bob.d1", 2, "p:1:2", 1);
  std::optional<Violation> v = Check("order");
  ASSERT_TRUE(v.has_value());
  EXPECT_NE(v->explanation.find("never #1"), std::string::npos) << v->explanation;
  EXPECT_NE(v->explanation.find("bob.d1 (user 2) got p:1:2#2"), std::string::npos)
      << v->explanation;
  // A first delivery below the last one (#1 was not in the shard when #2
  // came, so skipping it was no gap).
  history_.Clear();
  Deliver("alice.d1", 1, "p:1:2", 2);
  state_.messages["p:1:2"].erase(1);
  HistoryEntry* e = Add(HistoryEntry::DELIVERED, "alice.d1", 1);
  e->set_conversation("p:1:2");
  e->set_seq(1);
  v = Check("order");
  ASSERT_TRUE(v.has_value());
  EXPECT_NE(v->explanation.find("alice.d1 (user 1) got p:1:2#1 after #2"), std::string::npos)
      << v->explanation;
}

// One failure per cause: a seq delivered again is a duplicate, not also an
// order failure.
TEST_F(CheckersTest, ADuplicateIsNoDuplicatesOnlyNotOrder) {
  GoodHistory();
  Deliver("bob.d1", 2, "p:1:2", 1);
  std::string error;
  std::vector<Violation> v = RunCheckers({}, history_, state_, &error);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].checker, "no_duplicates");
  EXPECT_EQ(v[0].entry, history_.entries_size() - 1);
  EXPECT_NE(v[0].explanation.find("bob.d1 (user 2) was given p:1:2#1 twice"), std::string::npos)
      << v[0].explanation;
}

// An ack naming the wrong seq of a stored message is idempotent_send's, not
// also a lost ack.
// One failure per cause across entries: the first finding is reported, the
// further findings of its cause are counted in it, another cause's are not.
TEST_F(CheckersTest, OneLostMessageIsOneNoLostAckFailureCountingEveryDevice) {
  GoodHistory();
  History h;
  for (const HistoryEntry& e : history_.entries()) {
    const bool lost = e.kind() == HistoryEntry::DELIVERED &&
                      ((e.client() != "alice.d1" && e.conversation() == "p:1:2" && e.seq() == 1) ||
                       (e.client() == "alice.d1" && e.conversation() == "g:5" && e.seq() == 2));
    if (!lost) *h.add_entries() = e;
  }
  history_ = h;
  std::optional<Violation> v = Check("no_lost_ack");
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->cause, "p:1:2#1 lost");
  EXPECT_EQ(v->further, 1);                  // bob.d2; g:5#2 at alice is another cause
  EXPECT_TRUE(v->further_entries.empty());  // the same ack entry
  EXPECT_EQ(v->explanation,
            "p:1:2#1, acked to alice.d1 (user 1), never reached bob.d1 (user 2); the same cause "
            "(p:1:2#1 lost) explains 1 further finding");
}

TEST_F(CheckersTest, OneLateMessageIsOneOrderFailureCountingEveryClient) {
  std::vector<int64_t> entries;
  for (const char* client : {"bob.d1", "bob.d2"}) {
    Deliver(client, 2, "p:1:2", 2);
    entries.push_back(history_.entries_size() - 1);
    Deliver(client, 2, "p:1:2", 1);
    entries.push_back(history_.entries_size() - 1);
  }
  Deliver("alice.d1", 1, "g:5", 2);  // another cause: g:5#1 late
  Deliver("alice.d1", 1, "g:5", 1);
  std::optional<Violation> v = Check("order");
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->entry, entries[0]);
  EXPECT_EQ(v->cause, "p:1:2#1 late");
  EXPECT_EQ(v->further, 3);
  EXPECT_EQ(v->further_entries, std::vector<int64_t>(entries.begin() + 1, entries.end()));
  EXPECT_NE(v->explanation.find("; the same cause (p:1:2#1 late) explains 3 further findings, "
                                "at entries #1, #2, #3"),
            std::string::npos)
      << v->explanation;
}

// One failure per cause across checkers: a message acked and skipped for
// good is lost (no_lost_ack), not also out of order.
TEST_F(CheckersTest, AnAckedMessageSkippedForGoodIsNoLostAckOnlyNotOrder) {
  GoodHistory();
  History h;
  for (const HistoryEntry& e : history_.entries()) {
    if (e.client() == "bob.d2" && e.kind() == HistoryEntry::DELIVERED &&
        e.conversation() == "p:1:2" && e.seq() == 1) {
      continue;  // bob.d2 went from nothing to #2
    }
    *h.add_entries() = e;
  }
  history_ = h;
  std::string error;
  std::vector<Violation> v = RunCheckers({}, history_, state_, &error);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].checker, "no_lost_ack");
  EXPECT_EQ(v[0].cause, "p:1:2#1 lost");
  // Skipped and delivered later is late: order's.
  Deliver("bob.d2", 2, "p:1:2", 1);
  std::optional<Violation> o = Check("order");
  ASSERT_TRUE(o.has_value());
  EXPECT_EQ(o->cause, "p:1:2#1 late");
  // Skipped for good but never acked: no_lost_ack does not judge it, order does.
  history_ = h;
  history_.mutable_entries(1)->set_kind(HistoryEntry::SEND_FAILED);  // alice's ack of #1
  ASSERT_EQ(history_.entries(1).client_msg_id(), "a-1");
  o = Check("order");
  ASSERT_TRUE(o.has_value());
  EXPECT_NE(o->explanation.find("never #1 before it"), std::string::npos) << o->explanation;
}

TEST_F(CheckersTest, OneDuplicatedMessageIsOneNoDuplicatesFailure) {
  GoodHistory();
  Deliver("bob.d1", 2, "p:1:2", 1);
  Deliver("bob.d2", 2, "p:1:2", 1);
  Deliver("bob.d2", 2, "g:5", 1);  // another message again: another cause
  std::optional<Violation> v = Check("no_duplicates");
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->entry, history_.entries_size() - 3);
  EXPECT_EQ(v->cause, "p:1:2#1 delivered again");
  EXPECT_EQ(v->further, 1);
  EXPECT_EQ(v->further_entries, std::vector<int64_t>{history_.entries_size() - 2});
}

TEST_F(CheckersTest, AnAckNamingAnotherSeqIsIdempotentSendOnly) {
  GoodHistory();
  Ack("alice.d1", 1, "p:1:2", 2, "a-1");  // a-1 is #1; #2 holds b-1
  std::string error;
  std::vector<Violation> v = RunCheckers({}, history_, state_, &error);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].checker, "idempotent_send");
  EXPECT_NE(v[0].explanation.find("alice.d1 (user 1) was acked a-1 as p:1:2#2"),
            std::string::npos)
      << v[0].explanation;
}

TEST_F(CheckersTest, OrderAllowsSkippingMessagesTheUserMayNotSee) {
  AddMessage("g:5", 3, 1, "a-4", 6);
  Deliver("bob.d1", 2, "g:5", 1);
  Deliver("bob.d1", 2, "g:5", 3);  // #2 was sent while bob was out
  EXPECT_FALSE(Check("order").has_value());
}

TEST_F(CheckersTest, SenderFifoCatchesSeqsOutOfSendOrder) {
  AddMessage("p:1:2", 3, 1, "a-x");
  AddMessage("p:1:2", 4, 1, "a-y");
  Invoke("alice.d1", 1, "p:1:2", "a-x");
  Invoke("alice.d1", 1, "p:1:2", "a-y");
  Ack("alice.d1", 1, "p:1:2", 4, "a-x");
  Ack("alice.d1", 1, "p:1:2", 3, "a-y");
  std::optional<Violation> v = Check("sender_fifo");
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->explanation,
            "alice.d1 (user 1) sent a-y after a-x in p:1:2 but it got seq 3 below a-x's seq 4");
  history_.Clear();
  Invoke("alice.d1", 1, "p:1:2", "a-x");
  Invoke("alice.d1", 1, "p:1:2", "a-y");
  Ack("alice.d1", 1, "p:1:2", 3, "a-x");
  Ack("alice.d1", 1, "p:1:2", 4, "a-y");
  EXPECT_FALSE(Check("sender_fifo").has_value());
}

// The same seq acked for two messages is said so, never "seq 3 before seq 3".
TEST_F(CheckersTest, SenderFifoSaysASeqWasAckedForTwoMessages) {
  AddMessage("p:1:2", 3, 1, "a-x");
  Invoke("alice.d1", 1, "p:1:2", "a-x");
  Invoke("alice.d1", 1, "p:1:2", "a-y");
  Ack("alice.d1", 1, "p:1:2", 3, "a-x");
  Ack("alice.d1", 1, "p:1:2", 3, "a-y");
  std::optional<Violation> v = Check("sender_fifo");
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->entry, history_.entries_size() - 1);
  EXPECT_EQ(v->explanation,
            "alice.d1 (user 1) was acked a-y as p:1:2#3, the seq already acked to it for a-x: "
            "one seq acked for two messages");
  EXPECT_EQ(v->explanation.find("before seq"), std::string::npos);
}

TEST_F(CheckersTest, MembershipSafetyCatchesAMessageOutsideTheInterval) {
  GoodHistory();
  EXPECT_FALSE(Check("membership_safety").has_value());
  Deliver("bob.d2", 2, "g:5", 2);  // version 4: bob had left at 3
  std::optional<Violation> v = Check("membership_safety");
  ASSERT_TRUE(v.has_value());
  EXPECT_NE(v->explanation.find("outside its membership"), std::string::npos);
  EXPECT_NE(v->explanation.find("bob.d2 (user 2) got g:5#2"), std::string::npos) << v->explanation;
}

TEST_F(CheckersTest, ProfileConvergenceCatchesStaleMemberEntriesAndFriendLists) {
  state_.profiles[2].set_user_id(2);
  state_.profiles[2].set_nickname("Robert");
  state_.profiles[2].set_version(3);
  state_.members[5][2].set_user_id(2);
  state_.members[5][2].set_nickname("Robert");
  FriendEntry* f = state_.friend_lists[1].add_friends();
  f->set_friend_id(2);
  f->set_nickname("Robert");
  EXPECT_FALSE(Check("profile_convergence").has_value());
  state_.members[5][2].set_nickname("Bob");
  ASSERT_TRUE(Check("profile_convergence").has_value());
  state_.members[5][2].set_nickname("Robert");
  f->set_nickname("Bob");
  ASSERT_TRUE(Check("profile_convergence").has_value());
}

TEST_F(CheckersTest, FriendCacheCatchesAStaleEntry) {
  FriendList truth;
  truth.set_owner_id(1);
  truth.set_version(4);
  truth.add_friends()->set_friend_id(2);
  state_.friend_lists[1] = truth;
  state_.friend_cache[1] = truth;
  EXPECT_FALSE(Check("friend_cache").has_value());
  state_.friend_cache[1].set_version(3);
  state_.friend_cache[1].clear_friends();
  ASSERT_TRUE(Check("friend_cache").has_value());
}

TEST_F(CheckersTest, FriendCacheCatchesAReadGoingBackInVersion) {
  auto read = [&](int64_t invoked, int64_t done, uint64_t version) {
    HistoryEntry* e = Add(HistoryEntry::FRIENDS_LISTED, "bob.d1", 2);
    e->set_invoked_us(invoked);
    e->set_time_us(done);
    e->set_version(version);
    e->set_detail("cache");
  };
  read(10, 20, 3);
  read(15, 25, 2);  // concurrent with the first: may be older
  read(30, 40, 3);
  EXPECT_FALSE(Check("friend_cache").has_value());
  read(50, 60, 2);  // sent after version 3 had returned
  std::optional<Violation> v = Check("friend_cache");
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->entry, history_.entries_size() - 1);
}

TEST_F(CheckersTest, PresenceLiveCatchesAnEntryWithoutASession) {
  PresenceRecord p;
  p.set_user_id(2);
  p.set_device_id("d1");
  p.set_gateway_id("1");
  p.set_epoch(3);
  state_.presence.push_back(p);
  state_.sessions.insert({2, "d1", "1", 3});
  EXPECT_FALSE(Check("presence_live").has_value());
  state_.sessions.clear();
  state_.sessions.insert({2, "d1", "2", 4});  // the device moved on
  std::optional<Violation> v = Check("presence_live");
  ASSERT_TRUE(v.has_value());
  EXPECT_NE(v->explanation.find("bob.d1 (user 2)"), std::string::npos) << v->explanation;
}

TEST_F(CheckersTest, UnreadCatchesACursorThatWentBackOrFellBehind) {
  HistoryEntry* e = Add(HistoryEntry::READ_ACKED, "bob.d1", 2);
  e->set_conversation("p:1:2");
  e->set_seq(2);
  state_.read_cursors[{"p:1:2", 2}] = 2;
  EXPECT_FALSE(Check("unread").has_value());
  state_.read_cursors[{"p:1:2", 2}] = 1;  // lost an acknowledged read
  ASSERT_TRUE(Check("unread").has_value());
  state_.read_cursors[{"p:1:2", 2}] = 2;
  e = Add(HistoryEntry::READ_ACKED, "bob.d1", 2);
  e->set_conversation("p:1:2");
  e->set_seq(1);  // went back
  ASSERT_TRUE(Check("unread").has_value());
}

TEST_F(CheckersTest, IdempotentSendCatchesAMessageStoredTwice) {
  GoodHistory();
  EXPECT_FALSE(Check("idempotent_send").has_value());
  AddMessage("p:1:2", 3, 2, "b-1");
  ASSERT_TRUE(Check("idempotent_send").has_value());
}

TEST_F(CheckersTest, IdempotentSendCatchesAnAckNamingAnotherMessage) {
  GoodHistory();
  Ack("alice.d1", 1, "p:1:2", 2, "a-1");  // a-1 is #1
  ASSERT_TRUE(Check("idempotent_send").has_value());
}

TEST_F(CheckersTest, RegistryLiveCatchesADeadInstanceStillListed) {
  state_.registry["user"] = {"svc.user.1", "svc.user.2"};
  state_.live_instances["user"] = {"svc.user.1", "svc.user.2"};
  EXPECT_FALSE(Check("registry_live").has_value());
  state_.live_instances["user"] = {"svc.user.1"};
  ASSERT_TRUE(Check("registry_live").has_value());
  state_.live_instances["user"] = {"svc.user.1", "svc.user.2"};
  state_.registry["user"] = {"svc.user.1"};  // a live one missing
  ASSERT_TRUE(Check("registry_live").has_value());
}

}  // namespace
}  // namespace sim
}  // namespace parley
