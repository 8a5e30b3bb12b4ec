// The transactional outbox. An event is written into the producer's own store
// in the same batch as the state change it describes; a relay then publishes
// it until the bus acknowledges, and only then deletes it. A crash between
// commit and publish loses nothing: Recover() republishes every stored event.
//
// Retention (the backstop for a bus whose ack is not durable: nats-server 2.9
// fsyncs JetStream every 2 minutes, so a power failure can lose what it
// acked). With `retention` > 0 an acked event stays in the store, marked
// "acked at T" (outbox_acked/<producer>/<seq> = T in unix micros), until T +
// retention; a sweep timer deletes expired ones, at most `sweep_batch` per
// tick. ReplayRetained() (called when the bus reconnects, e.g. after
// nats-server restarted) and Recover() (every node start) publish the
// retained events again, as unacked ones; the bus drops those it still has by
// event_id (its dedup window must be at least `retention`), consumers drop
// the rest by version. retention 0: deleted at the ack, nothing retained.
#ifndef PARLEY_CORE_OUTBOX_H_
#define PARLEY_CORE_OUTBOX_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "core/env.h"
#include "core/probe.h"
#include "core/proto/events.pb.h"
#include "core/store.h"
#include "core/timers.h"

namespace parley {

struct OutboxStats {
  uint64_t added = 0;
  uint64_t published = 0;    // publish attempts, first ones and repeats
  uint64_t republished = 0;  // repeats after no ack within retry_after
  uint64_t acked = 0;
  uint64_t replayed_after_restart = 0;
  uint64_t throttled = 0;    // times the in-flight bound held an event back
  uint64_t retained = 0;           // acks that kept the event (retention > 0)
  uint64_t retention_expired = 0;  // retained events deleted after the window
  uint64_t replayed_retained = 0;  // retained events published again
  uint64_t bus_reconnects = 0;     // ReplayRetained() calls
};

class Outbox {
 public:
  struct Options {
    absl::Duration retry_after = absl::Milliseconds(500);
    size_t max_in_flight = 256;
    // How long an acked event is kept to be published again (see above).
    absl::Duration retention = absl::ZeroDuration();
    // The sweep of expired retained events: at most this often when idle,
    // at most this many deletes per tick (the next tick comes at once when
    // a tick was full).
    absl::Duration sweep_interval = absl::Seconds(1);
    size_t sweep_batch = 2000;
  };

  Outbox(Env* env, Timers* timers, Options options);
  Outbox(const Outbox&) = delete;
  Outbox& operator=(const Outbox&) = delete;

  // Loads the sequence counter and every unpublished event, and the retained
  // acked events still within the window; publishes them all. Deletes
  // retained events past the window. Call at Start.
  absl::Status Recover();

  // Stages `event` into `batch`, assigning its event_id and time. After the
  // batch is written call Committed(), or Aborted() if the write failed.
  void Add(WriteBatch* batch, Event event);
  void Committed();
  void Aborted();

  void OnPublishAck(const std::string& event_id);
  // The bus may have lost what it acked (it reconnected: nats-server may have
  // restarted): publish every retained event again.
  void ReplayRetained();

  size_t unacked() const { return pending_.size(); }
  size_t retained() const { return retained_.size(); }
  const OutboxStats& stats() const { return stats_; }
  // Where the outbox counts its probes: its node's (nullptr: nowhere).
  void set_probes(ProbeCounters* probes) { probes_ = probes; }

  // Key layout (here so tests can inspect the store).
  static std::string RecordPrefix(const std::string& producer);
  static std::string SeqKey(const std::string& producer);
  static std::string AckedPrefix(const std::string& producer);

 private:
  void Flush();
  void ScheduleRetry();
  void Retry();
  void ScheduleSweep();
  void Sweep();
  absl::Status ScanAll(const std::string& prefix, std::vector<KeyValue>* out);

  Env* env_;
  Timers* timers_;
  Options options_;
  uint64_t next_seq_ = 1;
  std::vector<std::pair<uint64_t, Event>> staged_;
  std::map<uint64_t, Event> pending_;                 // committed, not acked
  std::map<uint64_t, absl::Time> in_flight_since_;    // published, not acked
  TimerId retry_timer_ = 0;
  // Acked, kept until acked_at + retention.
  std::map<uint64_t, absl::Time> retained_;
  std::set<std::pair<absl::Time, uint64_t>> expiry_;  // (acked_at, seq)
  TimerId sweep_timer_ = 0;
  OutboxStats stats_;
  ProbeCounters* probes_ = nullptr;
};

}  // namespace parley

#endif  // PARLEY_CORE_OUTBOX_H_
