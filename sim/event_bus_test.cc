// The bus state machine alone: a recording host arms no real timers, the
// test fires them by hand.
#include "sim/event_bus.h"

#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace parley {
namespace {

class RecordingHost : public EventBus::Host {
 public:
  std::set<std::string> down;
  std::vector<std::string> acks;                                   // publisher:event_id
  std::vector<std::pair<std::string, uint64_t>> deliveries;       // member, delivery id
  std::vector<std::string> delivered_ids;                          // event ids
  std::vector<uint64_t> timers;

  bool MemberUp(const std::string& member) override { return down.count(member) == 0; }
  void PublishAcked(const std::string& publisher, const std::string& event_id) override {
    acks.push_back(publisher + ":" + event_id);
  }
  void DeliverEvent(const std::string& member, const Event& event, uint64_t id) override {
    deliveries.emplace_back(member, id);
    delivered_ids.push_back(event.event_id());
  }
  void ArmAckTimer(uint64_t id, absl::Duration after) override { timers.push_back(id); }
};

Event UserEvent(const std::string& id) {
  Event e;
  e.set_event_id(id);
  e.mutable_user_profile_changed()->set_user_id(1);
  return e;
}

class EventBusTest : public ::testing::Test {
 protected:
  EventBusTest() : bus_(&host_, EventBus::Options()) {
    bus_.Subscribe("m1", "g", {"user"});
    bus_.Subscribe("m2", "g", {"user"});
    bus_.Subscribe("m1", "g", {"user"});  // joining twice is joining once
  }
  absl::Time T(int seconds) { return absl::FromUnixSeconds(1000 + seconds); }

  RecordingHost host_;
  EventBus bus_;
};

TEST_F(EventBusTest, MembersTakeTurnsAndEveryPublishIsAcked) {
  bus_.Publish("p", UserEvent("e1"), T(0));
  bus_.Publish("p", UserEvent("e2"), T(0));
  bus_.Publish("p", UserEvent("e3"), T(0));
  ASSERT_EQ(host_.deliveries.size(), 3u);
  EXPECT_EQ(host_.deliveries[0].first, "m1");
  EXPECT_EQ(host_.deliveries[1].first, "m2");
  EXPECT_EQ(host_.deliveries[2].first, "m1");
  EXPECT_EQ(host_.acks, (std::vector<std::string>{"p:e1", "p:e2", "p:e3"}));
  EXPECT_EQ(bus_.log().size(), 3u);
  // A member that is down is skipped.
  host_.down.insert("m2");
  bus_.Publish("p", UserEvent("e4"), T(0));
  EXPECT_EQ(host_.deliveries.back().first, "m1");
}

TEST_F(EventBusTest, AnUnackedDeliveryIsRedeliveredOnItsTimeout) {
  bus_.Publish("p", UserEvent("e1"), T(0));
  ASSERT_EQ(host_.timers.size(), 1u);
  const uint64_t first = host_.deliveries[0].second;
  bus_.AckTimeout(first);
  ASSERT_EQ(host_.deliveries.size(), 2u);
  EXPECT_EQ(host_.deliveries[1].first, "m2");  // the next member
  EXPECT_NE(host_.deliveries[1].second, first);
  EXPECT_EQ(bus_.stats().redeliveries, 1u);
  bus_.Ack(host_.deliveries[1].second);
  EXPECT_EQ(bus_.unacked(), 0u);
  bus_.AckTimeout(host_.deliveries[1].second);  // acked: nothing
  EXPECT_EQ(host_.deliveries.size(), 2u);
}

TEST_F(EventBusTest, DuplicatesAreDroppedWithinTheWindowOnly) {
  bus_.Publish("p", UserEvent("e1"), T(0));
  bus_.Publish("p", UserEvent("e1"), T(119));
  EXPECT_EQ(bus_.log().size(), 1u);
  EXPECT_EQ(host_.acks.size(), 2u);  // the duplicate is acked too
  // Two minutes after it was accepted the id is forgotten, as JetStream's
  // Duplicates window forgets it.
  bus_.Publish("p", UserEvent("e1"), T(120));
  EXPECT_EQ(bus_.log().size(), 2u);
}

TEST(EventBusWindowTest, AnInfiniteWindowNeverForgets) {
  RecordingHost host;
  EventBus::Options options;
  options.dedup_window = absl::InfiniteDuration();
  EventBus bus(&host, options);
  bus.Publish("p", UserEvent("e1"), absl::UnixEpoch());
  bus.Publish("p", UserEvent("e1"), absl::UnixEpoch() + absl::Hours(1000));
  EXPECT_EQ(bus.log().size(), 1u);
}

TEST_F(EventBusTest, DedupOffLetsDuplicatesThrough) {
  bus_.Publish("p", UserEvent("e1"), T(0));
  bus_.SetDedup(false);
  bus_.Publish("p", UserEvent("e1"), T(1));
  EXPECT_EQ(bus_.log().size(), 2u);
  EXPECT_EQ(bus_.stats().duplicates_let_through, 1u);
  bus_.SetDedup(true);
  bus_.Publish("p", UserEvent("e1"), T(2));
  EXPECT_EQ(bus_.log().size(), 2u);
}

TEST_F(EventBusTest, AnOutageAcceptsNothingAndChoosesNoMember) {
  bus_.Publish("p", UserEvent("e1"), T(0));
  bus_.SetOutage(true);
  bus_.Publish("p", UserEvent("e2"), T(0));
  EXPECT_EQ(bus_.log().size(), 1u);
  EXPECT_EQ(host_.acks.size(), 1u);  // no ack: the publisher tries again
  bus_.AckTimeout(host_.deliveries[0].second);
  EXPECT_EQ(host_.deliveries.size(), 1u);  // redelivery found no member
  EXPECT_EQ(bus_.unacked(), 1u);           // and waits for its next timeout
  bus_.SetOutage(false);
  bus_.AckTimeout(host_.timers.back());
  EXPECT_EQ(host_.deliveries.size(), 2u);
}

TEST_F(EventBusTest, UnreachablePublishersAreLostOnTheWay) {
  bus_.SetReachable("p", false);
  bus_.Publish("p", UserEvent("e1"), T(0));
  EXPECT_TRUE(bus_.log().empty());
  EXPECT_TRUE(host_.acks.empty());
  bus_.SetReachable("p", true);
  bus_.Publish("p", UserEvent("e1"), T(0));
  EXPECT_EQ(bus_.log().size(), 1u);
}

TEST_F(EventBusTest, AStormRedeliversTheLastEvents) {
  for (const char* id : {"e1", "e2", "e3"}) bus_.Publish("p", UserEvent(id), T(0));
  host_.delivered_ids.clear();
  bus_.Storm(2);
  EXPECT_EQ(host_.delivered_ids, (std::vector<std::string>{"e2", "e3"}));
  EXPECT_EQ(bus_.stats().redeliveries, 2u);
}

TEST_F(EventBusTest, LosingTheTailForgetsItsIdsAndDeliveries) {
  for (const char* id : {"e1", "e2", "e3"}) bus_.Publish("p", UserEvent(id), T(0));
  bus_.Ack(host_.deliveries[0].second);
  bus_.LoseTail(1);
  EXPECT_EQ(bus_.log().size(), 1u);
  EXPECT_EQ(bus_.unacked(), 0u);
  bus_.Publish("p", UserEvent("e3"), T(1));  // accepted again
  bus_.Publish("p", UserEvent("e1"), T(1));  // still a duplicate
  ASSERT_EQ(bus_.log().size(), 2u);
  EXPECT_EQ(bus_.log()[1].event_id(), "e3");
}

}  // namespace
}  // namespace parley
