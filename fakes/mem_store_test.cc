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
