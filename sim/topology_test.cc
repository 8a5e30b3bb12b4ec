// The topology's client knobs: each slows one kind of the clients' background
// traffic (fewer events) and, all together with the start delay, the
// workload still gets as much done as at the client's defaults.
#include <cstdio>
#include <string>

#include "gtest/gtest.h"
#include "sim/simulation.h"

namespace parley {
namespace sim {
namespace {

Scenario Small(const std::string& topology_extra) {
  absl::StatusOr<Scenario> s = ParseScenario(R"(
    name: "knobs"
    topology { gateways: 2 shards: 2 user_replicas: 1 friend_replicas: 1 group_replicas: 1
               )" + topology_extra + R"( }
    workload { users: 20 groups: 3 group_size: 5 friends_per_user: 3 duration_s: 15
               send_rate_per_s: 10 private_fraction: 0.5 churn_rate_per_s: 0.3 offline_s: 3 }
    faults { random: false loss_max: 0.01 }
    settle_s: 25
  )", "knobs");
  EXPECT_TRUE(s.ok()) << s.status();
  return s.value_or(Scenario());
}

RunResult RunSmall(const std::string& topology_extra) {
  RunOptions options;
  options.keep_history = false;
  RunResult r = RunScenario(Small(topology_extra), 1, options);
  EXPECT_TRUE(r.passed) << topology_extra << ": " << r.error
                        << (r.violations.empty() ? "" : r.violations[0].explanation);
  return r;
}

TEST(TopologyTest, EachClientKnobCutsEvents) {
  const RunResult defaults = RunSmall("");
  for (const std::string knob :
       {"client_discover_interval_ms: 5000 client_start_delay_ms: 100",
        "client_ping_interval_ms: 2000", "client_sync_interval_ms: 15000",
        "client_ack_delay_ms: 2000"}) {
    const RunResult slower = RunSmall(knob);
    EXPECT_LT(slower.events, defaults.events) << knob;
  }
}

TEST(TopologyTest, AllKnobsKeepTheWorkload) {
  const RunResult defaults = RunSmall("");
  const RunResult slower = RunSmall(
      "client_discover_interval_ms: 5000 client_ping_interval_ms: 2000 "
      "client_sync_interval_ms: 15000 client_ack_delay_ms: 5000 client_start_delay_ms: 100");
  // The default scenario's values. At least a fifth fewer events (at the
  // client's defaults, pings and discovery already stop while replies come).
  EXPECT_LT(slower.events * 10, defaults.events * 8);
  std::printf("events: client defaults %llu, slower %llu\n",
              static_cast<unsigned long long>(defaults.events),
              static_cast<unsigned long long>(slower.events));
  EXPECT_GE(slower.sends_acked * 10, defaults.sends_acked * 9);
  EXPECT_GE(slower.deliveries * 10, defaults.deliveries * 9);
}

}  // namespace
}  // namespace sim
}  // namespace parley
