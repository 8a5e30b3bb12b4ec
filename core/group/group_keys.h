// Store layout of the group service.
//   group/<group:20>                -> Group
//   member/<group:20>/<user:20>     -> Member
//   ugroup/<user:20>/<group:20>     -> ""   (the groups of a user)
//   profile/<user:20>               -> ProfileCopy (fed by UserProfileChanged)
//   applied/group/user/<id>         -> version     (VersionGate)
//   mhist/<user:20>/<group:20>/<version:20> -> "1" joined, "0" left
//                                      (membership history, kept after leaving)
//   ban/<group:20>/<user:20>        -> ""   (kicked, not invited since: may not join)
//   meta/next_group_id              -> the next id to assign
#ifndef PARLEY_CORE_GROUP_GROUP_KEYS_H_
#define PARLEY_CORE_GROUP_GROUP_KEYS_H_

#include <cstdint>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "core/keys.h"

namespace parley {
namespace group_keys {

inline std::string Group(uint64_t group_id) { return absl::StrCat("group/", PadId(group_id)); }
inline constexpr char kAllMembersPrefix[] = "member/";
inline std::string MemberPrefix(uint64_t group_id) {
  return absl::StrCat(kAllMembersPrefix, PadId(group_id), "/");
}
// The group a Member() key names (0 if it is not one).
inline uint64_t MemberGroupOf(absl::string_view key) {
  uint64_t group = 0;
  if (!absl::ConsumePrefix(&key, kAllMembersPrefix) ||
      !absl::SimpleAtoi(key.substr(0, 20), &group)) {
    return 0;
  }
  return group;
}
inline std::string Member(uint64_t group_id, uint64_t user_id) {
  return MemberPrefix(group_id) + PadId(user_id);
}
inline std::string UserGroupPrefix(uint64_t user_id) {
  return absl::StrCat("ugroup/", PadId(user_id), "/");
}
inline std::string UserGroup(uint64_t user_id, uint64_t group_id) {
  return UserGroupPrefix(user_id) + PadId(group_id);
}
inline constexpr char kAllHistoryPrefix[] = "mhist/";
inline std::string HistoryPrefix(uint64_t user_id) {
  return absl::StrCat(kAllHistoryPrefix, PadId(user_id), "/");
}
inline std::string History(uint64_t user_id, uint64_t group_id, uint64_t version) {
  return absl::StrCat(HistoryPrefix(user_id), PadId(group_id), "/", PadId(version));
}
// The user, group and version a History() key names; false if it is not one.
inline bool ParseHistory(absl::string_view key, uint64_t* user, uint64_t* group,
                         uint64_t* version) {
  if (!absl::ConsumePrefix(&key, kAllHistoryPrefix) || key.size() < 20 + 1 + 20 + 1 ||
      !absl::SimpleAtoi(key.substr(0, 20), user) ||
      !absl::SimpleAtoi(key.substr(21, 20), group)) {
    return false;
  }
  *version = LastIdOf(key);
  return true;
}
inline std::string Ban(uint64_t group_id, uint64_t user_id) {
  return absl::StrCat("ban/", PadId(group_id), "/", PadId(user_id));
}
inline std::string Profile(uint64_t user_id) { return absl::StrCat("profile/", PadId(user_id)); }
inline constexpr char kNextGroupId[] = "meta/next_group_id";
inline std::string Aggregate(uint64_t group_id) { return absl::StrCat("group/", group_id); }

}  // namespace group_keys
}  // namespace parley

#endif  // PARLEY_CORE_GROUP_GROUP_KEYS_H_
