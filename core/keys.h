// Helpers for store keys: ids are zero-padded so that key order is id order.
// Each domain keeps its own key layout in one file (e.g. core/user/user_keys.h).
#ifndef PARLEY_CORE_KEYS_H_
#define PARLEY_CORE_KEYS_H_

#include <cstdint>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

namespace parley {

// 20 digits: the width of UINT64_MAX.
// Written by hand: it builds most store keys, and StrFormat costs several
// times as much for the same 20 bytes.
inline std::string PadId(uint64_t id) {
  std::string s(20, '0');
  for (size_t i = 20; id != 0; id /= 10) s[--i] = static_cast<char>('0' + id % 10);
  return s;
}

// Parses the last '/'-separated component of `key` as an id; 0 on failure.
inline uint64_t LastIdOf(absl::string_view key) {
  const size_t slash = key.rfind('/');
  uint64_t id = 0;
  if (!absl::SimpleAtoi(key.substr(slash == absl::string_view::npos ? 0 : slash + 1), &id)) {
    return 0;
  }
  return id;
}

}  // namespace parley

#endif  // PARLEY_CORE_KEYS_H_
