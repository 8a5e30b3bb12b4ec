#include "core/probe.h"

#include <cstring>

#include "gtest/gtest.h"

namespace parley {
namespace {

const DeclaredProbe kTestProbeB("test_probe_b", "the second test probe");
const DeclaredProbe kTestProbeA("test_probe_a", "the first test probe");
const DeclaredProbe kTestProbeAAgain("test_probe_a", "the first test probe, at another site");
const DeclaredProbe kTestSamples("test_samples", "test samples", DeclaredProbe::Kind::kSamples);

TEST(ProbeTest, RegistryIsSortedAndOnePerName) {
  const std::vector<const DeclaredProbe*> all = DeclaredProbes();
  ASSERT_EQ(all.size(), 3u);
  EXPECT_STREQ(all[0]->name(), "test_probe_a");
  EXPECT_STREQ(all[0]->description(), "the first test probe");
  EXPECT_STREQ(all[1]->name(), "test_probe_b");
  EXPECT_STREQ(all[2]->name(), "test_samples");
  EXPECT_EQ(all[2]->kind(), DeclaredProbe::Kind::kSamples);
}

TEST(ProbeTest, CountersArePerInstanceAndSitesShareAName) {
  ProbeCounters one, two;
  one.Count(kTestProbeA);
  one.Count(kTestProbeAAgain, 2);
  two.Count(kTestProbeB);
  EXPECT_EQ(one.counts().at("test_probe_a"), 3u);
  EXPECT_EQ(one.counts().count("test_probe_b"), 0u);
  EXPECT_EQ(two.counts().at("test_probe_b"), 1u);
}

TEST(ProbeTest, SamplesAreCapped) {
  ProbeCounters p;
  for (size_t i = 0; i < ProbeCounters::kMaxSamples + 10; ++i) p.Sample(kTestSamples, i);
  EXPECT_EQ(p.samples().at("test_samples").size(), ProbeCounters::kMaxSamples);
  EXPECT_EQ(p.samples().at("test_samples")[5], 5.0);
}

}  // namespace
}  // namespace parley
