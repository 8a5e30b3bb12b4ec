#include "core/user/token.h"

#include <sodium.h>

#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace parley {
namespace {

// Unpadded base64url.
std::string Encode64(absl::string_view bytes) { return absl::WebSafeBase64Escape(bytes); }

// Decodes `text` only if it is the canonical unpadded base64url of what it
// decodes to (no '=', no stray bits, no other alphabet).
bool DecodeCanonical64(absl::string_view text, std::string* out) {
  if (!absl::WebSafeBase64Unescape(text, out)) return false;
  return Encode64(*out) == text;
}

// A decimal number in canonical form: digits only, no leading zero (but "0").
bool ParseCanonical(absl::string_view text, uint64_t* out) {
  if (text.empty() || text.size() > 20) return false;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
  }
  if (text.size() > 1 && text[0] == '0') return false;
  return absl::SimpleAtoi(text, out) && absl::StrCat(*out) == text;
}

}  // namespace

absl::StatusOr<TokenSigner> TokenSigner::Create(std::string key) {
  if (key.size() < kMinKeyBytes) {
    return absl::InvalidArgumentError(absl::StrCat("the token key must be at least ", kMinKeyBytes,
                                                   " bytes, not ", key.size()));
  }
  if (sodium_init() < 0) return absl::InternalError("libsodium failed to initialize");
  return TokenSigner(std::move(key));
}

TokenSigner::TokenSigner(std::string key) : key_(std::move(key)) {}

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

std::string TokenSigner::Payload(const TokenClaims& claims) {
  return absl::StrCat(claims.user_id, ".", absl::ToUnixMicros(claims.expires), ".",
                      claims.generation, ".", claims.device_generation, ".",
                      Encode64(claims.device_id));
}

std::string TokenSigner::Sign(const TokenClaims& claims) const {
  const std::string payload = Payload(claims);
  return absl::StrCat(payload, ".", Encode64(Mac(payload)));
}

std::string TokenSigner::Sign(uint64_t user_id, absl::Time expires) const {
  TokenClaims claims;
  claims.user_id = user_id;
  claims.expires = expires;
  return Sign(claims);
}

absl::StatusOr<TokenClaims> TokenSigner::Verify(absl::string_view token, absl::Time now) const {
  const size_t last_dot = token.rfind('.');
  if (last_dot == absl::string_view::npos) return absl::UnauthenticatedError("malformed token");
  const absl::string_view payload = token.substr(0, last_dot);
  std::string mac;
  if (!DecodeCanonical64(token.substr(last_dot + 1), &mac)) {
    return absl::UnauthenticatedError("malformed token signature");
  }
  const std::string expected = Mac(payload);
  if (mac.size() != expected.size() ||
      sodium_memcmp(mac.data(), expected.data(), expected.size()) != 0) {
    return absl::UnauthenticatedError("token signature does not verify");
  }
  std::vector<absl::string_view> parts = absl::StrSplit(payload, '.');
  TokenClaims claims;
  uint64_t expires_us = 0;
  if (parts.size() != 5 || !ParseCanonical(parts[0], &claims.user_id) ||
      !ParseCanonical(parts[1], &expires_us) || !ParseCanonical(parts[2], &claims.generation) ||
      !ParseCanonical(parts[3], &claims.device_generation) ||
      !DecodeCanonical64(parts[4], &claims.device_id) || claims.user_id == 0 ||
      expires_us > static_cast<uint64_t>(INT64_MAX)) {
    return absl::UnauthenticatedError("malformed token claims");
  }
  claims.expires = absl::FromUnixMicros(static_cast<int64_t>(expires_us));
  if (Payload(claims) != payload) return absl::UnauthenticatedError("malformed token claims");
  if (now >= claims.expires) return absl::UnauthenticatedError("token expired");
  return claims;
}

std::string TestTokenKey() { return std::string("parley-test-token-key-not-secret!"); }

}  // namespace parley
