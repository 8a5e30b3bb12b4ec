#include "core/version_gate.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/check.h"
#include "core/testing/bugs.h"

namespace parley {

absl::StatusOr<uint64_t> VersionGate::Applied(const std::string& aggregate) const {
  std::string value;
  absl::Status s = store_->Get(prefix_ + aggregate, &value);
  if (absl::IsNotFound(s)) return 0;
  if (!s.ok()) return s;
  uint64_t version = 0;
  return absl::SimpleAtoi(value, &version) ? version : 0;
}

absl::StatusOr<bool> VersionGate::IsNew(const std::string& aggregate, uint64_t version) const {
  if (BugPlanted(Bug::kApplyEventsUnversioned)) return true;
  absl::StatusOr<uint64_t> applied = Applied(aggregate);
  if (!applied.ok()) return applied.status();
  return version > *applied;
}

void VersionGate::MarkApplied(WriteBatch* batch, const std::string& aggregate,
                              uint64_t version) const {
  // Paired with IsNew: an aggregate's applied version only grows.
  // (A read that fails now checks nothing; the one IsNew made succeeded.)
  if (!BugPlanted(Bug::kApplyEventsUnversioned)) {
    absl::StatusOr<uint64_t> applied = Applied(aggregate);
    if (applied.ok()) {
      PARLEY_CHECK_GT(version, *applied) << "applied version of " << aggregate;
    }
  }
  batch->Put(prefix_ + aggregate, absl::StrCat(version));
}

}  // namespace parley
