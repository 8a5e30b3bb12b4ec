#include "core/gateway/gateway.h"

#include <algorithm>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/message/conversation.h"
#include "core/message/message_keys.h"
#include "core/services.h"
#include "core/status.h"

namespace parley {

// Probes counted here (core/probe.h).
const DeclaredProbe kPushSkipped("push_skipped",
                         "a push for a session no longer on this gateway (the client will sync)");
const DeclaredProbe kGatewayOverloaded(
    "gateway_overloaded",
    "a client request refused RESOURCE_EXHAUSTED: too many calls to the services in flight");
const DeclaredProbe kSendOutcomeUnknown(
    "send_outcome_unknown",
    "a send whose call to its shard failed answered DEADLINE_EXCEEDED (outcome unknown)");

namespace {

constexpr size_t kMaxDeviceIdBytes = 64;
constexpr size_t kRenewBatch = 1000;

// What Respond needs of a client's request to answer it: who asked and the
// ids the reply carries back. A callback that only answers holds this, not a
// copy of the whole request.
Envelope ReplyTo(const Envelope& request) {
  Envelope to;
  to.set_from(request.from());
  to.set_correlation_id(request.correlation_id());
  to.set_request_id(request.request_id());
  return to;
}

}  // namespace

Gateway::Gateway(Env* env, GatewayOptions options)
    : ServiceNode(env, ServiceOptions{kGatewayService, options.gateway_id,
                                      {kUserService, kFriendService, kGroupService}}),
      options_(std::move(options)),
      signer_(TokenSigner::Create(options_.token_key)) {}

absl::Status Gateway::OnStart() {
  if (!signer_.ok()) return signer_.status();  // a short key: refuse to start
  timers().After(options_.renew_interval, [this] { Renew(); });
  timers().After(options_.token_check_interval, [this] { CheckTokens(); });
  return absl::OkStatus();
}

TokenRef Gateway::RefOf(const Session& session) {
  TokenRef ref;
  ref.set_user_id(session.user_id);
  ref.set_device_id(session.token_device);
  ref.set_generation(session.generation);
  ref.set_device_generation(session.device_generation);
  return ref;
}

std::vector<PresenceRecord> Gateway::SessionSnapshot() const {
  std::vector<PresenceRecord> out;
  for (const auto& [device, client] : by_device_) {
    const Session& session = sessions_.at(client);
    PresenceRecord p;
    p.set_user_id(session.user_id);
    p.set_device_id(session.device_id);
    p.set_gateway_id(options_.gateway_id);
    p.set_epoch(session.epoch);
    out.push_back(std::move(p));
  }
  return out;
}

void Gateway::Stop() {
  std::vector<std::string> clients;
  for (const auto& [client, session] : sessions_) clients.push_back(client);
  for (const std::string& client : clients) DropSession(client, /*release_presence=*/true);
  ServiceNode::Stop();
}

KvWrite Gateway::PresenceWrite(const Session& session) const {
  PresenceRecord record;
  record.set_user_id(session.user_id);
  record.set_device_id(session.device_id);
  record.set_gateway_id(options_.gateway_id);
  record.set_epoch(session.epoch);
  KvWrite write;
  write.set_key(message_keys::Presence(session.user_id, session.device_id));
  write.set_value(record.SerializeAsString());
  write.set_version(session.epoch);
  write.set_ttl_ms(absl::ToInt64Milliseconds(options_.presence_lease));
  write.set_mode(KvWrite::IF_NOT_OLDER);  // a newer login's higher epoch wins
  return write;
}

CallOptions Gateway::CallsFor(const Envelope& envelope, const Session& session) const {
  CallOptions call = options_.calls;
  call.auth_user_id = session.user_id;
  // Namespaced by user: one client cannot replay another's request ids.
  if (!envelope.request_id().empty()) {
    call.request_id = absl::StrCat("u", session.user_id, "/", envelope.request_id());
  }
  return call;
}

void Gateway::HandleRequest(const Envelope& envelope) {
  const Request& request = envelope.request();
  switch (request.op_case()) {
    case Request::kGatewayLogin:
      return Login(envelope);
    case Request::kRegister:
    case Request::kLogin: {
      // Before a session exists: forwarded with no acting user, in one
      // attempt that waits as long as the client does (the client retries; a
      // retry here too would queue another slow password hash).
      ++stats_.forwarded;
      CallOptions call = options_.calls;
      call.timeout = envelope.timeout_us() > 0
                         ? std::min(absl::Microseconds(envelope.timeout_us()), options_.max_auth_wait)
                         : options_.max_auth_wait;  // not said: the longest wait, still once
      call.max_attempts = 1;
      rpc().Call(kUserService, request, call,
                 [this, to = ReplyTo(envelope)](const Reply& reply) { Respond(to, reply); });
      return;
    }
    default:
      break;
  }
  auto it = sessions_.find(envelope.from());
  if (it == sessions_.end()) {
    ++stats_.refused;
    return RespondError(envelope, absl::UnauthenticatedError("log in to this gateway first"));
  }
  it->second.last_seen = env().Now();
  const Session session = it->second;
  if (request.has_ping()) {
    Reply reply;
    reply.mutable_ping();
    return Respond(envelope, reply);
  }
  if (request.has_gateway_logout()) return Logout(envelope, session);
  if (options_.max_backend_calls > 0 && rpc().pending_calls() >= options_.max_backend_calls) {
    // Refused before anything is forwarded: the client knows nothing was
    // done (a send was not committed) and tries again after a backoff.
    ++stats_.overloaded;
    probes().Count(kGatewayOverloaded);
    return RespondError(envelope, absl::ResourceExhaustedError(absl::StrCat(
                                      "gateway overloaded: ", rpc().pending_calls(),
                                      " calls to the services in flight; nothing was done, "
                                      "retry after a backoff")));
  }
  Forward(envelope, session);
}

void Gateway::Login(const Envelope& envelope) {
  const GatewayLoginRequest& request = envelope.request().gateway_login();
  absl::StatusOr<TokenClaims> claims =
      signer_.ok() ? signer_->Verify(request.token(), env().Now())
                   : absl::StatusOr<TokenClaims>(absl::UnauthenticatedError("no token key"));
  absl::Status s = claims.status();
  if (s.ok() && !claims->device_id.empty() && claims->device_id != request.device_id()) {
    s = absl::UnauthenticatedError("the token is for another device");
  }
  if (s.ok() && (request.device_id().empty() || request.device_id().size() > kMaxDeviceIdBytes)) {
    s = absl::InvalidArgumentError("device_id must be 1 to 64 bytes");
  }
  if (s.ok() && request.epoch() == 0) s = absl::InvalidArgumentError("epoch must be positive");
  if (s.ok() && request.epoch() > kMaxEpoch) {
    s = absl::OutOfRangeError(absl::StrCat("epoch must be at most ", kMaxEpoch));
  }
  if (s.ok() && envelope.from().empty()) s = absl::InvalidArgumentError("no client address");
  if (s.ok() && sessions_.count(envelope.from()) == 0 &&
      sessions_.size() >= options_.max_sessions) {
    s = absl::ResourceExhaustedError("this gateway is full");
  }
  if (!s.ok()) {
    ++stats_.login_failures;
    return RespondError(envelope, s);
  }
  Session session;
  session.user_id = claims->user_id;
  session.device_id = request.device_id();
  session.epoch = request.epoch();
  session.last_seen = env().Now();
  session.token_device = claims->device_id;
  session.generation = claims->generation;
  session.device_generation = claims->device_generation;
  // Is the token still current (no logout of its device, no password change
  // since it was made)? One call; only then the presence write.
  Request check;
  *check.mutable_check_tokens()->add_tokens() = RefOf(session);
  rpc().Call(kUserService, check, options_.calls, [this, envelope, session](const Reply& checked) {
    absl::Status s = ReplyStatus(checked);
    if (!s.ok()) {
      ++stats_.login_failures;
      return RespondError(envelope, absl::UnavailableError(
                                        absl::StrCat("token not checked: ", s.message())));
    }
    if (checked.check_tokens().current_size() != 1 || !checked.check_tokens().current(0)) {
      ++stats_.login_failures;
      return RespondError(envelope, absl::UnauthenticatedError("token revoked"));
    }
    OpenSession(envelope, session);
  });
}

void Gateway::OpenSession(const Envelope& envelope, const Session& session) {
  Request set;
  KvWrite* write = set.mutable_kv_set()->add_writes();
  *write = PresenceWrite(session);
  write->set_max_step(kMaxEpochStep);
  rpc().CallAddress(kKvAddress, set, options_.calls, [this, envelope, session](const Reply& reply) {
    absl::Status s = ReplyStatus(reply);
    if (!s.ok()) {
      ++stats_.login_failures;
      return RespondError(envelope, absl::UnavailableError(
                                        absl::StrCat("presence not registered: ", s.message())));
    }
    if (reply.kv_set().applied_size() != 1 || !reply.kv_set().applied(0)) {
      ++stats_.login_failures;
      const uint64_t current =
          reply.kv_set().current_versions_size() == 1 ? reply.kv_set().current_versions(0) : 0;
      Reply refused = ErrorReply(
          session.epoch <= current
              ? absl::FailedPreconditionError("a newer login of this device exists")
              : absl::OutOfRangeError(absl::StrCat("epoch more than ", kMaxEpochStep,
                                                   " above the device's current epoch ",
                                                   current)));
      refused.mutable_gateway_login()->set_device_epoch(current);
      return Respond(envelope, refused);
    }
    const DeviceKey device(session.user_id, session.device_id);
    auto old = by_device_.find(device);
    if (old != by_device_.end() && old->second != envelope.from()) {
      DropSession(old->second, /*release_presence=*/false);  // replaced
    }
    auto previous = sessions_.find(envelope.from());
    if (previous != sessions_.end() &&
        DeviceKey(previous->second.user_id, previous->second.device_id) != device) {
      DropSession(envelope.from(), /*release_presence=*/true);  // the client switched user
    }
    sessions_[envelope.from()] = session;
    by_device_[device] = envelope.from();
    ++stats_.logins;
    Reply ok;
    ok.mutable_gateway_login()->set_user_id(session.user_id);
    ok.mutable_gateway_login()->set_gateway_id(options_.gateway_id);
    ok.mutable_gateway_login()->set_device_epoch(session.epoch);
    Respond(envelope, ok);
  });
}

void Gateway::Logout(const Envelope& envelope, const Session& session) {
  DropSession(envelope.from(), /*release_presence=*/true);
  Reply reply;
  reply.mutable_gateway_logout();
  // A closed connection (the listener's notice says connection_closed) ends
  // the session only; a client's logout also ends its device's tokens, at
  // every gateway, before it is answered (whatever its correlation id).
  if (envelope.request().gateway_logout().connection_closed()) {
    return Respond(envelope, reply);
  }
  Request revoke;
  RevokeDeviceTokensRequest* r = revoke.mutable_revoke_device_tokens();
  r->set_user_id(session.user_id);
  r->set_device_id(session.token_device);
  r->set_device_generation(session.device_generation);
  CallOptions call = options_.calls;
  call.auth_user_id = session.user_id;
  rpc().Call(kUserService, revoke, call, [this, envelope, reply](const Reply& revoked) {
    absl::Status s = ReplyStatus(revoked);
    if (!s.ok()) {
      return RespondError(envelope, absl::UnavailableError(absl::StrCat(
                                        "logged out here, but the device's tokens were not "
                                        "revoked (log out again): ", s.message())));
    }
    Respond(envelope, reply);
  });
}

void Gateway::CheckSessions(std::vector<std::pair<std::string, TokenRef>> batch,
                            std::function<void()> done) {
  Request request;
  for (const auto& [client, ref] : batch) *request.mutable_check_tokens()->add_tokens() = ref;
  CallOptions call = options_.calls;
  call.max_attempts = 1;  // the next round asks again
  rpc().Call(kUserService, request, call,
             [this, batch = std::move(batch), done = std::move(done)](const Reply& reply) {
    if (reply.status().code() == CODE_OK) {  // otherwise unsure: keep the sessions
      const CheckTokensReply& out = reply.check_tokens();
      for (size_t i = 0; i < batch.size() && i < static_cast<size_t>(out.current_size()); ++i) {
        if (out.current(i)) continue;
        auto it = sessions_.find(batch[i].first);
        if (it == sessions_.end()) continue;
        const TokenRef now = RefOf(it->second);
        if (now.SerializeAsString() != batch[i].second.SerializeAsString()) continue;  // re-logged
        ++stats_.sessions_revoked;
        DropSession(batch[i].first, /*release_presence=*/true);
      }
    }
    if (done) done();
  });
}

void Gateway::CheckTokens() {
  // Batches of the sessions' tokens; a session the user service says is no
  // longer current (and that still holds that token) is closed.
  std::vector<std::pair<std::string, TokenRef>> batch;
  auto flush = [&] {
    if (batch.empty()) return;
    CheckSessions(std::move(batch), nullptr);
    batch.clear();
  };
  for (const auto& [client, session] : sessions_) {
    batch.emplace_back(client, RefOf(session));
    if (batch.size() == kRenewBatch) flush();
  }
  flush();
  timers().After(options_.token_check_interval, [this] { CheckTokens(); });
}

void Gateway::ListDevices(const Envelope& envelope, const Session& session) {
  ++stats_.forwarded;
  Request request;
  request.mutable_list_devices();
  const uint64_t user = session.user_id;
  rpc().Call(kUserService, request, CallsFor(envelope, session),
             [this, envelope, user](const Reply& listed) {
    if (!ReplyStatus(listed).ok()) return Respond(envelope, listed);
    Request get;
    get.mutable_kv_get()->add_prefixes(message_keys::PresencePrefix(user));
    rpc().CallAddress(kKvAddress, get, options_.calls,
                      [this, envelope, user, listed](const Reply& presence) {
      absl::Status s = ReplyStatus(presence);
      if (!s.ok()) {
        return RespondError(envelope, absl::UnavailableError(
                                          absl::StrCat("presence not read: ", s.message())));
      }
      std::map<std::string, PresenceRecord> online;  // by device
      for (const KvEntry& entry : presence.kv_get().entries()) {
        PresenceRecord p;
        if (p.ParseFromString(entry.value()) && p.user_id() == user) {
          online[p.device_id()] = std::move(p);
        }
      }
      Reply out = listed;  // devices in device id order, as the user service lists them
      for (DeviceInfo& device : *out.mutable_list_devices()->mutable_devices()) {
        auto it = online.find(device.device_id());
        if (it == online.end()) continue;
        device.set_online(true);
        device.set_gateway_id(it->second.gateway_id());
        device.set_epoch(it->second.epoch());
      }
      Respond(envelope, out);
    });
  });
}

void Gateway::LogoutDevice(const Envelope& envelope, const Session& session) {
  const std::string& device = envelope.request().logout_device().device_id();
  if (device.empty() || device.size() > kMaxDeviceIdBytes) {
    return RespondError(envelope, absl::InvalidArgumentError("device_id must be 1 to 64 bytes"));
  }
  ++stats_.forwarded;
  const uint64_t user = session.user_id;
  rpc().Call(kUserService, envelope.request(), CallsFor(envelope, session),
             [this, envelope, user, device](const Reply& reply) {
    if (!ReplyStatus(reply).ok()) return Respond(envelope, reply);
    // The device's session here, if any, is checked now rather than at the
    // next round (a login after the revocation holds a current token and
    // stays).
    auto it = by_device_.find(DeviceKey(user, device));
    if (it == by_device_.end()) return Respond(envelope, reply);
    std::vector<std::pair<std::string, TokenRef>> batch;
    batch.emplace_back(it->second, RefOf(sessions_.at(it->second)));
    CheckSessions(std::move(batch), [this, envelope, reply] { Respond(envelope, reply); });
  });
}

void Gateway::ChangePassword(const Envelope& envelope, const Session& session) {
  ++stats_.forwarded;
  Request request = envelope.request();
  // The new token is for the session's device, whatever the client says.
  request.mutable_change_password()->set_device_id(session.device_id);
  CallOptions call = CallsFor(envelope, session);
  // Two password hashes: one attempt that waits as long as the client does.
  call.timeout = envelope.timeout_us() > 0
                     ? std::min(absl::Microseconds(envelope.timeout_us()), options_.max_auth_wait)
                     : absl::Seconds(5);
  call.max_attempts = 1;
  const std::string client = envelope.from();
  rpc().Call(kUserService, request, call, [this, envelope, client, session](const Reply& reply) {
    if (reply.status().code() == CODE_OK && signer_.ok()) {
      // This session goes on with the new token; the others of the user
      // close at their gateways' next token check.
      absl::StatusOr<TokenClaims> claims =
          signer_->Verify(reply.change_password().token(), env().Now());
      auto it = sessions_.find(client);
      if (claims.ok() && it != sessions_.end() && it->second.user_id == claims->user_id &&
          it->second.device_id == session.device_id) {
        it->second.token_device = claims->device_id;
        it->second.generation = claims->generation;
        it->second.device_generation = claims->device_generation;
      }
    }
    Respond(envelope, reply);
  });
}

void Gateway::DropSession(const std::string& client, bool release_presence) {
  auto it = sessions_.find(client);
  if (it == sessions_.end()) return;
  const Session session = it->second;
  sessions_.erase(it);
  auto device = by_device_.find(DeviceKey(session.user_id, session.device_id));
  if (device != by_device_.end() && device->second == client) by_device_.erase(device);
  if (!release_presence) return;
  Request del;
  del.mutable_kv_delete()->set_key(message_keys::Presence(session.user_id, session.device_id));
  del.mutable_kv_delete()->set_version_at_most(session.epoch);  // never a newer login's
  CallOptions call = options_.calls;
  call.max_attempts = 1;  // if lost, the lease expires on its own
  rpc().CallAddress(kKvAddress, del, call, [](const Reply&) {});
}

void Gateway::Renew() {
  const absl::Time now = env().Now();
  std::vector<std::string> idle;
  for (const auto& [client, session] : sessions_) {
    if (now - session.last_seen >= options_.idle_timeout) idle.push_back(client);
  }
  for (const std::string& client : idle) {
    ++stats_.sessions_expired;
    DropSession(client, /*release_presence=*/true);
  }
  std::vector<std::string> clients;
  Request request;
  auto flush = [&] {
    if (clients.empty()) return;
    CallOptions call = options_.calls;
    call.max_attempts = 1;  // the next round renews again
    // Both move into the call; they are cleared for the next batch below.
    rpc().CallAddress(kKvAddress, std::move(request), call,
                      [this, clients = std::move(clients)](const Reply& reply) {
      if (reply.status().code() != CODE_OK) return;
      for (size_t i = 0; i < clients.size() && i < static_cast<size_t>(reply.kv_set().applied_size());
           ++i) {
        // Superseded by a newer login of the device elsewhere.
        if (!reply.kv_set().applied(i)) DropSession(clients[i], /*release_presence=*/false);
      }
    });
    clients.clear();
    request.Clear();
  };
  for (const auto& [client, session] : sessions_) {
    clients.push_back(client);
    *request.mutable_kv_set()->add_writes() = PresenceWrite(session);
    if (clients.size() == kRenewBatch) flush();
  }
  flush();
  timers().After(options_.renew_interval, [this] { Renew(); });
}

void Gateway::HandleOther(const Envelope& envelope) {
  if (!envelope.has_push()) return;
  ++stats_.pushes_received;
  const Push& push = envelope.push();
  Envelope out;
  out.set_from(env().Self());
  *out.mutable_client_push()->mutable_message() = push.message();
  for (const Push::Target& target : push.targets()) {
    auto device = by_device_.find(DeviceKey(target.user_id(), target.device_id()));
    if (device == by_device_.end() || sessions_.at(device->second).epoch != target.epoch()) {
      ++stats_.push_targets_skipped;  // gone: the client will sync
      probes().Count(kPushSkipped);
      continue;
    }
    ++stats_.pushed_to_sessions;
    env().Send(device->second, out);
  }
}

// ---- forwarding ---------------------------------------------------------------------------

void Gateway::Relay(const Envelope& envelope, const Session& session, const std::string& service,
                    const std::string& address, Request request) {
  ++stats_.forwarded;
  auto respond = [this, to = ReplyTo(envelope)](const Reply& reply) { Respond(to, reply); };
  if (!address.empty()) {
    rpc().CallAddress(address, std::move(request), CallsFor(envelope, session), std::move(respond));
  } else {
    rpc().Call(service, std::move(request), CallsFor(envelope, session), std::move(respond));
  }
}

void Gateway::RelaySend(const Envelope& envelope, const Session& session,
                        const std::string& address, Request request) {
  ++stats_.forwarded;
  rpc().CallAddress(address, std::move(request), CallsFor(envelope, session),
                    [this, to = ReplyTo(envelope)](const Reply& reply) {
    // The rpc layer answers UNAVAILABLE when it gave up (timeouts, or the
    // shard answering UNAVAILABLE each time): an earlier attempt may have
    // committed. Never "UNAVAILABLE" after a commit: say it is unknown.
    if (reply.status().code() != CODE_UNAVAILABLE) return Respond(to, reply);
    ++stats_.sends_unknown;
    probes().Count(kSendOutcomeUnknown);
    RespondError(to, absl::DeadlineExceededError(absl::StrCat(
                               "outcome unknown: the send may or may not have been committed; "
                               "retry it with the same client_msg_id (",
                               reply.status().message(), ")")));
  });
}

void Gateway::Forward(const Envelope& envelope, const Session& session) {
  Request request = envelope.request();
  const uint32_t shards = options_.num_shards;
  switch (request.op_case()) {
    case Request::kGetUsers:
    case Request::kUpdateProfile:
    case Request::kFindUser:
      return Relay(envelope, session, kUserService, "", std::move(request));
    case Request::kListDevices:
      return ListDevices(envelope, session);
    case Request::kLogoutDevice:
      return LogoutDevice(envelope, session);
    case Request::kChangePassword:
      return ChangePassword(envelope, session);
    case Request::kAddFriend:
    case Request::kRemoveFriend:
    case Request::kSetRemark:
    case Request::kBlock:
    case Request::kListFriends:
      return Relay(envelope, session, kFriendService, "", std::move(request));
    case Request::kCreateGroup:
    case Request::kInvite:
    case Request::kJoinGroup:
    case Request::kLeaveGroup:
    case Request::kKick:
    case Request::kDissolve:
    case Request::kSetGroupOpen:
    case Request::kRenameGroup:
    case Request::kTransferOwnership:
    case Request::kGroupInfo:
    case Request::kMemberIds:
    case Request::kUserGroups:
    case Request::kIsMember:
      return Relay(envelope, session, kGroupService, "", std::move(request));
    case Request::kSendPrivate: {
      request.mutable_send_private()->set_origin_device_id(session.device_id);
      const std::string conv =
          PrivateConversationId(session.user_id, request.send_private().to_user_id());
      return RelaySend(envelope, session, ShardAddress(ShardOf(conv, shards)), std::move(request));
    }
    case Request::kSendGroup: {
      request.mutable_send_group()->set_origin_device_id(session.device_id);
      const std::string conv = GroupConversationId(request.send_group().group_id());
      return RelaySend(envelope, session, ShardAddress(ShardOf(conv, shards)), std::move(request));
    }
    case Request::kRecall:
    case Request::kAck:
    case Request::kRead: {
      const std::string& conv = request.has_recall() ? request.recall().conversation()
                                : request.has_ack() ? request.ack().conversation()
                                                    : request.read().conversation();
      absl::Status s = ParseConversation(conv).status();
      if (!s.ok()) return RespondError(envelope, s);
      // Cursors belong to the session's device, whatever the client says.
      if (request.has_ack()) request.mutable_ack()->set_device_id(session.device_id);
      if (request.has_read()) request.mutable_read()->set_device_id(session.device_id);
      // Before the request moves: `conv` points into it.
      const std::string address = ShardAddress(ShardOf(conv, shards));
      if (request.has_recall()) return RelaySend(envelope, session, address, std::move(request));
      return Relay(envelope, session, "", address, std::move(request));
    }
    case Request::kHistory: {
      // To the conversation's shard, which checks who may see what.
      const std::string& conv = request.history().conversation();
      absl::Status s = ParseConversation(conv).status();
      if (!s.ok()) return RespondError(envelope, s);
      const std::string address = ShardAddress(ShardOf(conv, shards));  // `conv` is in `request`
      return Relay(envelope, session, "", address, std::move(request));
    }
    case Request::kSync:
      return Sync(envelope, session);
    case Request::kListConversations:
      return ListConversations(envelope, session);
    default:
      ++stats_.refused;
      return RespondError(envelope,
                          absl::PermissionDeniedError("not an operation a client may call"));
  }
}

void Gateway::FanOut(const Envelope& envelope, const Session& session, Request group_request,
                     ShardRequestFn shard_request, MergeFn merge) {
  ++stats_.forwarded;
  // The group service answers once (the rpc client calls a callback once),
  // so its callback hands what it holds on to the shards' shared gather.
  rpc().Call(kGroupService, std::move(group_request), CallsFor(envelope, session),
             [this, to = ReplyTo(envelope), user_id = session.user_id,
              shard_request = std::move(shard_request),
              merge = std::move(merge)](const Reply& group_reply) mutable {
    absl::Status s = ReplyStatus(group_reply);
    if (!s.ok()) {
      return RespondError(to,
                          absl::UnavailableError(absl::StrCat("group service: ", s.message())));
    }
    struct Gather {
      Envelope to;
      MergeFn merge;
      size_t outstanding = 0;
      absl::Status status;
      std::vector<Reply> replies;
    };
    auto gather = std::make_shared<Gather>();
    gather->to = std::move(to);
    gather->merge = std::move(merge);
    gather->outstanding = options_.num_shards;
    for (uint32_t shard = 0; shard < options_.num_shards; ++shard) {
      CallOptions call = options_.calls;
      call.auth_user_id = user_id;
      rpc().CallAddress(ShardAddress(shard), shard_request(group_reply, shard), call,
                        [this, gather](const Reply& reply) {
        absl::Status s = ReplyStatus(reply);
        if (!s.ok() && gather->status.ok()) gather->status = s;
        gather->replies.push_back(reply);
        if (--gather->outstanding > 0) return;
        if (!gather->status.ok()) {
          return RespondError(gather->to, absl::UnavailableError(absl::StrCat(
                                              "message shard: ", gather->status.message())));
        }
        Respond(gather->to, gather->merge(gather->replies));
      });
    }
  });
}

void Gateway::Sync(const Envelope& envelope, const Session& session) {
  Request history;
  history.mutable_membership_history()->set_user_id(session.user_id);
  const uint64_t user = session.user_id;
  const uint32_t shards = options_.num_shards;
  auto shard_request = [sync = envelope.request().sync(), user, shards](const Reply& groups,
                                                                       uint32_t shard) {
    Request request;
    ShardSyncRequest* part = request.mutable_shard_sync();
    part->set_user_id(user);
    *part->mutable_cursors() = sync.cursors();
    part->set_max_messages(sync.max_messages());
    part->set_only_listed(sync.only_listed());
    for (const GroupMembership& g : groups.membership_history().groups()) {
      if (ShardOf(GroupConversationId(g.group_id()), shards) == shard) *part->add_groups() = g;
    }
    return request;
  };
  auto merge = [](const std::vector<Reply>& replies) {
    std::map<std::string, const ConversationPage*> pages;  // by conversation id
    Reply out;
    for (const Reply& reply : replies) {
      for (const ConversationPage& page : reply.sync().conversations()) {
        pages[page.conversation()] = &page;
      }
      if (reply.sync().has_more()) out.mutable_sync()->set_has_more(true);
    }
    // Each shard's part is bounded by bytes; the merge is too: once the
    // reply is full, a page keeps the messages that fit and its through_seq
    // stops just before the first one left out (every seq before it was
    // considered), with has_more, so the client pages on from there.
    size_t bytes = 0;
    for (const auto& [conv, page] : pages) {
      ConversationPage* kept = out.mutable_sync()->add_conversations();
      *kept = *page;
      int fit = 0;
      for (; fit < page->messages_size(); ++fit) {
        const size_t cost = SyncReplyCost(page->messages(fit).ByteSizeLong());
        if (bytes > 0 && bytes + cost > kDefaultSyncReplyBytes) break;
        bytes += cost;
      }
      if (fit == page->messages_size()) continue;
      kept->set_through_seq(page->messages(fit).seq() - 1);
      kept->mutable_messages()->DeleteSubrange(fit, page->messages_size() - fit);
      kept->set_has_more(true);
      out.mutable_sync()->set_has_more(true);
      bytes = kDefaultSyncReplyBytes;  // full: later pages keep nothing
    }
    return out;
  };
  FanOut(envelope, session, std::move(history), std::move(shard_request), std::move(merge));
}

void Gateway::ListConversations(const Envelope& envelope, const Session& session) {
  // As for a sync: the membership history, of which each shard gets the
  // current memberships (last interval open) of the groups it holds.
  Request history;
  history.mutable_membership_history()->set_user_id(session.user_id);
  const uint64_t user = session.user_id;
  const uint32_t shards = options_.num_shards;
  auto shard_request = [user, shards](const Reply& groups, uint32_t shard) {
    Request request;
    ShardListConversationsRequest* part = request.mutable_shard_list_conversations();
    part->set_user_id(user);
    for (const GroupMembership& g : groups.membership_history().groups()) {
      if (g.intervals_size() == 0 || g.intervals(g.intervals_size() - 1).leave_version() != 0) {
        continue;  // no longer a member
      }
      part->add_group_ids(g.group_id());  // still filled, for older shards
      if (ShardOf(GroupConversationId(g.group_id()), shards) == shard) *part->add_groups() = g;
    }
    return request;
  };
  auto merge = [](const std::vector<Reply>& replies) {
    std::map<std::string, const ConversationState*> states;  // by conversation id
    for (const Reply& reply : replies) {
      for (const ConversationState& c : reply.list_conversations().conversations()) {
        states[c.conversation()] = &c;
      }
    }
    Reply out;
    for (const auto& [conv, state] : states) {
      *out.mutable_list_conversations()->add_conversations() = *state;
    }
    return out;
  };
  FanOut(envelope, session, std::move(history), std::move(shard_request), std::move(merge));
}

}  // namespace parley
