// GroupService: groups and their members. Create and invite take only the
// inviter's friends (an authoritative call to friend); join (open groups
// only, and not after a kick until invited again), leave, kick and dissolve
// (owner only), open/close, rename and ownership transfer (owner only; not
// membership changes: no version bump); info, member ids, a user's groups,
// is-member, membership history. Client callers (auth_user_id != 0) see a
// group's members only as members, and only their own groups; internal
// callers (auth_user_id == 0) see everything. Every membership change bumps
// the group's version and emits MembershipChanged in the same batch (opening
// or closing is not a membership change: no bump, no event). Member entries
// carry nickname/avatar, refreshed from UserProfileChanged. A group holds at
// most `max_members` (default 3000).
#ifndef PARLEY_CORE_GROUP_GROUP_SERVICE_H_
#define PARLEY_CORE_GROUP_GROUP_SERVICE_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/proto/records.pb.h"
#include "core/service_node.h"
#include "core/version_gate.h"

namespace parley {

struct GroupOptions {
  std::string instance_id = "1";
  uint32_t max_members = 3000;
  size_t max_name_bytes = 64;
  size_t max_ids_per_request = 500;
  CallOptions calls = {absl::Milliseconds(500), 3};
};

struct GroupStats {
  uint64_t profile_events_applied = 0;
  uint64_t profile_events_ignored = 0;
  uint64_t member_entries_refreshed = 0;
  // Milliseconds from a profile change to its effect here (first 4096).
  std::vector<double> profile_apply_ms;
};

class GroupService : public ServiceNode {
 public:
  GroupService(Env* env, GroupOptions options = GroupOptions());
  const GroupStats& stats() const { return stats_; }

 protected:
  absl::Status OnStart() override;
  void HandleRequest(const Envelope& request) override;
  void HandleEvent(const Event& event, uint64_t delivery_id) override;

 private:
  void Create(const Envelope& envelope);
  void Invite(const Envelope& envelope);
  void Join(const Envelope& envelope);
  void Leave(const Envelope& envelope);
  void Kick(const Envelope& envelope);
  void Dissolve(const Envelope& envelope);
  void SetOpen(const Envelope& envelope);
  void Rename(const Envelope& envelope);
  void TransferOwnership(const Envelope& envelope);
  void Info(const Envelope& envelope);
  void MemberIds(const Envelope& envelope);
  void UserGroups(const Envelope& envelope);
  void IsMember(const Envelope& envelope);
  void MembershipHistory(const Envelope& envelope);
  void OnProfileEvent(const UserProfileChanged& changed, int64_t time_us, uint64_t delivery_id);

  // Calls `next` if every id is a friend of `owner` and none is blocked either
  // way; otherwise answers the client with PERMISSION_DENIED.
  void RequireFriends(const Envelope& envelope, uint64_t owner, std::vector<uint64_t> ids,
                      std::function<void()> next);

  absl::StatusOr<Group> ReadGroup(uint64_t group_id);
  // The group, if it exists and is not dissolved.
  absl::StatusOr<Group> ReadLiveGroup(uint64_t group_id);
  // IsMemberOf and IsBanned answer false to a failed read too; the read
  // taints the callback (see ServiceNode::store()), so that answer never
  // leaves the node.
  bool IsMemberOf(uint64_t group_id, uint64_t user_id);
  // Kicked from the group and not invited back since.
  bool IsBanned(uint64_t group_id, uint64_t user_id);
  // For a client caller of a read (info, member ids): OK if a current member.
  absl::Status RequireMemberCaller(const Envelope& envelope, uint64_t group_id);
  absl::StatusOr<std::vector<uint64_t>> Members(uint64_t group_id);
  // Adds (or removes) `user_id` in `batch`, bumping `group`'s version and
  // staging MembershipChanged.
  void AddMember(WriteBatch* batch, Group* group, uint64_t user_id, bool is_owner,
                 MembershipChanged::Reason reason);
  void RemoveMember(WriteBatch* batch, Group* group, uint64_t user_id,
                    MembershipChanged::Reason reason);
  void StageMembershipEvent(WriteBatch* batch, const Group& group, uint64_t user_id, bool joined,
                            MembershipChanged::Reason reason);
  void CommitGroup(const Envelope& envelope, WriteBatch batch, const Group& group);

  GroupOptions options_;
  VersionGate profiles_gate_;
  GroupStats stats_;
};

}  // namespace parley

#endif  // PARLEY_CORE_GROUP_GROUP_SERVICE_H_
