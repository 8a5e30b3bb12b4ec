#include "core/outbox.h"

#include <algorithm>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/check.h"
#include "core/keys.h"
#include "core/testing/bugs.h"

namespace parley {

// Probes counted here (core/probe.h).
const DeclaredProbe kOutboxReplay("outbox_replay",
                         "an unacked event published again after the node restarted");

Outbox::Outbox(Env* env, Timers* timers, Options options)
    : env_(env), timers_(timers), options_(options) {}

std::string Outbox::RecordPrefix(const std::string& producer) {
  return absl::StrCat("outbox/", producer, "/");
}

std::string Outbox::SeqKey(const std::string& producer) {
  return absl::StrCat("outbox_seq/", producer);
}

std::string Outbox::AckedPrefix(const std::string& producer) {
  return absl::StrCat("outbox_acked/", producer, "/");
}

absl::Status Outbox::ScanAll(const std::string& prefix, std::vector<KeyValue>* out) {
  std::string after;
  for (;;) {
    const size_t before = out->size();
    absl::Status s = env_->Store().Scan(prefix, after, 1024, out);
    if (!s.ok()) return s;
    if (out->size() == before) return absl::OkStatus();
    after = out->back().first;
  }
}

absl::Status Outbox::Recover() {
  const std::string& self = env_->Self();
  std::string value;
  absl::Status s = env_->Store().Get(SeqKey(self), &value);
  if (s.ok()) {
    uint64_t last = 0;
    if (!absl::SimpleAtoi(value, &last)) {
      return absl::DataLossError(absl::StrCat("outbox: corrupt sequence counter '", value, "'"));
    }
    next_seq_ = last + 1;
  } else if (!absl::IsNotFound(s)) {
    return s;
  }
  std::vector<KeyValue> records;
  s = ScanAll(RecordPrefix(self), &records);
  if (!s.ok()) return s;
  // Acked events kept for the window: the bus may have lost them with its
  // unsynced tail (a power failure takes the bus and this node together), so
  // they are published again like unacked ones; past the window they go.
  std::vector<KeyValue> acked;
  s = ScanAll(AckedPrefix(self), &acked);
  if (!s.ok()) return s;
  std::map<uint64_t, absl::Time> acked_at;
  for (const KeyValue& kv : acked) {
    int64_t micros = 0;
    if (!absl::SimpleAtoi(kv.second, &micros)) {
      return absl::DataLossError(absl::StrCat("outbox: corrupt ack mark ", kv.first));
    }
    acked_at[LastIdOf(kv.first)] = absl::FromUnixMicros(micros);
  }
  const absl::Time now = env_->Now();
  WriteBatch cleanup;
  for (const KeyValue& kv : records) {
    const uint64_t seq = LastIdOf(kv.first);
    auto mark = acked_at.find(seq);
    if (mark != acked_at.end()) {
      cleanup.Delete(AckedPrefix(self) + PadId(seq));  // unacked again until the next ack
      if (options_.retention <= absl::ZeroDuration() ||
          now - mark->second >= options_.retention) {
        cleanup.Delete(kv.first);
        ++stats_.retention_expired;
        continue;
      }
    }
    Event event;
    if (!event.ParseFromString(kv.second)) {
      return absl::DataLossError(absl::StrCat("outbox: corrupt record ", kv.first));
    }
    pending_[seq] = std::move(event);
    if (mark != acked_at.end()) {
      ++stats_.replayed_retained;
    } else {
      ++stats_.replayed_after_restart;
      if (probes_ != nullptr) probes_->Count(kOutboxReplay);
    }
  }
  for (const auto& [seq, at] : acked_at) {
    if (pending_.count(seq) == 0) cleanup.Delete(AckedPrefix(self) + PadId(seq));
  }
  // If this write is lost to a crash the marks are read again at the next
  // start: an event published twice more, or deleted a start later. If it
  // fails, the start fails (nothing was published yet) and is tried again.
  if (!acked.empty()) {
    s = env_->Store().Write(cleanup);
    if (!s.ok()) return s;
  }
  Flush();
  return absl::OkStatus();
}

void Outbox::Add(WriteBatch* batch, Event event) {
  const std::string& self = env_->Self();
  const uint64_t seq = next_seq_++;
  event.set_event_id(absl::StrCat(self, "/", seq));
  event.set_time_us(absl::ToUnixMicros(env_->Now()));
  if (!BugPlanted(Bug::kPublishWithoutOutbox)) {
    batch->Put(RecordPrefix(self) + PadId(seq), event.SerializeAsString());
    batch->Put(SeqKey(self), absl::StrCat(seq));
  }
  staged_.emplace_back(seq, std::move(event));
  ++stats_.added;
}

void Outbox::Committed() {
  if (BugPlanted(Bug::kPublishWithoutOutbox)) {
    // The classic dual write: publish once after the database write; if the
    // bus does not take it, or the process dies first, the event is gone.
    for (auto& [seq, event] : staged_) env_->Publish(event);
    staged_.clear();
    return;
  }
  for (auto& [seq, event] : staged_) pending_[seq] = std::move(event);
  staged_.clear();
  Flush();
}

void Outbox::Aborted() { staged_.clear(); }

void Outbox::Flush() {
  // What is in flight is pending (Retry checks it), and both are in seq
  // order: one walk over both finds what is not in flight yet, and when both
  // hold as many there is none.
  if (in_flight_since_.size() < pending_.size()) {
    auto in_flight = in_flight_since_.begin();
    for (const auto& [seq, event] : pending_) {
      while (in_flight != in_flight_since_.end() && in_flight->first < seq) ++in_flight;
      if (in_flight != in_flight_since_.end() && in_flight->first == seq) continue;
      if (in_flight_since_.size() >= options_.max_in_flight) {
        ++stats_.throttled;
        break;
      }
      // Before `in_flight`, which stays valid (and past `seq`).
      in_flight_since_.emplace_hint(in_flight, seq, env_->Now());
      ++stats_.published;
      env_->Publish(event);
    }
  }
  ScheduleRetry();
}

void Outbox::ScheduleRetry() {
  if (retry_timer_ != 0 || pending_.empty()) return;
  retry_timer_ = timers_->After(options_.retry_after, [this] {
    retry_timer_ = 0;
    Retry();
  });
}

void Outbox::Retry() {
  const absl::Time now = env_->Now();
  for (auto& [seq, since] : in_flight_since_) {
    PARLEY_CHECK(pending_.count(seq) > 0) << "event " << seq << " in flight but not pending";
    if (now - since < options_.retry_after) continue;
    since = now;
    ++stats_.published;
    ++stats_.republished;
    env_->Publish(pending_.at(seq));
  }
  Flush();
}

void Outbox::OnPublishAck(const std::string& event_id) {
  const std::string prefix = env_->Self() + "/";
  if (event_id.compare(0, prefix.size(), prefix) != 0) return;
  uint64_t seq = 0;
  if (!absl::SimpleAtoi(absl::string_view(event_id).substr(prefix.size()), &seq)) return;
  if (pending_.count(seq) == 0) return;  // a duplicate ack
  // Events are published only once committed, and staged ones are committed
  // or aborted within the callback that staged them.
  PARLEY_CHECK(staged_.empty()) << "an ack for " << event_id << " while events are staged";
  const bool retain = options_.retention > absl::ZeroDuration();
  const absl::Time now = env_->Now();
  WriteBatch batch;
  if (retain) {
    // Kept for the window: the bus's ack may not be on its disk yet.
    batch.Put(AckedPrefix(env_->Self()) + PadId(seq), absl::StrCat(absl::ToUnixMicros(now)));
  } else {
    batch.Delete(RecordPrefix(env_->Self()) + PadId(seq));
  }
  // If this write is lost to a crash the event is published again after
  // restart; the bus and consumers drop the duplicate by event_id and version.
  // If it fails, nothing changes: the event stays in flight, is published
  // again after retry_after, and its next ack tries the write again.
  if (!env_->Store().Write(batch).ok()) return;
  pending_.erase(seq);
  in_flight_since_.erase(seq);
  ++stats_.acked;
  if (retain) {
    auto old = retained_.find(seq);
    if (old != retained_.end()) expiry_.erase({old->second, seq});
    retained_[seq] = now;
    expiry_.insert({now, seq});
    PARLEY_CHECK_EQ(retained_.size(), expiry_.size()) << "every retained event expires once";
    ++stats_.retained;
    ScheduleSweep();
  }
  Flush();
}

void Outbox::ReplayRetained() {
  ++stats_.bus_reconnects;
  if (retained_.empty()) return;
  const std::string& self = env_->Self();
  WriteBatch batch;
  std::vector<std::pair<uint64_t, Event>> replay;
  for (const auto& [seq, acked_at] : retained_) {
    std::string value;
    Event event;
    absl::Status s = env_->Store().Get(RecordPrefix(self) + PadId(seq), &value);
    if (!s.ok() && !absl::IsNotFound(s)) {
      // The bus may have lost this event and it cannot be read now: restart,
      // and Recover publishes every retained event again.
      env_->FailStop(absl::StrCat("outbox: cannot read retained event ", seq, ": ", s.message()));
      return;
    }
    if (!s.ok() || !event.ParseFromString(value)) {
      continue;  // unreadable: nothing to publish (Recover reports corruption)
    }
    // Unacked again: a crash before the next ack must not expire it on the
    // old mark.
    batch.Delete(AckedPrefix(self) + PadId(seq));
    replay.emplace_back(seq, std::move(event));
  }
  absl::Status s = env_->Store().Write(batch);
  if (!s.ok()) {
    // Published again with the old marks in the store, an event could expire
    // on its old mark after a crash while the bus no longer has it. Recover
    // after a restart replays them all with the marks cleared.
    env_->FailStop(absl::StrCat("outbox: cannot clear ack marks: ", s.message()));
    return;
  }
  for (auto& [seq, event] : replay) {
    PARLEY_CHECK(pending_.count(seq) == 0) << "event " << seq << " both retained and unacked";
    pending_[seq] = std::move(event);
    ++stats_.replayed_retained;
  }
  retained_.clear();
  expiry_.clear();
  Flush();
}

void Outbox::ScheduleSweep() {
  if (sweep_timer_ != 0 || expiry_.empty()) return;
  const absl::Duration until_first = expiry_.begin()->first + options_.retention - env_->Now();
  sweep_timer_ = timers_->After(std::max(options_.sweep_interval, until_first), [this] {
    sweep_timer_ = 0;
    Sweep();
  });
}

void Outbox::Sweep() {
  const absl::Time now = env_->Now();
  const std::string& self = env_->Self();
  WriteBatch batch;
  size_t n = 0;
  for (auto it = expiry_.begin(); it != expiry_.end() && n < options_.sweep_batch &&
                                  now - it->first >= options_.retention;
       ++it) {
    batch.Delete(RecordPrefix(self) + PadId(it->second));
    batch.Delete(AckedPrefix(self) + PadId(it->second));
    ++n;
  }
  // A lost delete leaves the event for the next start, which deletes it. A
  // failed one changes nothing: the next sweep tries again.
  if (n > 0 && !env_->Store().Write(batch).ok()) {
    ScheduleSweep();
    return;
  }
  for (size_t i = 0; i < n; ++i) {
    retained_.erase(expiry_.begin()->second);
    expiry_.erase(expiry_.begin());
  }
  stats_.retention_expired += n;
  if (n == options_.sweep_batch && !expiry_.empty()) {
    sweep_timer_ = timers_->After(absl::Milliseconds(10), [this] {  // a backlog: keep going
      sweep_timer_ = 0;
      Sweep();
    });
    return;
  }
  ScheduleSweep();
}

}  // namespace parley
