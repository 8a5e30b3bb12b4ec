#include "core/kv/kv_service.h"

#include <memory>

#include "core/status.h"
#include "fakes/fake_cluster.h"
#include "gtest/gtest.h"

namespace parley {
namespace {

class KvServiceTest : public ::testing::Test {
 protected:
  KvServiceTest() {
    net_.Add(kKvAddress, [](Env* env) { return std::make_unique<KvService>(env); });
  }

  Reply Set(const std::string& key, const std::string& value, uint64_t version,
            KvWrite::Mode mode = KvWrite::IF_NEWER, int64_t ttl_ms = 0) {
    Request request;
    KvWrite* w = request.mutable_kv_set()->add_writes();
    w->set_key(key);
    w->set_value(value);
    w->set_version(version);
    w->set_mode(mode);
    w->set_ttl_ms(ttl_ms);
    return net_.Call(kKvAddress, request);
  }
  // The value at `key`, or "<missing>".
  std::string Get(const std::string& key, uint64_t* version = nullptr) {
    Request request;
    request.mutable_kv_get()->add_keys(key);
    Reply reply = net_.Call(kKvAddress, request);
    EXPECT_EQ(reply.status().code(), CODE_OK);
    if (reply.kv_get().entries_size() == 0) return "<missing>";
    if (version != nullptr) *version = reply.kv_get().entries(0).version();
    return reply.kv_get().entries(0).value();
  }
  Reply Lock(const std::string& key, const std::string& owner, int64_t lease_ms = 1000) {
    Request request;
    request.mutable_kv_lock()->set_key(key);
    request.mutable_kv_lock()->set_owner(owner);
    request.mutable_kv_lock()->set_lease_ms(lease_ms);
    return net_.Call(kKvAddress, request);
  }
  Reply Unlock(const std::string& key, const std::string& owner) {
    Request request;
    request.mutable_kv_unlock()->set_key(key);
    request.mutable_kv_unlock()->set_owner(owner);
    return net_.Call(kKvAddress, request);
  }
  KvService* kv() { return net_.NodeAs<KvService>(kKvAddress); }

  FakeCluster net_;
};

TEST_F(KvServiceTest, SetThenGet) {
  EXPECT_EQ(Get("k"), "<missing>");
  Reply reply = Set("k", "v1", 1);
  ASSERT_EQ(reply.status().code(), CODE_OK);
  EXPECT_TRUE(reply.kv_set().applied(0));
  uint64_t version = 0;
  EXPECT_EQ(Get("k", &version), "v1");
  EXPECT_EQ(version, 1u);
}

TEST_F(KvServiceTest, StaleVersionNeverOverwritesANewerEntry) {
  ASSERT_TRUE(Set("k", "v5", 5).kv_set().applied(0));
  Reply stale = Set("k", "v4", 4);
  ASSERT_EQ(stale.status().code(), CODE_OK);
  EXPECT_FALSE(stale.kv_set().applied(0));
  EXPECT_EQ(stale.kv_set().current_versions(0), 5u);
  EXPECT_FALSE(Set("k", "v5-again", 5).kv_set().applied(0));  // equal is not newer
  EXPECT_EQ(Get("k"), "v5");
  EXPECT_EQ(kv()->stats().stale_sets_refused, 2u);
  EXPECT_TRUE(Set("k", "v6", 6).kv_set().applied(0));
  EXPECT_EQ(Get("k"), "v6");
  // ALWAYS ignores versions (what presence and counters use).
  EXPECT_TRUE(Set("k", "forced", 1, KvWrite::ALWAYS).kv_set().applied(0));
  EXPECT_EQ(Get("k"), "forced");
}

TEST_F(KvServiceTest, LeaseRenewalKeepsItsVersionButANewerOneWins) {
  ASSERT_TRUE(Set("presence/7/phone", "gw1", 3, KvWrite::IF_NOT_OLDER, 100).kv_set().applied(0));
  net_.Advance(absl::Milliseconds(60));
  EXPECT_TRUE(Set("presence/7/phone", "gw1", 3, KvWrite::IF_NOT_OLDER, 100).kv_set().applied(0));
  net_.Advance(absl::Milliseconds(60));
  EXPECT_EQ(Get("presence/7/phone"), "gw1");  // renewed past the first lease
  EXPECT_TRUE(Set("presence/7/phone", "gw2", 4, KvWrite::IF_NOT_OLDER, 100).kv_set().applied(0));
  // The older session's renewal no longer applies.
  EXPECT_FALSE(Set("presence/7/phone", "gw1", 3, KvWrite::IF_NOT_OLDER, 100).kv_set().applied(0));
  EXPECT_EQ(Get("presence/7/phone"), "gw2");
}

TEST_F(KvServiceTest, PrefixReadsReturnOnlyLiveEntries) {
  Set("presence/7/phone", "a", 1, KvWrite::ALWAYS, 0);
  Set("presence/7/laptop", "b", 1, KvWrite::ALWAYS, 50);
  Set("presence/70/phone", "c", 1, KvWrite::ALWAYS, 0);
  Request request;
  request.mutable_kv_get()->add_prefixes("presence/7/");
  Reply reply = net_.Call(kKvAddress, request);
  ASSERT_EQ(reply.kv_get().entries_size(), 2);
  EXPECT_EQ(reply.kv_get().entries(0).key(), "presence/7/laptop");
  EXPECT_EQ(reply.kv_get().entries(1).key(), "presence/7/phone");
  net_.Advance(absl::Milliseconds(60));
  reply = net_.Call(kKvAddress, request);
  ASSERT_EQ(reply.kv_get().entries_size(), 1);
  EXPECT_EQ(reply.kv_get().entries(0).value(), "a");
}

TEST_F(KvServiceTest, ExpiredEntriesAreNeverReturned) {
  ASSERT_TRUE(Set("k", "v", 1, KvWrite::IF_NEWER, /*ttl_ms=*/100).kv_set().applied(0));
  EXPECT_EQ(Get("k"), "v");
  net_.Advance(absl::Milliseconds(100));
  EXPECT_EQ(Get("k"), "<missing>");
  // An expired entry does not block a lower version either.
  EXPECT_TRUE(Set("k", "w", 0).kv_set().applied(0));
  EXPECT_EQ(Get("k"), "w");
}

TEST_F(KvServiceTest, SweeperRemovesExpiredEntriesFromTheStore) {
  Set("a", "v", 1, KvWrite::IF_NEWER, 50);
  Set("b", "v", 1, KvWrite::IF_NEWER, 0);
  net_.Advance(absl::Seconds(2));
  std::string value;
  EXPECT_TRUE(absl::IsNotFound(net_.store(kKvAddress).Get("kv/a", &value)));
  EXPECT_TRUE(net_.store(kKvAddress).Get("kv/b", &value).ok());
  EXPECT_GE(kv()->stats().swept, 1u);
}

TEST_F(KvServiceTest, DeleteRespectsVersionBound) {
  Set("k", "v", 7);
  Request request;
  request.mutable_kv_delete()->set_key("k");
  request.mutable_kv_delete()->set_version_at_most(6);
  EXPECT_FALSE(net_.Call(kKvAddress, request).kv_delete().deleted());
  EXPECT_EQ(Get("k"), "v");
  request.mutable_kv_delete()->set_version_at_most(0);
  EXPECT_TRUE(net_.Call(kKvAddress, request).kv_delete().deleted());
  EXPECT_EQ(Get("k"), "<missing>");
}

TEST_F(KvServiceTest, LockHeldByAnotherIsRefusedUntilItsLeaseExpires) {
  Reply a = Lock("L", "alice", 500);
  ASSERT_EQ(a.status().code(), CODE_OK);
  EXPECT_TRUE(a.kv_lock().acquired());
  Reply b = Lock("L", "bob");
  EXPECT_FALSE(b.kv_lock().acquired());
  EXPECT_EQ(b.kv_lock().holder(), "alice");
  // The holder may renew; others may not unlock.
  EXPECT_TRUE(Lock("L", "alice", 500).kv_lock().acquired());
  EXPECT_FALSE(Unlock("L", "bob").kv_unlock().released());
  EXPECT_FALSE(Lock("L", "bob").kv_lock().acquired());
  // An expired lease frees the lock.
  net_.Advance(absl::Milliseconds(600));
  EXPECT_TRUE(Lock("L", "bob").kv_lock().acquired());
  EXPECT_FALSE(Unlock("L", "alice").kv_unlock().released());
  EXPECT_TRUE(Unlock("L", "bob").kv_unlock().released());
  EXPECT_TRUE(Lock("L", "carol").kv_lock().acquired());
}

TEST_F(KvServiceTest, BadInputGetsInvalidArgument) {
  EXPECT_EQ(Set("", "v", 1).status().code(), CODE_INVALID_ARGUMENT);
  EXPECT_EQ(Set(std::string(513, 'k'), "v", 1).status().code(), CODE_INVALID_ARGUMENT);
  EXPECT_EQ(Set("k", std::string((1 << 20) + 1, 'v'), 1).status().code(), CODE_INVALID_ARGUMENT);
  EXPECT_EQ(Set("k", "v", 1, KvWrite::IF_NEWER, -1).status().code(), CODE_INVALID_ARGUMENT);
  EXPECT_EQ(Lock("L", "").status().code(), CODE_INVALID_ARGUMENT);
  EXPECT_EQ(Lock("L", "a", 0).status().code(), CODE_INVALID_ARGUMENT);
  EXPECT_EQ(Lock("L", "a", 61000).status().code(), CODE_INVALID_ARGUMENT);
  Request empty;
  empty.mutable_kv_set();
  EXPECT_EQ(net_.Call(kKvAddress, empty).status().code(), CODE_INVALID_ARGUMENT);
  Request wrong;
  wrong.mutable_login()->set_name("x");
  EXPECT_EQ(net_.Call(kKvAddress, wrong).status().code(), CODE_UNIMPLEMENTED);
  EXPECT_EQ(Get("k"), "<missing>");  // nothing was written
}

TEST_F(KvServiceTest, EntriesAndLocksSurviveARestart) {
  Set("k", "v", 3);
  Lock("L", "alice", 5000);
  net_.Crash(kKvAddress);
  net_.Restart(kKvAddress);
  EXPECT_EQ(Get("k"), "v");
  EXPECT_FALSE(Set("k", "old", 2).kv_set().applied(0));
  EXPECT_FALSE(Lock("L", "bob").kv_lock().acquired());
}

}  // namespace
}  // namespace parley
