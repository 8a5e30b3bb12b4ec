// Password hashing with a real KDF: libsodium's Argon2id. The cost is
// configurable so the simulator can keep registration cheap; the salt comes
// from the caller (the node's seeded rng), which keeps runs deterministic.
// Encoded form: "argon2id$<opslimit>$<memlimit>$<salt hex>$<hash hex>".
#ifndef PARLEY_CORE_USER_PASSWORD_H_
#define PARLEY_CORE_USER_PASSWORD_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace parley {

struct PasswordCost {
  uint64_t ops_limit;
  size_t mem_limit_bytes;

  // libsodium's minimum: for simulations and tests only.
  static PasswordCost Minimal();
  // libsodium's "interactive" limits: for real deployments.
  static PasswordCost Interactive();
};

// Size of the salt Hash requires.
size_t PasswordSaltBytes();

// REQUIRES: salt.size() == PasswordSaltBytes().
absl::StatusOr<std::string> HashPassword(absl::string_view password, absl::string_view salt,
                                         PasswordCost cost);
// True iff `password` matches `encoded` (constant-time comparison).
bool VerifyPassword(absl::string_view password, absl::string_view encoded);

}  // namespace parley

#endif  // PARLEY_CORE_USER_PASSWORD_H_
