// Gateway sessions and presence: leases are renewed while a session lives,
// released on logout and idle expiry, run out after a crash, and a newer
// login of the same device wins.
#include "core/gateway/gateway.h"

#include "core/message/message_keys.h"
#include "core/services.h"
#include "core/status.h"
#include "fakes/core_cluster.h"
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

}  // namespace
}  // namespace parley
