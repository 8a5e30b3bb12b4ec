#include "core/user/user_service.h"

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/services.h"
#include "core/status.h"
#include "core/user/user_keys.h"

namespace parley {

absl::Status ValidateUserName(absl::string_view name) {
  if (name.size() < 3 || name.size() > 32) {
    return absl::InvalidArgumentError("user name must be 3 to 32 characters");
  }
  if (name[0] < 'a' || name[0] > 'z') {
    return absl::InvalidArgumentError("user name must start with a lowercase letter");
  }
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
    if (!ok) {
      return absl::InvalidArgumentError("user name may hold only a-z, 0-9 and '_'");
    }
  }
  return absl::OkStatus();
}

UserService::UserService(Env* env, UserOptions options)
    : ServiceNode(env, ServiceOptions{kUserService, options.instance_id, {}}),
      options_(std::move(options)),
      signer_(TokenSigner::Create(options_.token_key)) {}

absl::Status UserService::OnStart() { return signer_.status(); }

void UserService::HandleRequest(const Envelope& envelope) {
  switch (envelope.request().op_case()) {
    case Request::kRegister:
      return Register(envelope);
    case Request::kLogin:
      return Login(envelope);
    case Request::kGetUsers:
      return GetUsers(envelope);
    case Request::kUpdateProfile:
      return UpdateProfile(envelope);
    case Request::kChangePassword:
      return ChangePassword(envelope);
    case Request::kCheckTokens:
      return CheckTokens(envelope);
    case Request::kRevokeDeviceTokens:
      return RevokeDeviceTokens(envelope);
    case Request::kFindUser:
      return FindUser(envelope);
    case Request::kListDevices:
      return ListDevices(envelope);
    case Request::kLogoutDevice:
      return LogoutDevice(envelope);
    default:
      return RespondError(envelope,
                          absl::UnimplementedError("the user service does not serve this request"));
  }
}

absl::Status UserService::ValidateNickname(absl::string_view nickname) const {
  if (nickname.empty()) return absl::InvalidArgumentError("nickname is empty");
  if (nickname.size() > options_.max_nickname_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("nickname is longer than ", options_.max_nickname_bytes, " bytes"));
  }
  return absl::OkStatus();
}

absl::StatusOr<UserRecord> UserService::ReadUser(uint64_t user_id) {
  std::string value;
  absl::Status s = store().Get(user_keys::User(user_id), &value);
  if (absl::IsNotFound(s)) return absl::NotFoundError(absl::StrCat("no user ", user_id));
  if (!s.ok()) return s;
  UserRecord record;
  if (!record.ParseFromString(value)) {
    return absl::DataLossError(absl::StrCat("corrupt record of user ", user_id));
  }
  return record;
}

Event UserService::ProfileEvent(const Profile& profile) {
  Event event;
  event.set_aggregate_id(user_keys::Aggregate(profile.user_id()));
  event.set_version(profile.version());
  UserProfileChanged* changed = event.mutable_user_profile_changed();
  changed->set_user_id(profile.user_id());
  changed->set_version(profile.version());
  changed->set_name(profile.name());
  changed->set_nickname(profile.nickname());
  changed->set_avatar(profile.avatar());
  return event;
}

void UserService::Register(const Envelope& envelope) {
  if (ReplayIfDone(envelope)) return;
  const RegisterRequest& request = envelope.request().register_();
  absl::Status s = ValidateUserName(request.name());
  if (s.ok() && (request.password().size() < options_.min_password_bytes ||
                 request.password().size() > options_.max_password_bytes)) {
    s = absl::InvalidArgumentError(absl::StrCat("password must be ", options_.min_password_bytes,
                                                " to ", options_.max_password_bytes, " bytes"));
  }
  const std::string nickname = request.nickname().empty() ? request.name() : request.nickname();
  if (s.ok()) s = ValidateNickname(nickname);
  if (!s.ok()) return RespondError(envelope, s);

  std::string existing;
  s = store().Get(user_keys::Name(request.name()), &existing);
  if (s.ok()) {
    return RespondError(envelope, absl::AlreadyExistsError(
                                      absl::StrCat("user name '", request.name(), "' is taken")));
  }
  if (!absl::IsNotFound(s)) return RespondError(envelope, absl::UnavailableError(s.message()));

  uint64_t user_id = 1;
  std::string next;
  s = store().Get(user_keys::kNextUserId, &next);
  // A counter that could not be read is not "no user yet": id 1 is taken.
  if (!s.ok() && !absl::IsNotFound(s)) {
    return RespondError(envelope, absl::UnavailableError(s.message()));
  }
  if (s.ok() && !absl::SimpleAtoi(next, &user_id)) {
    return RespondError(envelope, absl::DataLossError("corrupt user id counter"));
  }
  absl::StatusOr<std::string> hash = HashPassword(
      request.password(), env().Rng().Bytes(PasswordSaltBytes()), options_.password_cost);
  if (!hash.ok()) return RespondError(envelope, hash.status());

  UserRecord record;
  Profile* profile = record.mutable_profile();
  profile->set_user_id(user_id);
  profile->set_name(request.name());
  profile->set_nickname(nickname);
  profile->set_version(1);
  record.set_password_hash(*hash);
  record.set_created_us(absl::ToUnixMicros(env().Now()));

  WriteBatch batch;
  batch.Put(user_keys::User(user_id), record.SerializeAsString());
  batch.Put(user_keys::Name(request.name()), absl::StrCat(user_id));
  batch.Put(user_keys::kNextUserId, absl::StrCat(user_id + 1));
  outbox().Add(&batch, ProfileEvent(*profile));
  Reply reply;
  reply.mutable_register_()->set_user_id(user_id);
  CommitAndRespond(envelope, std::move(batch), reply);
}

void UserService::Login(const Envelope& envelope) {
  const LoginRequest& request = envelope.request().login();
  // One answer for an unknown name and a wrong password: no user enumeration.
  const absl::Status denied = absl::UnauthenticatedError("wrong user name or password");
  if (request.device_id().size() > 64) {
    return RespondError(envelope, absl::InvalidArgumentError("device_id is over 64 bytes"));
  }
  std::string id_text;
  uint64_t user_id = 0;
  absl::Status s = store().Get(user_keys::Name(request.name()), &id_text);
  // A name that could not be read is not an unknown one (a client would
  // register it again).
  if (!s.ok() && !absl::IsNotFound(s)) {
    return RespondError(envelope, absl::UnavailableError(s.message()));
  }
  if (!s.ok() || !absl::SimpleAtoi(id_text, &user_id)) {
    return RespondError(envelope, denied);
  }
  absl::StatusOr<UserRecord> record = ReadUser(user_id);
  if (!record.ok()) return RespondError(envelope, record.status());
  if (!VerifyPassword(request.password(), record->password_hash())) {
    return RespondError(envelope, denied);
  }
  const absl::Time expires = env().Now() + options_.token_ttl;
  absl::StatusOr<std::string> token = MintToken(*record, request.device_id(), expires);
  if (!token.ok()) return RespondError(envelope, token.status());
  Reply reply;
  LoginReply* out = reply.mutable_login();
  out->set_user_id(user_id);
  out->set_token(*token);
  out->set_expires_us(absl::ToUnixMicros(expires));
  if (request.device_id().empty()) return Respond(envelope, reply);
  // The device is remembered (list_devices, logout_device): one small write,
  // beside the password hash this login already cost; none for a device
  // recorded a moment ago (a reconnect), whose reply then waits for no sync.
  WriteBatch batch;
  s = RecordDeviceLogin(user_id, request.device_id(), &batch);
  if (s.ok() && !batch.empty()) s = Commit(batch);
  if (!s.ok()) return RespondError(envelope, absl::UnavailableError(s.message()));
  Respond(envelope, std::move(reply));
}

absl::Status UserService::RecordDeviceLogin(uint64_t user_id, const std::string& device_id,
                                            WriteBatch* batch) {
  std::vector<KeyValue> devices;
  absl::Status s = store().Scan(user_keys::DevicePrefix(user_id), "",
                                options_.max_devices_per_user + 1, &devices);
  if (!s.ok()) return s;
  const std::string key = user_keys::Device(user_id, device_id);
  bool known = false;
  int64_t known_us = 0;
  const KeyValue* oldest = nullptr;
  int64_t oldest_us = 0;
  for (const KeyValue& kv : devices) {
    int64_t us = 0;
    if (!absl::SimpleAtoi(kv.second, &us)) us = 0;  // unreadable: the first to go
    if (kv.first == key) {
      known = true;
      known_us = us;
    }
    if (oldest == nullptr || us < oldest_us) {      // ties: the lowest device id
      oldest = &kv;
      oldest_us = us;
    }
  }
  if (!known && oldest != nullptr && devices.size() >= options_.max_devices_per_user) {
    // Forgotten devices keep no valid token: it could not be listed or
    // logged out any more.
    const std::string dropped = oldest->first.substr(user_keys::DevicePrefix(user_id).size());
    absl::StatusOr<uint64_t> generation = DeviceGeneration(user_id, dropped);
    if (!generation.ok()) return generation.status();
    batch->Delete(oldest->first);
    batch->Put(user_keys::TokenDevice(user_id, dropped), absl::StrCat(*generation + 1));
  }
  const int64_t now_us = absl::ToUnixMicros(env().Now());
  if (known && known_us <= now_us &&
      now_us - known_us < absl::ToInt64Microseconds(options_.device_login_refresh)) {
    return absl::OkStatus();  // recorded a moment ago: nothing to write
  }
  batch->Put(key, absl::StrCat(now_us));
  return absl::OkStatus();
}

void UserService::FindUser(const Envelope& envelope) {
  const std::string& name = envelope.request().find_user().name();
  absl::Status s = ValidateUserName(name);
  if (!s.ok()) return RespondError(envelope, s);
  std::string id_text;
  uint64_t user_id = 0;
  s = store().Get(user_keys::Name(name), &id_text);
  if (absl::IsNotFound(s)) {
    return RespondError(envelope, absl::NotFoundError(absl::StrCat("no user named ", name)));
  }
  if (!s.ok()) return RespondError(envelope, absl::UnavailableError(s.message()));
  if (!absl::SimpleAtoi(id_text, &user_id)) {
    return RespondError(envelope, absl::DataLossError(absl::StrCat("corrupt id of ", name)));
  }
  absl::StatusOr<UserRecord> record = ReadUser(user_id);
  if (!record.ok()) return RespondError(envelope, record.status());
  Reply reply;
  *reply.mutable_find_user()->mutable_profile() = record->profile();  // public fields only
  Respond(envelope, std::move(reply));
}

void UserService::ListDevices(const Envelope& envelope) {
  const uint64_t user_id = envelope.auth_user_id();
  if (user_id == 0) {
    return RespondError(envelope, absl::UnauthenticatedError("listing devices needs a login"));
  }
  std::vector<KeyValue> devices;
  absl::Status s = store().Scan(user_keys::DevicePrefix(user_id), "",
                                options_.max_devices_per_user + 1, &devices);
  if (!s.ok()) return RespondError(envelope, absl::UnavailableError(s.message()));
  Reply reply;
  ListDevicesReply* out = reply.mutable_list_devices();
  const size_t prefix = user_keys::DevicePrefix(user_id).size();
  for (const KeyValue& kv : devices) {  // key order: by device id
    DeviceInfo* device = out->add_devices();
    device->set_device_id(kv.first.substr(prefix));
    int64_t us = 0;
    if (absl::SimpleAtoi(kv.second, &us)) device->set_last_login_us(us);
  }
  Respond(envelope, std::move(reply));
}

void UserService::LogoutDevice(const Envelope& envelope) {
  if (ReplayIfDone(envelope)) return;
  const uint64_t user_id = envelope.auth_user_id();
  const std::string& device_id = envelope.request().logout_device().device_id();
  if (user_id == 0) {
    return RespondError(envelope, absl::UnauthenticatedError("logging a device out needs a login"));
  }
  if (device_id.empty() || device_id.size() > options_.max_device_id_bytes) {
    return RespondError(envelope, absl::InvalidArgumentError(absl::StrCat(
                                      "device_id must be 1 to ", options_.max_device_id_bytes,
                                      " bytes")));
  }
  std::string value;
  absl::Status s = store().Get(user_keys::Device(user_id, device_id), &value);
  if (absl::IsNotFound(s)) {
    return RespondError(envelope, absl::NotFoundError(absl::StrCat(
                                      "no device '", device_id, "' of yours")));
  }
  if (!s.ok()) return RespondError(envelope, absl::UnavailableError(s.message()));
  // As a logout of that device (revoke_device_tokens), of whatever token it
  // holds now: its generation goes one past the current one.
  absl::StatusOr<uint64_t> current = DeviceGeneration(user_id, device_id);
  if (!current.ok()) return RespondError(envelope, current.status());
  WriteBatch batch;
  batch.Put(user_keys::TokenDevice(user_id, device_id), absl::StrCat(*current + 1));
  Reply reply;
  reply.mutable_logout_device();
  CommitAndRespond(envelope, std::move(batch), reply);
}

absl::StatusOr<uint64_t> UserService::DeviceGeneration(uint64_t user_id,
                                                        const std::string& device_id) {
  std::string value;
  absl::Status s = store().Get(user_keys::TokenDevice(user_id, device_id), &value);
  if (absl::IsNotFound(s)) return 0;
  if (!s.ok()) return absl::UnavailableError(s.message());
  uint64_t generation = 0;
  if (!absl::SimpleAtoi(value, &generation)) {
    return absl::DataLossError(absl::StrCat("corrupt token generation of user ", user_id));
  }
  return generation;
}

absl::StatusOr<std::string> UserService::MintToken(const UserRecord& user,
                                                   const std::string& device_id,
                                                   absl::Time expires) {
  if (!signer_.ok()) return absl::InternalError("no usable token key");
  absl::StatusOr<uint64_t> device_generation =
      DeviceGeneration(user.profile().user_id(), device_id);
  if (!device_generation.ok()) return device_generation.status();
  TokenClaims claims;
  claims.user_id = user.profile().user_id();
  claims.expires = expires;
  claims.generation = user.token_generation();
  claims.device_id = device_id;
  claims.device_generation = *device_generation;
  return signer_->Sign(claims);
}

void UserService::ChangePassword(const Envelope& envelope) {
  if (ReplayIfDone(envelope)) return;
  const ChangePasswordRequest& request = envelope.request().change_password();
  if (envelope.auth_user_id() == 0) {
    return RespondError(envelope,
                        absl::UnauthenticatedError("changing a password needs a login"));
  }
  if (request.new_password().size() < options_.min_password_bytes ||
      request.new_password().size() > options_.max_password_bytes) {
    return RespondError(envelope, absl::InvalidArgumentError(absl::StrCat(
                                      "password must be ", options_.min_password_bytes, " to ",
                                      options_.max_password_bytes, " bytes")));
  }
  if (request.device_id().size() > 64) {
    return RespondError(envelope, absl::InvalidArgumentError("device_id is over 64 bytes"));
  }
  absl::StatusOr<UserRecord> record = ReadUser(envelope.auth_user_id());
  if (!record.ok()) return RespondError(envelope, record.status());
  // Not UNAUTHENTICATED: the session is fine, the old password is not.
  if (!VerifyPassword(request.old_password(), record->password_hash())) {
    return RespondError(envelope, absl::PermissionDeniedError("wrong password"));
  }
  absl::StatusOr<std::string> hash = HashPassword(
      request.new_password(), env().Rng().Bytes(PasswordSaltBytes()), options_.password_cost);
  if (!hash.ok()) return RespondError(envelope, hash.status());
  record->set_password_hash(*hash);
  record->set_token_generation(record->token_generation() + 1);
  const absl::Time expires = env().Now() + options_.token_ttl;
  absl::StatusOr<std::string> token = MintToken(*record, request.device_id(), expires);
  if (!token.ok()) return RespondError(envelope, token.status());
  WriteBatch batch;
  batch.Put(user_keys::User(record->profile().user_id()), record->SerializeAsString());
  Reply reply;
  reply.mutable_change_password()->set_token(*token);
  reply.mutable_change_password()->set_expires_us(absl::ToUnixMicros(expires));
  CommitAndRespond(envelope, std::move(batch), reply);
}

void UserService::CheckTokens(const Envelope& envelope) {
  const CheckTokensRequest& request = envelope.request().check_tokens();
  if (request.tokens_size() > static_cast<int>(options_.max_tokens_per_check)) {
    return RespondError(envelope, absl::InvalidArgumentError(absl::StrCat(
                                      "at most ", options_.max_tokens_per_check, " tokens per check")));
  }
  Reply reply;
  CheckTokensReply* out = reply.mutable_check_tokens();
  for (const TokenRef& token : request.tokens()) {
    absl::StatusOr<UserRecord> record = ReadUser(token.user_id());
    if (absl::IsNotFound(record.status())) {
      out->add_current(false);
      continue;
    }
    // Unsure is not "revoked": the gateway keeps its sessions and asks again.
    if (!record.ok()) return RespondError(envelope, absl::UnavailableError(record.status().message()));
    absl::StatusOr<uint64_t> device = DeviceGeneration(token.user_id(), token.device_id());
    if (!device.ok()) return RespondError(envelope, absl::UnavailableError(device.status().message()));
    out->add_current(token.generation() == record->token_generation() &&
                     token.device_generation() == *device);
  }
  Respond(envelope, std::move(reply));
}

void UserService::RevokeDeviceTokens(const Envelope& envelope) {
  const RevokeDeviceTokensRequest& request = envelope.request().revoke_device_tokens();
  // The gateway acts for the session's user, and only for it.
  if (envelope.auth_user_id() == 0 || envelope.auth_user_id() != request.user_id()) {
    return RespondError(envelope,
                        absl::UnauthenticatedError("revoking tokens needs the user's session"));
  }
  absl::StatusOr<uint64_t> current = DeviceGeneration(request.user_id(), request.device_id());
  if (!current.ok()) return RespondError(envelope, current.status());
  Reply reply;
  // Idempotent: a retry, or a late logout of an older token, changes nothing.
  if (*current > request.device_generation()) {
    reply.mutable_revoke_device_tokens()->set_device_generation(*current);
    return Respond(envelope, reply);
  }
  const uint64_t next = request.device_generation() + 1;
  WriteBatch batch;
  batch.Put(user_keys::TokenDevice(request.user_id(), request.device_id()), absl::StrCat(next));
  reply.mutable_revoke_device_tokens()->set_device_generation(next);
  absl::Status s = Commit(batch);
  if (!s.ok()) return RespondError(envelope, absl::UnavailableError(s.message()));
  Respond(envelope, std::move(reply));
}

void UserService::GetUsers(const Envelope& envelope) {
  const GetUsersRequest& request = envelope.request().get_users();
  if (request.user_ids_size() > static_cast<int>(options_.max_ids_per_get)) {
    return RespondError(envelope, absl::InvalidArgumentError(absl::StrCat(
                                      "at most ", options_.max_ids_per_get, " ids per request")));
  }
  Reply reply;
  GetUsersReply* out = reply.mutable_get_users();
  for (uint64_t id : request.user_ids()) {
    absl::StatusOr<UserRecord> record = ReadUser(id);
    if (absl::IsNotFound(record.status())) {
      out->add_unknown_ids(id);
      continue;
    }
    if (!record.ok()) return RespondError(envelope, record.status());
    *out->add_profiles() = record->profile();
  }
  Respond(envelope, std::move(reply));
}

void UserService::UpdateProfile(const Envelope& envelope) {
  if (ReplayIfDone(envelope)) return;
  const UpdateProfileRequest& request = envelope.request().update_profile();
  if (envelope.auth_user_id() == 0) {
    return RespondError(envelope, absl::UnauthenticatedError("updating a profile needs a login"));
  }
  absl::Status s;
  if (request.has_nickname()) s = ValidateNickname(request.nickname());
  if (s.ok() && request.has_avatar() && request.avatar().size() > options_.max_avatar_bytes) {
    s = absl::InvalidArgumentError(
        absl::StrCat("avatar is longer than ", options_.max_avatar_bytes, " bytes"));
  }
  if (!s.ok()) return RespondError(envelope, s);
  absl::StatusOr<UserRecord> record = ReadUser(envelope.auth_user_id());
  if (!record.ok()) return RespondError(envelope, record.status());

  Profile* profile = record->mutable_profile();
  const bool changed = (request.has_nickname() && request.nickname() != profile->nickname()) ||
                       (request.has_avatar() && request.avatar() != profile->avatar());
  Reply reply;
  if (!changed) {
    *reply.mutable_update_profile()->mutable_profile() = *profile;
    return Respond(envelope, reply);
  }
  if (request.has_nickname()) profile->set_nickname(request.nickname());
  if (request.has_avatar()) profile->set_avatar(request.avatar());
  profile->set_version(profile->version() + 1);
  WriteBatch batch;
  batch.Put(user_keys::User(profile->user_id()), record->SerializeAsString());
  outbox().Add(&batch, ProfileEvent(*profile));
  *reply.mutable_update_profile()->mutable_profile() = *profile;
  CommitAndRespond(envelope, std::move(batch), reply);
}

}  // namespace parley
