#include <algorithm>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "sim/simulation.h"

namespace parley {
namespace sim {
namespace {

TEST(ProbesTest, NamesComeFromTheRegistrySorted) {
  const std::vector<std::string>& names = ProbeNames();
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  EXPECT_TRUE(std::adjacent_find(names.begin(), names.end()) == names.end());
  for (const char* name : {"outbox_replay", "dedup_hit", "dispatch_replay", "gap_sync",
                           "client_duplicate_dropped", "client_reconnect", "send_retry",
                           "lease_expiry", "stale_set_refused", "stale_fill_refused",
                           "retry_on_other_instance", "rpc_timeout", "redelivered_event_ignored",
                           "push_skipped", "kv_evicted", "older_set_refused", "older_overwrite"}) {
    EXPECT_TRUE(std::count(names.begin(), names.end(), name) == 1) << name;
  }
  // Samples are for the report's distributions, not counters.
  EXPECT_EQ(std::count(names.begin(), names.end(), "sync_size"), 0);
}

}  // namespace
}  // namespace sim
}  // namespace parley
