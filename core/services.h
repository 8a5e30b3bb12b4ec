// Names of the services of the core, as registered with the registry.
#ifndef PARLEY_CORE_SERVICES_H_
#define PARLEY_CORE_SERVICES_H_

#include <string>

namespace parley {

inline constexpr char kUserService[] = "user";
inline constexpr char kFriendService[] = "friend";
inline constexpr char kGroupService[] = "group";
inline constexpr char kGatewayService[] = "gateway";

// Gateways are addressed "gw.<gateway-id>".
inline std::string GatewayAddress(const std::string& gateway_id) { return "gw." + gateway_id; }

}  // namespace parley

#endif  // PARLEY_CORE_SERVICES_H_
