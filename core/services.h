// Names of the services of the core, as registered with the registry.
#ifndef PARLEY_CORE_SERVICES_H_
#define PARLEY_CORE_SERVICES_H_

namespace parley {

inline constexpr char kUserService[] = "user";
inline constexpr char kFriendService[] = "friend";
inline constexpr char kGroupService[] = "group";

}  // namespace parley

#endif  // PARLEY_CORE_SERVICES_H_
