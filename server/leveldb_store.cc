#include "server/leveldb_store.h"

#include <leveldb/cache.h>
#include <leveldb/db.h>
#include <leveldb/filter_policy.h>
#include <leveldb/write_batch.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace parley {
namespace {

absl::Status FromLevelDb(const leveldb::Status& s, absl::string_view what) {
  if (s.ok()) return absl::OkStatus();
  if (s.IsNotFound()) return absl::NotFoundError(absl::StrCat(what, ": ", s.ToString()));
  if (s.IsCorruption()) return absl::DataLossError(absl::StrCat(what, ": ", s.ToString()));
  return absl::UnavailableError(absl::StrCat(what, ": ", s.ToString()));
}

leveldb::Slice ToSlice(absl::string_view s) { return leveldb::Slice(s.data(), s.size()); }

}  // namespace

absl::StatusOr<std::unique_ptr<LevelDbStore>> LevelDbStore::Open(const std::string& path) {
  auto store = std::unique_ptr<LevelDbStore>(new LevelDbStore());
  // Bloom filters: most point reads on the hot path are misses (a send's
  // idempotency key is new), which without filters probe every level.
  store->filter_.reset(leveldb::NewBloomFilterPolicy(10));
  store->cache_.reset(leveldb::NewLRUCache(32 << 20));
  leveldb::Options options;
  options.create_if_missing = true;
  options.paranoid_checks = true;
  options.filter_policy = store->filter_.get();
  options.block_cache = store->cache_.get();
  options.write_buffer_size = 16 << 20;
  leveldb::Status s = leveldb::DB::Open(options, path, &store->db_);
  if (!s.ok()) return FromLevelDb(s, absl::StrCat("opening ", path));
  return store;
}

LevelDbStore::~LevelDbStore() { delete db_; }

absl::Status LevelDbStore::Get(absl::string_view key, std::string* value) const {
  leveldb::Status s = db_->Get(leveldb::ReadOptions(), ToSlice(key), value);
  if (s.IsNotFound()) return absl::NotFoundError(absl::StrCat("no key ", key));
  return FromLevelDb(s, "get");
}

absl::Status LevelDbStore::Scan(absl::string_view prefix, absl::string_view start_after,
                                size_t limit, std::vector<KeyValue>* out) const {
  std::unique_ptr<leveldb::Iterator> it(db_->NewIterator(leveldb::ReadOptions()));
  if (start_after.empty() || start_after < prefix) {
    it->Seek(ToSlice(prefix));
  } else {
    it->Seek(ToSlice(start_after));
    if (it->Valid() && it->key() == ToSlice(start_after)) it->Next();
  }
  for (size_t n = 0; it->Valid() && n < limit; it->Next(), ++n) {
    const absl::string_view key(it->key().data(), it->key().size());
    if (!absl::StartsWith(key, prefix)) break;
    out->emplace_back(std::string(key), it->value().ToString());
  }
  return FromLevelDb(it->status(), "scan");
}

absl::Status LevelDbStore::Write(const WriteBatch& batch) {
  leveldb::WriteBatch b;
  for (const WriteBatch::Op& op : batch.ops()) {
    if (op.kind == WriteBatch::Op::kPut) {
      b.Put(op.key, op.value);
    } else {
      b.Delete(op.key);
    }
  }
  leveldb::WriteOptions options;
  options.sync = true;  // what is acknowledged is on disk
  ++writes_;
  return FromLevelDb(db_->Write(options, &b), "write");
}

}  // namespace parley
