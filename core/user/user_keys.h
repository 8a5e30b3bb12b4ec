// Store layout of the user service.
//   user/<user_id:20>      -> UserRecord
//   name/<name>            -> user id (decimal)
//   meta/next_user_id      -> the next id to assign (decimal)
//   tokdev/<user_id:20>/<device> -> the device's token generation (decimal;
//                             absent: 0); a logout bumps it. <device> is ""
//                             for the tokens of logins that named no device.
//   dev/<user_id:20>/<device>  -> the device's last login (unix micros,
//                             decimal): every device a login named, at most
//                             UserOptions.max_devices_per_user per user.
#ifndef PARLEY_CORE_USER_USER_KEYS_H_
#define PARLEY_CORE_USER_USER_KEYS_H_

#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "core/keys.h"

namespace parley {
namespace user_keys {

inline constexpr char kAllUsersPrefix[] = "user/";
inline std::string User(uint64_t user_id) { return absl::StrCat(kAllUsersPrefix, PadId(user_id)); }
inline std::string Name(absl::string_view name) { return absl::StrCat("name/", name); }
inline std::string TokenDevice(uint64_t user_id, absl::string_view device_id) {
  return absl::StrCat("tokdev/", PadId(user_id), "/", device_id);
}
inline std::string DevicePrefix(uint64_t user_id) {
  return absl::StrCat("dev/", PadId(user_id), "/");
}
inline std::string Device(uint64_t user_id, absl::string_view device_id) {
  return absl::StrCat(DevicePrefix(user_id), device_id);
}
inline constexpr char kNextUserId[] = "meta/next_user_id";
// The aggregate id of a user's profile in events.
inline std::string Aggregate(uint64_t user_id) { return absl::StrCat("user/", user_id); }

}  // namespace user_keys
}  // namespace parley

#endif  // PARLEY_CORE_USER_USER_KEYS_H_
