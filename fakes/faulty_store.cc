#include "fakes/faulty_store.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace parley {

FaultyStore::FaultyStore(OrderedStore* inner, uint64_t seed) : inner_(inner), rng_(seed) {}

bool FaultyStore::Strike(uint32_t ppm) const {
  if (ppm == 0) return false;
  if (ppm >= kMillion) return true;
  return rng_.Uniform(kMillion) < ppm;
}

bool FaultyStore::Covers(absl::string_view key) const {
  return absl::StartsWith(key, only_under_);
}

absl::Status FaultyStore::Get(absl::string_view key, std::string* value) const {
  ++stats_.reads;
  if (Covers(key) && Strike(read_fail_ppm_)) {
    ++stats_.failed_reads;
    return absl::UnavailableError(absl::StrCat("injected read failure: get ", key));
  }
  return inner_->Get(key, value);
}

bool FaultyStore::ScanFails(absl::string_view prefix) const {
  ++stats_.reads;
  if ((Covers(prefix) || absl::StartsWith(only_under_, prefix)) && Strike(read_fail_ppm_)) {
    ++stats_.failed_reads;
    return true;
  }
  return false;
}

absl::Status FaultyStore::Scan(absl::string_view prefix, absl::string_view start_after,
                               size_t limit, std::vector<KeyValue>* out) const {
  if (ScanFails(prefix)) {
    return absl::UnavailableError(absl::StrCat("injected read failure: scan ", prefix));
  }
  return inner_->Scan(prefix, start_after, limit, out);
}

absl::Status FaultyStore::ScanBefore(absl::string_view prefix, absl::string_view start_after,
                                     absl::string_view end_before, size_t limit,
                                     std::vector<KeyValue>* out) const {
  if (ScanFails(prefix)) {
    return absl::UnavailableError(absl::StrCat("injected read failure: scan ", prefix));
  }
  return inner_->ScanBefore(prefix, start_after, end_before, limit, out);
}

absl::Status FaultyStore::Last(absl::string_view prefix, KeyValue* out) const {
  if (ScanFails(prefix)) {
    return absl::UnavailableError(absl::StrCat("injected read failure: last under ", prefix));
  }
  return inner_->Last(prefix, out);
}

absl::Status FaultyStore::Write(const WriteBatch& batch) {
  ++stats_.writes;
  if (write_stall_ > absl::ZeroDuration()) {
    // A slow disk is slow for writes that then fail too.
    ++stats_.stalled_writes;
    stats_.stalled += write_stall_;
    pending_stall_ += write_stall_;
  }
  bool covered = only_under_.empty();
  for (const WriteBatch::Op& op : batch.ops()) covered = covered || Covers(op.key);
  if (covered && Strike(write_fail_ppm_)) {
    ++stats_.failed_writes;
    return absl::UnavailableError(
        absl::StrCat("injected write failure: a batch of ", batch.size(), " operations"));
  }
  return inner_->Write(batch);
}

void FaultyStore::Heal() {
  write_fail_ppm_ = 0;
  read_fail_ppm_ = 0;
  write_stall_ = absl::ZeroDuration();
  only_under_.clear();
}

absl::Duration FaultyStore::TakeStall() {
  const absl::Duration stall = pending_stall_;
  pending_stall_ = absl::ZeroDuration();
  return stall;
}

}  // namespace parley
