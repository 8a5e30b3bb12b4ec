// FaultyStore: an OrderedStore decorator that injects the failures a real
// disk has, for a nemesis to drive: failed writes, failed reads and slow
// writes. Deterministic: every random choice comes from its own SeededRng,
// seeded by the caller, and it draws only when a probability strictly between
// 0 and 1 is configured, so a store with no faults configured draws nothing
// and behaves exactly as the store it wraps.
//
// An injected failure is absl::UnavailableError("injected ..."): a store that
// could not do it now (a full or failing disk, an I/O error) but may later,
// the code a caller must treat as retryable. A failed Write applies nothing; a
// failed Get or Scan appends or stores nothing.
//
// Slow disk: each write (failed or not) adds the configured stall to a
// counter; the host takes it with TakeStall() and decides how to apply it
// (delay the node's next callback, say). The store itself never sleeps.
//
// The loss of the last unsynced batch at a crash is MemStore::LoseLastBatch.
#ifndef PARLEY_FAKES_FAULTY_STORE_H_
#define PARLEY_FAKES_FAULTY_STORE_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "core/env.h"
#include "core/rng.h"
#include "core/store.h"

namespace parley {

struct FaultyStoreStats {
  uint64_t writes = 0;  // Write calls, failed or not
  uint64_t reads = 0;   // Get, Scan and ScanBefore calls, failed or not
  uint64_t failed_writes = 0;
  uint64_t failed_reads = 0;
  uint64_t stalled_writes = 0;
  absl::Duration stalled = absl::ZeroDuration();  // total stall added
};

class FaultyStore : public OrderedStore {
 public:
  static constexpr uint32_t kMillion = 1000000;

  // `inner` must outlive this store.
  FaultyStore(OrderedStore* inner, uint64_t seed);

  absl::Status Get(absl::string_view key, std::string* value) const override;
  absl::Status Scan(absl::string_view prefix, absl::string_view start_after, size_t limit,
                    std::vector<KeyValue>* out) const override;
  // One read, failing exactly as a Scan of `prefix` would (the same draw).
  absl::Status ScanBefore(absl::string_view prefix, absl::string_view start_after,
                          absl::string_view end_before, size_t limit,
                          std::vector<KeyValue>* out) const override;
  // One read, failing exactly as a Scan of `prefix` would (the same draw).
  absl::Status Last(absl::string_view prefix, KeyValue* out) const override;
  absl::Status Write(const WriteBatch& batch) override;

  // Each write fails with this probability, in parts per million (0: never,
  // kMillion or more: always).
  void FailWrites(uint32_t ppm) { write_fail_ppm_ = ppm; }
  // Each Get, Scan, ScanBefore and Last fails with this probability, in parts per million. A
  // Get of a missing key may fail too: the store could not tell.
  void FailReads(uint32_t ppm) { read_fail_ppm_ = ppm; }
  // Each write adds `stall` to the stall the host takes (0: none).
  void SlowWrites(absl::Duration stall) { write_stall_ = stall; }
  // Failures strike only where a key starts with `prefix` (a bad region of
  // the disk): a Get of such a key, a Scan of a prefix that starts with it or
  // that it starts with, a batch with an operation on such a key. Empty (the
  // default): everywhere.
  void OnlyUnder(std::string prefix) { only_under_ = std::move(prefix); }
  // No more faults (what was stalled stays to be taken).
  void Heal();

  // The stall accumulated since the last call, and resets it.
  absl::Duration TakeStall();

  const FaultyStoreStats& stats() const { return stats_; }
  OrderedStore* inner() const { return inner_; }

 private:
  // True with probability ppm / 10^6; draws only for 0 < ppm < 10^6.
  bool Strike(uint32_t ppm) const;
  bool Covers(absl::string_view key) const;
  // Counts a Scan or ScanBefore of `prefix` and draws whether it fails.
  bool ScanFails(absl::string_view prefix) const;

  OrderedStore* inner_;
  // Mutable: reads are const in OrderedStore, but a failing read still draws
  // and counts.
  mutable SeededRng rng_;
  mutable FaultyStoreStats stats_;
  uint32_t write_fail_ppm_ = 0;
  uint32_t read_fail_ppm_ = 0;
  absl::Duration write_stall_ = absl::ZeroDuration();
  absl::Duration pending_stall_ = absl::ZeroDuration();
  std::string only_under_;
};

// An Env that hands its node a FaultyStore over the host's store and passes
// everything else through: how a test (or a host) puts one node's disk under
// a nemesis without the host knowing. Stalls are left for the owner to take.
class FaultyStoreEnv : public Env {
 public:
  // `inner` must outlive this Env.
  FaultyStoreEnv(Env* inner, uint64_t seed) : inner_(inner), store_(&inner->Store(), seed) {}

  FaultyStore& faulty() { return store_; }

  const std::string& Self() const override { return inner_->Self(); }
  absl::Time Now() override { return inner_->Now(); }
  SeededRng& Rng() override { return inner_->Rng(); }
  OrderedStore& Store() override { return store_; }
  void Send(const std::string& to, Envelope envelope) override {
    inner_->Send(to, std::move(envelope));
  }
  void Publish(const Event& event) override { inner_->Publish(event); }
  void Subscribe(const std::string& consumer_group,
                 const std::vector<std::string>& topics) override {
    inner_->Subscribe(consumer_group, topics);
  }
  void AckEvent(uint64_t delivery_id) override { inner_->AckEvent(delivery_id); }
  absl::Duration AckedEventRetention() override { return inner_->AckedEventRetention(); }
  TimerId SetTimer(absl::Duration after) override { return inner_->SetTimer(after); }
  void CancelTimer(TimerId id) override { inner_->CancelTimer(id); }
  void FailStop(const std::string& reason) override {
    fail_stops_.push_back(reason);
    inner_->FailStop(reason);
  }

  // Every FailStop reason the node gave, in order.
  const std::vector<std::string>& fail_stops() const { return fail_stops_; }

 private:
  Env* inner_;
  FaultyStore store_;
  std::vector<std::string> fail_stops_;
};

}  // namespace parley

#endif  // PARLEY_FAKES_FAULTY_STORE_H_
