#include "core/rng.h"

#include <set>

#include "gtest/gtest.h"

namespace parley {
namespace {

TEST(SeededRngTest, SameSeedSameStream) {
  SeededRng a(42), b(42);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(a.Next(), b.Next());
}

TEST(SeededRngTest, DifferentSeedsDiffer) {
  SeededRng a(1), b(2);
  int same = 0;
  for (int i = 0; i < 100; ++i) same += a.Next() == b.Next();
  EXPECT_EQ(same, 0);
}

TEST(SeededRngTest, UniformStaysInRangeAndCoversIt) {
  SeededRng rng(7);
  std::set<uint64_t> seen;
  for (int i = 0; i < 1000; ++i) {
    const uint64_t x = rng.Uniform(10);
    ASSERT_LT(x, 10u);
    seen.insert(x);
  }
  EXPECT_EQ(seen.size(), 10u);
}

TEST(SeededRngTest, DeriveIsStableAndSeparatesLabels) {
  EXPECT_EQ(SeededRng::Derive(5, "network"), SeededRng::Derive(5, "network"));
  EXPECT_NE(SeededRng::Derive(5, "network"), SeededRng::Derive(5, "nemesis"));
  EXPECT_NE(SeededRng::Derive(5, "network"), SeededRng::Derive(6, "network"));
}

}  // namespace
}  // namespace parley
