#include <string>

#include "core/user/password.h"
#include "core/user/token.h"
#include "gtest/gtest.h"

namespace parley {
namespace {

std::string Salt(char c) { return std::string(PasswordSaltBytes(), c); }

TEST(PasswordTest, VerifiesTheRightPasswordOnly) {
  absl::StatusOr<std::string> hash = HashPassword("correct horse", Salt('s'), PasswordCost::Minimal());
  ASSERT_TRUE(hash.ok()) << hash.status();
  EXPECT_EQ(hash->find("correct horse"), std::string::npos);  // never stored in clear
  EXPECT_TRUE(VerifyPassword("correct horse", *hash));
  EXPECT_FALSE(VerifyPassword("correct horse!", *hash));
  EXPECT_FALSE(VerifyPassword("", *hash));
}

TEST(PasswordTest, SaltChangesTheHash) {
  auto a = HashPassword("pw-pw-pw-pw", Salt('a'), PasswordCost::Minimal());
  auto b = HashPassword("pw-pw-pw-pw", Salt('b'), PasswordCost::Minimal());
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);
  // Deterministic for a given salt: the simulator replays registrations.
  EXPECT_EQ(*a, *HashPassword("pw-pw-pw-pw", Salt('a'), PasswordCost::Minimal()));
}

TEST(PasswordTest, RejectsMalformedEncodings) {
  EXPECT_FALSE(VerifyPassword("x", ""));
  EXPECT_FALSE(VerifyPassword("x", "argon2id$1$8192$zz$zz"));
  EXPECT_FALSE(VerifyPassword("x", "md5$1$2$3$4"));
  EXPECT_FALSE(HashPassword("x", "short", PasswordCost::Minimal()).ok());
}

TEST(TokenTest, SignedTokenVerifiesUntilItExpires) {
  TokenSigner signer(TestTokenKey());
  const absl::Time now = absl::FromUnixSeconds(1000);
  const std::string token = signer.Sign(42, now + absl::Hours(1));
  absl::StatusOr<TokenClaims> claims = signer.Verify(token, now);
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ(claims->user_id, 42u);

  absl::StatusOr<TokenClaims> late = signer.Verify(token, now + absl::Hours(2));
  EXPECT_TRUE(absl::IsUnauthenticated(late.status()));
  EXPECT_NE(late.status().message().find("expired"), absl::string_view::npos);
}

TEST(TokenTest, ForgedTokensAreRejected) {
  TokenSigner signer(TestTokenKey());
  TokenSigner other(std::string(32, 'k'));
  const absl::Time now = absl::FromUnixSeconds(1000);
  const std::string token = signer.Sign(42, now + absl::Hours(1));

  // Signed with another key.
  EXPECT_TRUE(absl::IsUnauthenticated(
      signer.Verify(other.Sign(42, now + absl::Hours(1)), now).status()));
  // Claims changed after signing: another user id, a later expiry.
  std::string forged_user = token;
  forged_user.replace(0, 2, "43");
  EXPECT_TRUE(absl::IsUnauthenticated(signer.Verify(forged_user, now).status()));
  std::string forged_expiry = token;
  forged_expiry[3] = forged_expiry[3] == '9' ? '8' : '9';
  EXPECT_TRUE(absl::IsUnauthenticated(signer.Verify(forged_expiry, now).status()));
  // Garbage.
  for (const char* bad : {"", "x", "1.2", "1.2.!!", "0.99999999999.abc"}) {
    EXPECT_TRUE(absl::IsUnauthenticated(signer.Verify(bad, now).status())) << bad;
  }
}

}  // namespace
}  // namespace parley
