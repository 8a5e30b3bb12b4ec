#include "core/user/password.h"

#include <sodium.h>

#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace parley {
namespace {

constexpr size_t kHashBytes = 32;

bool SodiumReady() {
  static const bool ready = sodium_init() >= 0;
  return ready;
}

absl::StatusOr<std::string> Derive(absl::string_view password, absl::string_view salt,
                                   PasswordCost cost) {
  if (!SodiumReady()) return absl::InternalError("libsodium failed to initialize");
  if (salt.size() != crypto_pwhash_SALTBYTES) {
    return absl::InvalidArgumentError("password salt has the wrong size");
  }
  std::string out(kHashBytes, '\0');
  if (crypto_pwhash(reinterpret_cast<unsigned char*>(&out[0]), out.size(), password.data(),
                    password.size(), reinterpret_cast<const unsigned char*>(salt.data()),
                    cost.ops_limit, cost.mem_limit_bytes, crypto_pwhash_ALG_ARGON2ID13) != 0) {
    return absl::ResourceExhaustedError("password hashing ran out of memory");
  }
  return out;
}

}  // namespace

PasswordCost PasswordCost::Minimal() {
  return {crypto_pwhash_argon2id_OPSLIMIT_MIN, crypto_pwhash_argon2id_MEMLIMIT_MIN};
}

PasswordCost PasswordCost::Interactive() {
  return {crypto_pwhash_argon2id_OPSLIMIT_INTERACTIVE,
          crypto_pwhash_argon2id_MEMLIMIT_INTERACTIVE};
}

size_t PasswordSaltBytes() { return crypto_pwhash_SALTBYTES; }

absl::StatusOr<std::string> HashPassword(absl::string_view password, absl::string_view salt,
                                         PasswordCost cost) {
  absl::StatusOr<std::string> hash = Derive(password, salt, cost);
  if (!hash.ok()) return hash.status();
  return absl::StrCat("argon2id$", cost.ops_limit, "$", cost.mem_limit_bytes, "$",
                      absl::BytesToHexString(salt), "$", absl::BytesToHexString(*hash));
}

bool VerifyPassword(absl::string_view password, absl::string_view encoded) {
  std::vector<absl::string_view> parts = absl::StrSplit(encoded, '$');
  if (parts.size() != 5 || parts[0] != "argon2id") return false;
  PasswordCost cost;
  if (!absl::SimpleAtoi(parts[1], &cost.ops_limit) ||
      !absl::SimpleAtoi(parts[2], &cost.mem_limit_bytes)) {
    return false;
  }
  const std::string salt = absl::HexStringToBytes(parts[3]);
  const std::string expected = absl::HexStringToBytes(parts[4]);
  if (expected.size() != kHashBytes) return false;
  absl::StatusOr<std::string> actual = Derive(password, salt, cost);
  if (!actual.ok()) return false;
  return sodium_memcmp(actual->data(), expected.data(), kHashBytes) == 0;
}

}  // namespace parley
