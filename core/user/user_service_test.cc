#include "core/user/user_service.h"

#include <set>

#include "absl/strings/str_cat.h"

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

// ---- find_user, list_devices, logout_device ----------------------------------------------

TEST_F(UserTokenTest, FindUserAnswersTheExactNamesPublicProfile) {
  const uint64_t alice = Register("alice", "password-a").register_().user_id();
  const uint64_t bob = Register("bob", "password-b").register_().user_id();
  Request find;
  find.mutable_find_user()->set_name("alice");
  Reply found = c_.Call(user_, find, bob);
  ASSERT_EQ(found.status().code(), CODE_OK) << found.status().message();
  EXPECT_EQ(found.find_user().profile().user_id(), alice);
  EXPECT_EQ(found.find_user().profile().name(), "alice");
  EXPECT_EQ(found.find_user().profile().nickname(), "alice");
  // Exact names only: no prefix, no other case.
  find.mutable_find_user()->set_name("ali");
  Reply none = c_.Call(user_, find, bob);
  EXPECT_EQ(none.status().code(), CODE_NOT_FOUND);
  EXPECT_EQ(none.status().message(), "no user named ali");
  EXPECT_FALSE(none.has_find_user());
  for (const std::string& bad : {std::string(""), std::string("Alice"), std::string("al"),
                                 std::string(33, 'a'), std::string("1alice"),
                                 std::string("al ice")}) {
    find.mutable_find_user()->set_name(bad);
    EXPECT_EQ(c_.Call(user_, find, bob).status().code(), CODE_INVALID_ARGUMENT) << bad;
  }
}

TEST_F(UserTokenTest, ALoginThatNamesADeviceRecordsItAndListDevicesShowsOnlyOnesOwn) {
  const uint64_t alice = Register("alice", "password-a").register_().user_id();
  const uint64_t bob = Register("bob", "password-b").register_().user_id();
  LoginToken("alice", "password-a", "phone");
  c_.net().Advance(absl::Seconds(1));
  const int64_t laptop_us = absl::ToUnixMicros(c_.net().Now());
  LoginToken("alice", "password-a", "laptop");
  LoginToken("alice", "password-a", "");  // no device: not recorded
  LoginToken("bob", "password-b", "tablet");
  Request list;
  list.mutable_list_devices();
  EXPECT_EQ(c_.Call(user_, list, 0).status().code(), CODE_UNAUTHENTICATED);
  Reply mine = c_.Call(user_, list, alice);
  ASSERT_EQ(mine.status().code(), CODE_OK) << mine.status().message();
  ASSERT_EQ(mine.list_devices().devices_size(), 2);
  EXPECT_EQ(mine.list_devices().devices(0).device_id(), "laptop");  // by device id
  // (the login's time at the service: after the call was sent, within its latency)
  EXPECT_GE(mine.list_devices().devices(0).last_login_us(), laptop_us);
  EXPECT_LT(mine.list_devices().devices(0).last_login_us(), laptop_us + 100000);
  EXPECT_EQ(mine.list_devices().devices(1).device_id(), "phone");
  EXPECT_LT(mine.list_devices().devices(1).last_login_us(), laptop_us);
  EXPECT_FALSE(mine.list_devices().devices(0).online());  // presence is the gateway's part
  Reply his = c_.Call(user_, list, bob);
  ASSERT_EQ(his.list_devices().devices_size(), 1);
  EXPECT_EQ(his.list_devices().devices(0).device_id(), "tablet");
  // A login of a known device moves its last login (once the last one is
  // older than device_login_refresh, a minute).
  c_.net().Advance(absl::Minutes(1) + absl::Seconds(1));
  const int64_t again_us = absl::ToUnixMicros(c_.net().Now());
  LoginToken("alice", "password-a", "phone");
  mine = c_.Call(user_, list, alice);
  EXPECT_GE(mine.list_devices().devices(1).last_login_us(), again_us);
}

TEST_F(UserTokenTest, ALoginOfADeviceRecordedAMomentAgoWritesNothing) {
  Register("alice", "password-a");
  LoginToken("alice", "password-a", "phone");
  c_.net().Advance(absl::Seconds(30));
  // With the store refusing writes, a reconnect of the device still logs in:
  // it needed no write (nor the sync one costs) ...
  c_.UserStore().FailWrites(absl::UnavailableError("disk full"));
  Request login;
  login.mutable_login()->set_name("alice");
  login.mutable_login()->set_password("password-a");
  login.mutable_login()->set_device_id("phone");
  Reply again = c_.Call(user_, login);
  EXPECT_EQ(again.status().code(), CODE_OK) << again.status().message();
  EXPECT_FALSE(again.login().token().empty());
  // ... while a new device, and the same one once its record is a minute
  // old, are written (and refused here).
  login.mutable_login()->set_device_id("laptop");
  EXPECT_EQ(c_.Call(user_, login).status().code(), CODE_UNAVAILABLE);
  c_.net().Advance(absl::Seconds(31));
  login.mutable_login()->set_device_id("phone");
  EXPECT_EQ(c_.Call(user_, login).status().code(), CODE_UNAVAILABLE);
  c_.UserStore().FailWrites(absl::OkStatus());
  EXPECT_EQ(c_.Call(user_, login).status().code(), CODE_OK);
}

TEST_F(UserTokenTest, PastThirtyTwoDevicesTheOldestIsForgottenAndItsTokensEnd) {
  const uint64_t alice = Register("alice", "password-a").register_().user_id();
  std::vector<std::string> tokens;
  for (int i = 0; i < 32; ++i) {
    tokens.push_back(LoginToken("alice", "password-a", absl::StrCat("d", 100 + i)));
    // Past device_login_refresh: each login is recorded.
    c_.net().Advance(absl::Minutes(1) + absl::Milliseconds(10));
  }
  LoginToken("alice", "password-a", "d100");  // d100 is the newest again; d101 the oldest
  c_.net().Advance(absl::Milliseconds(10));
  const std::string fresh = LoginToken("alice", "password-a", "new");
  Request list;
  list.mutable_list_devices();
  Reply mine = c_.Call(user_, list, alice);
  ASSERT_EQ(mine.list_devices().devices_size(), 32);
  std::set<std::string> ids;
  for (const DeviceInfo& d : mine.list_devices().devices()) ids.insert(d.device_id());
  EXPECT_EQ(ids.count("d101"), 0u);
  EXPECT_EQ(ids.count("d100"), 1u);
  EXPECT_EQ(ids.count("new"), 1u);
  // The forgotten device keeps no token; the others are untouched.
  EXPECT_EQ(Current({tokens[1], tokens[2], fresh}), std::vector<bool>({false, true, true}));
  Request logout;
  logout.mutable_logout_device()->set_device_id("d101");
  EXPECT_EQ(c_.Call(user_, logout, alice).status().code(), CODE_NOT_FOUND);
}

TEST_F(UserTokenTest, LogoutDeviceEndsThatDevicesTokensOnlyAndRefusesWhatIsNotOnesOwn) {
  const uint64_t alice = Register("alice", "password-a").register_().user_id();
  ASSERT_NE(Register("bob", "password-b").register_().user_id(), 0u);
  const std::string phone = LoginToken("alice", "password-a", "phone");
  const std::string laptop = LoginToken("alice", "password-a", "laptop");
  const std::string anywhere = LoginToken("alice", "password-a", "");
  const std::string bobs = LoginToken("bob", "password-b", "tablet");
  auto logout = [&](uint64_t auth, const std::string& device) {
    Request request;
    request.mutable_logout_device()->set_device_id(device);
    return c_.Call(user_, request, auth);
  };
  EXPECT_EQ(logout(0, "phone").status().code(), CODE_UNAUTHENTICATED);
  EXPECT_EQ(logout(alice, "").status().code(), CODE_INVALID_ARGUMENT);
  EXPECT_EQ(logout(alice, std::string(65, 'x')).status().code(), CODE_INVALID_ARGUMENT);
  Reply never = logout(alice, "watch");
  EXPECT_EQ(never.status().code(), CODE_NOT_FOUND);
  EXPECT_EQ(never.status().message(), "no device 'watch' of yours");
  // Another user's device is not one's own: NOT_FOUND, and its token lives.
  EXPECT_EQ(logout(alice, "tablet").status().code(), CODE_NOT_FOUND);
  EXPECT_EQ(Current({phone, laptop, anywhere, bobs}),
            std::vector<bool>({true, true, true, true}));
  ASSERT_EQ(logout(alice, "phone").status().code(), CODE_OK);
  EXPECT_EQ(Current({phone, laptop, anywhere, bobs}),
            std::vector<bool>({false, true, true, true}));
  // A new login of the device is current; a second logout ends it too.
  const std::string again = LoginToken("alice", "password-a", "phone");
  EXPECT_EQ(Current({again}), std::vector<bool>({true}));
  ASSERT_EQ(logout(alice, "phone").status().code(), CODE_OK);
  EXPECT_EQ(Current({again}), std::vector<bool>({false}));
  // It stays listed (it was used).
  Request list;
  list.mutable_list_devices();
  EXPECT_EQ(c_.Call(user_, list, alice).list_devices().devices_size(), 2);
}

TEST_F(UserTokenTest, ARetriedLogoutDeviceIsAnsweredFromTheRequestLog) {
  const uint64_t alice = Register("alice", "password-a").register_().user_id();
  LoginToken("alice", "password-a", "phone");
  Request request;
  request.mutable_logout_device()->set_device_id("phone");
  ASSERT_EQ(c_.net().Call(user_, request, alice, absl::Seconds(1), "r1").status().code(),
            CODE_OK);
  // A login after it, then the retry: the retry must not end the new token.
  const std::string after = LoginToken("alice", "password-a", "phone");
  ASSERT_EQ(c_.net().Call(user_, request, alice, absl::Seconds(1), "r1").status().code(),
            CODE_OK);
  EXPECT_EQ(Current({after}), std::vector<bool>({true}));
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
