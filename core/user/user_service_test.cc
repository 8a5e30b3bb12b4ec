#include "core/user/user_service.h"

#include "core/services.h"
#include "core/status.h"
#include "core/user/user_keys.h"
#include "fakes/core_cluster.h"
#include "gtest/gtest.h"

namespace parley {
namespace {

class UserServiceTest : public ::testing::Test {
 protected:
  const std::string user_ = CoreCluster::Address(kUserService);

  Reply Register(const std::string& name, const std::string& password,
                 const std::string& request_id = "") {
    Request request;
    request.mutable_register_()->set_name(name);
    request.mutable_register_()->set_password(password);
    return c_.net().Call(user_, request, 0, absl::Seconds(10), request_id);
  }
  Reply Login(const std::string& name, const std::string& password) {
    Request request;
    request.mutable_login()->set_name(name);
    request.mutable_login()->set_password(password);
    return c_.Call(user_, request);
  }
  Reply UpdateNickname(uint64_t user, const std::string& nickname) {
    Request request;
    request.mutable_update_profile()->set_nickname(nickname);
    return c_.Call(user_, request, user);
  }
  std::vector<Event> ProfileEvents() {
    std::vector<Event> out;
    for (const Event& e : c_.net().bus_log()) {
      if (e.has_user_profile_changed()) out.push_back(e);
    }
    return out;
  }

  CoreCluster c_;
};

TEST_F(UserServiceTest, RegisterAssignsIdsAndEmitsTheFirstProfileVersion) {
  Reply a = Register("alice", "password-a");
  Reply b = Register("bob", "password-b");
  ASSERT_EQ(a.status().code(), CODE_OK) << a.status().message();
  ASSERT_EQ(b.status().code(), CODE_OK) << b.status().message();
  EXPECT_EQ(a.register_().user_id(), 1u);
  EXPECT_EQ(b.register_().user_id(), 2u);
  c_.Settle();
  std::vector<Event> events = ProfileEvents();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].user_profile_changed().user_id(), 1u);
  EXPECT_EQ(events[0].version(), 1u);
  EXPECT_EQ(events[0].user_profile_changed().nickname(), "alice");  // defaults to the name
}

TEST_F(UserServiceTest, DuplicateNameIsRefused) {
  ASSERT_EQ(Register("alice", "password-a").status().code(), CODE_OK);
  Reply again = Register("alice", "password-other");
  EXPECT_EQ(again.status().code(), CODE_ALREADY_EXISTS);
  EXPECT_NE(again.status().message().find("taken"), std::string::npos);
}

TEST_F(UserServiceTest, BadNamesAndPasswordsAreRefused) {
  for (const char* name : {"", "ab", "Alice", "1abc", "has space", "a-b-c",
                           "abcdefghijklmnopqrstuvwxyz0123456"}) {
    EXPECT_EQ(Register(name, "password-x").status().code(), CODE_INVALID_ARGUMENT) << name;
  }
  EXPECT_EQ(Register("carol", "short").status().code(), CODE_INVALID_ARGUMENT);
  EXPECT_EQ(Register("carol", std::string(129, 'p')).status().code(), CODE_INVALID_ARGUMENT);
  // Nothing was stored by the refused registrations.
  EXPECT_EQ(c_.UserStore().size(), 0u);
}

TEST_F(UserServiceTest, RetriedRegistrationCreatesOneUser) {
  Reply first = Register("alice", "password-a", "client-7#1");
  Reply retry = Register("alice", "password-a", "client-7#1");
  ASSERT_EQ(first.status().code(), CODE_OK);
  ASSERT_EQ(retry.status().code(), CODE_OK) << retry.status().message();
  EXPECT_EQ(retry.register_().user_id(), first.register_().user_id());
  EXPECT_EQ(Register("bob", "password-b").register_().user_id(), 2u);
}

TEST_F(UserServiceTest, TheRequestLogIsTrimmedAfterItsTtl) {
  ASSERT_EQ(Register("alice", "password-a", "client-9#1").status().code(), CODE_OK);
  std::vector<KeyValue> rows;
  ASSERT_TRUE(c_.UserStore().Scan("reqlog/", "", 10, &rows).ok());
  EXPECT_EQ(rows.size(), 1u);
  // Within the TTL a retry is still answered from the log...
  c_.net().Advance(absl::Minutes(5));
  EXPECT_EQ(Register("alice", "password-a", "client-9#1").status().code(), CODE_OK);
  // ...and after it the record is gone (a late retry is a new request).
  c_.net().Advance(absl::Minutes(6));
  rows.clear();
  ASSERT_TRUE(c_.UserStore().Scan("reqlog", "", 10, &rows).ok());
  EXPECT_TRUE(rows.empty());
  EXPECT_EQ(Register("alice", "password-a", "client-9#1").status().code(), CODE_ALREADY_EXISTS);
}

TEST_F(UserServiceTest, LoginGivesATokenThatVerifiesWithoutACall) {
  const uint64_t id = Register("alice", "password-a").register_().user_id();
  Reply login = Login("alice", "password-a");
  ASSERT_EQ(login.status().code(), CODE_OK) << login.status().message();
  EXPECT_EQ(login.login().user_id(), id);
  TokenSigner gateway_side = *TokenSigner::Create(TestTokenKey());
  absl::StatusOr<TokenClaims> claims = gateway_side.Verify(login.login().token(), c_.net().Now());
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ(claims->user_id, id);
  EXPECT_TRUE(absl::IsUnauthenticated(
      gateway_side.Verify(login.login().token(), c_.net().Now() + absl::Hours(25)).status()));
}

TEST_F(UserServiceTest, WrongPasswordAndUnknownNameAreUnauthenticated) {
  Register("alice", "password-a");
  Reply wrong = Login("alice", "password-b");
  Reply unknown = Login("nobody", "password-a");
  EXPECT_EQ(wrong.status().code(), CODE_UNAUTHENTICATED);
  EXPECT_EQ(unknown.status().code(), CODE_UNAUTHENTICATED);
  EXPECT_EQ(wrong.status().message(), unknown.status().message());  // no user enumeration
  EXPECT_TRUE(wrong.login().token().empty());
}

TEST_F(UserServiceTest, GetUsersListsKnownAndUnknownIds) {
  Register("alice", "password-a");
  Register("bob", "password-b");
  Request request;
  for (uint64_t id : {2, 9, 1}) request.mutable_get_users()->add_user_ids(id);
  Reply reply = c_.Call(user_, request);
  ASSERT_EQ(reply.status().code(), CODE_OK);
  ASSERT_EQ(reply.get_users().profiles_size(), 2);
  EXPECT_EQ(reply.get_users().profiles(0).name(), "bob");
  EXPECT_EQ(reply.get_users().profiles(1).name(), "alice");
  ASSERT_EQ(reply.get_users().unknown_ids_size(), 1);
  EXPECT_EQ(reply.get_users().unknown_ids(0), 9u);

  Request too_many;
  for (int i = 0; i < 501; ++i) too_many.mutable_get_users()->add_user_ids(i + 1);
  EXPECT_EQ(c_.Call(user_, too_many).status().code(), CODE_INVALID_ARGUMENT);
}

TEST_F(UserServiceTest, UpdateProfileBumpsTheVersionAndEmitsTheChange) {
  const uint64_t id = Register("alice", "password-a").register_().user_id();
  Reply reply = UpdateNickname(id, "Alice A.");
  ASSERT_EQ(reply.status().code(), CODE_OK) << reply.status().message();
  EXPECT_EQ(reply.update_profile().profile().version(), 2u);
  EXPECT_EQ(reply.update_profile().profile().nickname(), "Alice A.");
  // Unchanged values: no new version, no event.
  EXPECT_EQ(UpdateNickname(id, "Alice A.").update_profile().profile().version(), 2u);
  c_.Settle();
  std::vector<Event> events = ProfileEvents();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].version(), 2u);
  EXPECT_EQ(events[1].aggregate_id(), user_keys::Aggregate(id));
  EXPECT_EQ(events[1].user_profile_changed().nickname(), "Alice A.");
}

TEST_F(UserServiceTest, UpdateProfileNeedsALoginAndValidInput) {
  const uint64_t id = Register("alice", "password-a").register_().user_id();
  EXPECT_EQ(UpdateNickname(0, "x").status().code(), CODE_UNAUTHENTICATED);
  EXPECT_EQ(UpdateNickname(99, "x").status().code(), CODE_NOT_FOUND);
  EXPECT_EQ(UpdateNickname(id, "").status().code(), CODE_INVALID_ARGUMENT);
  EXPECT_EQ(UpdateNickname(id, std::string(65, 'n')).status().code(), CODE_INVALID_ARGUMENT);
  Request avatar;
  avatar.mutable_update_profile()->set_avatar(std::string(257, 'a'));
  EXPECT_EQ(c_.Call(user_, avatar, id).status().code(), CODE_INVALID_ARGUMENT);
}

TEST_F(UserServiceTest, CrashBetweenCommitAndPublishLosesNoEvent) {
  const uint64_t id = Register("alice", "password-a").register_().user_id();
  c_.Settle();
  ASSERT_EQ(ProfileEvents().size(), 1u);

  // The bus becomes unreachable: the change commits, its publish is lost...
  c_.net().SetBusReachable(user_, false);
  ASSERT_EQ(UpdateNickname(id, "Alice A.").status().code(), CODE_OK);
  c_.net().Advance(absl::Milliseconds(100));
  EXPECT_EQ(ProfileEvents().size(), 1u);
  // ...and the process dies before its relay could publish again.
  c_.net().Crash(user_);
  c_.net().SetBusReachable(user_, true);
  c_.Settle();
  EXPECT_EQ(ProfileEvents().size(), 1u);

  // After restart the outbox still holds the event and publishes it.
  c_.net().Restart(user_);
  c_.Settle();
  std::vector<Event> events = ProfileEvents();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].version(), 2u);
  EXPECT_EQ(events[1].user_profile_changed().nickname(), "Alice A.");
  // Once acknowledged it is gone from the outbox.
  std::vector<KeyValue> left;
  ASSERT_TRUE(c_.UserStore().Scan(Outbox::RecordPrefix(user_), "", 10, &left).ok());
  EXPECT_TRUE(left.empty());
}

TEST_F(UserServiceTest, RelayRepublishesUntilTheBusAccepts) {
  const uint64_t id = Register("alice", "password-a").register_().user_id();
  c_.net().SetBusReachable(user_, false);
  ASSERT_EQ(UpdateNickname(id, "Alice A.").status().code(), CODE_OK);
  c_.Settle();
  EXPECT_EQ(ProfileEvents().size(), 1u);  // only the registration's
  c_.net().SetBusReachable(user_, true);
  c_.Settle();
  EXPECT_EQ(ProfileEvents().size(), 2u);
  EXPECT_GT(c_.net().NodeAs<UserService>(user_)->outbox_stats().republished, 0u);
}

// ---- tokens: generations, revocation, change_password ---------------------------------

class UserTokenTest : public UserServiceTest {
 protected:
  std::string LoginToken(const std::string& name, const std::string& password,
                         const std::string& device) {
    Request request;
    request.mutable_login()->set_name(name);
    request.mutable_login()->set_password(password);
    request.mutable_login()->set_device_id(device);
    Reply reply = c_.Call(user_, request);
    EXPECT_EQ(reply.status().code(), CODE_OK) << reply.status().message();
    return reply.login().token();
  }
  TokenClaims Claims(const std::string& token) {
    absl::StatusOr<TokenClaims> claims =
        TokenSigner::Create(TestTokenKey())->Verify(token, c_.net().Now());
    EXPECT_TRUE(claims.ok()) << claims.status();
    return claims.ok() ? *claims : TokenClaims();
  }
  // What the user service says of each token: still current?
  std::vector<bool> Current(const std::vector<std::string>& tokens) {
    Request request;
    for (const std::string& token : tokens) {
      const TokenClaims c = Claims(token);
      TokenRef* ref = request.mutable_check_tokens()->add_tokens();
      ref->set_user_id(c.user_id);
      ref->set_device_id(c.device_id);
      ref->set_generation(c.generation);
      ref->set_device_generation(c.device_generation);
    }
    Reply reply = c_.Call(user_, request);
    EXPECT_EQ(reply.status().code(), CODE_OK) << reply.status().message();
    return std::vector<bool>(reply.check_tokens().current().begin(),
                             reply.check_tokens().current().end());
  }
  Reply Revoke(uint64_t auth, uint64_t user, const std::string& token) {
    const TokenClaims c = Claims(token);
    Request request;
    request.mutable_revoke_device_tokens()->set_user_id(user);
    request.mutable_revoke_device_tokens()->set_device_id(c.device_id);
    request.mutable_revoke_device_tokens()->set_device_generation(c.device_generation);
    return c_.Call(user_, request, auth);
  }
  Reply ChangePassword(uint64_t user, const std::string& old_password,
                       const std::string& new_password, const std::string& device = "phone") {
    Request request;
    request.mutable_change_password()->set_old_password(old_password);
    request.mutable_change_password()->set_new_password(new_password);
    request.mutable_change_password()->set_device_id(device);
    return c_.net().Call(user_, request, user, absl::Seconds(10));
  }
};

TEST_F(UserTokenTest, ATokenNamesItsDeviceAndAGenerationAndIsCurrent) {
  const uint64_t id = Register("alice", "password-a").register_().user_id();
  const std::string token = LoginToken("alice", "password-a", "phone");
  const TokenClaims claims = Claims(token);
  EXPECT_EQ(claims.user_id, id);
  EXPECT_EQ(claims.device_id, "phone");
  EXPECT_EQ(Current({token}), std::vector<bool>({true}));
}

TEST_F(UserTokenTest, RevokingADeviceEndsItsTokensOnlyAndANewLoginIsCurrent) {
  const uint64_t id = Register("alice", "password-a").register_().user_id();
  const std::string phone1 = LoginToken("alice", "password-a", "phone");
  const std::string phone2 = LoginToken("alice", "password-a", "phone");
  const std::string laptop = LoginToken("alice", "password-a", "laptop");
  // Only the user's own session may revoke.
  EXPECT_EQ(Revoke(0, id, phone1).status().code(), CODE_UNAUTHENTICATED);
  EXPECT_EQ(Revoke(id + 1, id, phone1).status().code(), CODE_UNAUTHENTICATED);
  EXPECT_EQ(Current({phone1, phone2, laptop}), std::vector<bool>({true, true, true}));
  ASSERT_EQ(Revoke(id, id, phone1).status().code(), CODE_OK);
  EXPECT_EQ(Current({phone1, phone2, laptop}), std::vector<bool>({false, false, true}));
  // Again (a retry) changes nothing more; a fresh login of the device is current.
  ASSERT_EQ(Revoke(id, id, phone1).status().code(), CODE_OK);
  const std::string phone3 = LoginToken("alice", "password-a", "phone");
  EXPECT_EQ(Current({phone3}), std::vector<bool>({true}));
  ASSERT_EQ(Revoke(id, id, phone1).status().code(), CODE_OK);  // a late logout of an old token
  EXPECT_EQ(Current({phone3}), std::vector<bool>({true}));
}

TEST_F(UserTokenTest, ChangePasswordEndsEveryTokenAndTheNewPasswordWorks) {
  const uint64_t id = Register("alice", "password-a").register_().user_id();
  const std::string phone = LoginToken("alice", "password-a", "phone");
  const std::string laptop = LoginToken("alice", "password-a", "laptop");
  const std::string anywhere = LoginToken("alice", "password-a", "");
  EXPECT_EQ(ChangePassword(0, "password-a", "password-new").status().code(),
            CODE_UNAUTHENTICATED);
  EXPECT_EQ(ChangePassword(id, "password-wrong", "password-new").status().code(),
            CODE_PERMISSION_DENIED);
  EXPECT_EQ(ChangePassword(id, "password-a", "short").status().code(), CODE_INVALID_ARGUMENT);
  EXPECT_EQ(Current({phone, laptop, anywhere}), std::vector<bool>({true, true, true}));

  Reply changed = ChangePassword(id, "password-a", "password-new");
  ASSERT_EQ(changed.status().code(), CODE_OK) << changed.status().message();
  EXPECT_EQ(Current({phone, laptop, anywhere}), std::vector<bool>({false, false, false}));
  // The reply's token is for the caller's device and current.
  EXPECT_EQ(Claims(changed.change_password().token()).device_id, "phone");
  EXPECT_EQ(Current({changed.change_password().token()}), std::vector<bool>({true}));
  EXPECT_EQ(Login("alice", "password-a").status().code(), CODE_UNAUTHENTICATED);
  const std::string fresh = LoginToken("alice", "password-new", "laptop");
  EXPECT_EQ(Current({fresh}), std::vector<bool>({true}));
}

TEST(UserServiceKeyTest, AShortTokenKeyRefusesToStart) {
  CoreClusterOptions o;
  o.user.token_key = "short";
  CoreCluster c(o);
  Request login;
  login.mutable_login()->set_name("alice");
  login.mutable_login()->set_password("password-a");
  Reply reply = c.Call(CoreCluster::Address(kUserService), login);
  EXPECT_NE(reply.status().code(), CODE_OK);
  EXPECT_TRUE(reply.login().token().empty());
}

}  // namespace
}  // namespace parley
