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
  TokenSigner signer = *TokenSigner::Create(TestTokenKey());
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
  TokenSigner signer = *TokenSigner::Create(TestTokenKey());
  TokenSigner other = *TokenSigner::Create(std::string(32, 'k'));
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

TEST(TokenTest, AKeyUnder32BytesIsAnErrorInEveryBuildMode) {
  for (const std::string& key : {std::string(), std::string("k"), std::string(31, 'k')}) {
    absl::StatusOr<TokenSigner> signer = TokenSigner::Create(key);
    ASSERT_FALSE(signer.ok()) << key.size();
    EXPECT_TRUE(absl::IsInvalidArgument(signer.status()));
    EXPECT_NE(signer.status().message().find("at least 32 bytes"), absl::string_view::npos);
  }
  EXPECT_TRUE(TokenSigner::Create(std::string(32, 'k')).ok());
}

TEST(TokenTest, ClaimsRoundTripAndOnlyTheCanonicalFormVerifies) {
  TokenSigner signer = *TokenSigner::Create(TestTokenKey());
  const absl::Time now = absl::FromUnixSeconds(1000);
  TokenClaims claims;
  claims.user_id = 42;
  claims.expires = now + absl::Hours(1);
  claims.generation = 3;
  claims.device_id = "phone.1/x";
  claims.device_generation = 7;
  const std::string token = signer.Sign(claims);
  absl::StatusOr<TokenClaims> back = signer.Verify(token, now);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->user_id, 42u);
  EXPECT_EQ(back->generation, 3u);
  EXPECT_EQ(back->device_id, "phone.1/x");
  EXPECT_EQ(back->device_generation, 7u);

  // Padding appended to the signature: same bytes, another spelling.
  for (const char* pad : {"=", "==", "%3D"}) {
    EXPECT_TRUE(absl::IsUnauthenticated(signer.Verify(token + pad, now).status())) << pad;
  }
  // The last character's unused low bits flipped: decodes to the same MAC.
  const size_t dot = token.rfind('.');
  const std::string sig = token.substr(dot + 1);
  ASSERT_EQ(sig.size(), 43u);  // 32 bytes, unpadded
  static const std::string kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  const size_t v = kAlphabet.find(sig.back());
  for (size_t low = 1; low < 4; ++low) {
    std::string bent = token;
    bent.back() = kAlphabet[(v & ~size_t{3}) | ((v & 3) ^ low)];
    EXPECT_TRUE(absl::IsUnauthenticated(signer.Verify(bent, now).status())) << bent;
  }
  // Standard base64 instead of base64url, whitespace.
  EXPECT_TRUE(absl::IsUnauthenticated(signer.Verify(token + " ", now).status()));
  EXPECT_TRUE(absl::IsUnauthenticated(signer.Verify(" " + token, now).status()));
}

TEST(TokenTest, ATokenOfTheOldBuiltInFormOrAnotherKeyDoesNotVerify) {
  TokenSigner signer = *TokenSigner::Create(std::string(32, 'r'));
  TokenSigner test_key = *TokenSigner::Create(TestTokenKey());
  const absl::Time now = absl::FromUnixSeconds(1000);
  EXPECT_TRUE(absl::IsUnauthenticated(
      signer.Verify(test_key.Sign(1, now + absl::Hours(1)), now).status()));
}

}  // namespace
}  // namespace parley
