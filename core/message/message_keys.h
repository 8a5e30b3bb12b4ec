// Store layout of a message shard.
//   msg/<conv>/<seq:20>                  -> Message (the last key's seq is the max seq)
//   idem/<sender:20>/<client_msg_id>     -> SendReply (idempotent send)
//   dispatch/<conv>/<seq:20>             -> DispatchRecord (outbox of pushes; names its message)
//   uconv/<user:20>/<conv>               -> ""  (private conversations of a user)
//   cursor/<conv>/<user:20>/<device>     -> CursorRecord (per device)
//   read/<conv>/<user:20>                -> read seq of the user (max over devices)
#ifndef PARLEY_CORE_MESSAGE_MESSAGE_KEYS_H_
#define PARLEY_CORE_MESSAGE_MESSAGE_KEYS_H_

#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/strings/string_view.h"
#include "core/keys.h"

namespace parley {
namespace message_keys {

inline std::string MessagePrefix(absl::string_view conv) { return absl::StrCat("msg/", conv, "/"); }
inline std::string Message(absl::string_view conv, uint64_t seq) {
  return MessagePrefix(conv) + PadId(seq);
}
inline std::string Idempotency(uint64_t sender, absl::string_view client_msg_id) {
  return absl::StrCat("idem/", PadId(sender), "/", client_msg_id);
}
inline constexpr char kDispatchPrefix[] = "dispatch/";
inline std::string Dispatch(absl::string_view conv, uint64_t seq) {
  return absl::StrCat(kDispatchPrefix, conv, "/", PadId(seq));
}
inline std::string UserConversationPrefix(uint64_t user) {
  return absl::StrCat("uconv/", PadId(user), "/");
}
inline std::string UserConversation(uint64_t user, absl::string_view conv) {
  return UserConversationPrefix(user) + std::string(conv);
}
inline std::string Cursor(absl::string_view conv, uint64_t user, absl::string_view device) {
  return absl::StrCat("cursor/", conv, "/", PadId(user), "/", device);
}
inline constexpr char kReadPrefix[] = "read/";
inline std::string Read(absl::string_view conv, uint64_t user) {
  return absl::StrCat(kReadPrefix, conv, "/", PadId(user));
}
// The conversation and user a Read() key names; false if it is not one.
inline bool ParseRead(absl::string_view key, std::string* conv, uint64_t* user) {
  if (!absl::ConsumePrefix(&key, kReadPrefix)) return false;
  const size_t slash = key.rfind('/');
  if (slash == absl::string_view::npos) return false;
  *conv = std::string(key.substr(0, slash));
  *user = LastIdOf(key);
  return true;
}
inline constexpr char kAllMessagesPrefix[] = "msg/";
// kv: where a device of a user is connected.
inline constexpr char kAllPresencePrefix[] = "presence/";
inline std::string PresencePrefix(uint64_t user) { return absl::StrCat(kAllPresencePrefix, user, "/"); }
inline std::string Presence(uint64_t user, absl::string_view device) {
  return absl::StrCat(PresencePrefix(user), device);
}

}  // namespace message_keys
}  // namespace parley

#endif  // PARLEY_CORE_MESSAGE_MESSAGE_KEYS_H_
