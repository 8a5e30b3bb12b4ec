// VersionGate: the idempotent consumer. An event is applied only when its
// version is newer than the version stored for its aggregate, and the new
// version is stored in the same batch as the effect, so duplicates and older
// events arriving late change nothing.
#ifndef PARLEY_CORE_VERSION_GATE_H_
#define PARLEY_CORE_VERSION_GATE_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "core/store.h"

namespace parley {

class VersionGate {
 public:
  // `consumer` names the consuming service; its versions live under
  // "applied/<consumer>/".
  VersionGate(OrderedStore* store, std::string consumer)
      : store_(store), prefix_("applied/" + consumer + "/") {}

  // The last version applied for `aggregate` (0 if none), or the store's
  // error: a version that could not be read is not "none yet".
  absl::StatusOr<uint64_t> Applied(const std::string& aggregate) const;
  absl::StatusOr<bool> IsNew(const std::string& aggregate, uint64_t version) const;
  // Records `version` for `aggregate` in `batch`.
  void MarkApplied(WriteBatch* batch, const std::string& aggregate, uint64_t version) const;

 private:
  OrderedStore* store_;
  std::string prefix_;
};

}  // namespace parley

#endif  // PARLEY_CORE_VERSION_GATE_H_
