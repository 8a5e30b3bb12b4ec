#include "sim/ratio.h"

#include "gtest/gtest.h"

namespace parley {
namespace sim {
namespace {

TEST(RatioTest, Conversions) {
  EXPECT_EQ(Ppm(0.05), 50000u);
  EXPECT_EQ(Ppm(2), kMillion);
  EXPECT_EQ(Ppm(-1), 0u);
  EXPECT_EQ(Ppm(0.0 / 0.0), 0u);
  EXPECT_EQ(MicroHz(0.05), 50000u);
  EXPECT_EQ(Micros(1.5), 1500000);
  EXPECT_EQ(Micros(0.1234567), 123457);
  EXPECT_EQ(MeanIntervalMicros(1000000), 1000000);
  EXPECT_EQ(MeanIntervalMicros(0), 1000000000000);
}

TEST(RatioTest, ChanceIsAboutItsShare) {
  SeededRng rng(7);
  int yes = 0;
  for (int i = 0; i < 100000; ++i) yes += Chance(rng, 300000);
  EXPECT_NEAR(yes, 30000, 600);
}

TEST(RatioTest, ExponentialHasItsMean) {
  SeededRng rng(11);
  const int n = 100000;
  int64_t sum = 0, below_mean = 0;
  for (int i = 0; i < n; ++i) {
    const int64_t x = ExponentialMicros(rng, 1000000);
    ASSERT_GE(x, 0);
    sum += x;
    below_mean += x < 1000000;
  }
  EXPECT_NEAR(static_cast<double>(sum) / n, 1000000, 15000);
  // P(X < mean) = 1 - 1/e.
  EXPECT_NEAR(static_cast<double>(below_mean) / n, 0.6321, 0.01);
}

}  // namespace
}  // namespace sim
}  // namespace parley
