// Session tokens: HMAC-SHA256 (libsodium) over the claims, so a gateway
// holding the key verifies a token's signature without a call. Whether a
// token is still current (not revoked by a logout or a password change) is
// the user service's to say: see CheckTokensRequest and docs/design-notes.md.
// Form: "<user_id>.<expires_us>.<generation>.<device_generation>.<device>.<mac>",
// decimal numbers, <device> and <mac> unpadded base64url. Only that canonical
// form verifies: a token that decodes to the same claims and MAC but is
// spelled otherwise ('=' padding, leading zeros, '+5') is refused.
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
  // The user's token generation when the token was made (a password change
  // bumps it and so ends every older token of the user).
  uint64_t generation = 0;
  // The device the token was made for ("" if the login named none), and that
  // device's token generation (a logout bumps it).
  std::string device_id;
  uint64_t device_generation = 0;
};

class TokenSigner {
 public:
  static constexpr size_t kMinKeyBytes = 32;
  // A signer with `key` as the shared secret; INVALID_ARGUMENT if the key is
  // shorter than kMinKeyBytes (checked in every build mode).
  static absl::StatusOr<TokenSigner> Create(std::string key);

  std::string Sign(const TokenClaims& claims) const;
  std::string Sign(uint64_t user_id, absl::Time expires) const;
  // The claims of a token this key signed, in canonical form, that has not
  // expired at `now`; or UNAUTHENTICATED saying why not (malformed, bad
  // signature, expired).
  absl::StatusOr<TokenClaims> Verify(absl::string_view token, absl::Time now) const;

 private:
  explicit TokenSigner(std::string key);
  std::string Mac(absl::string_view payload) const;
  static std::string Payload(const TokenClaims& claims);
  std::string key_;
};

// A fixed key for unit tests and the simulator (never for a real deployment:
// parleyd never uses it).
std::string TestTokenKey();

}  // namespace parley

#endif  // PARLEY_CORE_USER_TOKEN_H_
