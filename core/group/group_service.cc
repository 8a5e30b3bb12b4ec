#include "core/group/group_service.h"

#include <algorithm>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/group/group_keys.h"
#include "core/services.h"
#include "core/status.h"
#include "core/testing/bugs.h"
#include "core/user/user_keys.h"

namespace parley {

// Probes counted here (core/probe.h).
const DeclaredProbe kRedeliveredEventIgnored("redelivered_event_ignored",
                         "a profile event seen before (or older) ignored");
const DeclaredProbe kProfileApplyMs("profile_apply_ms",
                         "milliseconds from a profile change to its effect in the group service", DeclaredProbe::Kind::kSamples);

GroupService::GroupService(Env* env, GroupOptions options)
    : ServiceNode(env, ServiceOptions{kGroupService, options.instance_id, {kFriendService}}),
      options_(std::move(options)),
      profiles_gate_(&store(), "group") {}

absl::Status GroupService::OnStart() {
  env().Subscribe(kGroupService, {"user"});
  return absl::OkStatus();
}

void GroupService::HandleRequest(const Envelope& envelope) {
  const Request::OpCase op = envelope.request().op_case();
  const bool internal = op == Request::kMemberIds || op == Request::kIsMember ||
                        op == Request::kUserGroups || op == Request::kGroupInfo ||
                        op == Request::kMembershipHistory;
  if (!internal && envelope.auth_user_id() == 0) {
    return RespondError(envelope, absl::UnauthenticatedError("group operations need a login"));
  }
  switch (op) {
    case Request::kCreateGroup:
      return Create(envelope);
    case Request::kInvite:
      return Invite(envelope);
    case Request::kJoinGroup:
      return Join(envelope);
    case Request::kLeaveGroup:
      return Leave(envelope);
    case Request::kKick:
      return Kick(envelope);
    case Request::kDissolve:
      return Dissolve(envelope);
    case Request::kSetGroupOpen:
      return SetOpen(envelope);
    case Request::kRenameGroup:
      return Rename(envelope);
    case Request::kTransferOwnership:
      return TransferOwnership(envelope);
    case Request::kGroupInfo:
      return Info(envelope);
    case Request::kMemberIds:
      return MemberIds(envelope);
    case Request::kUserGroups:
      return UserGroups(envelope);
    case Request::kIsMember:
      return IsMember(envelope);
    case Request::kMembershipHistory:
      return MembershipHistory(envelope);
    default:
      return RespondError(
          envelope, absl::UnimplementedError("the group service does not serve this request"));
  }
}

// ---- reading ----------------------------------------------------------------------------

absl::StatusOr<Group> GroupService::ReadGroup(uint64_t group_id) {
  std::string value;
  absl::Status s = store().Get(group_keys::Group(group_id), &value);
  if (absl::IsNotFound(s)) return absl::NotFoundError(absl::StrCat("no group ", group_id));
  if (!s.ok()) return absl::UnavailableError(s.message());
  Group group;
  if (!group.ParseFromString(value)) {
    return absl::DataLossError(absl::StrCat("corrupt record of group ", group_id));
  }
  return group;
}

absl::StatusOr<Group> GroupService::ReadLiveGroup(uint64_t group_id) {
  absl::StatusOr<Group> group = ReadGroup(group_id);
  if (group.ok() && group->dissolved()) {
    return absl::FailedPreconditionError(absl::StrCat("group ", group_id, " was dissolved"));
  }
  return group;
}

bool GroupService::IsMemberOf(uint64_t group_id, uint64_t user_id) {
  std::string value;
  return store().Get(group_keys::Member(group_id, user_id), &value).ok();
}

bool GroupService::IsBanned(uint64_t group_id, uint64_t user_id) {
  std::string value;
  return store().Get(group_keys::Ban(group_id, user_id), &value).ok();
}

absl::Status GroupService::RequireMemberCaller(const Envelope& envelope, uint64_t group_id) {
  const uint64_t caller = envelope.auth_user_id();
  if (caller == 0 || BugPlanted(Bug::kInfoForAnyone)) return absl::OkStatus();  // internal
  if (IsMemberOf(group_id, caller)) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat("not a member of group ", group_id));
}

absl::StatusOr<std::vector<uint64_t>> GroupService::Members(uint64_t group_id) {
  std::vector<KeyValue> rows;
  absl::Status s =
      store().Scan(group_keys::MemberPrefix(group_id), "", options_.max_members + 1, &rows);
  // Members that could not be read are not "no members".
  if (!s.ok()) return absl::UnavailableError(absl::StrCat("store read failed: ", s.message()));
  std::vector<uint64_t> ids;
  ids.reserve(rows.size());
  for (const KeyValue& row : rows) ids.push_back(LastIdOf(row.first));
  return ids;
}

// ---- writing ----------------------------------------------------------------------------

void GroupService::StageMembershipEvent(WriteBatch* batch, const Group& group, uint64_t user_id,
                                        bool joined, MembershipChanged::Reason reason) {
  Event event;
  event.set_aggregate_id(group_keys::Aggregate(group.group_id()));
  event.set_version(group.version());
  MembershipChanged* changed = event.mutable_membership_changed();
  changed->set_group_id(group.group_id());
  changed->set_user_id(user_id);
  changed->set_joined(joined);
  changed->set_version(group.version());
  changed->set_reason(reason);
  outbox().Add(batch, std::move(event));
}

void GroupService::AddMember(WriteBatch* batch, Group* group, uint64_t user_id, bool is_owner,
                             MembershipChanged::Reason reason) {
  group->set_version(group->version() + 1);
  group->set_member_count(group->member_count() + 1);
  Member member;
  member.set_user_id(user_id);
  member.set_joined_version(group->version());
  member.set_joined_us(absl::ToUnixMicros(env().Now()));
  member.set_is_owner(is_owner);
  std::string value;
  ProfileCopy copy;
  if (store().Get(group_keys::Profile(user_id), &value).ok() && copy.ParseFromString(value)) {
    member.set_nickname(copy.nickname());
    member.set_avatar(copy.avatar());
    member.set_profile_version(copy.version());
  }
  batch->Put(group_keys::Member(group->group_id(), user_id), member.SerializeAsString());
  batch->Put(group_keys::UserGroup(user_id, group->group_id()), "");
  batch->Put(group_keys::History(user_id, group->group_id(), group->version()), "1");
  StageMembershipEvent(batch, *group, user_id, true, reason);
}

void GroupService::RemoveMember(WriteBatch* batch, Group* group, uint64_t user_id,
                                MembershipChanged::Reason reason) {
  group->set_version(group->version() + 1);
  group->set_member_count(group->member_count() - 1);
  batch->Delete(group_keys::Member(group->group_id(), user_id));
  batch->Delete(group_keys::UserGroup(user_id, group->group_id()));
  batch->Put(group_keys::History(user_id, group->group_id(), group->version()), "0");
  StageMembershipEvent(batch, *group, user_id, false, reason);
}

void GroupService::CommitGroup(const Envelope& envelope, WriteBatch batch, const Group& group) {
  batch.Put(group_keys::Group(group.group_id()), group.SerializeAsString());
  Reply reply;
  *reply.mutable_membership()->mutable_group() = group;
  CommitAndRespond(envelope, std::move(batch), reply);
}

void GroupService::RequireFriends(const Envelope& envelope, uint64_t owner,
                                  std::vector<uint64_t> ids, std::function<void()> next) {
  if (ids.empty()) return next();
  Request request;
  request.mutable_check_friends()->set_owner_id(owner);
  for (uint64_t id : ids) request.mutable_check_friends()->add_user_ids(id);
  rpc().Call(kFriendService, request, options_.calls,
             [this, envelope, ids, next = std::move(next)](const Reply& reply) {
               absl::Status s = ReplyStatus(reply);
               if (!s.ok()) {
                 return RespondError(envelope, absl::UnavailableError(absl::StrCat(
                                                   "friend service: ", s.message())));
               }
               const CheckFriendsReply& check = reply.check_friends();
               const std::set<uint64_t> friends(check.friend_ids().begin(),
                                                check.friend_ids().end());
               for (uint64_t id : ids) {
                 if (friends.count(id) == 0) {
                   return RespondError(envelope, absl::PermissionDeniedError(absl::StrCat(
                                                     "user ", id, " is not your friend")));
                 }
               }
               if (check.blocked_ids_size() > 0) {
                 return RespondError(envelope, absl::PermissionDeniedError(absl::StrCat(
                                                   "user ", check.blocked_ids(0),
                                                   " is blocked")));
               }
               next();
             });
}

namespace {

// Distinct ids, ascending, without `exclude`; an error for 0 or too many.
absl::StatusOr<std::vector<uint64_t>> CleanIds(const google::protobuf::RepeatedField<uint64_t>& raw,
                                               uint64_t exclude, size_t max) {
  if (static_cast<size_t>(raw.size()) > max) {
    return absl::InvalidArgumentError(absl::StrCat("at most ", max, " user ids per request"));
  }
  std::set<uint64_t> ids;
  for (uint64_t id : raw) {
    if (id == 0) return absl::InvalidArgumentError("user id 0 is not valid");
    if (id != exclude) ids.insert(id);
  }
  return std::vector<uint64_t>(ids.begin(), ids.end());
}

}  // namespace

void GroupService::Create(const Envelope& envelope) {
  if (ReplayIfDone(envelope)) return;
  const uint64_t creator = envelope.auth_user_id();
  const CreateGroupRequest& request = envelope.request().create_group();
  if (request.name().empty() || request.name().size() > options_.max_name_bytes) {
    return RespondError(envelope, absl::InvalidArgumentError(absl::StrCat(
                                      "group name must be 1 to ", options_.max_name_bytes,
                                      " bytes")));
  }
  absl::StatusOr<std::vector<uint64_t>> ids =
      CleanIds(request.member_ids(), creator, options_.max_ids_per_request);
  if (!ids.ok()) return RespondError(envelope, ids.status());
  if (ids->size() + 1 > options_.max_members) {
    return RespondError(envelope, absl::ResourceExhaustedError(absl::StrCat(
                                      "a group holds at most ", options_.max_members,
                                      " members")));
  }
  RequireFriends(envelope, creator, *ids, [this, envelope, creator, ids = *ids] {
    if (ReplayIfDone(envelope)) return;
    uint64_t group_id = 1;
    std::string next;
    if (store().Get(group_keys::kNextGroupId, &next).ok() && !absl::SimpleAtoi(next, &group_id)) {
      return RespondError(envelope, absl::DataLossError("corrupt group id counter"));
    }
    Group group;
    group.set_group_id(group_id);
    group.set_name(envelope.request().create_group().name());
    group.set_owner_id(creator);
    group.set_max_members(options_.max_members);
    group.set_created_us(absl::ToUnixMicros(env().Now()));
    group.set_open(envelope.request().create_group().open());
    WriteBatch batch;
    batch.Put(group_keys::kNextGroupId, absl::StrCat(group_id + 1));
    AddMember(&batch, &group, creator, /*is_owner=*/true, MembershipChanged::CREATE);
    for (uint64_t id : ids) {
      batch.Delete(group_keys::Ban(group_id, id));
      AddMember(&batch, &group, id, false, MembershipChanged::CREATE);
    }
    batch.Put(group_keys::Group(group_id), group.SerializeAsString());
    Reply reply;
    *reply.mutable_create_group()->mutable_group() = group;
    CommitAndRespond(envelope, std::move(batch), reply);
  });
}

void GroupService::Invite(const Envelope& envelope) {
  if (ReplayIfDone(envelope)) return;
  const uint64_t inviter = envelope.auth_user_id();
  const InviteRequest& request = envelope.request().invite();
  absl::StatusOr<std::vector<uint64_t>> ids =
      CleanIds(request.user_ids(), inviter, options_.max_ids_per_request);
  if (ids.ok() && ids->empty()) ids = absl::InvalidArgumentError("nobody to invite");
  if (!ids.ok()) return RespondError(envelope, ids.status());
  const uint64_t group_id = request.group_id();
  // Checked before asking friend, and again after: membership may change.
  auto check = [this, group_id, inviter]() -> absl::StatusOr<Group> {
    absl::StatusOr<Group> group = ReadLiveGroup(group_id);
    if (group.ok() && !IsMemberOf(group_id, inviter)) {
      return absl::PermissionDeniedError(
          absl::StrCat("only members invite to group ", group_id));
    }
    return group;
  };
  absl::StatusOr<Group> group = check();
  if (!group.ok()) return RespondError(envelope, group.status());
  RequireFriends(envelope, inviter, *ids, [this, envelope, check, ids = *ids] {
    if (ReplayIfDone(envelope)) return;
    absl::StatusOr<Group> group = check();
    if (!group.ok()) return RespondError(envelope, group.status());
    std::vector<uint64_t> fresh;
    for (uint64_t id : ids) {
      if (!IsMemberOf(group->group_id(), id)) fresh.push_back(id);
    }
    if (group->member_count() + fresh.size() > group->max_members()) {
      return RespondError(envelope, absl::ResourceExhaustedError(absl::StrCat(
                                        "group ", group->group_id(), " is full (",
                                        group->max_members(), " members)")));
    }
    WriteBatch batch;
    // An invitation lifts a kick: the invitee may join again after leaving.
    for (uint64_t id : ids) batch.Delete(group_keys::Ban(group->group_id(), id));
    for (uint64_t id : fresh) AddMember(&batch, &*group, id, false, MembershipChanged::INVITE);
    CommitGroup(envelope, std::move(batch), *group);
  });
}

void GroupService::Join(const Envelope& envelope) {
  if (ReplayIfDone(envelope)) return;
  const uint64_t user = envelope.auth_user_id();
  absl::StatusOr<Group> group = ReadLiveGroup(envelope.request().join_group().group_id());
  if (!group.ok()) return RespondError(envelope, group.status());
  if (IsMemberOf(group->group_id(), user)) {
    return RespondError(envelope, absl::AlreadyExistsError(absl::StrCat(
                                      "already a member of group ", group->group_id())));
  }
  if (!BugPlanted(Bug::kJoinIgnoresPolicy)) {
    if (!group->open()) {
      return RespondError(envelope, absl::PermissionDeniedError(absl::StrCat(
                                        "group ", group->group_id(),
                                        " is closed: members join by invitation")));
    }
    if (IsBanned(group->group_id(), user)) {
      return RespondError(envelope, absl::PermissionDeniedError(absl::StrCat(
                                        "kicked from group ", group->group_id(),
                                        ": only an invitation lets you back")));
    }
  }
  if (group->member_count() >= group->max_members()) {
    return RespondError(envelope, absl::ResourceExhaustedError(absl::StrCat(
                                      "group ", group->group_id(), " is full (",
                                      group->max_members(), " members)")));
  }
  WriteBatch batch;
  AddMember(&batch, &*group, user, false, MembershipChanged::JOIN);
  CommitGroup(envelope, std::move(batch), *group);
}

void GroupService::Leave(const Envelope& envelope) {
  if (ReplayIfDone(envelope)) return;
  const uint64_t user = envelope.auth_user_id();
  absl::StatusOr<Group> group = ReadLiveGroup(envelope.request().leave_group().group_id());
  if (!group.ok()) return RespondError(envelope, group.status());
  if (!IsMemberOf(group->group_id(), user)) {
    return RespondError(envelope, absl::NotFoundError(absl::StrCat(
                                      "not a member of group ", group->group_id())));
  }
  if (group->owner_id() == user) {
    return RespondError(envelope, absl::FailedPreconditionError(
                                      "the owner cannot leave; dissolve the group instead"));
  }
  WriteBatch batch;
  RemoveMember(&batch, &*group, user, MembershipChanged::LEAVE);
  CommitGroup(envelope, std::move(batch), *group);
}

void GroupService::Kick(const Envelope& envelope) {
  if (ReplayIfDone(envelope)) return;
  const uint64_t caller = envelope.auth_user_id();
  const KickRequest& request = envelope.request().kick();
  absl::StatusOr<Group> group = ReadLiveGroup(request.group_id());
  if (!group.ok()) return RespondError(envelope, group.status());
  if (group->owner_id() != caller) {
    return RespondError(envelope, absl::PermissionDeniedError(absl::StrCat(
                                      "only the owner kicks from group ", group->group_id())));
  }
  if (request.user_id() == caller) {
    return RespondError(envelope, absl::InvalidArgumentError("the owner cannot kick itself"));
  }
  if (!IsMemberOf(group->group_id(), request.user_id())) {
    return RespondError(envelope, absl::NotFoundError(absl::StrCat(
                                      "user ", request.user_id(), " is not a member")));
  }
  WriteBatch batch;
  RemoveMember(&batch, &*group, request.user_id(), MembershipChanged::KICK);
  if (!BugPlanted(Bug::kKickWithoutBan)) {
    batch.Put(group_keys::Ban(group->group_id(), request.user_id()), "");
  }
  CommitGroup(envelope, std::move(batch), *group);
}

void GroupService::Dissolve(const Envelope& envelope) {
  if (ReplayIfDone(envelope)) return;
  const uint64_t caller = envelope.auth_user_id();
  absl::StatusOr<Group> group = ReadLiveGroup(envelope.request().dissolve().group_id());
  if (!group.ok()) return RespondError(envelope, group.status());
  if (group->owner_id() != caller) {
    return RespondError(envelope, absl::PermissionDeniedError(absl::StrCat(
                                      "only the owner dissolves group ", group->group_id())));
  }
  absl::StatusOr<std::vector<uint64_t>> members = Members(group->group_id());
  if (!members.ok()) return RespondError(envelope, members.status());
  WriteBatch batch;
  for (uint64_t member : *members) {
    RemoveMember(&batch, &*group, member, MembershipChanged::DISSOLVE);
  }
  group->set_dissolved(true);
  CommitGroup(envelope, std::move(batch), *group);
}

void GroupService::SetOpen(const Envelope& envelope) {
  if (ReplayIfDone(envelope)) return;
  const uint64_t caller = envelope.auth_user_id();
  const SetGroupOpenRequest& request = envelope.request().set_group_open();
  absl::StatusOr<Group> group = ReadLiveGroup(request.group_id());
  if (!group.ok()) return RespondError(envelope, group.status());
  if (group->owner_id() != caller) {
    return RespondError(envelope, absl::PermissionDeniedError(absl::StrCat(
                                      "only the owner opens or closes group ",
                                      group->group_id())));
  }
  // Not a membership change: the version stays, no event.
  group->set_open(request.open());
  CommitGroup(envelope, WriteBatch(), *group);
}

// Refusals in the order of kick and set_group_open: the group (exists, not
// dissolved), then the caller (the owner), then the arguments. So a
// non-owner learns nothing from its arguments; the name rule itself is
// create's (1 to max_name_bytes bytes, the same message).
void GroupService::Rename(const Envelope& envelope) {
  if (ReplayIfDone(envelope)) return;
  const uint64_t caller = envelope.auth_user_id();
  const RenameGroupRequest& request = envelope.request().rename_group();
  absl::StatusOr<Group> group = ReadLiveGroup(request.group_id());
  if (!group.ok()) return RespondError(envelope, group.status());
  if (group->owner_id() != caller) {
    return RespondError(envelope, absl::PermissionDeniedError(absl::StrCat(
                                      "only the owner renames group ", group->group_id())));
  }
  if (request.name().empty() || request.name().size() > options_.max_name_bytes) {
    return RespondError(envelope, absl::InvalidArgumentError(absl::StrCat(
                                      "group name must be 1 to ", options_.max_name_bytes,
                                      " bytes")));
  }
  // Not a membership change: the version stays, no event.
  group->set_name(request.name());
  CommitGroup(envelope, WriteBatch(), *group);
}

void GroupService::TransferOwnership(const Envelope& envelope) {
  if (ReplayIfDone(envelope)) return;
  const uint64_t caller = envelope.auth_user_id();
  const TransferOwnershipRequest& request = envelope.request().transfer_ownership();
  absl::StatusOr<Group> group = ReadLiveGroup(request.group_id());
  if (!group.ok()) return RespondError(envelope, group.status());
  if (group->owner_id() != caller) {
    return RespondError(envelope, absl::PermissionDeniedError(absl::StrCat(
                                      "only the owner transfers group ", group->group_id())));
  }
  const uint64_t heir = request.new_owner_id();
  if (heir == 0 || heir == caller) {
    return RespondError(envelope,
                        absl::InvalidArgumentError("new_owner_id must name another member"));
  }
  auto read_member = [this, &group](uint64_t user) -> std::optional<Member> {
    std::string value;
    Member member;
    if (!store().Get(group_keys::Member(group->group_id(), user), &value).ok() ||
        !member.ParseFromString(value)) {
      return std::nullopt;
    }
    return member;
  };
  std::optional<Member> next_owner = read_member(heir);
  if (!next_owner.has_value()) {
    return RespondError(envelope, absl::FailedPreconditionError(absl::StrCat(
                                      "user ", heir, " is not a member of group ",
                                      group->group_id())));
  }
  // The group record and both member entries in one batch; not a membership
  // change: the version stays, no event.
  WriteBatch batch;
  std::optional<Member> old_owner = read_member(caller);
  if (old_owner.has_value()) {
    old_owner->set_is_owner(false);
    batch.Put(group_keys::Member(group->group_id(), caller), old_owner->SerializeAsString());
  }
  next_owner->set_is_owner(true);
  batch.Put(group_keys::Member(group->group_id(), heir), next_owner->SerializeAsString());
  group->set_owner_id(heir);
  CommitGroup(envelope, std::move(batch), *group);
}

void GroupService::Info(const Envelope& envelope) {
  absl::StatusOr<Group> group = ReadGroup(envelope.request().group_info().group_id());
  if (!group.ok()) return RespondError(envelope, group.status());
  absl::Status allowed = RequireMemberCaller(envelope, group->group_id());
  if (!allowed.ok()) return RespondError(envelope, allowed);
  Reply reply;
  GroupInfoReply* out = reply.mutable_group_info();
  *out->mutable_group() = *group;
  std::vector<KeyValue> rows;
  absl::Status s =
      store().Scan(group_keys::MemberPrefix(group->group_id()), "", options_.max_members + 1, &rows);
  if (!s.ok()) {
    return RespondError(envelope,
                        absl::UnavailableError(absl::StrCat("store read failed: ", s.message())));
  }
  for (const KeyValue& row : rows) {
    if (!out->add_members()->ParseFromString(row.second)) {
      return RespondError(envelope, absl::DataLossError(absl::StrCat("corrupt member ", row.first)));
    }
  }
  Respond(envelope, std::move(reply));
}

void GroupService::MemberIds(const Envelope& envelope) {
  absl::StatusOr<Group> group = ReadGroup(envelope.request().member_ids().group_id());
  if (!group.ok()) return RespondError(envelope, group.status());
  absl::Status allowed = RequireMemberCaller(envelope, group->group_id());
  if (!allowed.ok()) return RespondError(envelope, allowed);
  absl::StatusOr<std::vector<uint64_t>> members = Members(group->group_id());
  if (!members.ok()) return RespondError(envelope, members.status());
  Reply reply;
  for (uint64_t id : *members) reply.mutable_member_ids()->add_member_ids(id);
  reply.mutable_member_ids()->set_version(group->version());
  Respond(envelope, std::move(reply));
}

void GroupService::UserGroups(const Envelope& envelope) {
  uint64_t user = envelope.request().user_groups().user_id();
  if (user == 0) user = envelope.auth_user_id();
  if (user == 0) return RespondError(envelope, absl::InvalidArgumentError("no user named"));
  if (envelope.auth_user_id() != 0 && user != envelope.auth_user_id()) {
    return RespondError(envelope,
                        absl::PermissionDeniedError("you may list only your own groups"));
  }
  std::vector<KeyValue> rows;
  absl::Status s = store().Scan(group_keys::UserGroupPrefix(user), "", 100000, &rows);
  if (!s.ok()) {
    return RespondError(envelope,
                        absl::UnavailableError(absl::StrCat("store read failed: ", s.message())));
  }
  Reply reply;
  for (const KeyValue& row : rows) reply.mutable_user_groups()->add_group_ids(LastIdOf(row.first));
  Respond(envelope, std::move(reply));
}

void GroupService::IsMember(const Envelope& envelope) {
  const IsMemberRequest& request = envelope.request().is_member();
  absl::StatusOr<Group> group = ReadGroup(request.group_id());
  if (!group.ok()) return RespondError(envelope, group.status());
  // A client may ask about itself, or about anyone as a member.
  if (request.user_id() != envelope.auth_user_id()) {
    absl::Status allowed = RequireMemberCaller(envelope, group->group_id());
    if (!allowed.ok()) return RespondError(envelope, allowed);
  }
  Reply reply;
  reply.mutable_is_member()->set_is_member(IsMemberOf(request.group_id(), request.user_id()));
  reply.mutable_is_member()->set_version(group->version());
  Respond(envelope, std::move(reply));
}

void GroupService::MembershipHistory(const Envelope& envelope) {
  uint64_t user = envelope.request().membership_history().user_id();
  if (user == 0) user = envelope.auth_user_id();
  if (user == 0) return RespondError(envelope, absl::InvalidArgumentError("no user named"));
  if (envelope.auth_user_id() != 0 && user != envelope.auth_user_id()) {
    return RespondError(envelope,
                        absl::PermissionDeniedError("you may read only your own history"));
  }
  std::vector<KeyValue> rows;
  absl::Status s = store().Scan(group_keys::HistoryPrefix(user), "", 1000000, &rows);
  if (!s.ok()) {
    return RespondError(envelope,
                        absl::UnavailableError(absl::StrCat("store read failed: ", s.message())));
  }
  Reply reply;
  MembershipHistoryReply* out = reply.mutable_membership_history();
  const size_t prefix = group_keys::HistoryPrefix(user).size();
  for (const KeyValue& row : rows) {
    uint64_t group_id = 0;
    absl::SimpleAtoi(absl::string_view(row.first).substr(prefix, 20), &group_id);
    const uint64_t version = LastIdOf(row.first);
    if (out->groups_size() == 0 || out->groups().rbegin()->group_id() != group_id) {
      out->add_groups()->set_group_id(group_id);
    }
    GroupMembership* g = out->mutable_groups(out->groups_size() - 1);
    if (row.second == "1") {
      g->add_intervals()->set_join_version(version);
    } else if (g->intervals_size() > 0) {
      g->mutable_intervals(g->intervals_size() - 1)->set_leave_version(version);
    }
  }
  // As of which version: a sync reading messages after this must not take
  // an open interval for membership past it (a leave may commit between).
  for (GroupMembership& g : *out->mutable_groups()) {
    absl::StatusOr<Group> group = ReadGroup(g.group_id());
    if (group.ok()) {
      g.set_as_of_version(group->version());
    } else if (!absl::IsNotFound(group.status()) && g.intervals_size() > 0) {
      // Unreadable now: as of the user's own last change, which the history
      // above did read (a sync then holds back what is newer, not less).
      const MembershipInterval& last = g.intervals(g.intervals_size() - 1);
      g.set_as_of_version(std::max(last.join_version(), last.leave_version()));
    }
  }
  Respond(envelope, std::move(reply));
}

// ---- events -----------------------------------------------------------------------------

void GroupService::OnProfileEvent(const UserProfileChanged& changed, int64_t time_us,
                                  uint64_t delivery_id) {
  const std::string aggregate = user_keys::Aggregate(changed.user_id());
  absl::StatusOr<bool> fresh = profiles_gate_.IsNew(aggregate, changed.version());
  if (!fresh.ok()) return;  // not acked: redelivered
  if (!*fresh) {
    ++stats_.profile_events_ignored;
    probes().Count(kRedeliveredEventIgnored);
    AckEvent(delivery_id);
    return;
  }
  WriteBatch batch;
  ProfileCopy copy;
  copy.set_nickname(changed.nickname());
  copy.set_avatar(changed.avatar());
  copy.set_version(changed.version());
  batch.Put(group_keys::Profile(changed.user_id()), copy.SerializeAsString());
  profiles_gate_.MarkApplied(&batch, aggregate, changed.version());
  std::vector<KeyValue> groups;
  // Not acked if a read fails: a member entry left with the old profile would
  // stay so, the gate refusing the event's redelivery once applied.
  if (!store().Scan(group_keys::UserGroupPrefix(changed.user_id()), "", 100000, &groups).ok()) {
    return;
  }
  uint64_t refreshed = 0;
  for (const KeyValue& row : groups) {
    const std::string key = group_keys::Member(LastIdOf(row.first), changed.user_id());
    std::string value;
    Member member;
    absl::Status s = store().Get(key, &value);
    if (!s.ok() && !absl::IsNotFound(s)) return;
    if (!s.ok() || !member.ParseFromString(value)) continue;
    member.set_nickname(changed.nickname());
    member.set_avatar(changed.avatar());
    member.set_profile_version(changed.version());
    batch.Put(key, member.SerializeAsString());
    ++refreshed;
  }
  if (!Commit(batch).ok()) return;  // not acked: redelivered
  ++stats_.profile_events_applied;
  stats_.member_entries_refreshed += refreshed;
  if (stats_.profile_apply_ms.size() < 4096 && time_us != 0) {
    stats_.profile_apply_ms.push_back((absl::ToUnixMicros(env().Now()) - time_us) / 1000.0);
    probes().Sample(kProfileApplyMs, stats_.profile_apply_ms.back());
  }
  AckEvent(delivery_id);
}

void GroupService::HandleEvent(const Event& event, uint64_t delivery_id) {
  if (event.body_case() == Event::kUserProfileChanged) {
    return OnProfileEvent(event.user_profile_changed(), event.time_us(), delivery_id);
  }
  AckEvent(delivery_id);
}

}  // namespace parley
