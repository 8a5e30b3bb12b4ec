// KvService: the shared cache node at "svc.kv" (the role Redis plays in many IM backends):
// get, set with version compare, delete, TTL, and locks with a lease. Entries
// live in the node's store, so a restart keeps them (like Redis with an
// append-only file), and an expired entry or lock is never returned.
#ifndef PARLEY_CORE_KV_KV_SERVICE_H_
#define PARLEY_CORE_KV_KV_SERVICE_H_

#include <cstdint>

#include "absl/time/time.h"
#include "core/service_node.h"

namespace parley {

struct KvOptions {
  size_t max_key_bytes = 512;
  size_t max_value_bytes = 1 << 20;
  size_t max_keys_per_request = 1024;
  absl::Duration max_lease = absl::Seconds(60);
  absl::Duration sweep_interval = absl::Milliseconds(500);
  size_t max_sweep_deletes = 1024;
};

struct KvStats {
  uint64_t gets = 0;
  uint64_t hits = 0;
  uint64_t sets_applied = 0;
  uint64_t stale_sets_refused = 0;  // IF_NEWER writes not newer than the entry
  uint64_t older_sets_refused = 0;  // ...of which strictly older
  uint64_t older_overwrites = 0;    // ALWAYS writes that replaced a newer version
  uint64_t expired_seen = 0;        // reads that found an expired entry
  uint64_t swept = 0;
  uint64_t locks_granted = 0;
  uint64_t locks_refused = 0;
  uint64_t evicted = 0;
};

class KvService : public ServiceNode {
 public:
  KvService(Env* env, KvOptions options = KvOptions());
  const KvStats& stats() const { return stats_; }
  // Evicts about `fraction` of the entries under `prefix`, as memory pressure
  // would (the simulator's nemesis calls it). Returns how many.
  size_t Evict(absl::string_view prefix, SeededRng& rng, double fraction);

 protected:
  absl::Status OnStart() override;
  void HandleRequest(const Envelope& request) override;

 private:
  Reply Get(const KvGetRequest& request);
  Reply Set(const KvSetRequest& request);
  Reply Delete(const KvDeleteRequest& request);
  Reply Lock(const KvLockRequest& request);
  Reply Unlock(const KvUnlockRequest& request);
  absl::Status ValidateKey(const std::string& key) const;
  // The live (unexpired) record at `store_key`, if any.
  template <typename Record>
  bool ReadLive(const std::string& store_key, Record* record);
  void Sweep();

  KvOptions options_;
  KvStats stats_;
};

}  // namespace parley

#endif  // PARLEY_CORE_KV_KV_SERVICE_H_
