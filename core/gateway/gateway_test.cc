// Gateway sessions and presence: leases are renewed while a session lives,
// released on logout and idle expiry, run out after a crash, and a newer
// login of the same device wins. And the gateway's part of the access policy:
// a request acts as the session's user, whatever the envelope says; internal
// operations are refused; a listing hands each shard the user's current
// group memberships.
#include "core/gateway/gateway.h"

#include <map>
#include <set>

#include "core/message/conversation.h"
#include "core/message/message_keys.h"
#include "core/services.h"
#include "core/status.h"
#include "fakes/core_cluster.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "gtest/gtest.h"

namespace parley {
namespace {

CoreClusterOptions TwoGateways() {
  CoreClusterOptions o;
  o.gateways = 2;
  o.shards = 1;
  return o;
}

class GatewayTest : public ::testing::Test {
 protected:
  GatewayTest() : c_(TwoGateways()) {
    user_ = c_.Register("alice");
    Request login;
    login.mutable_login()->set_name("alice");
    login.mutable_login()->set_password("password-alice");
    token_ = c_.Call(CoreCluster::Address(kUserService), login).login().token();
  }
  Reply Open(const std::string& gateway, uint64_t epoch, const std::string& device = "phone") {
    Request open;
    open.mutable_gateway_login()->set_token(token_);
    open.mutable_gateway_login()->set_device_id(device);
    open.mutable_gateway_login()->set_epoch(epoch);
    return c_.Call(gateway, open);
  }
  // The gateway the kv says the device is on, or "".
  std::string Presence(const std::string& device = "phone") {
    Request get;
    get.mutable_kv_get()->add_keys(message_keys::Presence(user_, device));
    Reply reply = c_.Call(kKvAddress, get);
    if (reply.kv_get().entries_size() == 0) return "";
    PresenceRecord p;
    p.ParseFromString(reply.kv_get().entries(0).value());
    return p.gateway_id();
  }
  void Ping(const std::string& gateway) {
    Request ping;
    ping.mutable_ping();
    ASSERT_EQ(c_.Call(gateway, ping).status().code(), CODE_OK);
  }

  CoreCluster c_;
  uint64_t user_ = 0;
  std::string token_;
};

TEST_F(GatewayTest, LoginRegistersPresenceAndRenewalKeepsIt) {
  ASSERT_EQ(Open("gw.1", 1).status().code(), CODE_OK);
  EXPECT_EQ(Presence(), "1");
  // Well past one lease (3 s), kept alive by pings and renewals.
  for (int i = 0; i < 10; ++i) {
    c_.net().Advance(absl::Seconds(1));
    Ping("gw.1");
  }
  EXPECT_EQ(Presence(), "1");
}

TEST_F(GatewayTest, LogoutReleasesPresence) {
  ASSERT_EQ(Open("gw.1", 1).status().code(), CODE_OK);
  Request logout;
  logout.mutable_gateway_logout();
  ASSERT_EQ(c_.Call("gw.1", logout).status().code(), CODE_OK);
  c_.net().Advance(absl::Milliseconds(50));
  EXPECT_EQ(Presence(), "");
  EXPECT_EQ(c_.gateway(0)->sessions(), 0u);
}

TEST_F(GatewayTest, AnIdleSessionIsDroppedAndItsPresenceReleased) {
  ASSERT_EQ(Open("gw.1", 1).status().code(), CODE_OK);
  c_.net().Advance(absl::Seconds(8));  // no ping for longer than idle_timeout
  EXPECT_EQ(c_.gateway(0)->sessions(), 0u);
  EXPECT_EQ(Presence(), "");
  EXPECT_EQ(c_.gateway(0)->stats().sessions_expired, 1u);
}

TEST_F(GatewayTest, AfterAGatewayCrashTheLeaseRunsOut) {
  ASSERT_EQ(Open("gw.1", 1).status().code(), CODE_OK);
  c_.net().Crash("gw.1");
  c_.net().Advance(absl::Seconds(1));
  EXPECT_EQ(Presence(), "1");  // still within the lease
  c_.net().Advance(absl::Seconds(3));
  EXPECT_EQ(Presence(), "");  // expired: never returned
}

TEST_F(GatewayTest, ANewerLoginOfTheDeviceWinsAndTheOlderIsDropped) {
  ASSERT_EQ(Open("gw.1", 1).status().code(), CODE_OK);
  ASSERT_EQ(Open("gw.2", 2).status().code(), CODE_OK);
  EXPECT_EQ(Presence(), "2");
  // The older session's renewal no longer applies, and gw.1 lets it go.
  c_.net().Advance(absl::Seconds(2));
  EXPECT_EQ(Presence(), "2");
  EXPECT_EQ(c_.gateway(0)->sessions(), 0u);
  // An older epoch cannot take the device back.
  EXPECT_EQ(Open("gw.1", 1).status().code(), CODE_FAILED_PRECONDITION);
  EXPECT_EQ(Presence(), "2");
}

TEST_F(GatewayTest, BadLoginsAreRefused) {
  EXPECT_EQ(Open("gw.1", 0).status().code(), CODE_INVALID_ARGUMENT);
  EXPECT_EQ(Open("gw.1", 1, "").status().code(), CODE_INVALID_ARGUMENT);
  EXPECT_EQ(Open("gw.1", 1, std::string(65, 'd')).status().code(), CODE_INVALID_ARGUMENT);
  token_ = "1.99999999999999999.AAAA";
  EXPECT_EQ(Open("gw.1", 1).status().code(), CODE_UNAUTHENTICATED);
  EXPECT_EQ(c_.gateway(0)->sessions(), 0u);
  EXPECT_EQ(Presence(), "");
}

// A login hashes a password, slowly: the client makes one attempt that waits
// auth_timeout, and the gateway forwards it once with that same wait, so an
// unanswered login puts one hash on the user service's queue, not six.
TEST_F(GatewayTest, ALoginIsForwardedOnceWithTheClientsWait) {
  int forwarded = 0;
  int64_t timeout_us = 0;
  c_.net().HoldNext([&](const std::string& to, const Envelope& e) {
    if (to.rfind("svc.user.", 0) == 0 && e.has_request() && e.request().has_login()) {
      ++forwarded;
      timeout_us = e.timeout_us();
    }
    return false;  // only counting
  });
  c_.net().Crash(CoreCluster::Address(kUserService));  // no answer will come
  ClientOptions o;
  o.password = "password-alice";
  o.auth_timeout = absl::Seconds(2);
  o.preferred_gateway = "gw.1";
  c_.AddClient("alice", "tablet", o);
  c_.net().Advance(absl::Milliseconds(1900));
  EXPECT_EQ(forwarded, 1);
  EXPECT_EQ(timeout_us, 2000000);
}

// A login whose client said no wait (timeout_us 0) is still forwarded once:
// a retry at the gateway would queue another slow password hash.
TEST_F(GatewayTest, ALoginWithoutAWaitIsForwardedOnceToo) {
  int forwarded = 0;
  c_.net().HoldNext([&](const std::string& to, const Envelope& e) {
    if (to.rfind("svc.user.", 0) == 0 && e.has_request() && e.request().has_login()) ++forwarded;
    return false;  // only counting
  });
  c_.net().Crash(CoreCluster::Address(kUserService));  // no answer will come
  Request login;
  login.mutable_login()->set_name("alice");
  login.mutable_login()->set_password("password-alice");
  c_.net().Send("gw.1", login);  // the test endpoint sets no timeout_us
  c_.net().Advance(absl::Seconds(3));
  EXPECT_EQ(forwarded, 1);
}

TEST_F(GatewayTest, PushesSkipSessionsThatAreGone) {
  ASSERT_EQ(Open("gw.1", 1).status().code(), CODE_OK);
  Envelope push;
  push.mutable_push()->mutable_message()->set_conversation("p:1:2");
  push.mutable_push()->mutable_message()->set_seq(1);
  Push::Target* here = push.mutable_push()->add_targets();
  here->set_user_id(user_);
  here->set_device_id("phone");
  here->set_epoch(1);
  Push::Target* gone = push.mutable_push()->add_targets();
  gone->set_user_id(user_);
  gone->set_device_id("tablet");
  gone->set_epoch(1);
  c_.net().node("gw.1")->OnEnvelope(push);
  c_.net().Advance(absl::Milliseconds(10));
  EXPECT_EQ(c_.gateway(0)->stats().pushed_to_sessions, 1u);
  EXPECT_EQ(c_.gateway(0)->stats().push_targets_skipped, 1u);
  ASSERT_EQ(c_.net().test_inbox().size(), 1u);
  EXPECT_EQ(c_.net().test_inbox()[0].client_push().message().seq(), 1u);
}

// ---- acting user and client operations ----------------------------------------------------

TEST_F(GatewayTest, AForgedAuthUserIdActsAsTheSessionsUser) {
  const uint64_t bob = c_.Register("bob", "Bob");
  ASSERT_TRUE(c_.Befriend(user_, bob).ok());
  ASSERT_EQ(Open("gw.1", 1).status().code(), CODE_OK);
  // Watch what the gateway forwards.
  std::vector<Envelope> forwarded;
  c_.net().HoldNext([&](const std::string& to, const Envelope& e) {
    if (e.has_request() && to != "gw.1") forwarded.push_back(e);  // gw.1 -> services
    return false;
  });
  Request create;
  create.mutable_create_group()->set_name("mine");
  Reply created = c_.Call("gw.1", create, /*auth_user_id=*/bob);  // claims to be bob
  ASSERT_EQ(created.status().code(), CODE_OK) << created.status().message();
  EXPECT_EQ(created.create_group().group().owner_id(), user_);
  Request update;
  update.mutable_update_profile()->set_nickname("not bob");
  ASSERT_EQ(c_.Call("gw.1", update, bob).status().code(), CODE_OK);
  Request send;
  send.mutable_send_private()->set_to_user_id(bob);
  send.mutable_send_private()->set_client_msg_id("m1");
  send.mutable_send_private()->set_body("hi");
  send.mutable_send_private()->set_origin_device_id("someone-elses-tablet");
  Reply sent = c_.Call("gw.1", send, bob);
  ASSERT_EQ(sent.status().code(), CODE_OK) << sent.status().message();
  size_t seen = 0;
  for (const Envelope& e : forwarded) {
    if (e.request().has_create_group() || e.request().has_update_profile() ||
        e.request().has_send_private()) {
      ++seen;
      EXPECT_EQ(e.auth_user_id(), user_) << e.request().ShortDebugString();
    }
    if (e.request().has_send_private()) {
      EXPECT_EQ(e.request().send_private().origin_device_id(), "phone");
    }
  }
  EXPECT_EQ(seen, 3u);
  Request get;
  get.mutable_get_users()->add_user_ids(user_);
  get.mutable_get_users()->add_user_ids(bob);
  Reply users = c_.Call(CoreCluster::Address(kUserService), get);
  ASSERT_EQ(users.get_users().profiles_size(), 2);
  EXPECT_EQ(users.get_users().profiles(0).nickname(), "not bob");  // alice's
  EXPECT_EQ(users.get_users().profiles(1).nickname(), "Bob");
}

TEST_F(GatewayTest, WithoutASessionNothingIsForwarded) {
  Request create;
  create.mutable_create_group()->set_name("g");
  EXPECT_EQ(c_.Call("gw.1", create, user_).status().code(), CODE_UNAUTHENTICATED);
  Request ping;
  ping.mutable_ping();
  EXPECT_EQ(c_.Call("gw.1", ping).status().code(), CODE_UNAUTHENTICATED);
}

TEST_F(GatewayTest, InternalOperationsAreRefused) {
  ASSERT_EQ(Open("gw.1", 1).status().code(), CODE_OK);
  // What a client may call; every other op is internal.
  const std::set<std::string> client_ops = {
      "register",      "login",         "get_users",    "update_profile", "add_friend",
      "remove_friend", "set_remark",    "block",        "list_friends",   "create_group",
      "invite",        "join_group",    "leave_group",  "kick",           "dissolve",
      "group_info",    "member_ids",    "user_groups",  "is_member",      "set_group_open",
      "send_private",  "send_group",    "recall",       "sync",           "list_conversations",
      "ack",           "read",          "gateway_login", "gateway_logout", "ping",
      "change_password",
      // the newer client operations (a duplicate here is harmless)
      "find_user",     "list_devices",  "logout_device",
      "rename_group",  "transfer_ownership", "history"};
  int forwarded = 0;
  c_.net().HoldNext([&](const std::string& to, const Envelope& e) {
    if (e.has_request() && to != "gw.1" && to != FakeCluster::kTestAddress &&
        to.rfind("svc.registry", 0) != 0 && !e.request().has_kv_set() &&
        !e.request().has_check_tokens()) {
      ++forwarded;  // (kv_set: the presence renewals; check_tokens: the token checks)
    }
    return false;
  });
  const google::protobuf::OneofDescriptor* op = Request::descriptor()->FindOneofByName("op");
  ASSERT_NE(op, nullptr);
  std::vector<std::string> internal;
  for (int i = 0; i < op->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* field = op->field(i);
    if (client_ops.count(field->name()) > 0) continue;
    internal.push_back(field->name());
    Request request;
    request.GetReflection()->MutableMessage(&request, field);
    for (uint64_t auth : {uint64_t{0}, user_}) {
      Reply reply = c_.Call("gw.1", request, auth);
      EXPECT_EQ(reply.status().code(), CODE_PERMISSION_DENIED) << field->name();
    }
  }
  EXPECT_THAT(internal, ::testing::IsSupersetOf(
                            {"check_friends", "membership_history", "shard_sync",
                             "shard_list_conversations", "kv_get", "kv_set", "kv_delete",
                             "kv_lock", "kv_unlock", "register_instance",
                             "deregister_instance", "discover", "watch", "check_tokens",
                             "revoke_device_tokens"}));
  EXPECT_EQ(forwarded, 0);
  Request empty;  // no op at all
  EXPECT_EQ(c_.Call("gw.1", empty).status().code(), CODE_PERMISSION_DENIED);
}

TEST_F(GatewayTest, SetGroupOpenIsForwardedAndGroupRulesHoldThroughTheGateway) {
  const uint64_t bob = c_.Register("bob");
  Request create;
  create.mutable_create_group()->set_name("closed");
  Reply created = c_.Call(CoreCluster::Address(kGroupService), create, bob);
  ASSERT_EQ(created.status().code(), CODE_OK);
  const uint64_t g = created.create_group().group().group_id();
  ASSERT_EQ(Open("gw.1", 1).status().code(), CODE_OK);  // alice, not a member
  Request join;
  join.mutable_join_group()->set_group_id(g);
  EXPECT_EQ(c_.Call("gw.1", join, bob).status().code(), CODE_PERMISSION_DENIED);  // closed
  Request info;
  info.mutable_group_info()->set_group_id(g);
  EXPECT_EQ(c_.Call("gw.1", info, bob).status().code(), CODE_PERMISSION_DENIED);
  Request set;
  set.mutable_set_group_open()->set_group_id(g);
  set.mutable_set_group_open()->set_open(true);
  EXPECT_EQ(c_.Call("gw.1", set, bob).status().code(), CODE_PERMISSION_DENIED);  // not owner
  // The owner opens it (through the group service), and alice joins.
  ASSERT_EQ(c_.Call(CoreCluster::Address(kGroupService), set, bob).status().code(), CODE_OK);
  ASSERT_EQ(c_.Call("gw.1", join).status().code(), CODE_OK);
  Reply seen = c_.Call("gw.1", info);
  ASSERT_EQ(seen.status().code(), CODE_OK) << seen.status().message();
  EXPECT_EQ(seen.group_info().members_size(), 2);
  // Alice's own group, opened and closed through the gateway.
  Request mine;
  mine.mutable_create_group()->set_name("mine");
  const uint64_t m = c_.Call("gw.1", mine).create_group().group().group_id();
  set.mutable_set_group_open()->set_group_id(m);
  Reply opened = c_.Call("gw.1", set);
  ASSERT_EQ(opened.status().code(), CODE_OK) << opened.status().message();
  EXPECT_TRUE(opened.membership().group().open());
  Request other;
  other.mutable_join_group()->set_group_id(m);
  EXPECT_EQ(c_.Call(CoreCluster::Address(kGroupService), other, bob).status().code(), CODE_OK);
}

// ---- overload and sends of unknown outcome --------------------------------------------------

class GatewaySendTest : public ::testing::Test {
 protected:
  static CoreClusterOptions Options(size_t max_backend_calls) {
    CoreClusterOptions o;
    o.gateways = 1;
    o.shards = 1;
    o.gateway.max_backend_calls = max_backend_calls;
    return o;
  }
  explicit GatewaySendTest(size_t max_backend_calls = 2) : c_(Options(max_backend_calls)) {
    alice_ = c_.Register("alice");
    bob_ = c_.Register("bob");
    EXPECT_TRUE(c_.Befriend(alice_, bob_).ok());
    Request login;
    login.mutable_login()->set_name("alice");
    login.mutable_login()->set_password("password-alice");
    login.mutable_login()->set_device_id("phone");
    Request open;
    open.mutable_gateway_login()->set_token(
        c_.Call(CoreCluster::Address(kUserService), login).login().token());
    open.mutable_gateway_login()->set_device_id("phone");
    open.mutable_gateway_login()->set_epoch(1);
    EXPECT_EQ(c_.Call("gw.1", open).status().code(), CODE_OK);
  }
  static Request Send(uint64_t to, const std::string& id) {
    Request send;
    send.mutable_send_private()->set_to_user_id(to);
    send.mutable_send_private()->set_client_msg_id(id);
    send.mutable_send_private()->set_body("hi " + id);
    return send;
  }
  bool Stored(const std::string& id) {
    std::string value;
    return c_.net()
        .store(ShardAddress(0))
        .Get(message_keys::Idempotency(alice_, id), &value)
        .ok();
  }

  CoreCluster c_;
  uint64_t alice_ = 0;
  uint64_t bob_ = 0;
};

// Past max_backend_calls in flight, a request is refused RESOURCE_EXHAUSTED
// at once and nothing is forwarded (the send is not committed); below it
// again, requests go through.
TEST_F(GatewaySendTest, BeyondTheInFlightCapARequestIsRefusedAtOnceAndNotForwarded) {
  const std::string shard = ShardAddress(0);
  size_t to_shard = 0;
  c_.net().HoldNext([&](const std::string& to, const Envelope& e) {
    if (to == shard && e.has_request() && e.request().has_send_private()) ++to_shard;
    return false;
  });
  // The first two sends are held on their way to the shard: both stay in flight.
  for (int i = 0; i < 2; ++i) {
    c_.net().HoldNext([&](const std::string& to, const Envelope& e) {
      return to == shard && e.has_request() && e.request().has_send_private();
    });
  }
  const uint64_t a = c_.net().Send("gw.1", Send(bob_, "a"));
  const uint64_t b = c_.net().Send("gw.1", Send(bob_, "b"));
  c_.net().Advance(absl::Milliseconds(5));
  ASSERT_EQ(c_.net().held(), 2u);
  const absl::Time before = c_.net().Now();
  Reply refused = c_.Call("gw.1", Send(bob_, "c"));
  EXPECT_EQ(refused.status().code(), CODE_RESOURCE_EXHAUSTED) << refused.status().message();
  EXPECT_LT(c_.net().Now() - before, absl::Milliseconds(10)) << "refused at once";
  EXPECT_EQ(c_.gateway(0)->stats().overloaded, 1u);
  EXPECT_EQ(to_shard, 2u) << "the refused send was forwarded";
  EXPECT_FALSE(Stored("c"));
  c_.net().ReleaseHeld();
  c_.net().Advance(absl::Milliseconds(50));
  EXPECT_EQ(c_.net().TakeReply(a).value_or(Reply()).send().seq(), 1u);
  EXPECT_EQ(c_.net().TakeReply(b).value_or(Reply()).send().seq(), 2u);
  // Below the cap again: the same send, retried, goes through.
  Reply retried = c_.Call("gw.1", Send(bob_, "c"));
  ASSERT_EQ(retried.status().code(), CODE_OK) << retried.status().message();
  EXPECT_EQ(retried.send().seq(), 3u);
}

// A send whose call to the shard fails after the shard may have committed it
// (here: committed, every reply lost) is answered DEADLINE_EXCEEDED "outcome
// unknown", never UNAVAILABLE; retried with the same client_msg_id it gets
// the committed seq, and exactly one message exists.
class GatewayUnknownTest : public GatewaySendTest {
 protected:
  GatewayUnknownTest() : GatewaySendTest(/*max_backend_calls=*/0) {}
};

TEST_F(GatewayUnknownTest, ASendWhoseRepliesAreLostSaysTheOutcomeIsUnknown) {
  CoreCluster& c = c_;
  int lost = 0;
  c.net().HoldNext([&](const std::string& to, const Envelope& e) {
    if (to == "gw.1" && e.has_reply() && e.reply().has_send()) ++lost;
    return false;
  });
  for (int i = 0; i < 3; ++i) {  // the gateway's three attempts
    c.net().HoldNext([&](const std::string& to, const Envelope& e) {
      return to == "gw.1" && e.has_reply() && e.reply().has_send();
    });
  }
  Reply unknown = c.Call("gw.1", Send(bob_, "x"));
  EXPECT_EQ(unknown.status().code(), CODE_DEADLINE_EXCEEDED) << unknown.status().message();
  EXPECT_THAT(unknown.status().message(), ::testing::HasSubstr("outcome unknown"));
  EXPECT_EQ(lost, 3);
  EXPECT_TRUE(Stored("x")) << "committed although the answer was an error";
  EXPECT_EQ(c.gateway(0)->stats().sends_unknown, 1u);
  Reply retried = c.Call("gw.1", Send(bob_, "x"));
  ASSERT_EQ(retried.status().code(), CODE_OK) << retried.status().message();
  EXPECT_EQ(retried.send().seq(), 1u);
  Reply next = c.Call("gw.1", Send(bob_, "y"));
  EXPECT_EQ(next.send().seq(), 2u) << "the retry committed a second copy";
}

// ---- listing conversations --------------------------------------------------------------

TEST(GatewayListTest, EachShardGetsTheCurrentMembershipsOfItsGroups) {
  CoreClusterOptions o;
  o.gateways = 1;
  o.shards = 3;
  CoreCluster c(o);
  const uint64_t alice = c.Register("alice");
  const uint64_t bob = c.Register("bob");
  const std::string group_service = CoreCluster::Address(kGroupService);
  // Bob's open groups; alice joins all of them and leaves the first two.
  std::vector<uint64_t> groups;
  for (int i = 0; i < 8; ++i) {
    Request create;
    create.mutable_create_group()->set_name("g");
    create.mutable_create_group()->set_open(true);
    Reply created = c.Call(group_service, create, bob);
    ASSERT_EQ(created.status().code(), CODE_OK);
    groups.push_back(created.create_group().group().group_id());
    Request join;
    join.mutable_join_group()->set_group_id(groups.back());
    ASSERT_EQ(c.Call(group_service, join, alice).status().code(), CODE_OK);
  }
  for (int i = 0; i < 2; ++i) {
    Request leave;
    leave.mutable_leave_group()->set_group_id(groups[i]);
    ASSERT_EQ(c.Call(group_service, leave, alice).status().code(), CODE_OK);
  }
  const std::vector<uint64_t> current(groups.begin() + 2, groups.end());
  std::set<uint32_t> shards_used;
  for (uint64_t g : current) shards_used.insert(ShardOf(GroupConversationId(g), 3));
  ASSERT_GE(shards_used.size(), 2u);  // the test means something
  // A session for alice.
  Request login;
  login.mutable_login()->set_name("alice");
  login.mutable_login()->set_password("password-alice");
  Request open;
  open.mutable_gateway_login()->set_token(c.Call(CoreCluster::Address(kUserService), login)
                                              .login().token());
  open.mutable_gateway_login()->set_device_id("phone");
  open.mutable_gateway_login()->set_epoch(1);
  ASSERT_EQ(c.Call("gw.1", open).status().code(), CODE_OK);
  std::vector<Envelope> to_group;
  std::map<std::string, ShardListConversationsRequest> to_shard;
  c.net().HoldNext([&](const std::string& to, const Envelope& e) {
    if (!e.has_request()) return false;
    if (to.rfind("svc.group.", 0) == 0) to_group.push_back(e);
    if (e.request().has_shard_list_conversations()) {
      to_shard[to] = e.request().shard_list_conversations();
    }
    return false;
  });
  Request list;
  list.mutable_list_conversations();
  Reply listed = c.Call("gw.1", list, /*auth_user_id=*/bob);  // forged: ignored
  ASSERT_EQ(listed.status().code(), CODE_OK) << listed.status().message();
  ASSERT_EQ(to_group.size(), 1u);
  EXPECT_TRUE(to_group[0].request().has_membership_history());
  EXPECT_EQ(to_group[0].request().membership_history().user_id(), alice);
  EXPECT_EQ(to_group[0].auth_user_id(), alice);
  ASSERT_EQ(to_shard.size(), 3u);
  for (uint32_t shard = 0; shard < 3; ++shard) {
    const ShardListConversationsRequest& r = to_shard[ShardAddress(shard)];
    EXPECT_EQ(r.user_id(), alice);
    std::vector<uint64_t> expected;
    for (uint64_t g : current) {
      if (ShardOf(GroupConversationId(g), 3) == shard) expected.push_back(g);
    }
    std::vector<uint64_t> got;
    for (const GroupMembership& m : r.groups()) {
      got.push_back(m.group_id());
      ASSERT_GT(m.intervals_size(), 0);
      EXPECT_EQ(m.intervals(m.intervals_size() - 1).leave_version(), 0u);
    }
    EXPECT_EQ(got, expected) << "shard " << shard;
    // group_ids: every current group, as before.
    EXPECT_THAT(r.group_ids(), ::testing::ElementsAreArray(current)) << "shard " << shard;
  }
}

// ---- tokens: revocation, change_password, epochs -----------------------------------------

class GatewayTokenTest : public GatewayTest {
 protected:
  std::string DeviceToken(const std::string& device, const std::string& password = "password-alice") {
    Request login;
    login.mutable_login()->set_name("alice");
    login.mutable_login()->set_password(password);
    login.mutable_login()->set_device_id(device);
    Reply reply = c_.Call(CoreCluster::Address(kUserService), login);
    EXPECT_EQ(reply.status().code(), CODE_OK) << reply.status().message();
    return reply.login().token();
  }
  Reply OpenWith(const std::string& gateway, const std::string& token, const std::string& device,
                 uint64_t epoch) {
    Request open;
    open.mutable_gateway_login()->set_token(token);
    open.mutable_gateway_login()->set_device_id(device);
    open.mutable_gateway_login()->set_epoch(epoch);
    return c_.Call(gateway, open);
  }
  Reply Logout(const std::string& gateway, bool connection_closed = false) {
    Request logout;
    logout.mutable_gateway_logout()->set_connection_closed(connection_closed);
    return c_.Call(gateway, logout);
  }
  ErrorCode PingCode(const std::string& gateway) {
    Request ping;
    ping.mutable_ping();
    return c_.Call(gateway, ping).status().code();
  }
};

TEST_F(GatewayTokenTest, ALoggedOutDevicesTokenIsRefusedAtEveryGateway) {
  const std::string token = DeviceToken("phone");
  ASSERT_EQ(OpenWith("gw.1", token, "phone", 1).status().code(), CODE_OK);
  ASSERT_EQ(Logout("gw.1").status().code(), CODE_OK);
  EXPECT_EQ(OpenWith("gw.2", token, "phone", 2).status().code(), CODE_UNAUTHENTICATED);
  EXPECT_EQ(OpenWith("gw.1", token, "phone", 3).status().code(), CODE_UNAUTHENTICATED);
  // A fresh login of the device works.
  EXPECT_EQ(OpenWith("gw.2", DeviceToken("phone"), "phone", 4).status().code(), CODE_OK);
}

TEST_F(GatewayTokenTest, ALogoutEndsTheDevicesSessionElsewhereButNotOtherDevices) {
  const std::string phone = DeviceToken("phone");
  const std::string laptop = DeviceToken("laptop");
  // The test endpoint holds one session per gateway: phone at gw.1, laptop at gw.2.
  ASSERT_EQ(OpenWith("gw.1", phone, "phone", 1).status().code(), CODE_OK);
  ASSERT_EQ(OpenWith("gw.2", laptop, "laptop", 1).status().code(), CODE_OK);
  ASSERT_EQ(Logout("gw.1").status().code(), CODE_OK);
  c_.net().Advance(absl::Seconds(6));
  EXPECT_EQ(PingCode("gw.2"), CODE_OK);  // the laptop's token is still current
  EXPECT_EQ(OpenWith("gw.1", phone, "phone", 2).status().code(), CODE_UNAUTHENTICATED);
}

TEST_F(GatewayTokenTest, AClosedConnectionEndsTheSessionButNotTheToken) {
  const std::string token = DeviceToken("phone");
  ASSERT_EQ(OpenWith("gw.1", token, "phone", 1).status().code(), CODE_OK);
  ASSERT_EQ(Logout("gw.1", /*connection_closed=*/true).status().code(), CODE_OK);
  EXPECT_EQ(c_.gateway(0)->sessions(), 0u);
  EXPECT_EQ(OpenWith("gw.2", token, "phone", 2).status().code(), CODE_OK);
}

// Only the listener's notice (connection_closed) spares the tokens: a client's
// own logout revokes them whatever its correlation id.
TEST_F(GatewayTokenTest, ALogoutWithoutACorrelationIdStillRevokesTheTokens) {
  const std::string token = DeviceToken("phone");
  ASSERT_EQ(OpenWith("gw.1", token, "phone", 1).status().code(), CODE_OK);
  Envelope logout;
  logout.set_from(FakeCluster::kTestAddress);
  logout.mutable_request()->mutable_gateway_logout();  // correlation id 0
  c_.net().node("gw.1")->OnEnvelope(logout);
  c_.net().Advance(absl::Seconds(1));
  EXPECT_EQ(c_.gateway(0)->sessions(), 0u);
  EXPECT_EQ(OpenWith("gw.2", token, "phone", 2).status().code(), CODE_UNAUTHENTICATED);
}

TEST_F(GatewayTokenTest, ATokenForAnotherDeviceIsRefused) {
  EXPECT_EQ(OpenWith("gw.1", DeviceToken("phone"), "laptop", 1).status().code(),
            CODE_UNAUTHENTICATED);
}

TEST_F(GatewayTokenTest, ChangePasswordClosesTheUsersOtherSessionsAndKeepsTheCallers) {
  const std::string phone = DeviceToken("phone");
  const std::string laptop = DeviceToken("laptop");
  ASSERT_EQ(OpenWith("gw.1", phone, "phone", 1).status().code(), CODE_OK);
  ASSERT_EQ(OpenWith("gw.2", laptop, "laptop", 1).status().code(), CODE_OK);
  Request change;
  change.mutable_change_password()->set_old_password("password-alice");
  change.mutable_change_password()->set_new_password("password-alice-2");
  change.mutable_change_password()->set_device_id("laptop");  // ignored: the session's device
  Reply changed = c_.Call("gw.1", change);
  ASSERT_EQ(changed.status().code(), CODE_OK) << changed.status().message();
  // Within one token check interval (5 s) the laptop's session is gone.
  for (int i = 0; i < 7; ++i) {
    c_.net().Advance(absl::Seconds(1));
    ASSERT_EQ(PingCode("gw.1"), CODE_OK) << i;  // the caller's session goes on
  }
  EXPECT_EQ(PingCode("gw.2"), CODE_UNAUTHENTICATED);
  EXPECT_EQ(c_.gateway(1)->stats().sessions_revoked, 1u);
  // Every old token is refused; the new password and the reply's token work.
  EXPECT_EQ(OpenWith("gw.2", laptop, "laptop", 2).status().code(), CODE_UNAUTHENTICATED);
  EXPECT_EQ(OpenWith("gw.2", phone, "phone", 2).status().code(), CODE_UNAUTHENTICATED);
  EXPECT_EQ(OpenWith("gw.2", changed.change_password().token(), "phone", 3).status().code(),
            CODE_OK);
  Request old_login;
  old_login.mutable_login()->set_name("alice");
  old_login.mutable_login()->set_password("password-alice");
  EXPECT_EQ(c_.Call(CoreCluster::Address(kUserService), old_login).status().code(),
            CODE_UNAUTHENTICATED);
  EXPECT_EQ(OpenWith("gw.2", DeviceToken("laptop", "password-alice-2"), "laptop", 4).status().code(),
            CODE_OK);
}

// ---- find_user, list_devices, logout_device ---------------------------------------------

TEST_F(GatewayTokenTest, FindUserIsForwardedForASessionOnly) {
  const uint64_t bob = c_.Register("bob");
  Request find;
  find.mutable_find_user()->set_name("bob");
  EXPECT_EQ(c_.Call("gw.1", find).status().code(), CODE_UNAUTHENTICATED);  // no session
  ASSERT_EQ(OpenWith("gw.1", DeviceToken("phone"), "phone", 1).status().code(), CODE_OK);
  Reply found = c_.Call("gw.1", find);
  ASSERT_EQ(found.status().code(), CODE_OK) << found.status().message();
  EXPECT_EQ(found.find_user().profile().user_id(), bob);
  EXPECT_EQ(found.find_user().profile().name(), "bob");
  EXPECT_TRUE(found.find_user().profile().avatar().empty());
  find.mutable_find_user()->set_name("carol");
  Reply none = c_.Call("gw.1", find);
  EXPECT_EQ(none.status().code(), CODE_NOT_FOUND);
  EXPECT_EQ(none.status().message(), "no user named carol");
  find.mutable_find_user()->set_name("Bob!");
  EXPECT_EQ(c_.Call("gw.1", find).status().code(), CODE_INVALID_ARGUMENT);
}

TEST_F(GatewayTokenTest, ListDevicesShowsTheUsersOwnDevicesWithTheirPresence) {
  Request list;
  list.mutable_list_devices();
  EXPECT_EQ(c_.Call("gw.1", list).status().code(), CODE_UNAUTHENTICATED);  // no session
  const std::string phone = DeviceToken("phone");
  const std::string laptop = DeviceToken("laptop");
  DeviceToken("watch");  // logged in once, never connected
  c_.Register("bob");
  Request bob_login;
  bob_login.mutable_login()->set_name("bob");
  bob_login.mutable_login()->set_password("password-bob");
  bob_login.mutable_login()->set_device_id("tablet");
  ASSERT_EQ(c_.Call(CoreCluster::Address(kUserService), bob_login).status().code(), CODE_OK);
  ASSERT_EQ(OpenWith("gw.1", phone, "phone", 3).status().code(), CODE_OK);
  ASSERT_EQ(OpenWith("gw.2", laptop, "laptop", 7).status().code(), CODE_OK);
  Reply listed = c_.Call("gw.1", list, /*auth_user_id=*/12345);  // the envelope's is ignored
  ASSERT_EQ(listed.status().code(), CODE_OK) << listed.status().message();
  const ListDevicesReply& d = listed.list_devices();
  ASSERT_EQ(d.devices_size(), 3);  // not bob's tablet
  EXPECT_EQ(d.devices(0).device_id(), "laptop");
  EXPECT_TRUE(d.devices(0).online());
  EXPECT_EQ(d.devices(0).gateway_id(), "2");
  EXPECT_EQ(d.devices(0).epoch(), 7u);
  EXPECT_EQ(d.devices(1).device_id(), "phone");
  EXPECT_TRUE(d.devices(1).online());
  EXPECT_EQ(d.devices(1).gateway_id(), "1");
  EXPECT_EQ(d.devices(1).epoch(), 3u);
  EXPECT_EQ(d.devices(2).device_id(), "watch");
  EXPECT_FALSE(d.devices(2).online());
  EXPECT_TRUE(d.devices(2).gateway_id().empty());
  EXPECT_GT(d.devices(2).last_login_us(), 0);
  // kv unreachable: the presence is unknown, so no answer rather than a wrong one.
  c_.net().Crash(kKvAddress);
  EXPECT_EQ(c_.Call("gw.1", list).status().code(), CODE_UNAVAILABLE);
}

TEST_F(GatewayTokenTest, LogoutDeviceClosesThatDevicesSessionElsewhereWithinATokenCheck) {
  const std::string phone = DeviceToken("phone");
  const std::string laptop = DeviceToken("laptop");
  ASSERT_EQ(OpenWith("gw.1", phone, "phone", 1).status().code(), CODE_OK);
  ASSERT_EQ(OpenWith("gw.2", laptop, "laptop", 1).status().code(), CODE_OK);
  Request logout;
  logout.mutable_logout_device()->set_device_id("laptop");
  Reply done = c_.Call("gw.1", logout);
  ASSERT_EQ(done.status().code(), CODE_OK) << done.status().message();
  // The laptop's token is refused at once everywhere; its open session at
  // gw.2 closes at that gateway's next token check (every 5 s).
  EXPECT_EQ(OpenWith("gw.1", laptop, "laptop", 2).status().code(), CODE_UNAUTHENTICATED);
  ASSERT_EQ(OpenWith("gw.1", phone, "phone", 3).status().code(), CODE_OK);
  for (int i = 0; i < 6; ++i) {
    c_.net().Advance(absl::Seconds(1));
    ASSERT_EQ(PingCode("gw.1"), CODE_OK) << i;  // the caller's own device goes on
  }
  EXPECT_EQ(PingCode("gw.2"), CODE_UNAUTHENTICATED);
  EXPECT_EQ(c_.gateway(1)->stats().sessions_revoked, 1u);
  EXPECT_EQ(Presence("laptop"), "");
  // A new login of the device works.
  EXPECT_EQ(OpenWith("gw.2", DeviceToken("laptop"), "laptop", 4).status().code(), CODE_OK);
}

TEST_F(GatewayTokenTest, LogoutDeviceOfASessionHereClosesItBeforeTheAnswer) {
  ASSERT_EQ(OpenWith("gw.1", DeviceToken("phone"), "phone", 1).status().code(), CODE_OK);
  Request logout;
  logout.mutable_logout_device()->set_device_id("phone");  // its own current device
  ASSERT_EQ(c_.Call("gw.1", logout).status().code(), CODE_OK);
  EXPECT_EQ(c_.gateway(0)->sessions(), 0u);  // no token check round needed
  EXPECT_EQ(PingCode("gw.1"), CODE_UNAUTHENTICATED);
}

TEST_F(GatewayTokenTest, LogoutDeviceRefusesBadIdsAndDevicesNotTheUsers) {
  Request logout;
  logout.mutable_logout_device()->set_device_id("phone");
  EXPECT_EQ(c_.Call("gw.1", logout).status().code(), CODE_UNAUTHENTICATED);  // no session
  ASSERT_EQ(OpenWith("gw.1", DeviceToken("phone"), "phone", 1).status().code(), CODE_OK);
  // bob's tablet, online at gw.2 (another endpoint: the test's holds one session per gateway)
  c_.Register("bob");
  Request bob_login;
  bob_login.mutable_login()->set_name("bob");
  bob_login.mutable_login()->set_password("password-bob");
  bob_login.mutable_login()->set_device_id("tablet");
  const std::string bobs = c_.Call(CoreCluster::Address(kUserService), bob_login).login().token();
  ASSERT_EQ(OpenWith("gw.2", bobs, "tablet", 1).status().code(), CODE_OK);
  logout.mutable_logout_device()->set_device_id("");
  EXPECT_EQ(c_.Call("gw.1", logout).status().code(), CODE_INVALID_ARGUMENT);
  logout.mutable_logout_device()->set_device_id(std::string(65, 'x'));
  EXPECT_EQ(c_.Call("gw.1", logout).status().code(), CODE_INVALID_ARGUMENT);
  logout.mutable_logout_device()->set_device_id("watch");
  EXPECT_EQ(c_.Call("gw.1", logout).status().code(), CODE_NOT_FOUND);
  logout.mutable_logout_device()->set_device_id("tablet");  // bob's, not alice's
  EXPECT_EQ(c_.Call("gw.1", logout, /*auth_user_id=*/2).status().code(), CODE_NOT_FOUND);
  for (int i = 0; i < 6; ++i) {  // past a token check round
    c_.net().Advance(absl::Seconds(1));
    ASSERT_EQ(PingCode("gw.2"), CODE_OK) << i;  // bob's session lives
    ASSERT_EQ(PingCode("gw.1"), CODE_OK) << i;
  }
}

TEST_F(GatewayTokenTest, AHugeEpochIsRefusedAndDoesNotLockTheDeviceOut) {
  const std::string token = DeviceToken("phone");
  Reply huge = OpenWith("gw.2", token, "phone", ~uint64_t{0});
  EXPECT_EQ(huge.status().code(), CODE_OUT_OF_RANGE);
  EXPECT_EQ(OpenWith("gw.2", token, "phone", kMaxEpoch + 1).status().code(), CODE_OUT_OF_RANGE);
  // Too far above the device's epoch (none live: 0).
  Reply far = OpenWith("gw.2", token, "phone", kMaxEpochStep + 1);
  EXPECT_EQ(far.status().code(), CODE_OUT_OF_RANGE);
  EXPECT_EQ(far.gateway_login().device_epoch(), 0u);
  // The real device logs in as usual.
  ASSERT_EQ(OpenWith("gw.1", token, "phone", 1).status().code(), CODE_OK);
  EXPECT_EQ(Presence(), "1");
  // The largest step allowed takes the device; the real one is told the
  // device's epoch and gets back in just above it.
  ASSERT_EQ(OpenWith("gw.2", token, "phone", 1 + kMaxEpochStep).status().code(), CODE_OK);
  Reply behind = OpenWith("gw.1", token, "phone", 2);
  EXPECT_EQ(behind.status().code(), CODE_FAILED_PRECONDITION);
  EXPECT_EQ(behind.gateway_login().device_epoch(), 1 + kMaxEpochStep);
  EXPECT_EQ(OpenWith("gw.1", token, "phone", behind.gateway_login().device_epoch() + 1)
                .status()
                .code(),
            CODE_OK);
  EXPECT_EQ(Presence(), "1");
}

TEST_F(GatewayTokenTest, TheReferenceClientGetsBackAfterAStrayHighEpochAndARevokedToken) {
  const std::string address = c_.AddClient("alice", "phone");
  c_.net().Advance(absl::Seconds(2));
  Client* client = c_.client(address);
  ASSERT_EQ(client->state(), Client::State::kOnline);
  // Someone with the device's token takes it with the highest epoch allowed.
  const std::string other = client->gateway() == "gw.1" ? "gw.2" : "gw.1";
  ASSERT_EQ(OpenWith(other, DeviceToken("phone"), "phone", kMaxEpochStep).status().code(),
            CODE_OK);
  // That session stays alive (pings) while the client tries to get back.
  for (int i = 0; i < 10; ++i) {
    c_.net().Advance(absl::Seconds(1));
    PingCode(other);
  }
  EXPECT_EQ(client->state(), Client::State::kOnline);
  EXPECT_EQ(Presence(), client->gateway().substr(3));  // "gw.N" -> "N"
  // Its token revoked (a logout of the device elsewhere): it logs in again
  // with its password.
  const uint64_t logins = c_.gateway(0)->stats().logins + c_.gateway(1)->stats().logins;
  Request revoke;
  absl::StatusOr<TokenClaims> claims =
      TokenSigner::Create(TestTokenKey())->Verify(DeviceToken("phone"), c_.net().Now());
  ASSERT_TRUE(claims.ok());
  revoke.mutable_revoke_device_tokens()->set_user_id(user_);
  revoke.mutable_revoke_device_tokens()->set_device_id("phone");
  revoke.mutable_revoke_device_tokens()->set_device_generation(claims->device_generation);
  ASSERT_EQ(c_.Call(CoreCluster::Address(kUserService), revoke, user_).status().code(), CODE_OK);
  c_.net().Advance(absl::Seconds(15));
  EXPECT_EQ(client->state(), Client::State::kOnline);
  EXPECT_GT(c_.gateway(0)->stats().logins + c_.gateway(1)->stats().logins, logins);
  EXPECT_GE(c_.gateway(0)->stats().sessions_revoked + c_.gateway(1)->stats().sessions_revoked, 1u);
}

}  // namespace
}  // namespace parley
