#include "core/friend/friend_service.h"

#include <algorithm>
#include <set>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/friend/friend_keys.h"
#include "core/services.h"
#include "core/status.h"
#include "core/testing/bugs.h"
#include "core/user/user_keys.h"

namespace parley {

// Probes counted here (core/probe.h).
const DeclaredProbe kStaleFillRefused("stale_fill_refused",
                         "kv refused a friend-cache fill older than the cached list");
const DeclaredProbe kRedeliveredEventIgnored("redelivered_event_ignored",
                         "a profile event seen before (or older) ignored");

FriendService::FriendService(Env* env, FriendOptions options)
    : ServiceNode(env, ServiceOptions{kFriendService, options.instance_id, {kUserService}}),
      options_(std::move(options)),
      kv_(&rpc(), options_.calls),
      profiles_gate_(&store(), "friend") {}

absl::Status FriendService::OnStart() {
  env().Subscribe(kFriendService, {"friend", "user"});
  return absl::OkStatus();
}

void FriendService::HandleRequest(const Envelope& envelope) {
  const Request& request = envelope.request();
  if (request.op_case() != Request::kCheckFriends && envelope.auth_user_id() == 0) {
    return RespondError(envelope, absl::UnauthenticatedError("friend operations need a login"));
  }
  switch (request.op_case()) {
    case Request::kAddFriend:
      return Add(envelope);
    case Request::kRemoveFriend:
      return Remove(envelope);
    case Request::kSetRemark:
      return SetRemark(envelope);
    case Request::kBlock:
      return Block(envelope);
    case Request::kListFriends:
      return List(envelope);
    case Request::kCheckFriends:
      return CheckFriends(envelope);
    default:
      return RespondError(
          envelope, absl::UnimplementedError("the friend service does not serve this request"));
  }
}

// ---- reading the store ----------------------------------------------------------

bool FriendService::IsFriend(uint64_t owner, uint64_t other) {
  std::string value;
  return store().Get(friend_keys::Friend(owner, other), &value).ok();
}

bool FriendService::Blocks(uint64_t owner, uint64_t target) {
  std::string value;
  return store().Get(friend_keys::Block(owner, target), &value).ok();
}

uint64_t FriendService::ListVersion(uint64_t owner, const Bumps& bumps) {
  auto it = bumps.find(owner);
  if (it != bumps.end()) return it->second;
  std::string value;
  uint64_t version = 0;
  if (store().Get(friend_keys::ListVersion(owner), &value).ok()) {
    absl::SimpleAtoi(value, &version);
  }
  return version;
}

FriendList FriendService::Render(uint64_t owner) {
  absl::StatusOr<FriendList> list = TryRender(owner);
  return list.ok() ? *std::move(list) : FriendList();
}

absl::StatusOr<FriendList> FriendService::TryRender(uint64_t owner) {
  FriendList list;
  list.set_owner_id(owner);
  list.set_version(ListVersion(owner, {}));
  std::vector<KeyValue> rows;
  absl::Status s =
      store().Scan(friend_keys::FriendPrefix(owner), "", options_.max_friends, &rows);
  // The planted bug renders a list it could not read as an empty one, at the
  // current version, for the cache to keep.
  if (!s.ok() && !BugPlanted(Bug::kIgnoreReadError)) return s;
  for (const KeyValue& row : rows) {
    FriendRecord record;
    if (!record.ParseFromString(row.second)) continue;
    FriendEntry* entry = list.add_friends();
    entry->set_friend_id(record.friend_id());
    entry->set_remark(record.remark());
    entry->set_since_us(record.since_us());
    std::string value;
    ProfileCopy copy;
    s = store().Get(friend_keys::Profile(record.friend_id()), &value);
    if (!s.ok() && !absl::IsNotFound(s)) return s;
    if (s.ok() && copy.ParseFromString(value)) {
      entry->set_nickname(copy.nickname());
      entry->set_avatar(copy.avatar());
      entry->set_profile_version(copy.version());
    }
  }
  rows.clear();
  s = store().Scan(friend_keys::BlockPrefix(owner), "", options_.max_friends, &rows);
  if (!s.ok()) return s;
  for (const KeyValue& row : rows) list.add_blocked_ids(LastIdOf(row.first));
  // The version (ListVersion reads "absent" for a failed read too).
  if (!read_failure().ok() && !BugPlanted(Bug::kIgnoreReadError)) return read_failure();
  return list;
}

// ---- writing ------------------------------------------------------------------------

uint64_t FriendService::Bump(WriteBatch* batch, Bumps* bumps, uint64_t owner,
                             uint64_t friend_id, FriendChanged::Kind kind) {
  const uint64_t version = ListVersion(owner, *bumps) + 1;
  (*bumps)[owner] = version;
  batch->Put(friend_keys::ListVersion(owner), absl::StrCat(version));
  Event event;
  event.set_aggregate_id(friend_keys::Aggregate(owner));
  event.set_version(version);
  FriendChanged* changed = event.mutable_friend_changed();
  changed->set_owner_id(owner);
  changed->set_friend_id(friend_id);
  changed->set_kind(kind);
  changed->set_version(version);
  outbox().Add(batch, std::move(event));
  return version;
}

void FriendService::ApplyProfile(WriteBatch* batch, Bumps* bumps, const Profile& profile) {
  const std::string aggregate = user_keys::Aggregate(profile.user_id());
  // A version that cannot be read taints the callback (see
  // ServiceNode::store()): Commit refuses the batch, the event is not acked.
  absl::StatusOr<bool> fresh = profiles_gate_.IsNew(aggregate, profile.version());
  if (!fresh.ok() || !*fresh) return;
  ProfileCopy copy;
  copy.set_nickname(profile.nickname());
  copy.set_avatar(profile.avatar());
  copy.set_version(profile.version());
  batch->Put(friend_keys::Profile(profile.user_id()), copy.SerializeAsString());
  profiles_gate_.MarkApplied(batch, aggregate, profile.version());
  // Every list that shows this user now renders differently.
  std::vector<KeyValue> owners;
  // A failed scan taints the callback (see ServiceNode::store()): the batch is
  // then refused by Commit, so no list misses its bump.
  if (!store()
           .Scan(friend_keys::ReversePrefix(profile.user_id()), "", options_.max_friends, &owners)
           .ok()) {
    return;
  }
  for (const KeyValue& row : owners) {
    Bump(batch, bumps, LastIdOf(row.first), profile.user_id(), FriendChanged::PROFILE);
  }
}

void FriendService::WithProfiles(const Envelope& envelope, std::vector<uint64_t> ids,
                                 std::function<void(const GetUsersReply&)> next) {
  Request request;
  for (uint64_t id : ids) request.mutable_get_users()->add_user_ids(id);
  rpc().Call(kUserService, request, options_.calls,
             [this, envelope, next = std::move(next)](const Reply& reply) {
               absl::Status s = ReplyStatus(reply);
               if (!s.ok()) {
                 return RespondError(envelope, absl::UnavailableError(absl::StrCat(
                                                   "user service: ", s.message())));
               }
               if (reply.get_users().unknown_ids_size() > 0) {
                 return RespondError(envelope,
                                     absl::NotFoundError(absl::StrCat(
                                         "no user ", reply.get_users().unknown_ids(0))));
               }
               next(reply.get_users());
             });
}

void FriendService::Add(const Envelope& envelope) {
  if (ReplayIfDone(envelope)) return;
  const uint64_t owner = envelope.auth_user_id();
  const uint64_t other = envelope.request().add_friend().friend_id();
  // Checked before the user lookup to fail fast, and again after it: the
  // state may have changed while the lookup was in flight.
  auto check = [this, owner, other]() -> absl::Status {
    if (other == 0 || other == owner) {
      return absl::InvalidArgumentError("friend_id must name another user");
    }
    if (IsFriend(owner, other)) {
      return absl::AlreadyExistsError(absl::StrCat("user ", other, " is already a friend"));
    }
    if (Blocks(other, owner)) {
      return absl::PermissionDeniedError(absl::StrCat("user ", other, " blocked you"));
    }
    if (Blocks(owner, other)) {
      return absl::FailedPreconditionError(
          absl::StrCat("you blocked user ", other, "; unblock first"));
    }
    return absl::OkStatus();
  };
  absl::Status s = check();
  if (!s.ok()) return RespondError(envelope, s);
  WithProfiles(envelope, {owner, other}, [this, envelope, owner, other,
                                          check](const GetUsersReply& users) {
    if (ReplayIfDone(envelope)) return;
    absl::Status s = check();
    if (!s.ok()) return RespondError(envelope, s);
    WriteBatch batch;
    Bumps bumps;
    for (const Profile& profile : users.profiles()) ApplyProfile(&batch, &bumps, profile);
    const int64_t now_us = absl::ToUnixMicros(env().Now());
    for (auto [a, b] : {std::make_pair(owner, other), std::make_pair(other, owner)}) {
      FriendRecord record;
      record.set_friend_id(b);
      record.set_since_us(now_us);
      batch.Put(friend_keys::Friend(a, b), record.SerializeAsString());
      batch.Put(friend_keys::Reverse(b, a), "");
    }
    Reply reply;
    reply.mutable_add_friend()->set_version(
        Bump(&batch, &bumps, owner, other, FriendChanged::ADDED));
    Bump(&batch, &bumps, other, owner, FriendChanged::ADDED);
    CommitAndRespond(envelope, std::move(batch), reply);
  });
}

void FriendService::Remove(const Envelope& envelope) {
  if (ReplayIfDone(envelope)) return;
  const uint64_t owner = envelope.auth_user_id();
  const uint64_t other = envelope.request().remove_friend().friend_id();
  if (!IsFriend(owner, other)) {
    return RespondError(envelope,
                        absl::NotFoundError(absl::StrCat("user ", other, " is not a friend")));
  }
  WriteBatch batch;
  Bumps bumps;
  for (auto [a, b] : {std::make_pair(owner, other), std::make_pair(other, owner)}) {
    batch.Delete(friend_keys::Friend(a, b));
    batch.Delete(friend_keys::Reverse(b, a));
  }
  Reply reply;
  reply.mutable_remove_friend()->set_version(
      Bump(&batch, &bumps, owner, other, FriendChanged::REMOVED));
  Bump(&batch, &bumps, other, owner, FriendChanged::REMOVED);
  CommitAndRespond(envelope, std::move(batch), reply);
}

void FriendService::SetRemark(const Envelope& envelope) {
  if (ReplayIfDone(envelope)) return;
  const uint64_t owner = envelope.auth_user_id();
  const SetRemarkRequest& request = envelope.request().set_remark();
  if (request.remark().size() > options_.max_remark_bytes) {
    return RespondError(envelope, absl::InvalidArgumentError(absl::StrCat(
                                      "remark is longer than ", options_.max_remark_bytes,
                                      " bytes")));
  }
  std::string value;
  FriendRecord record;
  if (!store().Get(friend_keys::Friend(owner, request.friend_id()), &value).ok() ||
      !record.ParseFromString(value)) {
    return RespondError(envelope, absl::NotFoundError(absl::StrCat(
                                      "user ", request.friend_id(), " is not a friend")));
  }
  record.set_remark(request.remark());
  WriteBatch batch;
  Bumps bumps;
  batch.Put(friend_keys::Friend(owner, request.friend_id()), record.SerializeAsString());
  Reply reply;
  reply.mutable_set_remark()->set_version(
      Bump(&batch, &bumps, owner, request.friend_id(), FriendChanged::REMARK));
  CommitAndRespond(envelope, std::move(batch), reply);
}

void FriendService::Block(const Envelope& envelope) {
  if (ReplayIfDone(envelope)) return;
  const uint64_t owner = envelope.auth_user_id();
  const BlockRequest request = envelope.request().block();
  if (request.target_id() == 0 || request.target_id() == owner) {
    return RespondError(envelope, absl::InvalidArgumentError("target_id must name another user"));
  }
  WithProfiles(envelope, {request.target_id()}, [this, envelope, owner,
                                                 request](const GetUsersReply&) {
    if (ReplayIfDone(envelope)) return;
    WriteBatch batch;
    Bumps bumps;
    Reply reply;
    if (Blocks(owner, request.target_id()) == request.blocked()) {
      // Already so: nothing changes, no event.
      reply.mutable_block()->set_version(ListVersion(owner, bumps));
      return Respond(envelope, reply);
    }
    if (request.blocked()) {
      batch.Put(friend_keys::Block(owner, request.target_id()), "");
    } else {
      batch.Delete(friend_keys::Block(owner, request.target_id()));
    }
    reply.mutable_block()->set_version(
        Bump(&batch, &bumps, owner, request.target_id(),
             request.blocked() ? FriendChanged::BLOCKED : FriendChanged::UNBLOCKED));
    CommitAndRespond(envelope, std::move(batch), reply);
  });
}

void FriendService::CheckFriends(const Envelope& envelope) {
  const CheckFriendsRequest& request = envelope.request().check_friends();
  if (request.user_ids_size() > static_cast<int>(options_.max_check_ids)) {
    return RespondError(envelope, absl::InvalidArgumentError(absl::StrCat(
                                      "at most ", options_.max_check_ids, " ids per check")));
  }
  Reply reply;
  CheckFriendsReply* out = reply.mutable_check_friends();
  for (uint64_t id : request.user_ids()) {
    if (IsFriend(request.owner_id(), id)) out->add_friend_ids(id);
    if (Blocks(request.owner_id(), id) || Blocks(id, request.owner_id())) {
      out->add_blocked_ids(id);
    }
  }
  Respond(envelope, std::move(reply));
}

// ---- the cache ---------------------------------------------------------------------

KvWrite FriendService::CacheWrite(const FriendList& list) const {
  KvWrite write;
  write.set_key(friend_keys::CacheKey(list.owner_id()));
  write.set_value(list.SerializeAsString());
  // The entry carries the version it was built from; kv refuses it if it
  // already holds a newer one.
  write.set_version(list.version());
  write.set_ttl_ms(absl::ToInt64Milliseconds(options_.cache_ttl));
  write.set_mode(KvWrite::IF_NEWER);
  return write;
}

void FriendService::RespondList(const Envelope& envelope,
                                const absl::StatusOr<FriendList>& list, bool from_cache) {
  if (!list.ok()) {
    return RespondError(envelope, absl::UnavailableError(
                                      absl::StrCat("store read failed: ", list.status().message())));
  }
  Reply reply;
  *reply.mutable_list_friends()->mutable_list() = *list;
  reply.mutable_list_friends()->set_from_cache(from_cache);
  Respond(envelope, std::move(reply));
}

void FriendService::List(const Envelope& envelope) {
  const uint64_t owner = envelope.auth_user_id();
  kv_.Get(friend_keys::CacheKey(owner),
          [this, envelope, owner](absl::StatusOr<std::optional<KvEntry>> entry) {
            FriendList cached;
            if (entry.ok() && entry->has_value() && cached.ParseFromString((*entry)->value())) {
              ++stats_.cache_hits;
              return RespondList(envelope, cached, /*from_cache=*/true);
            }
            if (!entry.ok()) {
              // The cache is an optimisation: without it, read the store.
              ++stats_.store_fallbacks;
              return RespondList(envelope, TryRender(owner), false);
            }
            ++stats_.cache_misses;
            FillCache(envelope, owner, 0);
          });
}

void FriendService::FillCache(const Envelope& envelope, uint64_t owner, int attempt) {
  const std::string lock_owner = absl::StrCat(env().Self(), "/", envelope.request_id(), "/",
                                              envelope.correlation_id());
  kv_.Lock(friend_keys::LockKey(owner), lock_owner, options_.lock_lease,
           [this, envelope, owner, attempt, lock_owner](absl::StatusOr<bool> acquired) {
             if (!acquired.ok()) {
               ++stats_.store_fallbacks;
               return RespondList(envelope, TryRender(owner), false);
             }
             if (!*acquired) {
               // Another loader is filling: wait for its entry.
               if (attempt >= options_.lock_retries) {
                 ++stats_.store_fallbacks;
                 return RespondList(envelope, TryRender(owner), false);
               }
               ++stats_.lock_waits;
               timers().After(options_.lock_retry_after, [this, envelope, owner, attempt] {
                 kv_.Get(friend_keys::CacheKey(owner),
                         [this, envelope, owner, attempt](
                             absl::StatusOr<std::optional<KvEntry>> entry) {
                           FriendList cached;
                           if (entry.ok() && entry->has_value() &&
                               cached.ParseFromString((*entry)->value())) {
                             ++stats_.cache_hits;
                             return RespondList(envelope, cached, true);
                           }
                           FillCache(envelope, owner, attempt + 1);
                         });
               });
               return;
             }
             const absl::StatusOr<FriendList> rendered = TryRender(owner);
             if (!rendered.ok()) {
               // Never cached: an unread list is not an empty one.
               kv_.Unlock(friend_keys::LockKey(owner), lock_owner, [](absl::StatusOr<bool>) {});
               return RespondList(envelope, rendered, false);
             }
             const FriendList list = *rendered;
             KvWrite fill = CacheWrite(list);
             if (BugPlanted(Bug::kUnversionedCacheFill)) fill.set_mode(KvWrite::ALWAYS);
             auto write = [this, envelope, owner, list, lock_owner, fill] {
               kv_.Set(fill, [this, envelope, owner, list, lock_owner](absl::StatusOr<bool> applied) {
                 if (applied.ok() && *applied) ++stats_.fills_applied;
                 if (applied.ok() && !*applied) {
                   ++stats_.stale_fills_refused;
                   probes().Count(kStaleFillRefused);
                 }
                 kv_.Unlock(friend_keys::LockKey(owner), lock_owner, [](absl::StatusOr<bool>) {});
                 RespondList(envelope, list, false);
               });
             };
             if (options_.fill_delay > absl::ZeroDuration()) {
               timers().After(options_.fill_delay, write);
             } else {
               write();
             }
           });
}

void FriendService::RefreshCache(uint64_t owner, uint64_t delivery_id) {
  const absl::StatusOr<FriendList> list = TryRender(owner);
  if (!list.ok()) return;  // not acked: the bus delivers the event again
  kv_.Set(CacheWrite(*list), [this, delivery_id](absl::StatusOr<bool> applied) {
    // Not acked on failure: the bus delivers the event again.
    if (!applied.ok()) return;
    ++stats_.cache_refreshes;
    AckEvent(delivery_id);
  });
}

void FriendService::OnProfileEvent(const UserProfileChanged& changed, uint64_t delivery_id) {
  Profile profile;
  profile.set_user_id(changed.user_id());
  profile.set_version(changed.version());
  profile.set_nickname(changed.nickname());
  profile.set_avatar(changed.avatar());
  WriteBatch batch;
  Bumps bumps;
  ApplyProfile(&batch, &bumps, profile);
  if (batch.empty()) {
    ++stats_.profile_events_ignored;
    probes().Count(kRedeliveredEventIgnored);
    AckEvent(delivery_id);
    return;
  }
  if (!Commit(batch).ok()) return;  // redelivered later
  ++stats_.profile_events_applied;
  AckEvent(delivery_id);
}

void FriendService::HandleEvent(const Event& event, uint64_t delivery_id) {
  switch (event.body_case()) {
    case Event::kFriendChanged:
      return RefreshCache(event.friend_changed().owner_id(), delivery_id);
    case Event::kUserProfileChanged:
      return OnProfileEvent(event.user_profile_changed(), delivery_id);
    default:
      AckEvent(delivery_id);
  }
}

}  // namespace parley
