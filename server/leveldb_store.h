// LevelDbStore: the server mode's OrderedStore, one LevelDB database per node
// (all of a process's stores share one block cache).
// A WriteBatch becomes one leveldb::WriteBatch written with sync, so a batch
// that was acknowledged survives a crash of the process and of the machine.
//
// A store that lost acknowledged batches refuses to open, naming its files:
// LevelDB's paranoid checks catch a damaged log or table, and a batch count
// (kept in every batch and, once synced, in the file PARLEY-SYNCED beside the
// database) catches a log cut short, whose torn tail LevelDB would otherwise
// drop without a word. See docs/operations.md for the operator's recovery.
#ifndef PARLEY_SERVER_LEVELDB_STORE_H_
#define PARLEY_SERVER_LEVELDB_STORE_H_

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/store.h"

namespace leveldb {
class Cache;
class DB;
class FilterPolicy;
}

namespace parley {

class LevelDbStore : public OrderedStore {
 public:
  // Opens (creating if missing) the database in directory `path`.
  static absl::StatusOr<std::unique_ptr<LevelDbStore>> Open(const std::string& path);
  ~LevelDbStore() override;

  absl::Status Get(absl::string_view key, std::string* value) const override;
  absl::Status Scan(absl::string_view prefix, absl::string_view start_after, size_t limit,
                    std::vector<KeyValue>* out) const override;
  // Stops at the first key not before `end_before` (no read past it).
  absl::Status ScanBefore(absl::string_view prefix, absl::string_view start_after,
                          absl::string_view end_before, size_t limit,
                          std::vector<KeyValue>* out) const override;
  // Seeks past the prefix and steps back: no scan of the range.
  absl::Status Last(absl::string_view prefix, KeyValue* out) const override;
  absl::Status Write(const WriteBatch& batch) override;

  uint64_t writes() const { return writes_; }

  // The block cache every store of the process shares, and each store's
  // memtable (LevelDB may hold two while one is written out).
  static constexpr size_t kBlockCacheBytes = 16 << 20;
  static constexpr size_t kWriteBufferBytes = 4 << 20;
  // Descriptors a store may hold (its open tables, read with pread, and its
  // log): past 118 tables (about 240 MB of data) LevelDB reopens tables.
  // Open raises the process's soft limit by as many; if the hard limit is
  // reached, the store uses LevelDB's least (64 tables).
  static constexpr int kMaxOpenFiles = 128;
  static constexpr int kMinOpenFiles = 74;

 private:
  absl::Status ScanRange(absl::string_view prefix, absl::string_view start_after,
                         std::optional<absl::string_view> end_before, size_t limit,
                         std::vector<KeyValue>* out) const;
  LevelDbStore() = default;
  leveldb::DB* db_ = nullptr;
  uint64_t writes_ = 0;
  std::mutex mu_;
  uint64_t synced_ = 0;  // batches synced (the last count written)
  int mark_fd_ = -1;
};

}  // namespace parley

#endif  // PARLEY_SERVER_LEVELDB_STORE_H_
