// The transactional outbox and the idempotent consumer, on a minimal producer.
#include "core/outbox.h"

#include <memory>

#include "absl/strings/str_cat.h"
#include "core/check.h"
#include "core/keys.h"
#include "core/service_node.h"
#include "core/status.h"
#include "core/version_gate.h"
#include "fakes/fake_cluster.h"
#include "gtest/gtest.h"

namespace parley {
namespace {

// Each request writes "state/<n>" and stages one event, in one batch.
class Producer : public ServiceNode {
 public:
  explicit Producer(Env* env, size_t max_in_flight = 256,
                    absl::Duration retention = absl::ZeroDuration(), size_t sweep_batch = 2000)
      : ServiceNode(env, Options(max_in_flight, retention, sweep_batch)) {}

 protected:
  static ServiceOptions Options(size_t max_in_flight, absl::Duration retention,
                                size_t sweep_batch) {
    ServiceOptions o;
    o.outbox.max_in_flight = max_in_flight;
    o.outbox.retention = retention;
    o.outbox.sweep_batch = sweep_batch;
    return o;
  }
  void HandleRequest(const Envelope& request) override {
    const uint64_t n = request.request().get_users().user_ids(0);
    WriteBatch batch;
    batch.Put(absl::StrCat("state/", n), "x");
    Event event;
    event.set_aggregate_id("thing");
    event.set_version(n);
    event.mutable_user_profile_changed()->set_user_id(n);
    outbox().Add(&batch, event);
    CommitAndRespond(request, std::move(batch), Reply());
  }
};

Request Make(uint64_t n) {
  Request r;
  r.mutable_get_users()->add_user_ids(n);
  return r;
}

TEST(OutboxTest, EventAndStateCommitTogetherOrNotAtAll) {
  FakeCluster net;
  net.Add("p", [](Env* env) { return std::make_unique<Producer>(env); });
  ASSERT_EQ(net.Call("p", Make(1)).status().code(), CODE_OK);
  net.Advance(absl::Seconds(1));  // published and acked: no write pending
  net.store("p").CrashDuringNextWrite(1);  // after the state, before the event
  Reply failed = net.Call("p", Make(2));
  EXPECT_EQ(failed.status().code(), CODE_UNAVAILABLE);
  net.Advance(absl::Seconds(2));
  std::string value;
  EXPECT_TRUE(absl::IsNotFound(net.store("p").Get("state/2", &value)));
  ASSERT_EQ(net.bus_log().size(), 1u);  // only the first event
  EXPECT_EQ(net.bus_log()[0].version(), 1u);
  // The next one gets through, with an event id that is new.
  ASSERT_EQ(net.Call("p", Make(3)).status().code(), CODE_OK);
  net.Advance(absl::Seconds(1));
  ASSERT_EQ(net.bus_log().size(), 2u);
  EXPECT_NE(net.bus_log()[0].event_id(), net.bus_log()[1].event_id());
}

TEST(OutboxTest, AnAckWhoseWriteFailsLeavesTheEventPending) {
  FakeCluster net;
  net.Add("p", [](Env* env) { return std::make_unique<Producer>(env); });
  net.SetBusReachable("p", false);
  ASSERT_EQ(net.Call("p", Make(1)).status().code(), CODE_OK);
  net.store("p").FailWrites(absl::UnavailableError("disk"));
  net.SetBusReachable("p", true);
  net.Advance(absl::Seconds(2));  // published, acked, the ack's delete failed
  Producer* p = net.NodeAs<Producer>("p");
  EXPECT_EQ(p->outbox_unacked(), 1u);
  EXPECT_EQ(p->outbox_stats().acked, 0u);
  std::string value;
  EXPECT_TRUE(net.store("p").Get(Outbox::RecordPrefix("p") + PadId(1), &value).ok());
  net.store("p").FailWrites(absl::OkStatus());
  net.Advance(absl::Seconds(2));  // published again, acked again, deleted
  EXPECT_EQ(p->outbox_unacked(), 0u);
  EXPECT_EQ(p->outbox_stats().acked, 1u);
  EXPECT_TRUE(absl::IsNotFound(net.store("p").Get(Outbox::RecordPrefix("p") + PadId(1), &value)));
}

TEST(OutboxTest, RestartReplaysEveryUnpublishedEventOnce) {
  FakeCluster net;
  net.Add("p", [](Env* env) { return std::make_unique<Producer>(env); });
  net.SetBusReachable("p", false);
  for (uint64_t n = 1; n <= 5; ++n) ASSERT_EQ(net.Call("p", Make(n)).status().code(), CODE_OK);
  net.Crash("p");
  net.SetBusReachable("p", true);
  net.Restart("p");
  net.Advance(absl::Seconds(2));
  ASSERT_EQ(net.bus_log().size(), 5u);
  for (uint64_t n = 1; n <= 5; ++n) EXPECT_EQ(net.bus_log()[n - 1].version(), n);
  EXPECT_EQ(net.NodeAs<Producer>("p")->outbox_stats().replayed_after_restart, 5u);
  EXPECT_EQ(net.NodeAs<Producer>("p")->outbox_unacked(), 0u);
  // Ids keep growing after the restart: no reuse of an id already published.
  ASSERT_EQ(net.Call("p", Make(6)).status().code(), CODE_OK);
  net.Advance(absl::Seconds(1));
  ASSERT_EQ(net.bus_log().size(), 6u);
  EXPECT_EQ(net.bus_log()[5].event_id(), "p/6");
}

TEST(OutboxTest, InFlightPublishesAreBounded) {
  FakeCluster net;
  net.Add("p", [](Env* env) { return std::make_unique<Producer>(env, 2); });
  net.SetBusReachable("p", false);
  for (uint64_t n = 1; n <= 10; ++n) net.Call("p", Make(n));
  const OutboxStats& stats = net.NodeAs<Producer>("p")->outbox_stats();
  EXPECT_EQ(stats.published, 2u);
  EXPECT_GT(stats.throttled, 0u);
  net.SetBusReachable("p", true);
  net.Advance(absl::Seconds(5));
  EXPECT_EQ(net.bus_log().size(), 10u);
  // Apart from the retries, each event was published once: a flush skips
  // what is in flight.
  EXPECT_EQ(stats.published - stats.republished, 10u);
  EXPECT_EQ(net.NodeAs<Producer>("p")->outbox_unacked(), 0u);
}

size_t Count(MemStore& store, const std::string& prefix) {
  std::vector<KeyValue> out;
  EXPECT_TRUE(store.Scan(prefix, "", 1000, &out).ok());
  return out.size();
}

TEST(OutboxRetentionTest, WithoutRetentionAnAckedEventIsDeletedAtOnce) {
  FakeCluster net;
  net.Add("p", [](Env* env) { return std::make_unique<Producer>(env); });
  for (uint64_t n = 1; n <= 3; ++n) ASSERT_EQ(net.Call("p", Make(n)).status().code(), CODE_OK);
  net.Advance(absl::Seconds(1));
  EXPECT_EQ(Count(net.store("p"), Outbox::RecordPrefix("p")), 0u);
  EXPECT_EQ(Count(net.store("p"), Outbox::AckedPrefix("p")), 0u);
  EXPECT_EQ(net.NodeAs<Producer>("p")->outbox_retained(), 0u);
}

TEST(OutboxRetentionTest, AckedEventsLostByTheBusArePublishedAgainOnReconnect) {
  FakeCluster net;
  net.Add("p", [](Env* env) {
    return std::make_unique<Producer>(env, 256, absl::Minutes(3));
  });
  for (uint64_t n = 1; n <= 5; ++n) ASSERT_EQ(net.Call("p", Make(n)).status().code(), CODE_OK);
  net.Advance(absl::Seconds(1));
  Producer* p = net.NodeAs<Producer>("p");
  EXPECT_EQ(p->outbox_unacked(), 0u);
  EXPECT_EQ(p->outbox_retained(), 5u);
  // Kept in the store, each marked with its ack time.
  EXPECT_EQ(Count(net.store("p"), Outbox::RecordPrefix("p")), 5u);
  EXPECT_EQ(Count(net.store("p"), Outbox::AckedPrefix("p")), 5u);
  // nats-server loses its unsynced tail (3 acked events) and comes back.
  net.BusLoseTail(2);
  ASSERT_EQ(net.bus_log().size(), 2u);
  net.BusReconnected("p");
  net.Advance(absl::Seconds(2));
  ASSERT_EQ(net.bus_log().size(), 5u);  // 1 and 2 dropped by the dedup window
  for (uint64_t n = 1; n <= 5; ++n) EXPECT_EQ(net.bus_log()[n - 1].version(), n);
  EXPECT_EQ(p->outbox_stats().replayed_retained, 5u);
  EXPECT_EQ(p->outbox_unacked(), 0u);
  EXPECT_EQ(p->outbox_retained(), 5u);  // acked again: kept again
}

TEST(OutboxRetentionTest, WithoutRetentionTheLostEventsStayLost) {
  FakeCluster net;
  net.Add("p", [](Env* env) { return std::make_unique<Producer>(env); });
  for (uint64_t n = 1; n <= 5; ++n) ASSERT_EQ(net.Call("p", Make(n)).status().code(), CODE_OK);
  net.Advance(absl::Seconds(1));
  net.BusLoseTail(2);
  net.BusReconnected("p");
  net.Crash("p");
  net.Restart("p");
  net.Advance(absl::Seconds(2));
  EXPECT_EQ(net.bus_log().size(), 2u);
}

TEST(OutboxRetentionTest, RestartPublishesRetainedEventsWithinTheWindowAndDropsOlderOnes) {
  FakeCluster net;
  auto factory = [](Env* env) { return std::make_unique<Producer>(env, 256, absl::Minutes(3)); };
  net.Add("p", factory);
  for (uint64_t n = 1; n <= 3; ++n) ASSERT_EQ(net.Call("p", Make(n)).status().code(), CODE_OK);
  net.Advance(absl::Minutes(2));
  for (uint64_t n = 4; n <= 5; ++n) ASSERT_EQ(net.Call("p", Make(n)).status().code(), CODE_OK);
  net.Advance(absl::Seconds(1));
  EXPECT_EQ(net.NodeAs<Producer>("p")->outbox_retained(), 5u);
  // A power failure takes the bus's tail and the node: 4 and 5 were acked
  // 1 s ago, 1..3 two minutes ago (those the bus had synced).
  net.BusLoseTail(3);
  net.Crash("p");
  net.Restart("p");
  net.Advance(absl::Seconds(2));
  ASSERT_EQ(net.bus_log().size(), 5u);
  EXPECT_EQ(net.bus_log()[3].version(), 4u);
  EXPECT_EQ(net.bus_log()[4].version(), 5u);
  Producer* p = net.NodeAs<Producer>("p");
  EXPECT_EQ(p->outbox_stats().replayed_retained, 5u);
  EXPECT_EQ(p->outbox_stats().replayed_after_restart, 0u);
  // Past the window everything goes; nothing is published again after that.
  net.Advance(absl::Minutes(4));
  EXPECT_EQ(p->outbox_retained(), 0u);
  EXPECT_EQ(Count(net.store("p"), Outbox::RecordPrefix("p")), 0u);
  EXPECT_EQ(Count(net.store("p"), Outbox::AckedPrefix("p")), 0u);
  net.Crash("p");
  net.Restart("p");
  net.Advance(absl::Seconds(2));
  EXPECT_EQ(net.NodeAs<Producer>("p")->outbox_stats().replayed_retained, 0u);
  EXPECT_EQ(net.bus_log().size(), 5u);
}

TEST(OutboxRetentionTest, ARestartAfterTheWindowDeletesWithoutPublishing) {
  FakeCluster net;
  net.Add("p", [](Env* env) { return std::make_unique<Producer>(env, 256, absl::Minutes(3)); });
  for (uint64_t n = 1; n <= 3; ++n) ASSERT_EQ(net.Call("p", Make(n)).status().code(), CODE_OK);
  net.Advance(absl::Seconds(1));
  net.Crash("p");
  net.Advance(absl::Minutes(5));  // down past the window
  net.BusLoseTail(0);
  net.Restart("p");
  net.Advance(absl::Seconds(2));
  EXPECT_EQ(net.bus_log().size(), 0u);
  EXPECT_EQ(net.NodeAs<Producer>("p")->outbox_stats().retention_expired, 3u);
  EXPECT_EQ(Count(net.store("p"), Outbox::RecordPrefix("p")), 0u);
  EXPECT_EQ(Count(net.store("p"), Outbox::AckedPrefix("p")), 0u);
}

TEST(OutboxRetentionTest, TheSweepDeletesInBoundedTicksUntilDone) {
  FakeCluster net;
  net.Add("p", [](Env* env) {
    return std::make_unique<Producer>(env, 256, absl::Seconds(10), /*sweep_batch=*/3);
  });
  for (uint64_t n = 1; n <= 10; ++n) ASSERT_EQ(net.Call("p", Make(n)).status().code(), CODE_OK);
  net.Advance(absl::Seconds(1));
  Producer* p = net.NodeAs<Producer>("p");
  EXPECT_EQ(p->outbox_retained(), 10u);
  net.Advance(absl::Seconds(8));  // 9 s after the acks: all still in the window
  EXPECT_EQ(p->outbox_retained(), 10u);
  net.Advance(absl::Seconds(3));
  EXPECT_EQ(p->outbox_retained(), 0u);
  EXPECT_EQ(p->outbox_stats().retention_expired, 10u);
  EXPECT_EQ(Count(net.store("p"), Outbox::RecordPrefix("p")), 0u);
}

TEST(VersionGateTest, AppliesOnlyNewerVersions) {
  MemStore store;
  VersionGate gate(&store, "friend");
  EXPECT_EQ(*gate.Applied("user/1"), 0u);
  EXPECT_TRUE(*gate.IsNew("user/1", 1));
  WriteBatch batch;
  gate.MarkApplied(&batch, "user/1", 3);
  ASSERT_TRUE(store.Write(batch).ok());
  EXPECT_FALSE(*gate.IsNew("user/1", 3));  // duplicate
  EXPECT_FALSE(*gate.IsNew("user/1", 2));  // older, late
  EXPECT_TRUE(*gate.IsNew("user/1", 4));
  EXPECT_TRUE(*gate.IsNew("user/2", 1));  // per aggregate
  VersionGate other(&store, "group");  // per consumer
  EXPECT_TRUE(*other.IsNew("user/1", 1));
}

struct CheckFailed {};
void ThrowCheckFailed(const char*, int, const char*, const std::string&) { throw CheckFailed(); }

TEST(VersionGateTest, MarkingAnOlderVersionBreaksAnInvariant) {
  MemStore store;
  VersionGate gate(&store, "friend");
  WriteBatch batch;
  gate.MarkApplied(&batch, "user/1", 3);
  ASSERT_TRUE(store.Write(batch).ok());
  ScopedCheckFailureHandler handler(&ThrowCheckFailed);
  WriteBatch older;
  EXPECT_THROW(gate.MarkApplied(&older, "user/1", 3), CheckFailed);
  EXPECT_TRUE(older.empty());  // the check comes before the change
}

}  // namespace
}  // namespace parley
