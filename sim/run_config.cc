// Run configuration: topology, workload, network and fault mix of one run.
#include "sim/run_config.h"

#include "absl/strings/str_format.h"

namespace parley {
namespace sim {

std::string DescribeRun(const Scenario& s, uint64_t seed, const FaultMix& m) {
  return absl::StrFormat(
      "scenario=%s seed=%u gateways=%u shards=%u replicas=%u/%u/%u users=%u groups=%u "
      "duration=%.0fs settle=%.0fs send_rate=%.1f/s | faults: loss=%.3f dup=%.3f "
      "reorder=%.0fms partitions=%.3f/s crashes=%.3f/s bus=%.3f/s skew=%.0fms scripted=%d "
      "lose_unsynced=%d%s",
      s.name(), seed, s.topology().gateways(), s.topology().shards(), s.topology().user_replicas(),
      s.topology().friend_replicas(), s.topology().group_replicas(), s.workload().users(),
      s.workload().groups(), s.workload().duration_s(), s.settle_s(),
      s.workload().send_rate_per_s(), m.loss, m.duplicate, m.reorder_ms, m.partition_rate,
      m.crash_rate, m.bus_rate, m.skew_ms, s.faults().script_size(),
      s.faults().lose_unsynced_batch(), s.bug().empty() ? "" : " bug=" + s.bug());
}

}  // namespace sim
}  // namespace parley
