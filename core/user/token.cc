#include "core/user/token.h"

#include <sodium.h>

#include <cassert>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace parley {

TokenSigner::TokenSigner(std::string key) : key_(std::move(key)) {
  assert(key_.size() >= crypto_auth_hmacsha256_KEYBYTES);
  static const bool ready = sodium_init() >= 0;
  (void)ready;
}

std::string TokenSigner::Mac(absl::string_view payload) const {
  unsigned char mac[crypto_auth_hmacsha256_BYTES];
  crypto_auth_hmacsha256_state state;
  crypto_auth_hmacsha256_init(&state, reinterpret_cast<const unsigned char*>(key_.data()),
                              key_.size());
  crypto_auth_hmacsha256_update(&state, reinterpret_cast<const unsigned char*>(payload.data()),
                                payload.size());
  crypto_auth_hmacsha256_final(&state, mac);
  return std::string(reinterpret_cast<const char*>(mac), sizeof(mac));
}

std::string TokenSigner::Sign(uint64_t user_id, absl::Time expires) const {
  const std::string payload = absl::StrCat(user_id, ".", absl::ToUnixMicros(expires));
  return absl::StrCat(payload, ".", absl::WebSafeBase64Escape(Mac(payload)));
}

absl::StatusOr<TokenClaims> TokenSigner::Verify(absl::string_view token, absl::Time now) const {
  const size_t last_dot = token.rfind('.');
  if (last_dot == absl::string_view::npos) return absl::UnauthenticatedError("malformed token");
  const absl::string_view payload = token.substr(0, last_dot);
  std::string mac;
  if (!absl::WebSafeBase64Unescape(token.substr(last_dot + 1), &mac)) {
    return absl::UnauthenticatedError("malformed token signature");
  }
  const std::string expected = Mac(payload);
  if (mac.size() != expected.size() ||
      sodium_memcmp(mac.data(), expected.data(), expected.size()) != 0) {
    return absl::UnauthenticatedError("token signature does not verify");
  }
  std::vector<absl::string_view> parts = absl::StrSplit(payload, '.');
  TokenClaims claims;
  int64_t expires_us = 0;
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &claims.user_id) ||
      !absl::SimpleAtoi(parts[1], &expires_us) || claims.user_id == 0) {
    return absl::UnauthenticatedError("malformed token claims");
  }
  claims.expires = absl::FromUnixMicros(expires_us);
  if (now >= claims.expires) return absl::UnauthenticatedError("token expired");
  return claims;
}

std::string TestTokenKey() { return std::string("parley-test-token-key-not-secret!"); }

}  // namespace parley
