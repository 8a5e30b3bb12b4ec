// MemStore: an in-memory OrderedStore with LevelDB's batch semantics. A
// "crash" keeps exactly the committed batches; a crash can be armed to strike
// in the middle of the next batch, which must then leave no trace.
#ifndef PARLEY_FAKES_MEM_STORE_H_
#define PARLEY_FAKES_MEM_STORE_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/store.h"

namespace parley {

class MemStore : public OrderedStore {
 public:
  absl::Status Get(absl::string_view key, std::string* value) const override;
  absl::Status Scan(absl::string_view prefix, absl::string_view start_after, size_t limit,
                    std::vector<KeyValue>* out) const override;
  // Stops at the first key not less than `end_before`.
  absl::Status ScanBefore(absl::string_view prefix, absl::string_view start_after,
                          absl::string_view end_before, size_t limit,
                          std::vector<KeyValue>* out) const override;
  // Seeks backwards: no scan of the range.
  absl::Status Last(absl::string_view prefix, KeyValue* out) const override;
  absl::Status Write(const WriteBatch& batch) override;

  // The next Write crashes after applying `ops` of its operations to its
  // working copy: it returns UNAVAILABLE and the store stays as it was.
  void CrashDuringNextWrite(size_t ops) { crash_after_ops_ = static_cast<int64_t>(ops); }
  // Every Write fails with `status` until cleared with OkStatus().
  void FailWrites(absl::Status status) { fail_writes_ = std::move(status); }

  // Undoes the last committed batch, as a crash does to a store that had not
  // synced it yet. Returns false if there is none to undo.
  bool LoseLastBatch();

  size_t size() const { return data_.size(); }
  uint64_t batches_committed() const { return batches_committed_; }
  const std::map<std::string, std::string, std::less<>>& data() const { return data_; }

 private:
  std::map<std::string, std::string, std::less<>> data_;
  int64_t crash_after_ops_ = -1;
  absl::Status fail_writes_;
  uint64_t batches_committed_ = 0;
  struct Undo {
    std::string key;
    bool existed;
    std::string old_value;
  };
  std::vector<Undo> last_batch_undo_;
  bool have_last_batch_ = false;
};

}  // namespace parley

#endif  // PARLEY_FAKES_MEM_STORE_H_
