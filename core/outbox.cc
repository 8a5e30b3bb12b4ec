#include "core/outbox.h"

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/keys.h"
#include "core/testing/bugs.h"

namespace parley {

Outbox::Outbox(Env* env, Timers* timers, Options options)
    : env_(env), timers_(timers), options_(options) {}

std::string Outbox::RecordPrefix(const std::string& producer) {
  return absl::StrCat("outbox/", producer, "/");
}

std::string Outbox::SeqKey(const std::string& producer) {
  return absl::StrCat("outbox_seq/", producer);
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
  std::string after;
  for (;;) {
    const size_t before = records.size();
    s = env_->Store().Scan(RecordPrefix(self), after, 1024, &records);
    if (!s.ok()) return s;
    if (records.size() == before) break;
    after = records.back().first;
  }
  for (const KeyValue& kv : records) {
    Event event;
    if (!event.ParseFromString(kv.second)) {
      return absl::DataLossError(absl::StrCat("outbox: corrupt record ", kv.first));
    }
    pending_[LastIdOf(kv.first)] = std::move(event);
    ++stats_.replayed_after_restart;
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
  for (const auto& [seq, event] : pending_) {
    if (in_flight_since_.count(seq) > 0) continue;
    if (in_flight_since_.size() >= options_.max_in_flight) {
      ++stats_.throttled;
      break;
    }
    in_flight_since_[seq] = env_->Now();
    ++stats_.published;
    env_->Publish(event);
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
  if (pending_.erase(seq) == 0) return;  // a duplicate ack
  in_flight_since_.erase(seq);
  ++stats_.acked;
  WriteBatch batch;
  batch.Delete(RecordPrefix(env_->Self()) + PadId(seq));
  // If this delete is lost to a crash the event is published again after
  // restart; the bus and consumers drop the duplicate by event_id and version.
  env_->Store().Write(batch).IgnoreError();
  Flush();
}

}  // namespace parley
