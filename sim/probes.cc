// Probes: gathering every node's counters into the run's.
#include "sim/probes.h"

#include "core/client/client.h"
#include "core/friend/friend_service.h"
#include "core/gateway/gateway.h"
#include "core/group/group_service.h"
#include "core/kv/kv_service.h"
#include "core/message/message_shard.h"

namespace parley {
namespace sim {

void CollectProbes(RunState& r, Node* node) {
  std::map<std::string, uint64_t>& probes_ = r.probes;
  std::vector<double>& profile_apply_ms_ = r.profile_apply_ms;
  std::vector<double>& sync_sizes_ = r.sync_sizes;
  if (auto* s = dynamic_cast<ServiceNode*>(node)) {
    probes_["outbox_replay"] += s->outbox_stats().replayed_after_restart;
    probes_["retry_on_other_instance"] += s->rpc_stats().retried_on_other_instance;
    probes_["rpc_timeout"] += s->rpc_stats().timeouts;
  }
  if (auto* m = dynamic_cast<MessageShard*>(node)) {
    probes_["dedup_hit"] += m->stats().idempotent_replays;
    probes_["dispatch_replay"] += m->stats().dispatch_replayed;
  }
  if (auto* g = dynamic_cast<GroupService*>(node)) {
    for (double ms : g->stats().profile_apply_ms) profile_apply_ms_.push_back(ms);
  }
  if (auto* c = dynamic_cast<Client*>(node)) {
    for (uint32_t n : c->stats().sync_sizes) sync_sizes_.push_back(n);
    probes_["gap_sync"] += c->stats().gap_syncs;
    probes_["client_duplicate_dropped"] += c->stats().duplicates_dropped;
    probes_["client_reconnect"] += c->stats().reconnects;
    probes_["send_retry"] += c->stats().send_retries;
  }
  if (auto* k = dynamic_cast<KvService*>(node)) {
    probes_["lease_expiry"] += k->stats().expired_seen;
    probes_["stale_set_refused"] += k->stats().stale_sets_refused;
    probes_["kv_evicted"] += k->stats().evicted;
    probes_["older_set_refused"] += k->stats().older_sets_refused;
    probes_["older_overwrite"] += k->stats().older_overwrites;
  }
  if (auto* f = dynamic_cast<FriendService*>(node)) {
    probes_["stale_fill_refused"] += f->stats().stale_fills_refused;
    probes_["redelivered_event_ignored"] += f->stats().profile_events_ignored;
  }
  if (auto* g = dynamic_cast<GroupService*>(node)) {
    probes_["redelivered_event_ignored"] += g->stats().profile_events_ignored;
  }
  if (auto* gw = dynamic_cast<Gateway*>(node)) {
    probes_["push_skipped"] += gw->stats().push_targets_skipped;
  }
}

const std::vector<std::string>& ProbeNames() {
  static const auto* const kNames = new std::vector<std::string>{
      "outbox_replay", "dedup_hit", "dispatch_replay", "gap_sync", "client_duplicate_dropped",
      "client_reconnect", "send_retry", "lease_expiry", "stale_set_refused", "stale_fill_refused",
      "retry_on_other_instance", "rpc_timeout", "redelivered_event_ignored", "push_skipped",
      "kv_evicted", "older_set_refused"};
  return *kNames;
}

}  // namespace sim
}  // namespace parley
