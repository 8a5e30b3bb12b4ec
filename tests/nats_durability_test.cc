// Durable events: the embedded nats-server is asked
// to fsync before it acknowledges (jetstream sync_interval: always). A
// server that cannot (Debian 12's 2.9.10 refuses the setting) is still
// started, and parleyd says plainly at start that acked events are not
// synced, instead of pretending.
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "server/nats_server_process.h"
#include "server/parleyd.h"

namespace parley {
namespace {

// (major, minor) of "nats-server: v2.9.10".
std::pair<int, int> MajorMinor(const std::string& version) {
  const size_t v = version.find('v');
  if (v == std::string::npos) return {0, 0};
  std::vector<std::string> parts = absl::StrSplit(version.substr(v + 1), '.');
  int major = 0, minor = 0;
  if (parts.size() < 2 || !absl::SimpleAtoi(parts[0], &major) ||
      !absl::SimpleAtoi(parts[1], &minor)) {
    return {0, 0};
  }
  return {major, minor};
}

TEST(NatsDurabilityTest, SyncAlwaysIsUsedWhereTheServerHasIt) {
  const std::string version = NatsServerProcess::Version();
  ASSERT_TRUE(absl::StrContains(version, "nats-server")) << version;
  const auto [major, minor] = MajorMinor(version);
  const bool supported = major > 2 || (major == 2 && minor >= 10);
  auto nats = NatsServerProcess::Start(std::string(std::getenv("TEST_TMPDIR")) + "/nats");
  ASSERT_TRUE(nats.ok()) << nats.status();
  EXPECT_EQ((*nats)->syncs_always(), supported) << version;
  auto plain = NatsServerProcess::Start(std::string(std::getenv("TEST_TMPDIR")) + "/plain",
                                        absl::Seconds(10), "/usr/sbin/nats-server", -1, {},
                                        /*sync_always=*/false);
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_FALSE((*plain)->syncs_always());
}

TEST(NatsDurabilityTest, ParleydWarnsWhenItsNatsServerCannotSyncBeforeTheAck) {
  std::vector<std::string> lines;
  ParleydOptions o;
  o.data_dir = std::string(std::getenv("TEST_TMPDIR")) + "/parleyd";
  o.listen = "127.0.0.1:0";
  o.minimal_password_cost = true;
  auto d = Parleyd::Start(o, [&](const std::string& line) { lines.push_back(line); });
  ASSERT_TRUE(d.ok()) << d.status();
  d->reset();
  bool warned = false;
  for (const std::string& line : lines) {
    warned = warned || absl::StrContains(line, "cannot fsync before acknowledging");
  }
  const auto [major, minor] = MajorMinor(NatsServerProcess::Version());
  const bool supported = major > 2 || (major == 2 && minor >= 10);
  EXPECT_EQ(warned, !supported);
}

}  // namespace
}  // namespace parley
