// Store layout of the kv node.
//   kv/<key>                      -> KvRecord
//   lock/<key>                    -> LockRecord
//   exp/<expires_us:20>/<key>     -> ""   (expiry index for the sweeper)
#ifndef PARLEY_CORE_KV_KV_KEYS_H_
#define PARLEY_CORE_KV_KV_KEYS_H_

#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "core/keys.h"

namespace parley {
namespace kv_keys {

inline std::string Entry(absl::string_view key) { return absl::StrCat("kv/", key); }
// The kv key an Entry() store key holds.
inline absl::string_view EntryKey(absl::string_view store_key) { return store_key.substr(3); }
inline std::string Lock(absl::string_view key) { return absl::StrCat("lock/", key); }
inline constexpr char kExpiryPrefix[] = "exp/";
inline std::string Expiry(int64_t expires_us, absl::string_view store_key) {
  return absl::StrCat(kExpiryPrefix, PadId(static_cast<uint64_t>(expires_us)), "/", store_key);
}
inline constexpr size_t kExpiryPrefixLength = sizeof(kExpiryPrefix) - 1;
// The expiry time an expiry-index key carries.
inline uint64_t ExpiryTime(absl::string_view expiry_key) {
  return LastIdOf(expiry_key.substr(0, kExpiryPrefixLength + 20));
}
// The store key an expiry-index key points at.
inline std::string ExpiryTarget(absl::string_view expiry_key) {
  return std::string(expiry_key.substr(kExpiryPrefixLength + 20 + 1));
}

}  // namespace kv_keys
}  // namespace parley

#endif  // PARLEY_CORE_KV_KV_KEYS_H_
