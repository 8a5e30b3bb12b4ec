#include "fakes/mem_store.h"

#include <cstdint>

#include "core/keys.h"
#include "gtest/gtest.h"

namespace parley {
namespace {

TEST(MemStoreTest, GetAndScanInKeyOrder) {
  MemStore store;
  WriteBatch batch;
  batch.Put("a/2", "two");
  batch.Put("a/1", "one");
  batch.Put("b/1", "other");
  ASSERT_TRUE(store.Write(batch).ok());

  std::string value;
  ASSERT_TRUE(store.Get("a/1", &value).ok());
  EXPECT_EQ(value, "one");
  EXPECT_TRUE(absl::IsNotFound(store.Get("a/3", &value)));

  std::vector<KeyValue> out;
  ASSERT_TRUE(store.Scan("a/", "", 10, &out).ok());
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].first, "a/1");
  EXPECT_EQ(out[1].first, "a/2");

  out.clear();
  ASSERT_TRUE(store.Scan("a/", "a/1", 10, &out).ok());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].first, "a/2");

  out.clear();
  ASSERT_TRUE(store.Scan("a/", "", 1, &out).ok());
  EXPECT_EQ(out.size(), 1u);
}

TEST(MemStoreTest, BatchIsAllOrNothingAcrossACrash) {
  MemStore store;
  WriteBatch first;
  first.Put("balance/alice", "100");
  first.Put("balance/bob", "0");
  ASSERT_TRUE(store.Write(first).ok());

  // A transfer whose batch is cut by a crash after two of its three writes.
  WriteBatch transfer;
  transfer.Put("balance/alice", "40");
  transfer.Delete("balance/bob");
  transfer.Put("balance/carol", "60");
  store.CrashDuringNextWrite(2);
  const absl::Status s = store.Write(transfer);
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;

  // Nothing of the cut batch is visible: the committed state is intact.
  std::string value;
  ASSERT_TRUE(store.Get("balance/alice", &value).ok());
  EXPECT_EQ(value, "100");
  ASSERT_TRUE(store.Get("balance/bob", &value).ok());
  EXPECT_EQ(value, "0");
  EXPECT_TRUE(absl::IsNotFound(store.Get("balance/carol", &value)));
  EXPECT_EQ(store.batches_committed(), 1u);

  // The same batch, written whole, is fully visible.
  ASSERT_TRUE(store.Write(transfer).ok());
  ASSERT_TRUE(store.Get("balance/carol", &value).ok());
  EXPECT_EQ(value, "60");
  EXPECT_TRUE(absl::IsNotFound(store.Get("balance/bob", &value)));
}

TEST(MemStoreTest, LoseLastBatchUndoesExactlyTheLastBatch) {
  MemStore store;
  WriteBatch a, b;
  a.Put("k", "1");
  b.Put("k", "2");
  b.Put("j", "x");
  ASSERT_TRUE(store.Write(a).ok());
  ASSERT_TRUE(store.Write(b).ok());
  ASSERT_TRUE(store.LoseLastBatch());
  std::string value;
  ASSERT_TRUE(store.Get("k", &value).ok());
  EXPECT_EQ(value, "1");
  EXPECT_TRUE(absl::IsNotFound(store.Get("j", &value)));
  EXPECT_FALSE(store.LoseLastBatch());  // only one batch is ever unsynced
}

TEST(MemStoreTest, FailedWritesChangeNothing) {
  MemStore store;
  store.FailWrites(absl::UnavailableError("disk gone"));
  WriteBatch batch;
  batch.Put("k", "v");
  EXPECT_FALSE(store.Write(batch).ok());
  EXPECT_EQ(store.size(), 0u);
  store.FailWrites(absl::OkStatus());
  EXPECT_TRUE(store.Write(batch).ok());
  EXPECT_EQ(store.size(), 1u);
}

TEST(MemStoreTest, PaddedIdsScanInIdOrder) {
  EXPECT_EQ(PadId(0), "00000000000000000000");
  EXPECT_EQ(PadId(42), "00000000000000000042");
  EXPECT_EQ(PadId(UINT64_MAX), "18446744073709551615");
  MemStore store;
  WriteBatch batch;
  for (uint64_t id : {UINT64_MAX, uint64_t{10}, uint64_t{9}, uint64_t{100}}) {
    batch.Put("m/" + PadId(id), "");
  }
  ASSERT_TRUE(store.Write(batch).ok());
  std::vector<KeyValue> out;
  ASSERT_TRUE(store.Scan("m/", "", 10, &out).ok());
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(LastIdOf(out[0].first), 9u);
  EXPECT_EQ(LastIdOf(out[1].first), 10u);
  EXPECT_EQ(LastIdOf(out[2].first), 100u);
  EXPECT_EQ(LastIdOf(out[3].first), UINT64_MAX);
}

// Only Get, Scan and Write: ScanBefore is OrderedStore's default.
class ScanOnlyStore : public OrderedStore {
 public:
  explicit ScanOnlyStore(const OrderedStore* inner) : inner_(inner) {}
  absl::Status Get(absl::string_view key, std::string* value) const override {
    return inner_->Get(key, value);
  }
  absl::Status Scan(absl::string_view prefix, absl::string_view start_after, size_t limit,
                    std::vector<KeyValue>* out) const override {
    return inner_->Scan(prefix, start_after, limit, out);
  }
  absl::Status Write(const WriteBatch& batch) override {  // the tests write to the inner store
    return absl::FailedPreconditionError("ScanOnlyStore is a read-only view");
  }

 private:
  const OrderedStore* inner_;
};

std::vector<std::string> Keys(const std::vector<KeyValue>& rows) {
  std::vector<std::string> keys;
  for (const KeyValue& row : rows) keys.push_back(row.first);
  return keys;
}

TEST(MemStoreTest, ScanBeforeStopsAtTheFirstKeyNotBeforeTheEnd) {
  MemStore store;
  WriteBatch batch;
  for (uint64_t t : {5, 7, 7, 9, 12, 30}) batch.Put("t/" + PadId(t) + "/x" + std::to_string(t), "");
  batch.Put("t/" + PadId(7) + "/y", "");
  batch.Put("u/" + PadId(1), "");
  ASSERT_TRUE(store.Write(batch).ok());

  // Everything at or before t=9: the end is the first key of t=10.
  std::vector<KeyValue> out;
  ASSERT_TRUE(store.ScanBefore("t/", "", "t/" + PadId(10), 100, &out).ok());
  EXPECT_EQ(Keys(out), (std::vector<std::string>{"t/" + PadId(5) + "/x5", "t/" + PadId(7) + "/x7",
                                                 "t/" + PadId(7) + "/y", "t/" + PadId(9) + "/x9"}));
  // The limit counts only what is returned.
  out.clear();
  ASSERT_TRUE(store.ScanBefore("t/", "", "t/" + PadId(10), 2, &out).ok());
  EXPECT_EQ(out.size(), 2u);
  // From after a key.
  out.clear();
  ASSERT_TRUE(store.ScanBefore("t/", "t/" + PadId(7) + "/x7", "t/" + PadId(10), 100, &out).ok());
  EXPECT_EQ(Keys(out), (std::vector<std::string>{"t/" + PadId(7) + "/y", "t/" + PadId(9) + "/x9"}));
  // An end before every key of the prefix, or at its first: nothing.
  out.clear();
  ASSERT_TRUE(store.ScanBefore("t/", "", "t/", 100, &out).ok());
  ASSERT_TRUE(store.ScanBefore("t/", "", "t/" + PadId(5) + "/x5", 100, &out).ok());
  EXPECT_TRUE(out.empty());
  // An end past the prefix: the prefix still bounds the scan.
  ASSERT_TRUE(store.ScanBefore("t/", "", "z", 100, &out).ok());
  EXPECT_EQ(out.size(), 6u);
  // It appends.
  ASSERT_TRUE(store.ScanBefore("u/", "", "z", 100, &out).ok());
  EXPECT_EQ(out.size(), 7u);
  EXPECT_EQ(out.back().first, "u/" + PadId(1));
}

TEST(MemStoreTest, ScanBeforeIsTheDefaultsFilteredScan) {
  MemStore store;
  WriteBatch batch;
  for (int i = 0; i < 40; i += 3) batch.Put("k/" + PadId(i), std::to_string(i));
  batch.Put("j/1", "");
  batch.Put("l/1", "");
  ASSERT_TRUE(store.Write(batch).ok());
  ScanOnlyStore by_default(&store);
  for (int start : {-1, 0, 4, 9, 39}) {
    const std::string start_after = start < 0 ? "" : "k/" + PadId(start);
    for (int end = 0; end <= 42; ++end) {
      for (size_t limit : {size_t{0}, size_t{1}, size_t{3}, size_t{100}}) {
        std::vector<KeyValue> mine, theirs;
        ASSERT_TRUE(store.ScanBefore("k/", start_after, "k/" + PadId(end), limit, &mine).ok());
        ASSERT_TRUE(
            by_default.ScanBefore("k/", start_after, "k/" + PadId(end), limit, &theirs).ok());
        EXPECT_EQ(mine, theirs) << start << " " << end << " " << limit;
        // At most `limit`, and what Scan would give up to the end.
        std::vector<KeyValue> all;
        ASSERT_TRUE(store.Scan("k/", start_after, SIZE_MAX, &all).ok());
        size_t want = 0;
        while (want < all.size() && want < limit && all[want].first < "k/" + PadId(end)) ++want;
        EXPECT_EQ(mine.size(), want) << start << " " << end << " " << limit;
      }
    }
  }
}

// MemStore's Last seeks; OrderedStore's default scans: the same answers.
TEST(MemStoreTest, LastIsTheDefaultsLastRow) {
  MemStore store;
  WriteBatch batch;
  for (int i = 0; i < 40; i += 3) batch.Put("k/" + PadId(i), std::to_string(i));
  for (const char* k : {"j/1", "k", "k0", "l/1"}) batch.Put(k, k);
  batch.Put(std::string("k/\xff", 3), "high");
  ASSERT_TRUE(store.Write(batch).ok());
  ScanOnlyStore by_default(&store);
  for (const std::string& prefix : std::vector<std::string>{"", "j", "j/", "k", "k/", "k/00", "k/" + PadId(39), "k0", "l/",
                                   "m/", std::string("k/\xff", 3), std::string("\xff", 1)}) {
    KeyValue mine, theirs;
    absl::Status a = store.Last(prefix, &mine), b = by_default.Last(prefix, &theirs);
    ASSERT_EQ(a.code(), b.code()) << prefix;
    if (a.ok()) EXPECT_EQ(mine, theirs) << prefix;
  }
  KeyValue last;
  ASSERT_TRUE(store.Last("k/0", &last).ok());
  EXPECT_EQ(last.first, "k/" + PadId(39));
  EXPECT_TRUE(absl::IsNotFound(store.Last("m/", &last)));
}

TEST(MemStoreTest, AnOverwriteAndADeleteInOneBatchAreUndoneByACrash) {
  MemStore store;
  WriteBatch first;
  first.Put("k", "old");
  first.Put("gone", "here");
  ASSERT_TRUE(store.Write(first).ok());
  WriteBatch second;
  second.Put("k", "new");
  second.Delete("gone");
  second.Put("k", "newer");
  second.Put("fresh", "x");
  store.CrashDuringNextWrite(3);
  EXPECT_FALSE(store.Write(second).ok());
  std::string value;
  ASSERT_TRUE(store.Get("k", &value).ok());
  EXPECT_EQ(value, "old");
  ASSERT_TRUE(store.Get("gone", &value).ok());
  EXPECT_EQ(value, "here");
  EXPECT_EQ(store.size(), 2u);
  ASSERT_TRUE(store.Write(second).ok());
  ASSERT_TRUE(store.Get("k", &value).ok());
  EXPECT_EQ(value, "newer");
  EXPECT_TRUE(absl::IsNotFound(store.Get("gone", &value)));
  ASSERT_TRUE(store.LoseLastBatch());
  ASSERT_TRUE(store.Get("k", &value).ok());
  EXPECT_EQ(value, "old");
  ASSERT_TRUE(store.Get("gone", &value).ok());
  EXPECT_EQ(value, "here");
  EXPECT_TRUE(absl::IsNotFound(store.Get("fresh", &value)));
}

}  // namespace
}  // namespace parley
