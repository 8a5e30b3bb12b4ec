#include "core/version_gate.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/testing/bugs.h"

namespace parley {

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
  batch->Put(prefix_ + aggregate, absl::StrCat(version));
}

}  // namespace parley
