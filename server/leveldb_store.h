// LevelDbStore: the server mode's OrderedStore, one LevelDB database per node.
// A WriteBatch becomes one leveldb::WriteBatch written with sync, so a batch
// that was acknowledged survives a crash of the process and of the machine.
#ifndef PARLEY_SERVER_LEVELDB_STORE_H_
#define PARLEY_SERVER_LEVELDB_STORE_H_

#include <memory>
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
  absl::Status Write(const WriteBatch& batch) override;

  uint64_t writes() const { return writes_; }

 private:
  LevelDbStore() = default;
  // Declared before db_: the database is deleted first and uses both.
  std::unique_ptr<const leveldb::FilterPolicy> filter_;
  std::unique_ptr<leveldb::Cache> cache_;
  leveldb::DB* db_ = nullptr;
  uint64_t writes_ = 0;
};

}  // namespace parley

#endif  // PARLEY_SERVER_LEVELDB_STORE_H_
