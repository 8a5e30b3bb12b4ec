// UserService: registration, login with signed tokens, profiles. A profile
// change bumps the user's version and emits UserProfileChanged through the
// outbox in the same batch.
#ifndef PARLEY_CORE_USER_USER_SERVICE_H_
#define PARLEY_CORE_USER_USER_SERVICE_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/proto/records.pb.h"
#include "core/service_node.h"
#include "core/user/password.h"
#include "core/user/token.h"

namespace parley {

struct UserOptions {
  std::string instance_id = "1";
  std::string token_key = TestTokenKey();
  absl::Duration token_ttl = absl::Hours(24);
  PasswordCost password_cost = PasswordCost::Minimal();
  size_t min_password_bytes = 8;
  size_t max_password_bytes = 128;
  size_t max_nickname_bytes = 64;
  size_t max_avatar_bytes = 256;
  size_t max_ids_per_get = 500;
  size_t max_tokens_per_check = 1000;
  // Devices remembered per user (list_devices, logout_device). A login that
  // names a new device past this drops the one that logged in longest ago
  // and ends its tokens.
  size_t max_devices_per_user = 32;
  size_t max_device_id_bytes = 64;
  // A login of a known device whose recorded last login is younger than this
  // writes nothing (a device's last_login_us is exact to within it): a
  // reconnect then costs no durable write, only the password check.
  absl::Duration device_login_refresh = absl::Minutes(1);
};

// Name rules: 3 to 32 characters of [a-z0-9_], starting with a letter.
absl::Status ValidateUserName(absl::string_view name);

class UserService : public ServiceNode {
 public:
  UserService(Env* env, UserOptions options = UserOptions());

 protected:
  // Refuses to start with a token key under 32 bytes.
  absl::Status OnStart() override;
  void HandleRequest(const Envelope& request) override;

 private:
  void Register(const Envelope& envelope);
  void Login(const Envelope& envelope);
  void GetUsers(const Envelope& envelope);
  void UpdateProfile(const Envelope& envelope);
  void ChangePassword(const Envelope& envelope);
  void CheckTokens(const Envelope& envelope);
  void RevokeDeviceTokens(const Envelope& envelope);
  void FindUser(const Envelope& envelope);
  // The caller's remembered devices with their last logins (no presence:
  // the gateway adds it from kv).
  void ListDevices(const Envelope& envelope);
  void LogoutDevice(const Envelope& envelope);
  // Adds to `batch` the record of a login of `device_id` now (unless it is
  // known with a last login younger than device_login_refresh), and, if that
  // is a new device past max_devices_per_user, the removal of the oldest
  // one with the end of its tokens.
  absl::Status RecordDeviceLogin(uint64_t user_id, const std::string& device_id,
                                 WriteBatch* batch);
  // The device's token generation (0 if never bumped).
  absl::StatusOr<uint64_t> DeviceGeneration(uint64_t user_id, const std::string& device_id);
  // A token for `user`'s device made now (INTERNAL if the signer is unusable).
  absl::StatusOr<std::string> MintToken(const UserRecord& user, const std::string& device_id,
                                        absl::Time expires);
  absl::StatusOr<UserRecord> ReadUser(uint64_t user_id);
  absl::Status ValidateNickname(absl::string_view nickname) const;
  static Event ProfileEvent(const Profile& profile);

  UserOptions options_;
  absl::StatusOr<TokenSigner> signer_;
};

}  // namespace parley

#endif  // PARLEY_CORE_USER_USER_SERVICE_H_
