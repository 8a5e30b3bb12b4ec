#include "fakes/faulty_store.h"

#include <string>
#include <vector>

#include "fakes/mem_store.h"
#include "gtest/gtest.h"

namespace parley {
namespace {

WriteBatch OnePut(const std::string& key) {
  WriteBatch batch;
  batch.Put(key, "v");
  return batch;
}

TEST(FaultyStoreTest, NoFaultsPassesThrough) {
  MemStore mem;
  FaultyStore store(&mem, 1);
  ASSERT_TRUE(store.Write(OnePut("a/1")).ok());
  std::string value;
  ASSERT_TRUE(store.Get("a/1", &value).ok());
  EXPECT_EQ(value, "v");
  EXPECT_TRUE(absl::IsNotFound(store.Get("a/2", &value)));
  std::vector<KeyValue> rows;
  ASSERT_TRUE(store.Scan("a/", "", 10, &rows).ok());
  EXPECT_EQ(rows.size(), 1u);
  EXPECT_EQ(store.stats().failed_writes + store.stats().failed_reads, 0u);
  EXPECT_EQ(store.TakeStall(), absl::ZeroDuration());
}

TEST(FaultyStoreTest, AllWritesFailAndApplyNothing) {
  MemStore mem;
  FaultyStore store(&mem, 1);
  store.FailWrites(FaultyStore::kMillion);
  absl::Status s = store.Write(OnePut("a/1"));
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  EXPECT_NE(s.message().find("injected"), absl::string_view::npos);
  EXPECT_EQ(mem.size(), 0u);
  EXPECT_EQ(store.stats().failed_writes, 1u);
  store.Heal();
  EXPECT_TRUE(store.Write(OnePut("a/1")).ok());
  EXPECT_EQ(mem.size(), 1u);
}

TEST(FaultyStoreTest, FailedReadsReturnNothing) {
  MemStore mem;
  ASSERT_TRUE(mem.Write(OnePut("a/1")).ok());
  FaultyStore store(&mem, 1);
  store.FailReads(FaultyStore::kMillion);
  std::string value = "untouched";
  EXPECT_TRUE(absl::IsUnavailable(store.Get("a/1", &value)));
  EXPECT_EQ(value, "untouched");
  std::vector<KeyValue> rows;
  EXPECT_TRUE(absl::IsUnavailable(store.Scan("a/", "", 10, &rows)));
  EXPECT_TRUE(rows.empty());
  EXPECT_EQ(store.stats().failed_reads, 2u);
  EXPECT_EQ(store.stats().reads, 2u);
}

TEST(FaultyStoreTest, ProbabilityIsRoughlyHonouredAndDeterministic) {
  MemStore mem_a, mem_b;
  FaultyStore a(&mem_a, 42), b(&mem_b, 42);
  a.FailWrites(250000);  // 25%
  b.FailWrites(250000);
  std::vector<bool> outcomes_a, outcomes_b;
  for (int i = 0; i < 4000; ++i) {
    outcomes_a.push_back(a.Write(OnePut("k")).ok());
    outcomes_b.push_back(b.Write(OnePut("k")).ok());
  }
  EXPECT_EQ(outcomes_a, outcomes_b);  // same seed, same faults
  EXPECT_GT(a.stats().failed_writes, 800u);
  EXPECT_LT(a.stats().failed_writes, 1200u);
  FaultyStore c(&mem_a, 43);
  c.FailWrites(250000);
  std::vector<bool> outcomes_c;
  for (int i = 0; i < 4000; ++i) outcomes_c.push_back(c.Write(OnePut("k")).ok());
  EXPECT_NE(outcomes_a, outcomes_c);
}

TEST(FaultyStoreTest, FaultsCanBeConfinedToAPrefix) {
  MemStore mem;
  FaultyStore store(&mem, 1);
  store.FailReads(FaultyStore::kMillion);
  store.FailWrites(FaultyStore::kMillion);
  store.OnlyUnder("bad/");
  EXPECT_TRUE(store.Write(OnePut("good/1")).ok());
  EXPECT_FALSE(store.Write(OnePut("bad/1")).ok());
  WriteBatch mixed = OnePut("good/2");
  mixed.Put("bad/2", "v");
  EXPECT_FALSE(store.Write(mixed).ok());
  std::string value;
  EXPECT_TRUE(store.Get("good/1", &value).ok());
  EXPECT_TRUE(absl::IsUnavailable(store.Get("bad/1", &value)));
  std::vector<KeyValue> rows;
  EXPECT_TRUE(store.Scan("good/", "", 10, &rows).ok());
  EXPECT_FALSE(store.Scan("bad/x", "", 10, &rows).ok());
  EXPECT_FALSE(store.Scan("ba", "", 10, &rows).ok());  // covers bad/
  store.Heal();
  EXPECT_TRUE(store.Write(OnePut("bad/1")).ok());
}

TEST(FaultyStoreTest, ScanBeforeFailsAsScanWouldWithTheSameDraws) {
  MemStore mem;
  WriteBatch batch;
  for (int i = 0; i < 10; ++i) batch.Put("t/" + std::to_string(i), "v");
  batch.Put("bad/1", "v");
  ASSERT_TRUE(mem.Write(batch).ok());
  FaultyStore scans(&mem, 7), bounded(&mem, 7);
  for (FaultyStore* store : {&scans, &bounded}) store->FailReads(500000);
  std::vector<bool> outcomes_scan, outcomes_bounded;
  for (int i = 0; i < 400; ++i) {
    // Gets between the scans: the draws must stay in step.
    std::string value;
    EXPECT_EQ(scans.Get("t/1", &value).ok(), bounded.Get("t/1", &value).ok());
    std::vector<KeyValue> rows;
    absl::Status s = scans.Scan("t/", "", 10, &rows);
    outcomes_scan.push_back(s.ok());
    EXPECT_EQ(rows.size(), s.ok() ? 10u : 0u);
    rows.clear();
    s = bounded.ScanBefore("t/", "", "t/5", 10, &rows);
    outcomes_bounded.push_back(s.ok());
    EXPECT_EQ(rows.size(), s.ok() ? 5u : 0u);
    if (!s.ok()) {
      EXPECT_NE(s.message().find("injected read failure: scan t/"), absl::string_view::npos);
    }
  }
  EXPECT_EQ(outcomes_scan, outcomes_bounded);
  EXPECT_EQ(scans.stats().reads, bounded.stats().reads);
  EXPECT_EQ(scans.stats().failed_reads, bounded.stats().failed_reads);
  EXPECT_GT(bounded.stats().failed_reads, 200u);
  EXPECT_LT(bounded.stats().failed_reads, 600u);

  // Confined to a prefix as Scan is: no draw outside it.
  bounded.FailReads(FaultyStore::kMillion);
  bounded.OnlyUnder("bad/");
  std::vector<KeyValue> rows;
  EXPECT_TRUE(bounded.ScanBefore("t/", "", "t/5", 10, &rows).ok());
  EXPECT_TRUE(absl::IsUnavailable(bounded.ScanBefore("bad/", "", "bad/2", 10, &rows)));
  EXPECT_TRUE(absl::IsUnavailable(bounded.ScanBefore("ba", "", "bb", 10, &rows)));
  EXPECT_EQ(rows.size(), 5u);
}

TEST(FaultyStoreTest, LastFailsAsScanWouldWithTheSameDraws) {
  MemStore mem;
  WriteBatch batch;
  for (int i = 0; i < 10; ++i) batch.Put("t/" + std::to_string(i), std::to_string(i));
  batch.Put("bad/1", "v");
  ASSERT_TRUE(mem.Write(batch).ok());
  FaultyStore scans(&mem, 11), lasts(&mem, 11);
  for (FaultyStore* store : {&scans, &lasts}) store->FailReads(500000);
  for (int i = 0; i < 400; ++i) {
    std::string value;
    EXPECT_EQ(scans.Get("t/1", &value).ok(), lasts.Get("t/1", &value).ok());
    std::vector<KeyValue> rows;
    const bool scanned = scans.Scan("t/", "", 10, &rows).ok();
    KeyValue last;
    absl::Status s = lasts.Last("t/", &last);
    ASSERT_EQ(s.ok(), scanned) << i;
    if (s.ok()) {
      EXPECT_EQ(last, (KeyValue{"t/9", "9"}));
    } else {
      EXPECT_NE(s.message().find("injected read failure: last under t/"), absl::string_view::npos);
    }
  }
  EXPECT_EQ(scans.stats().reads, lasts.stats().reads);
  EXPECT_EQ(scans.stats().failed_reads, lasts.stats().failed_reads);
  EXPECT_GT(lasts.stats().failed_reads, 200u);
  // Confined to a prefix as Scan is.
  lasts.FailReads(FaultyStore::kMillion);
  lasts.OnlyUnder("bad/");
  KeyValue last;
  EXPECT_TRUE(lasts.Last("t/", &last).ok());
  EXPECT_TRUE(absl::IsUnavailable(lasts.Last("bad/", &last)));
  EXPECT_TRUE(absl::IsUnavailable(lasts.Last("ba", &last)));
  lasts.Heal();
  EXPECT_TRUE(absl::IsNotFound(lasts.Last("none/", &last)));
}

TEST(FaultyStoreTest, SlowWritesAccumulateUntilTaken) {
  MemStore mem;
  FaultyStore store(&mem, 1);
  store.SlowWrites(absl::Milliseconds(30));
  ASSERT_TRUE(store.Write(OnePut("a")).ok());
  ASSERT_TRUE(store.Write(OnePut("b")).ok());
  EXPECT_EQ(store.TakeStall(), absl::Milliseconds(60));
  EXPECT_EQ(store.TakeStall(), absl::ZeroDuration());
  EXPECT_EQ(store.stats().stalled_writes, 2u);
  EXPECT_EQ(store.stats().stalled, absl::Milliseconds(60));
  std::string value;
  EXPECT_TRUE(store.Get("a", &value).ok());  // reads are not slowed
  EXPECT_EQ(store.TakeStall(), absl::ZeroDuration());
}

}  // namespace
}  // namespace parley
