// Store layout of the friend service, and its keys in the kv cache.
//   friend/<owner:20>/<friend:20>  -> FriendRecord
//   block/<owner:20>/<target:20>   -> ""          (owner blocked target)
//   rev/<friend:20>/<owner:20>     -> ""          (owner lists friend)
//   listver/<owner:20>             -> version of owner's rendered list
//   profile/<user:20>              -> ProfileCopy (fed by UserProfileChanged)
//   applied/friend/user/<id>       -> version     (VersionGate)
// kv: "friends/<owner>" -> FriendList at its version; lock "friends/<owner>".
#ifndef PARLEY_CORE_FRIEND_FRIEND_KEYS_H_
#define PARLEY_CORE_FRIEND_FRIEND_KEYS_H_

#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/keys.h"

namespace parley {
namespace friend_keys {

inline std::string FriendPrefix(uint64_t owner) { return absl::StrCat("friend/", PadId(owner), "/"); }
inline std::string Friend(uint64_t owner, uint64_t friend_id) {
  return FriendPrefix(owner) + PadId(friend_id);
}
inline std::string BlockPrefix(uint64_t owner) { return absl::StrCat("block/", PadId(owner), "/"); }
inline std::string Block(uint64_t owner, uint64_t target) { return BlockPrefix(owner) + PadId(target); }
inline std::string ReversePrefix(uint64_t friend_id) {
  return absl::StrCat("rev/", PadId(friend_id), "/");
}
inline std::string Reverse(uint64_t friend_id, uint64_t owner) {
  return ReversePrefix(friend_id) + PadId(owner);
}
inline std::string ListVersion(uint64_t owner) { return absl::StrCat("listver/", PadId(owner)); }
inline std::string Profile(uint64_t user_id) { return absl::StrCat("profile/", PadId(user_id)); }

inline constexpr char kCachePrefix[] = "friends/";
inline std::string CacheKey(uint64_t owner) { return absl::StrCat(kCachePrefix, owner); }
inline std::string LockKey(uint64_t owner) { return absl::StrCat("friends/", owner); }
inline std::string Aggregate(uint64_t owner) { return absl::StrCat("friends/", owner); }

}  // namespace friend_keys
}  // namespace parley

#endif  // PARLEY_CORE_FRIEND_FRIEND_KEYS_H_
