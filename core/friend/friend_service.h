// FriendService: friend lists (add in both directions, remove, remark,
// block/unblock, list) and the internal relation check used by group and
// message. Lists are read cache-aside through the kv node: one loader fills a
// missing entry under a kv lock, every entry carries the list version it was
// built from, and a fill older than the entry is refused, so a stale fill
// never overwrites a newer one. Every change emits FriendChanged; the service
// consumes its own events to refresh the cache, and UserProfileChanged to
// refresh the nickname/avatar its lists show.
#ifndef PARLEY_CORE_FRIEND_FRIEND_SERVICE_H_
#define PARLEY_CORE_FRIEND_FRIEND_SERVICE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/kv/kv_client.h"
#include "core/proto/records.pb.h"
#include "core/service_node.h"
#include "core/version_gate.h"

namespace parley {

struct FriendOptions {
  std::string instance_id = "1";
  absl::Duration cache_ttl = absl::Minutes(10);
  absl::Duration lock_lease = absl::Seconds(2);
  absl::Duration lock_retry_after = absl::Milliseconds(20);
  int lock_retries = 5;
  // Models a slow database read: the time between rendering a list for a
  // cache fill and writing it to kv (0 in production code paths).
  absl::Duration fill_delay = absl::ZeroDuration();
  size_t max_remark_bytes = 64;
  size_t max_friends = 5000;
  size_t max_check_ids = 3000;
  CallOptions calls = {absl::Milliseconds(500), 3};
};

struct FriendStats {
  uint64_t cache_hits = 0;
  uint64_t cache_misses = 0;
  uint64_t fills_applied = 0;
  uint64_t stale_fills_refused = 0;
  uint64_t lock_waits = 0;
  uint64_t store_fallbacks = 0;
  uint64_t cache_refreshes = 0;
  uint64_t profile_events_applied = 0;
  uint64_t profile_events_ignored = 0;  // duplicates and older versions
};

class FriendService : public ServiceNode {
 public:
  FriendService(Env* env, FriendOptions options = FriendOptions());
  const FriendStats& stats() const { return stats_; }

  // The list of `owner` as the store has it now; an empty one if the store
  // cannot be read (for inspection by tests and the simulator's final state;
  // requests use TryRender).
  FriendList Render(uint64_t owner);
  // The list of `owner` as the store has it now, or the read's error: a list
  // that could not be read is never rendered as an empty one.
  absl::StatusOr<FriendList> TryRender(uint64_t owner);

 protected:
  absl::Status OnStart() override;
  void HandleRequest(const Envelope& request) override;
  void HandleEvent(const Event& event, uint64_t delivery_id) override;

 private:
  // List versions changed within one batch.
  using Bumps = std::map<uint64_t, uint64_t>;

  void Add(const Envelope& envelope);
  void Remove(const Envelope& envelope);
  void SetRemark(const Envelope& envelope);
  void Block(const Envelope& envelope);
  void List(const Envelope& envelope);
  void CheckFriends(const Envelope& envelope);

  void FillCache(const Envelope& envelope, uint64_t owner, int attempt);
  void RespondList(const Envelope& envelope, const absl::StatusOr<FriendList>& list,
                   bool from_cache);
  void RefreshCache(uint64_t owner, uint64_t delivery_id);
  KvWrite CacheWrite(const FriendList& list) const;
  void OnProfileEvent(const UserProfileChanged& changed, uint64_t delivery_id);

  // Looks the users up at the user service, then calls `next` with the
  // profiles (or an error already sent to the client).
  void WithProfiles(const Envelope& envelope, std::vector<uint64_t> ids,
                    std::function<void(const GetUsersReply&)> next);

  bool IsFriend(uint64_t owner, uint64_t other);
  bool Blocks(uint64_t owner, uint64_t target);
  uint64_t ListVersion(uint64_t owner, const Bumps& bumps);
  // Bumps owner's list version in `batch` and stages FriendChanged for it.
  uint64_t Bump(WriteBatch* batch, Bumps* bumps, uint64_t owner, uint64_t friend_id,
                FriendChanged::Kind kind);
  // Records a newer profile of `profile.user_id()` and bumps every list that
  // shows it. No-op if the stored version is not older.
  void ApplyProfile(WriteBatch* batch, Bumps* bumps, const Profile& profile);

  FriendOptions options_;
  KvClient kv_;
  VersionGate profiles_gate_;
  FriendStats stats_;
};

}  // namespace parley

#endif  // PARLEY_CORE_FRIEND_FRIEND_SERVICE_H_
