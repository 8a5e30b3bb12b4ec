// Run configuration: topology, workload, network, fault mix and the fault
// schedule of one run.
#include "sim/run_config.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "sim/workload.h"

namespace parley {
namespace sim {

std::string DescribeRun(const Scenario& s, uint64_t seed, const FaultMix& m,
                        const std::vector<ScriptedFault>& schedule) {
  const Topology& t = s.topology();
  const Workload& w = s.workload();
  std::string out = absl::StrFormat(
      "scenario=%s seed=%u gateways=%u shards=%u replicas=%u/%u/%u users=%u groups=%u "
      "duration=%.0fs settle=%.0fs send_rate=%.1f/s | faults: loss=%.6f dup=%.6f "
      "reorder=%.3fms partitions=%.6f/s crashes=%.6f/s bus=%.6f/s skew=%.3fms scripted=%d "
      "lose_unsynced=%d%s",
      s.name(), seed, t.gateways(), t.shards(), t.user_replicas(), t.friend_replicas(),
      t.group_replicas(), w.users(), w.groups(), w.duration_s(), s.settle_s(), w.send_rate_per_s(),
      m.loss_ppm / 1e6, m.duplicate_ppm / 1e6, m.reorder_us / 1e3, m.partition_uhz / 1e6,
      m.crash_uhz / 1e6, m.bus_uhz / 1e6, m.skew_us / 1e3,
      s.faults().script_size(), s.faults().lose_unsynced_batch(),
      s.bug().empty() ? "" : " bug=" + s.bug());
  absl::StrAppendFormat(
      &out,
      "\n  topology: friend_cache_ttl=%ums friend_fill_delay=%ums group_max_members=%u "
      "recall_window=%ums",
      t.friend_cache_ttl_ms(), t.friend_fill_delay_ms(), t.group_max_members(),
      t.recall_window_ms());
  absl::StrAppendFormat(&out,
                        "\n  clients (0: default): discover_interval=%ums ping_interval=%ums "
                        "sync_interval=%ums ack_delay=%ums start_delay=%ums",
                        t.client_discover_interval_ms(), t.client_ping_interval_ms(),
                        t.client_sync_interval_ms(), t.client_ack_delay_ms(),
                        t.client_start_delay_ms());
  absl::StrAppendFormat(
      &out,
      "\n  workload: group_size=%u friends_per_user=%u private=%g second_device=%g "
      "non_member_send=%g adversaries=%g open_groups=%g second_profile_edits=%g offline=%gs "
      "body=%uB",
      w.group_size(), w.friends_per_user(), w.private_fraction(), w.second_device_fraction(),
      w.non_member_send_fraction(), w.adversary_fraction(), w.open_group_fraction(),
      w.profile_second_edit_fraction(), w.offline_s(), w.body_bytes());
  absl::StrAppend(&out, "\n  actions/s:");
  for (const WorkloadAction& a : WorkloadActions()) {
    absl::StrAppendFormat(&out, " %s=%g", a.name, a.rate(w));
  }
  absl::StrAppendFormat(&out, "\n  network: latency=%gms jitter=%gms", s.network().latency_ms(),
                        s.network().jitter_ms());
  absl::StrAppendFormat(&out,
                        "\n  fault mix (integers): loss=%uppm dup=%uppm reorder=%dus "
                        "partitions=%uuHz crashes=%uuHz bus=%uuHz skew=%dus storage=%uuHz "
                        "fault_duration_max=%dus",
                        m.loss_ppm, m.duplicate_ppm, m.reorder_us, m.partition_uhz, m.crash_uhz,
                        m.bus_uhz, m.skew_us, m.storage_uhz, m.duration_max_us);
  absl::StrAppendFormat(&out, "\n  schedule: %d faults", schedule.size());
  for (size_t i = 0; i < schedule.size(); ++i) {
    absl::StrAppendFormat(&out, "\n    #%d at %.6fs %s", i, schedule[i].at_s(),
                          DescribeFault(schedule[i]));
  }
  return out;
}

}  // namespace sim
}  // namespace parley
