// Session tokens: HMAC-SHA256 (libsodium) over the user id and expiry, so a
// gateway holding the key verifies a token without a call.
// Form: "<user_id>.<expires_us>.<mac, base64url>".
#ifndef PARLEY_CORE_USER_TOKEN_H_
#define PARLEY_CORE_USER_TOKEN_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace parley {

struct TokenClaims {
  uint64_t user_id = 0;
  absl::Time expires;
};

class TokenSigner {
 public:
  // `key` is the shared secret; REQUIRES: at least 32 bytes.
  explicit TokenSigner(std::string key);

  std::string Sign(uint64_t user_id, absl::Time expires) const;
  // The claims of a token this key signed that has not expired at `now`, or
  // UNAUTHENTICATED saying why not (malformed, bad signature, expired).
  absl::StatusOr<TokenClaims> Verify(absl::string_view token, absl::Time now) const;

 private:
  std::string Mac(absl::string_view payload) const;
  std::string key_;
};

// A fixed key for tests and simulations (never for a real deployment).
std::string TestTokenKey();

}  // namespace parley

#endif  // PARLEY_CORE_USER_TOKEN_H_
