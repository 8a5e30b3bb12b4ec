#include "core/version_gate.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/check.h"
#include "core/testing/bugs.h"

namespace parley {

// A failed read answers 0: callers read through ServiceNode::store(), whose
// guard keeps whatever follows from it from being committed or acked.
uint64_t VersionGate::Applied(const std::string& aggregate) const {
  std::string value;
  if (!store_->Get(prefix_ + aggregate, &value).ok()) return 0;
  uint64_t version = 0;
  return absl::SimpleAtoi(value, &version) ? version : 0;
}

bool VersionGate::IsNew(const std::string& aggregate, uint64_t version) const {
  if (BugPlanted(Bug::kApplyEventsUnversioned)) return true;
  return version > Applied(aggregate);
}

void VersionGate::MarkApplied(WriteBatch* batch, const std::string& aggregate,
                              uint64_t version) const {
  // Paired with IsNew: an aggregate's applied version only grows.
  if (!BugPlanted(Bug::kApplyEventsUnversioned)) {
    PARLEY_CHECK_GT(version, Applied(aggregate)) << "applied version of " << aggregate;
  }
  batch->Put(prefix_ + aggregate, absl::StrCat(version));
}

}  // namespace parley
