#include "server/leveldb_store.h"

#include <fcntl.h>
#include <leveldb/cache.h>
#include <leveldb/db.h>
#include <leveldb/env.h>
#include <leveldb/filter_policy.h>
#include <leveldb/write_batch.h>

#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/descriptors.h"

namespace parley {
namespace {

absl::Status FromLevelDb(const leveldb::Status& s, absl::string_view what) {
  if (s.ok()) return absl::OkStatus();
  if (s.IsNotFound()) return absl::NotFoundError(absl::StrCat(what, ": ", s.ToString()));
  if (s.IsCorruption()) return absl::DataLossError(absl::StrCat(what, ": ", s.ToString()));
  return absl::UnavailableError(absl::StrCat(what, ": ", s.ToString()));
}

leveldb::Slice ToSlice(absl::string_view s) { return leveldb::Slice(s.data(), s.size()); }

// The count of synced batches, written into every batch (so the database
// knows the last one it holds) and, after the batch is on disk, into the mark
// file beside it (so a log that lost batches is caught at open).
constexpr char kSyncedKey[] = "\xff\xffparley/synced_batches";
constexpr char kMarkFile[] = "PARLEY-SYNCED";
constexpr uint64_t kMarkCheck = 0x5061726c65795359ull;  // "ParleySY"
constexpr size_t kMarkBytes = 38;  // "%020" PRIu64 " %016" PRIx64 "\n"

std::string MarkText(uint64_t n) {
  char buf[kMarkBytes + 1];
  snprintf(buf, sizeof(buf), "%020" PRIu64 " %016" PRIx64 "\n", n, n ^ kMarkCheck);
  return std::string(buf, kMarkBytes);
}

bool ParseMark(const std::string& text, uint64_t* n) {
  if (text.size() != kMarkBytes || text[20] != ' ' || text[kMarkBytes - 1] != '\n') return false;
  uint64_t check = 0;
  if (!absl::SimpleAtoi(text.substr(0, 20), n)) return false;
  if (!absl::SimpleHexAtoi(text.substr(21, 16), &check)) return false;
  return check == (*n ^ kMarkCheck);
}

// The database's write-ahead logs (what a torn or truncated tail would lose),
// with their sizes, for an error that names the files.
std::string LogFiles(const std::string& path) {
  std::vector<std::string> logs;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(path, ec)) {
    if (entry.path().extension() != ".log") continue;
    logs.push_back(absl::StrCat(entry.path().string(), " (",
                                std::filesystem::file_size(entry.path(), ec), " bytes)"));
  }
  std::sort(logs.begin(), logs.end());
  return logs.empty() ? std::string("no log file") : absl::StrJoin(logs, ", ");
}

// One block cache for every store of the process (parleyd hosts a dozen
// nodes: a cache each was most of its memory), and one Bloom filter policy
// (stateless). Never freed: stores may be opened until the process ends.
leveldb::Cache* SharedBlockCache() {
  static leveldb::Cache* cache = leveldb::NewLRUCache(LevelDbStore::kBlockCacheBytes);
  return cache;
}
const leveldb::FilterPolicy* SharedFilterPolicy() {
  static const leveldb::FilterPolicy* policy = leveldb::NewBloomFilterPolicy(10);
  return policy;
}

// A table file read with pread(2). LevelDB's default environment maps up to
// 1,000 table files into the process; every page a read or a compaction
// touches then counts in the process's RSS until the table is closed, and
// at peak that was half of parleyd's (docs/scaling.md, "Memory"). Those were
// clean file pages, reclaimable either way: with pread they are the kernel's
// page cache and no longer counted as ours. What moves onto our heap: blocks
// stored uncompressed now enter the shared block cache (a mapped block was
// used in place), and each open table's filter block is read into memory.
class PreadFile final : public leveldb::RandomAccessFile {
 public:
  PreadFile(std::string name, int fd) : name_(std::move(name)), fd_(fd) {}
  ~PreadFile() override { ::close(fd_); }

  leveldb::Status Read(uint64_t offset, size_t n, leveldb::Slice* result,
                       char* scratch) const override {
    size_t got = 0;
    while (got < n) {
      const ssize_t r = ::pread(fd_, scratch + got, n - got, static_cast<off_t>(offset + got));
      if (r < 0) {
        if (errno == EINTR) continue;
        *result = leveldb::Slice(scratch, 0);
        return leveldb::Status::IOError(name_, std::strerror(errno));
      }
      if (r == 0) break;  // end of file: a short read, as LevelDB expects
      got += static_cast<size_t>(r);
    }
    *result = leveldb::Slice(scratch, got);
    return leveldb::Status::OK();
  }

 private:
  const std::string name_;
  const int fd_;
};

// The default environment but for how table files are read.
class PreadEnv final : public leveldb::EnvWrapper {
 public:
  PreadEnv() : leveldb::EnvWrapper(leveldb::Env::Default()) {}
  leveldb::Status NewRandomAccessFile(const std::string& name,
                                      leveldb::RandomAccessFile** result) override {
    const int fd = ::open(name.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      *result = nullptr;
      const int err = errno;
      return err == ENOENT ? leveldb::Status::NotFound(name, std::strerror(err))
                           : leveldb::Status::IOError(name, std::strerror(err));
    }
    *result = new PreadFile(name, fd);
    return leveldb::Status::OK();
  }
};

leveldb::Env* SharedPreadEnv() {
  static PreadEnv* env = new PreadEnv();  // never freed, like Env::Default()
  return env;
}

constexpr char kRecovery[] =
    "; parleyd refuses to serve a store that lost acknowledged writes (see docs/operations.md, "
    "\"A store refused at start\")";

}  // namespace

absl::StatusOr<std::unique_ptr<LevelDbStore>> LevelDbStore::Open(const std::string& path) {
  auto store = std::unique_ptr<LevelDbStore>(new LevelDbStore());
  leveldb::Options options;
  options.create_if_missing = true;
  // A checksum mismatch in a log or table fails the open (or the read)
  // instead of dropping the damaged records.
  options.paranoid_checks = true;
  // Bloom filters: most point reads on the hot path are misses (a send's
  // idempotency key is new), which without filters probe every level.
  options.filter_policy = SharedFilterPolicy();
  options.block_cache = SharedBlockCache();
  options.write_buffer_size = kWriteBufferBytes;
  options.env = SharedPreadEnv();
  // Each open table holds a descriptor now (a mapped one did not): the
  // store reserves its own (and its mark file's), or, where the hard limit
  // leaves no room, keeps as few tables open as LevelDB allows.
  options.max_open_files =
      ReserveDescriptors(kMaxOpenFiles + 1) ? kMaxOpenFiles : kMinOpenFiles;
  // Named before the open: recovery replays the logs into a table and
  // deletes them.
  const std::string logs = LogFiles(path);
  const std::string mark_path = path + "/" + kMarkFile;
  leveldb::Status s = leveldb::DB::Open(options, path, &store->db_);
  if (!s.ok()) {
    const absl::Status st = FromLevelDb(s, absl::StrCat("opening ", path));
    return absl::Status(st.code(), absl::StrCat(st.message(), "; its logs: ", logs, kRecovery));
  }
  // The last synced batch the database holds, against the mark.
  uint64_t held = 0;
  std::string value;
  s = store->db_->Get(leveldb::ReadOptions(), kSyncedKey, &value);
  if (s.ok()) {
    if (!absl::SimpleAtoi(value, &held)) {
      return absl::DataLossError(absl::StrCat(path, ": damaged batch count '", value, "'", kRecovery));
    }
  } else if (!s.IsNotFound()) {
    return FromLevelDb(s, absl::StrCat("reading ", path));
  }
  std::error_code ec;
  if (std::filesystem::exists(mark_path, ec)) {
    std::ifstream in(mark_path, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    uint64_t marked = 0;
    if (!ParseMark(text.str(), &marked)) {
      return absl::DataLossError(absl::StrCat(mark_path, " is damaged (", text.str().size(),
                                              " bytes, not a batch count)", kRecovery));
    }
    if (marked > held) {
      return absl::DataLossError(absl::StrCat(
          "the LevelDB log of ", path, " lost acknowledged writes: ", logs, " held ", held,
          " synced write batches, but ", marked, " were synced and acknowledged (", mark_path,
          "): the log was truncated or damaged", kRecovery));
    }
  }
  // The mark starts from what the database holds (a new store, or one from
  // before the mark: nothing to compare yet), written durably once.
  store->synced_ = held;
  store->mark_fd_ = open(mark_path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (store->mark_fd_ < 0) {
    return absl::UnavailableError(absl::StrCat("cannot open ", mark_path, ": ", strerror(errno)));
  }
  const std::string mark = MarkText(held);
  if (pwrite(store->mark_fd_, mark.data(), mark.size(), 0) != static_cast<ssize_t>(mark.size()) ||
      ftruncate(store->mark_fd_, static_cast<off_t>(mark.size())) != 0 ||
      fsync(store->mark_fd_) != 0) {
    return absl::UnavailableError(absl::StrCat("cannot write ", mark_path, ": ", strerror(errno)));
  }
  return store;
}

LevelDbStore::~LevelDbStore() {
  delete db_;
  if (mark_fd_ >= 0) close(mark_fd_);
}


absl::Status LevelDbStore::Get(absl::string_view key, std::string* value) const {
  if (key == kSyncedKey) return absl::NotFoundError(absl::StrCat("no key ", key));
  leveldb::Status s = db_->Get(leveldb::ReadOptions(), ToSlice(key), value);
  if (s.IsNotFound()) return absl::NotFoundError(absl::StrCat("no key ", key));
  return FromLevelDb(s, "get");
}

absl::Status LevelDbStore::Scan(absl::string_view prefix, absl::string_view start_after,
                                size_t limit, std::vector<KeyValue>* out) const {
  return ScanRange(prefix, start_after, std::nullopt, limit, out);
}

absl::Status LevelDbStore::ScanBefore(absl::string_view prefix, absl::string_view start_after,
                                      absl::string_view end_before, size_t limit,
                                      std::vector<KeyValue>* out) const {
  return ScanRange(prefix, start_after, end_before, limit, out);
}

absl::Status LevelDbStore::ScanRange(absl::string_view prefix, absl::string_view start_after,
                                     std::optional<absl::string_view> end_before, size_t limit,
                                     std::vector<KeyValue>* out) const {
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
    if (end_before.has_value() && key >= *end_before) break;
    if (key == kSyncedKey) {  // the store's own, not the caller's
      --n;
      continue;
    }
    out->emplace_back(std::string(key), it->value().ToString());
  }
  return FromLevelDb(it->status(), "scan");
}

absl::Status LevelDbStore::Last(absl::string_view prefix, KeyValue* out) const {
  std::unique_ptr<leveldb::Iterator> it(db_->NewIterator(leveldb::ReadOptions()));
  const std::string end = PrefixEnd(prefix);
  if (end.empty()) {
    it->SeekToLast();
  } else {
    it->Seek(end);
    if (it->Valid()) {
      it->Prev();
    } else if (it->status().ok()) {
      it->SeekToLast();
    }
  }
  // The store's own key sorts last; step over it.
  if (it->Valid() && it->key() == leveldb::Slice(kSyncedKey)) it->Prev();
  if (!it->status().ok()) return FromLevelDb(it->status(), "last");
  if (!it->Valid() || !it->key().starts_with(ToSlice(prefix))) {
    return absl::NotFoundError(absl::StrCat("no key under ", prefix));
  }
  out->first = it->key().ToString();
  out->second = it->value().ToString();
  return absl::OkStatus();
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
  // One writer at a time: the count in the database and the mark go up
  // together (the mark never passes what the log holds).
  std::lock_guard<std::mutex> lock(mu_);
  const uint64_t n = synced_ + 1;
  b.Put(kSyncedKey, absl::StrCat(n));
  ++writes_;
  absl::Status s = FromLevelDb(db_->Write(options, &b), "write");
  if (!s.ok()) return s;
  synced_ = n;
  // Not synced itself: after a crash of the machine the mark may be older
  // than the log (no false alarm), never newer; a process crash keeps it.
  const std::string mark = MarkText(n);
  if (pwrite(mark_fd_, mark.data(), mark.size(), 0) != static_cast<ssize_t>(mark.size())) {
    return absl::UnavailableError(absl::StrCat("cannot update the batch mark: ", strerror(errno)));
  }
  return s;
}

}  // namespace parley
