// The world's fault models: partitions, loss, duplication, clock skew and
// drift, crash with and without the last batch, and the bus.
#include "sim/world.h"

#include <memory>

#include "core/service_node.h"
#include "core/status.h"
#include "gtest/gtest.h"

namespace parley {
namespace sim {
namespace {

// Counts what reaches it and answers every request; publishes on request.
class Probe : public ServiceNode {
 public:
  explicit Probe(Env* env) : ServiceNode(env, ServiceOptions()) {}
  int requests = 0;
  std::vector<std::string> events;
  absl::Time last_now;

 protected:
  absl::Status OnStart() override {
    env().Subscribe("probes", {"user"});
    return absl::OkStatus();
  }
  void HandleRequest(const Envelope& request) override {
    ++requests;
    last_now = env().Now();
    if (request.request().has_update_profile()) {
      WriteBatch batch;
      Event e;
      e.mutable_user_profile_changed()->set_user_id(requests);
      outbox().Add(&batch, e);
      Commit(batch).IgnoreError();
    }
    Respond(request, Reply());
  }
  void HandleEvent(const Event& event, uint64_t delivery_id) override {
    events.push_back(event.event_id());
    env().AckEvent(delivery_id);
  }
};

// Sends one envelope claiming to come from `claim`; records the `from` of
// whatever reaches it.
class Forger : public Node {
 public:
  Forger(Env* env, std::string to, std::string claim)
      : env_(env), to_(std::move(to)), claim_(std::move(claim)) {}
  void Start() override {
    if (to_.empty()) return;
    Envelope e;
    e.set_from(claim_);
    e.mutable_request()->mutable_ping();
    env_->Send(to_, e);
  }
  void OnEnvelope(const Envelope& envelope) override { seen_from.push_back(envelope.from()); }
  void OnEvent(const Event&, uint64_t) override {}
  void OnPublishAck(const std::string&) override {}
  void OnTimer(TimerId) override {}
  std::vector<std::string> seen_from;

 private:
  Env* env_;
  std::string to_, claim_;
};

TEST(WorldTransportTest, TheSenderAddressIsStampedByTheTransportNotTheNode) {
  World world(7);
  world.AddNode("victim", [](Env* env) { return std::make_unique<Forger>(env, "", ""); });
  world.AddNode("target", [](Env* env) { return std::make_unique<Forger>(env, "", ""); });
  world.AddNode("attacker",
                [](Env* env) { return std::make_unique<Forger>(env, "target", "victim"); });
  world.RunUntil(world.Now() + absl::Seconds(1));
  Forger* target = world.NodeAs<Forger>("target");
  ASSERT_NE(target, nullptr);
  ASSERT_EQ(target->seen_from.size(), 1u);
  EXPECT_EQ(target->seen_from[0], "attacker");
}

class WorldTest : public ::testing::Test {
 protected:
  WorldTest() : world_(42) {
    for (const char* a : {"a", "b"}) {
      world_.AddNode(a, [](Env* env) { return std::make_unique<Probe>(env); });
    }
  }
  Probe* probe(const std::string& a) { return world_.NodeAs<Probe>(a); }
  bool Ping(const std::string& to) {
    Request r;
    r.mutable_ping();
    return world_.Call(to, r, 0, absl::Seconds(1)).has_value();
  }
  void Publish(const std::string& to) {
    Request r;
    r.mutable_update_profile();
    world_.Call(to, r, 0, absl::Seconds(1));
  }
  World world_;
};

TEST_F(WorldTest, PartitionsBlockAndHeal) {
  EXPECT_TRUE(Ping("a"));
  world_.Isolate("a");
  EXPECT_FALSE(Ping("a"));
  EXPECT_TRUE(Ping("b"));
  world_.HealPartitions();
  EXPECT_TRUE(Ping("a"));
}

TEST_F(WorldTest, HealingOnePartitionLeavesTheOthers) {
  const World::PartitionId a = world_.Isolate("a");
  const World::PartitionId b = world_.Isolate("b");
  EXPECT_FALSE(Ping("a"));
  EXPECT_FALSE(Ping("b"));
  // The end of one partition heals that one only.
  world_.Heal(a);
  EXPECT_TRUE(Ping("a"));
  EXPECT_FALSE(Ping("b"));
  world_.Heal(a);  // already healed: nothing
  EXPECT_FALSE(Ping("b"));
  world_.Heal(b);
  EXPECT_TRUE(Ping("b"));
  EXPECT_FALSE(world_.Partitioned());
}

TEST_F(WorldTest, RestartOfALiveNodeCrashesItFirst) {
  std::vector<std::string> gone;
  world_.OnNodeGone([&](const std::string& address, Node*) { gone.push_back(address); });
  ASSERT_TRUE(Ping("a"));
  world_.Restart("a");
  EXPECT_EQ(gone, std::vector<std::string>{"a"});
  EXPECT_NE(probe("a"), nullptr);
  EXPECT_EQ(probe("a")->requests, 0);  // a new node: the old one's memory is gone
  world_.OnNodeGone(nullptr);  // `gone` dies before world_
}

TEST_F(WorldTest, LossAndDuplicationHappenAtTheirRates) {
  NetworkConfig net;
  net.loss = 0.5;
  world_.set_network(net);
  int answered = 0;
  for (int i = 0; i < 200; ++i) answered += Ping("a");
  EXPECT_GT(answered, 20);   // about a quarter: request and reply both survive
  EXPECT_LT(answered, 100);
  net.loss = 0;
  net.duplicate = 1.0;
  world_.set_network(net);
  const int before = probe("a")->requests;
  Ping("a");
  world_.RunUntil(world_.Now() + absl::Seconds(1));
  EXPECT_EQ(probe("a")->requests - before, 2);
}

TEST_F(WorldTest, SkewAndDriftMoveOneNodesClock) {
  world_.SetSkew("a", absl::Seconds(2), /*drift_ppm=*/1000);
  world_.RunUntil(world_.Now() + absl::Seconds(10));
  Ping("a");
  Ping("b");
  const absl::Duration diff = probe("a")->last_now - probe("b")->last_now;
  // 10 s x 1000 ppm = 10 ms, less the few ms between the two pings.
  EXPECT_GE(diff, absl::Seconds(2) + absl::Milliseconds(5));
  EXPECT_LE(diff, absl::Seconds(2) + absl::Milliseconds(12));
  world_.ClearSkews();
  Ping("a");
  Ping("b");
  EXPECT_LT(absl::AbsDuration(probe("a")->last_now - probe("b")->last_now), absl::Milliseconds(10));
}

TEST_F(WorldTest, CrashKeepsCommittedBatchesOrLosesTheLastOne) {
  WriteBatch one, two;
  one.Put("k", "1");
  two.Put("k", "2");
  ASSERT_TRUE(world_.store("a")->Write(one).ok());
  ASSERT_TRUE(world_.store("a")->Write(two).ok());
  world_.Crash("a");
  world_.Restart("a");
  std::string value;
  ASSERT_TRUE(world_.store("a")->Get("k", &value).ok());
  EXPECT_EQ(value, "2");
  world_.set_lose_unsynced_batch(true);
  world_.Crash("a");
  ASSERT_TRUE(world_.store("a")->Get("k", &value).ok());
  EXPECT_EQ(value, "1");
}

TEST_F(WorldTest, BusDeliversOncePerGroupDedupsAndStorms) {
  Publish("a");
  world_.RunUntil(world_.Now() + absl::Seconds(3));
  ASSERT_EQ(world_.bus_log().size(), 1u);
  EXPECT_EQ(probe("a")->events.size() + probe("b")->events.size(), 1u);  // one member of the group
  // A storm redelivers; with dedup off a republished event id gets through.
  world_.BusStorm(10);
  world_.RunUntil(world_.Now() + absl::Seconds(3));
  EXPECT_EQ(probe("a")->events.size() + probe("b")->events.size(), 2u);
  // An outage: nothing accepted; the outbox publishes again afterwards.
  world_.SetBusOutage(true);
  Publish("b");
  world_.RunUntil(world_.Now() + absl::Seconds(2));
  EXPECT_EQ(world_.bus_log().size(), 1u);
  world_.SetBusOutage(false);
  world_.RunUntil(world_.Now() + absl::Seconds(3));
  EXPECT_EQ(world_.bus_log().size(), 2u);
}

}  // namespace
}  // namespace sim
}  // namespace parley
