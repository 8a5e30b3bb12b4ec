// The transactional outbox. An event is written into the producer's own store
// in the same batch as the state change it describes; a relay then publishes
// it until the bus acknowledges, and only then deletes it. A crash between
// commit and publish loses nothing: Recover() republishes every stored event.
#ifndef PARLEY_CORE_OUTBOX_H_
#define PARLEY_CORE_OUTBOX_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "core/env.h"
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
};

class Outbox {
 public:
  struct Options {
    absl::Duration retry_after = absl::Milliseconds(500);
    size_t max_in_flight = 256;
  };

  Outbox(Env* env, Timers* timers, Options options);
  Outbox(const Outbox&) = delete;
  Outbox& operator=(const Outbox&) = delete;

  // Loads the sequence counter and every unpublished event. Call at Start.
  absl::Status Recover();

  // Stages `event` into `batch`, assigning its event_id and time. After the
  // batch is written call Committed(), or Aborted() if the write failed.
  void Add(WriteBatch* batch, Event event);
  void Committed();
  void Aborted();

  void OnPublishAck(const std::string& event_id);

  size_t unacked() const { return pending_.size(); }
  const OutboxStats& stats() const { return stats_; }

  // Key layout (here so tests can inspect the store).
  static std::string RecordPrefix(const std::string& producer);
  static std::string SeqKey(const std::string& producer);

 private:
  void Flush();
  void ScheduleRetry();
  void Retry();

  Env* env_;
  Timers* timers_;
  Options options_;
  uint64_t next_seq_ = 1;
  std::vector<std::pair<uint64_t, Event>> staged_;
  std::map<uint64_t, Event> pending_;                 // committed, not acked
  std::map<uint64_t, absl::Time> in_flight_since_;    // published, not acked
  TimerId retry_timer_ = 0;
  OutboxStats stats_;
};

}  // namespace parley

#endif  // PARLEY_CORE_OUTBOX_H_
