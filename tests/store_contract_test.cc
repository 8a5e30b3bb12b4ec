// The OrderedStore contract, held by every implementation: the in-memory fake
// the simulator uses and the LevelDB store the server uses (real files).
#include <sys/resource.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "fakes/mem_store.h"
#include "gtest/gtest.h"
#include "server/group_commit_store.h"
#include "server/leveldb_store.h"

namespace parley {
namespace {

// Group commit over LevelDB, committing after every other batch, so reads
// mix the overlay with what is already on disk.
class CommitEveryOther : public GroupCommitStore {
 public:
  using GroupCommitStore::GroupCommitStore;
  absl::Status Write(const WriteBatch& batch) override {
    absl::Status s = GroupCommitStore::Write(batch);
    if (s.ok() && ++writes_ % 2 == 0) s = Commit();
    return s;
  }

 private:
  int writes_ = 0;
};

std::unique_ptr<OrderedStore> OpenLevelDb(const std::string& dir) {
  auto s = LevelDbStore::Open(dir);
  return s.ok() ? std::move(*s) : nullptr;
}

struct Impl {
  const char* name;
  std::function<std::unique_ptr<OrderedStore>(const std::string& dir)> open;
};

// "key=value " for each row, in order.
std::string Joined(const std::vector<KeyValue>& rows) {
  std::string joined;
  for (const KeyValue& kv : rows) joined += kv.first + "=" + kv.second + " ";
  return joined;
}

class StoreContractTest : public ::testing::TestWithParam<Impl> {
 protected:
  void SetUp() override {
    dir_ = std::string(std::getenv("TEST_TMPDIR")) + "/" + GetParam().name;
    std::filesystem::remove_all(dir_);
    store_ = GetParam().open(dir_);
    ASSERT_NE(store_, nullptr);
  }
  void Put(std::initializer_list<std::pair<std::string, std::string>> kvs) {
    WriteBatch b;
    for (const auto& [k, v] : kvs) b.Put(k, v);
    ASSERT_TRUE(store_->Write(b).ok());
  }
  std::vector<std::string> Keys(const std::string& prefix, const std::string& after, size_t limit) {
    std::vector<KeyValue> out;
    EXPECT_TRUE(store_->Scan(prefix, after, limit, &out).ok());
    std::vector<std::string> keys;
    for (const KeyValue& kv : out) keys.push_back(kv.first);
    return keys;
  }

  std::string dir_;
  std::unique_ptr<OrderedStore> store_;
};

TEST_P(StoreContractTest, GetPutDelete) {
  std::string value;
  EXPECT_TRUE(absl::IsNotFound(store_->Get("k", &value)));
  Put({{"k", "v"}});
  ASSERT_TRUE(store_->Get("k", &value).ok());
  EXPECT_EQ(value, "v");
  WriteBatch del;
  del.Delete("k");
  del.Delete("never-there");
  ASSERT_TRUE(store_->Write(del).ok());
  EXPECT_TRUE(absl::IsNotFound(store_->Get("k", &value)));
}

TEST_P(StoreContractTest, ScanIsOrderedBoundedAndPrefixed) {
  Put({{"a/3", "3"}, {"a/1", "1"}, {"a/2", "2"}, {"b/1", "x"}, {"a", "bare"}});
  EXPECT_EQ(Keys("a/", "", 10), (std::vector<std::string>{"a/1", "a/2", "a/3"}));
  EXPECT_EQ(Keys("a/", "", 2), (std::vector<std::string>{"a/1", "a/2"}));
  EXPECT_EQ(Keys("a/", "a/1", 10), (std::vector<std::string>{"a/2", "a/3"}));
  EXPECT_EQ(Keys("a/", "a/3", 10), std::vector<std::string>{});
  EXPECT_EQ(Keys("c/", "", 10), std::vector<std::string>{});
}

// ScanBefore: Scan's rules, and nothing at or past `end_before`.
TEST_P(StoreContractTest, ScanBeforeStopsAtItsEnd) {
  Put({{"t/1", "1"}, {"t/2", "2"}, {"t/3", "3"}, {"t/4", "4"}, {"u/0", "x"}});
  auto keys = [&](const std::string& after, const std::string& end, size_t limit) {
    std::vector<KeyValue> out;
    EXPECT_TRUE(store_->ScanBefore("t/", after, end, limit, &out).ok());
    return Joined(out);
  };
  EXPECT_EQ(keys("", "t/3", 10), "t/1=1 t/2=2 ");
  EXPECT_EQ(keys("", "t/3", 1), "t/1=1 ");
  EXPECT_EQ(keys("t/1", "t/4", 10), "t/2=2 t/3=3 ");
  EXPECT_EQ(keys("", "t/1", 10), "");
  EXPECT_EQ(keys("", "z", 10), "t/1=1 t/2=2 t/3=3 t/4=4 ");  // the prefix still bounds it
  EXPECT_EQ(keys("t/4", "z", 10), "");
  EXPECT_EQ(keys("", "t/25", 0), "");
  // Later writes and deletes are seen like Scan sees them.
  WriteBatch b;
  b.Delete("t/2");
  b.Put("t/25", "25");
  b.Put("t/0", "0");
  ASSERT_TRUE(store_->Write(b).ok());
  EXPECT_EQ(keys("", "t/3", 10), "t/0=0 t/1=1 t/25=25 ");
  EXPECT_EQ(keys("t/0", "t/3", 2), "t/1=1 t/25=25 ");
}

// Last: the greatest key under the prefix, whatever sorts after the prefix,
// and NotFound for an empty range.
TEST_P(StoreContractTest, LastIsTheGreatestKeyUnderThePrefix) {
  auto last = [&](const std::string& prefix) {
    KeyValue kv;
    absl::Status s = store_->Last(prefix, &kv);
    if (absl::IsNotFound(s)) return std::string("none");
    EXPECT_TRUE(s.ok()) << s;
    return kv.first + "=" + kv.second;
  };
  EXPECT_EQ(last("m/"), "none");
  EXPECT_EQ(last(""), "none");  // the LevelDB store's own key is not the caller's
  Put({{"m/a/1", "1"}, {"m/a/3", "3"}, {"m/a/2", "2"}, {"m/a", "bare"}, {"m/ab/9", "other"},
       {"m/b/1", "x"}, {"l/9", "before"}});
  EXPECT_EQ(last("m/a/"), "m/a/3=3");
  EXPECT_EQ(last("m/ab/"), "m/ab/9=other");
  EXPECT_EQ(last("m/"), "m/b/1=x");
  EXPECT_EQ(last("l/"), "l/9=before");
  EXPECT_EQ(last("m/c/"), "none");
  EXPECT_EQ(last("k/"), "none");
  EXPECT_EQ(last(""), "m/b/1=x");
  // Keys of 0xff bytes: the range has no end key to seek to.
  const std::string high("\xff\xff", 2);
  Put({{high, "top"}, {high + "z", "higher"}});
  EXPECT_EQ(last(high), high + "z=higher");
  EXPECT_EQ(last(std::string("\xff", 1)), high + "z=higher");
  EXPECT_EQ(last("m/"), "m/b/1=x");
  // Later writes and deletes are seen.
  WriteBatch b;
  b.Delete("m/a/3");
  b.Put("m/a/0", "0");
  ASSERT_TRUE(store_->Write(b).ok());
  EXPECT_EQ(last("m/a/"), "m/a/2=2");
  WriteBatch c;
  for (const char* k : {"m/a/0", "m/a/1", "m/a/2"}) c.Delete(k);
  ASSERT_TRUE(store_->Write(c).ok());
  EXPECT_EQ(last("m/a/"), "none");
  EXPECT_EQ(PrefixEnd("m/a/"), "m/a0");
  EXPECT_EQ(PrefixEnd(std::string("a\xff\xff", 3)), "b");
  EXPECT_EQ(PrefixEnd(high), "");
}

TEST_P(StoreContractTest, LaterOperationsInABatchWin) {
  WriteBatch b;
  b.Put("k", "1");
  b.Put("k", "2");
  b.Put("gone", "x");
  b.Delete("gone");
  ASSERT_TRUE(store_->Write(b).ok());
  std::string value;
  ASSERT_TRUE(store_->Get("k", &value).ok());
  EXPECT_EQ(value, "2");
  EXPECT_TRUE(absl::IsNotFound(store_->Get("gone", &value)));
}

TEST_P(StoreContractTest, BinaryKeysAndValues) {
  const std::string key("k\0\xff", 3), val("\0\x01\x02", 3);
  WriteBatch b;
  b.Put(key, val);
  ASSERT_TRUE(store_->Write(b).ok());
  std::string value;
  ASSERT_TRUE(store_->Get(key, &value).ok());
  EXPECT_EQ(value, val);
}

INSTANTIATE_TEST_SUITE_P(
    Stores, StoreContractTest,
    ::testing::Values(
        Impl{"mem", [](const std::string&) { return std::make_unique<MemStore>(); }},
        Impl{"leveldb", OpenLevelDb},
        Impl{"group_commit_pending",  // never committed: all in the overlay
             [](const std::string& dir) -> std::unique_ptr<OrderedStore> {
               return std::make_unique<GroupCommitStore>(OpenLevelDb(dir));
             }},
        Impl{"group_commit_mixed",
             [](const std::string& dir) -> std::unique_ptr<OrderedStore> {
               return std::make_unique<CommitEveryOther>(OpenLevelDb(dir));
             }}),
    [](const ::testing::TestParamInfo<Impl>& info) { return std::string(info.param.name); });

TEST(LevelDbStoreTest, CommittedBatchesSurviveReopening) {
  const std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/reopen";
  std::filesystem::remove_all(dir);
  {
    auto store = LevelDbStore::Open(dir);
    ASSERT_TRUE(store.ok()) << store.status();
    WriteBatch b;
    b.Put("msg/1", "hello");
    b.Put("meta", "1");
    ASSERT_TRUE((*store)->Write(b).ok());
  }
  auto store = LevelDbStore::Open(dir);
  ASSERT_TRUE(store.ok()) << store.status();
  std::string value;
  ASSERT_TRUE((*store)->Get("msg/1", &value).ok());
  EXPECT_EQ(value, "hello");
}

// Table files are read with pread, not mapped into the process: mapped
// tables counted in parleyd's RSS every page a read or a compaction touched
// (docs/scaling.md, "Memory"). Data past two write buffers is in tables,
// read back whole after reopening, and no .ldb file is mapped meanwhile.
TEST(LevelDbStoreTest, TablesAreReadBackWithoutMappingThem) {
  const std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/tables";
  std::filesystem::remove_all(dir);
  const int kRows = 3 * static_cast<int>(LevelDbStore::kWriteBufferBytes / 4096);
  auto value_of = [](int i) { return std::string(4096, static_cast<char>('a' + i % 26)) + std::to_string(i); };
  auto key_of = [](int i) {
    char key[16];
    std::snprintf(key, sizeof(key), "row/%06d", i);
    return std::string(key);
  };
  {
    auto store = LevelDbStore::Open(dir);
    ASSERT_TRUE(store.ok()) << store.status();
    for (int i = 0; i < kRows; ++i) {
      WriteBatch b;
      b.Put(key_of(i), value_of(i));
      ASSERT_TRUE((*store)->Write(b).ok());
    }
  }
  int tables = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() == ".ldb") ++tables;
  }
  ASSERT_GE(tables, 2) << "the rows should have been flushed into tables";
  auto store = LevelDbStore::Open(dir);
  ASSERT_TRUE(store.ok()) << store.status();
  for (int i = 0; i < kRows; i += 7) {
    std::string value;
    ASSERT_TRUE((*store)->Get(key_of(i), &value).ok()) << key_of(i);
    ASSERT_EQ(value, value_of(i)) << key_of(i);
  }
  std::vector<KeyValue> rows;
  ASSERT_TRUE((*store)->Scan("row/", "", SIZE_MAX, &rows).ok());
  ASSERT_EQ(rows.size(), static_cast<size_t>(kRows));
  for (int i = 0; i < kRows; ++i) {
    ASSERT_EQ(rows[i].first, key_of(i));
    ASSERT_EQ(rows[i].second, value_of(i));
  }
  KeyValue last;
  ASSERT_TRUE((*store)->Last("row/", &last).ok());
  EXPECT_EQ(last.first, key_of(kRows - 1));
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    EXPECT_EQ(line.find(".ldb"), std::string::npos) << "a table is mapped: " << line;
  }
}

// Each open table holds a descriptor, so a store raises the process's soft
// limit of open files by its own budget; where the hard limit leaves no room
// it still opens and serves (with fewer tables open).
TEST(LevelDbStoreTest, AStoreReservesItsDescriptors) {
  rlimit saved{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
  const rlim_t budget = LevelDbStore::kMaxOpenFiles + 1;
  if (saved.rlim_max != RLIM_INFINITY && saved.rlim_max < 512 + 2 * budget) {
    GTEST_SKIP() << "hard limit of open files too low to test: " << saved.rlim_max;
  }
  const std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/descriptors";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  rlimit low = saved;
  low.rlim_cur = 512;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
  {
    auto store = LevelDbStore::Open(dir + "/a");
    ASSERT_TRUE(store.ok()) << store.status();
    rlimit now{};
    ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &now), 0);
    EXPECT_EQ(now.rlim_cur, 512 + budget);
  }
  // No room left: the soft limit is the hard one already.
  if (saved.rlim_max != RLIM_INFINITY) {
    rlimit full = saved;
    full.rlim_cur = saved.rlim_max;
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &full), 0);
    auto store = LevelDbStore::Open(dir + "/b");
    ASSERT_TRUE(store.ok()) << store.status();
    WriteBatch b;
    b.Put("k", "v");
    ASSERT_TRUE((*store)->Write(b).ok());
    std::string value;
    ASSERT_TRUE((*store)->Get("k", &value).ok());
    EXPECT_EQ(value, "v");
    rlimit now{};
    ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &now), 0);
    EXPECT_EQ(now.rlim_cur, saved.rlim_max);
  }
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
}

TEST(LevelDbStoreTest, AnUnopenableDirectoryIsAClearError) {
  const std::string file = std::string(std::getenv("TEST_TMPDIR")) + "/not-a-dir";
  std::ofstream(file) << "x";
  auto store = LevelDbStore::Open(file + "/db");
  EXPECT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find("opening"), std::string::npos) << store.status();
}

// Group commit: writes are visible at once and durable only after Commit,
// which writes each key's last state in one batch.
TEST(GroupCommitStoreTest, WritesAreVisibleAtOnceAndDurableOnlyAfterCommit) {
  auto durable = std::make_unique<MemStore>();
  MemStore* disk = durable.get();
  GroupCommitStore store(std::move(durable));
  WriteBatch b1, b2;
  b1.Put("a", "1");
  b1.Put("b", "1");
  b2.Put("a", "2");
  b2.Delete("b");
  ASSERT_TRUE(store.Write(b1).ok());
  ASSERT_TRUE(store.Write(b2).ok());
  std::string value;
  ASSERT_TRUE(store.Get("a", &value).ok());
  EXPECT_EQ(value, "2");
  EXPECT_TRUE(absl::IsNotFound(store.Get("b", &value)));
  EXPECT_TRUE(store.dirty());
  EXPECT_TRUE(absl::IsNotFound(disk->Get("a", &value)));  // nothing on disk yet

  ASSERT_TRUE(store.Commit().ok());
  EXPECT_FALSE(store.dirty());
  EXPECT_EQ(store.batches(), 2u);
  EXPECT_EQ(store.commits(), 1u);
  ASSERT_TRUE(disk->Get("a", &value).ok());
  EXPECT_EQ(value, "2");
  EXPECT_TRUE(absl::IsNotFound(disk->Get("b", &value)));
}

TEST(GroupCommitStoreTest, ScanMergesPendingPutsAndDeletesWithTheDisk) {
  auto durable = std::make_unique<MemStore>();
  GroupCommitStore store(std::move(durable));
  WriteBatch on_disk;
  for (const char* k : {"a/1", "a/2", "a/3", "a/4", "a/5", "b/1"}) on_disk.Put(k, "disk");
  ASSERT_TRUE(store.Write(on_disk).ok());
  ASSERT_TRUE(store.Commit().ok());
  WriteBatch pending;
  pending.Delete("a/2");
  pending.Delete("a/3");
  pending.Put("a/25", "mem");
  pending.Put("a/4", "mem");
  pending.Put("a/0", "mem");
  ASSERT_TRUE(store.Write(pending).ok());
  auto scan = [&](const std::string& after, size_t limit) {
    std::vector<KeyValue> out;
    EXPECT_TRUE(store.Scan("a/", after, limit, &out).ok());
    return Joined(out);
  };
  EXPECT_EQ(scan("", 3), "a/0=mem a/1=disk a/25=mem ");
  EXPECT_EQ(scan("", 10), "a/0=mem a/1=disk a/25=mem a/4=mem a/5=disk ");
  // No limit: the pending deletes must not wrap the durable scan's limit.
  EXPECT_EQ(scan("", SIZE_MAX), "a/0=mem a/1=disk a/25=mem a/4=mem a/5=disk ");
  EXPECT_EQ(scan("a/1", 2), "a/25=mem a/4=mem ");
  EXPECT_EQ(scan("a/25", 10), "a/4=mem a/5=disk ");
  EXPECT_EQ(scan("a/5", 10), "");
  // Bounded: the disk's and the overlay's entries before the end, merged.
  auto before = [&](const std::string& after, const std::string& end, size_t limit) {
    std::vector<KeyValue> out;
    EXPECT_TRUE(store.ScanBefore("a/", after, end, limit, &out).ok());
    return Joined(out);
  };
  EXPECT_EQ(before("", "a/4", 10), "a/0=mem a/1=disk a/25=mem ");
  EXPECT_EQ(before("", "a/4", 2), "a/0=mem a/1=disk ");
  EXPECT_EQ(before("a/0", "a/5", 10), "a/1=disk a/25=mem a/4=mem ");
  EXPECT_EQ(before("", "a/0", 10), "");
  EXPECT_EQ(before("a/25", "a/9", 10), "a/4=mem a/5=disk ");
}

// Last over the overlay and the disk: a pending put above the disk's last, a
// pending delete of the disk's last (the one case that merges), deletes of
// pending entries only.
TEST(GroupCommitStoreTest, LastMergesPendingPutsAndDeletesWithTheDisk) {
  auto durable = std::make_unique<MemStore>();
  GroupCommitStore store(std::move(durable));
  auto last = [&](const std::string& prefix) {
    KeyValue kv;
    absl::Status s = store.Last(prefix, &kv);
    if (absl::IsNotFound(s)) return std::string("none");
    EXPECT_TRUE(s.ok()) << s;
    return kv.first + "=" + kv.second;
  };
  auto write = [&](std::initializer_list<std::pair<const char*, const char*>> ops) {
    WriteBatch b;
    for (const auto& [k, v] : ops) {
      if (v == nullptr) b.Delete(k);
      else b.Put(k, v);
    }
    ASSERT_TRUE(store.Write(b).ok());
  };
  write({{"a/1", "disk"}, {"a/2", "disk"}, {"a/3", "disk"}, {"b/1", "disk"}});
  ASSERT_TRUE(store.Commit().ok());
  EXPECT_EQ(last("a/"), "a/3=disk");
  write({{"a/4", "mem"}});
  EXPECT_EQ(last("a/"), "a/4=mem");
  write({{"a/4", nullptr}});
  EXPECT_EQ(last("a/"), "a/3=disk");  // a pending delete above the disk's last
  write({{"a/3", nullptr}});
  EXPECT_EQ(last("a/"), "a/2=disk");  // the disk's last, deleted: merged
  write({{"a/3", "mem"}});
  EXPECT_EQ(last("a/"), "a/3=mem");  // a pending put over the disk's last
  write({{"a/0", "mem"}, {"c/5", "mem"}});
  EXPECT_EQ(last("a/"), "a/3=mem");
  EXPECT_EQ(last("c/"), "c/5=mem");  // only pending
  write({{"c/5", nullptr}});
  EXPECT_EQ(last("c/"), "none");  // pending only, deleted
  write({{"a/1", nullptr}, {"a/2", nullptr}, {"a/3", nullptr}, {"a/0", nullptr}});
  EXPECT_EQ(last("a/"), "none");  // every disk entry deleted
  ASSERT_TRUE(store.Commit().ok());
  EXPECT_EQ(last("a/"), "none");
  EXPECT_EQ(last("b/"), "b/1=disk");
}

TEST(GroupCommitStoreTest, AFailedCommitKeepsThePendingWrites) {
  auto durable = std::make_unique<MemStore>();
  MemStore* disk = durable.get();
  GroupCommitStore store(std::move(durable));
  WriteBatch b;
  b.Put("k", "v");
  ASSERT_TRUE(store.Write(b).ok());
  disk->FailWrites(absl::UnavailableError("disk full"));
  EXPECT_FALSE(store.Commit().ok());
  EXPECT_TRUE(store.dirty());
  disk->FailWrites(absl::OkStatus());
  ASSERT_TRUE(store.Commit().ok());
  std::string value;
  ASSERT_TRUE(disk->Get("k", &value).ok());
}

}  // namespace
}  // namespace parley
