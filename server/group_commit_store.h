// GroupCommitStore: many batches, one sync. Write() applies a batch to an
// in-memory overlay that reads see at once; Commit() writes the overlay (each
// key's last state) to the durable store as one batch, with one sync. The host that owns it holds back every output of its node —
// sends, event publishes and acks — until the Commit that covers the writes
// before them, so nothing acknowledged was ever less than durable: a crash
// before Commit loses the writes together with everything that depended on
// them, as if the node had crashed before writing.
//
// Not thread-safe: one node's loop owns it.
#ifndef PARLEY_SERVER_GROUP_COMMIT_STORE_H_
#define PARLEY_SERVER_GROUP_COMMIT_STORE_H_

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/store.h"

namespace parley {

class GroupCommitStore : public OrderedStore {
 public:
  explicit GroupCommitStore(std::unique_ptr<OrderedStore> durable)
      : durable_(std::move(durable)) {}

  absl::Status Get(absl::string_view key, std::string* value) const override;
  absl::Status Scan(absl::string_view prefix, absl::string_view start_after, size_t limit,
                    std::vector<KeyValue>* out) const override;
  // The durable store's ScanBefore merged with the overlay's entries before
  // `end_before`: stops early where the durable store does.
  absl::Status ScanBefore(absl::string_view prefix, absl::string_view start_after,
                          absl::string_view end_before, size_t limit,
                          std::vector<KeyValue>* out) const override;
  // The overlay's greatest entry under `prefix` against the durable store's
  // Last; only when a pending delete hides the durable one does it scan.
  absl::Status Last(absl::string_view prefix, KeyValue* out) const override;
  // Never fails: the batch is applied in memory; Commit makes it durable.
  absl::Status Write(const WriteBatch& batch) override;

  // Writes what is pending as one batch. On failure the pending writes stay
  // pending and visible, and nothing that depends on them may be released.
  absl::Status Commit();
  bool dirty() const { return !overlay_.empty(); }

  uint64_t batches() const { return batches_; }  // Write calls
  uint64_t commits() const { return commits_; }  // durable writes

 private:
  absl::Status ScanRange(absl::string_view prefix, absl::string_view start_after,
                         std::optional<absl::string_view> end_before, size_t limit,
                         std::vector<KeyValue>* out) const;
  std::unique_ptr<OrderedStore> durable_;
  // key -> value, or nullopt for a delete not yet committed.
  std::map<std::string, std::optional<std::string>, std::less<>> overlay_;
  uint64_t batches_ = 0;
  uint64_t commits_ = 0;
};

}  // namespace parley

#endif  // PARLEY_SERVER_GROUP_COMMIT_STORE_H_
