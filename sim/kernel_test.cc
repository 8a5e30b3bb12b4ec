// The kernel's own contract: scheduling order, Restart semantics, FailStop,
// filters that heal one at a time, holds and outside endpoints.
#include "sim/kernel.h"

#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace parley {
namespace sim {
namespace {

// Answers every request; on "fail" asks to be stopped, then answers anyway
// (the reply must still leave: FailStop acts after the callback).
class Echo : public Node {
 public:
  explicit Echo(Env* env) : env_(env) {}
  void Start() override { ++starts; }
  void OnEnvelope(const Envelope& envelope) override {
    ++requests;
    if (envelope.request_id() == "fail") env_->FailStop("test");
    Envelope reply;
    reply.set_correlation_id(envelope.correlation_id());
    reply.mutable_reply();
    env_->Send(envelope.from(), reply);
  }
  void OnEvent(const Event&, uint64_t) override {}
  void OnPublishAck(const std::string&) override {}
  void OnTimer(TimerId) override { ++timers; }

  Env* env_;
  int starts = 0;
  int requests = 0;
  int timers = 0;
};

Kernel::Options Quiet() {
  Kernel::Options options;
  options.network.jitter = absl::ZeroDuration();
  return options;
}

class KernelTest : public ::testing::Test {
 protected:
  KernelTest() : k_(Quiet()) {
    k_.AddEndpoint("out", /*keep_inbox=*/true);
    for (const char* a : {"a", "b"}) {
      k_.AddNode(a, [](Env* env) { return std::make_unique<Echo>(env); });
    }
    k_.OnNodeGone([this](const std::string& address, Node*) { gone_.push_back(address); });
  }
  Echo* echo(const std::string& a) { return dynamic_cast<Echo*>(k_.node(a)); }
  bool Ping(const std::string& to, const std::string& request_id = "") {
    Request r;
    r.mutable_ping();
    const uint64_t id = k_.SendRequest("out", to, r, 0, request_id);
    return k_.AwaitReply(id, absl::Seconds(1)).has_value();
  }

  std::vector<std::string> gone_;  // outlives k_, whose destructor reports nodes gone
  Kernel k_;
};

TEST_F(KernelTest, ItemsRunByTimeThenBySchedulingOrder) {
  std::string order;
  const absl::Time t = k_.Now() + absl::Seconds(1);
  k_.Schedule(t, [&] { order += "b"; }, 0, "b");
  k_.Schedule(t - absl::Milliseconds(1), [&] { order += "a"; }, 0, "a");
  k_.Schedule(t, [&] { order += "c"; }, 0, "c");
  k_.RunUntil(t);
  EXPECT_EQ(order, "abc");
  EXPECT_EQ(k_.Now(), t);
}

TEST_F(KernelTest, RestartOfALiveNodeCrashesItFirst) {
  const uint64_t before = k_.incarnation("a");
  k_.Restart("a");
  EXPECT_EQ(k_.incarnation("a"), before + 1);
  EXPECT_EQ(gone_, std::vector<std::string>{"a"});
  EXPECT_EQ(echo("a")->starts, 1);  // a new node
  // Crash of a down node does nothing; Restart brings it back.
  k_.Crash("a");
  k_.Crash("a");
  EXPECT_EQ(k_.incarnation("a"), before + 2);
  EXPECT_FALSE(k_.IsUp("a"));
  k_.Restart("a");
  EXPECT_TRUE(k_.IsUp("a"));
}

TEST_F(KernelTest, TimersOfACrashedIncarnationDoNotFire) {
  Env* env = echo("a")->env_;
  env->SetTimer(absl::Seconds(1));
  k_.Crash("a");
  k_.Restart("a");
  k_.RunUntil(k_.Now() + absl::Seconds(2));
  EXPECT_EQ(echo("a")->timers, 0);
}

TEST_F(KernelTest, FailStopCrashesAfterTheCallbackAndRestartsASecondLater) {
  const uint64_t before = k_.incarnation("a");
  EXPECT_TRUE(Ping("a", "fail"));  // the reply sent after FailStop still left
  EXPECT_FALSE(k_.IsUp("a"));
  EXPECT_EQ(k_.incarnation("a"), before + 1);
  EXPECT_EQ(k_.stats().fail_stops, 1u);
  k_.RunUntil(k_.Now() + absl::Milliseconds(990));
  EXPECT_FALSE(k_.IsUp("a"));
  k_.RunUntil(k_.Now() + absl::Milliseconds(20));
  ASSERT_TRUE(k_.IsUp("a"));
  EXPECT_EQ(k_.incarnation("a"), before + 1);
  EXPECT_EQ(echo("a")->starts, 1);
}

TEST_F(KernelTest, FailStopDoesNotRestartANodeRestartedMeanwhile) {
  EXPECT_TRUE(Ping("a", "fail"));
  k_.Restart("a");
  const uint64_t inc = k_.incarnation("a");
  k_.RunUntil(k_.Now() + absl::Seconds(2));
  EXPECT_TRUE(k_.IsUp("a"));
  EXPECT_EQ(k_.incarnation("a"), inc);  // not crashed again
}

TEST_F(KernelTest, HealingOneFilterLeavesTheOthers) {
  const Kernel::FilterId isolate = k_.Isolate("a");
  const Kernel::FilterId block = k_.Block("out", "b");
  EXPECT_FALSE(Ping("a"));
  EXPECT_FALSE(Ping("b"));
  k_.RemoveFilter(isolate);
  EXPECT_TRUE(Ping("a"));
  EXPECT_FALSE(Ping("b"));
  EXPECT_TRUE(k_.Partitioned());
  k_.RemoveFilter(block);
  EXPECT_TRUE(Ping("b"));
  EXPECT_FALSE(k_.Partitioned());
  // Block is one way: b can still answer a request that reached it.
  k_.Block("b", "a");
  EXPECT_TRUE(Ping("b"));
  k_.RemovePartitions();
  EXPECT_FALSE(k_.Partitioned());
}

TEST_F(KernelTest, HoldParksOneEnvelopeUntilReleased) {
  k_.HoldNext([](const std::string& to, const Envelope& e) { return to == "a"; });
  Request r;
  r.mutable_ping();
  const uint64_t id = k_.SendRequest("out", "a", r, 0, "");
  k_.RunUntil(k_.Now() + absl::Seconds(1));
  EXPECT_EQ(k_.held(), 1u);
  EXPECT_EQ(echo("a")->requests, 0);
  EXPECT_TRUE(Ping("a"));  // the hold took one envelope only
  k_.ReleaseHeld();
  EXPECT_TRUE(k_.AwaitReply(id, absl::Seconds(1)).has_value());
  EXPECT_EQ(echo("a")->requests, 2);
}

TEST_F(KernelTest, EndpointsKeepRepliesByCorrelationAndOtherEnvelopesInTheInbox) {
  Envelope note;
  note.mutable_request()->mutable_ping();
  echo("a")->env_->Send("out", note);
  k_.RunUntil(k_.Now() + absl::Seconds(1));
  ASSERT_EQ(k_.inbox("out").size(), 1u);
  EXPECT_EQ(k_.inbox("out")[0].from(), "a");
}

// A message's route is looked up when it is sent and kept for delivery; an
// address added in between must still get it, as a lookup at delivery would.
TEST_F(KernelTest, AnAddressAddedWhileAMessageIsInFlightReceivesIt) {
  Envelope note;
  note.set_request_id("note");
  k_.Transmit("a", "late", note);
  k_.AddEndpoint("late", /*keep_inbox=*/true);
  Request r;
  r.mutable_ping();
  const uint64_t id = k_.SendRequest("out", "c", r, 0, "");
  k_.AddNode("c", [](Env* env) { return std::make_unique<Echo>(env); });
  EXPECT_TRUE(k_.AwaitReply(id, absl::Seconds(1)).has_value());
  EXPECT_EQ(echo("c")->requests, 1);
  ASSERT_EQ(k_.inbox("late").size(), 1u);
  EXPECT_EQ(k_.inbox("late")[0].request_id(), "note");
}

// Cancelled timers are skipped without disturbing the ones around them.
TEST_F(KernelTest, ACancelledTimerDoesNotFireAndTheOthersDo) {
  class Arm : public Node {
   public:
    explicit Arm(Env* env) : env_(env) {}
    void Start() override {
      for (int i = 0; i < 3; ++i) ids.push_back(env_->SetTimer(absl::Milliseconds(10 * (i + 1))));
      env_->CancelTimer(ids[1]);
    }
    void OnEnvelope(const Envelope&) override {}
    void OnEvent(const Event&, uint64_t) override {}
    void OnPublishAck(const std::string&) override {}
    void OnTimer(TimerId id) override { fired.push_back(id); }
    Env* env_;
    std::vector<TimerId> ids, fired;
  };
  k_.AddNode("t", [](Env* env) { return std::make_unique<Arm>(env); });
  k_.RunUntil(k_.Now() + absl::Seconds(1));
  Arm* arm = dynamic_cast<Arm*>(k_.node("t"));
  ASSERT_NE(arm, nullptr);
  EXPECT_EQ(arm->fired, (std::vector<TimerId>{arm->ids[0], arm->ids[2]}));
}

// Cancelled timers leave the heap once they are half of it (call timeouts
// cancelled by their replies would otherwise pile up in it), and the timers
// left still fire, in their order.
TEST_F(KernelTest, CancelledTimersAreTakenOutOfTheHeap) {
  class Arm : public Node {
   public:
    explicit Arm(Env* env) : env_(env) {}
    void Start() override {
      for (int i = 0; i < 1000; ++i) ids.push_back(env_->SetTimer(absl::Milliseconds(1000 - i)));
      for (int i = 0; i < 1000; ++i) {
        if (i % 10 != 0) env_->CancelTimer(ids[i]);
      }
    }
    void OnEnvelope(const Envelope&) override {}
    void OnEvent(const Event&, uint64_t) override {}
    void OnPublishAck(const std::string&) override {}
    void OnTimer(TimerId id) override { fired.push_back(id); }
    Env* env_;
    std::vector<TimerId> ids, fired;
  };
  const size_t before = k_.pending_items();
  k_.AddNode("t", [](Env* env) { return std::make_unique<Arm>(env); });
  // 100 live timers; of the 900 cancelled, fewer than the heap's half remain.
  EXPECT_LT(k_.pending_items(), before + 100 + 100);
  const uint64_t events = k_.stats().events;
  k_.RunUntil(k_.Now() + absl::Seconds(2));
  Arm* arm = dynamic_cast<Arm*>(k_.node("t"));
  ASSERT_NE(arm, nullptr);
  std::vector<TimerId> expected;
  for (int i = 990; i >= 0; i -= 10) expected.push_back(arm->ids[i]);  // the latest set fire first
  EXPECT_EQ(arm->fired, expected);
  EXPECT_EQ(k_.stats().events - events, 100u);
}

TEST(KernelPpmTest, ProbabilitiesRoundToTheNearestPartPerMillion) {
  EXPECT_EQ(Ppm(0), 0u);
  EXPECT_EQ(Ppm(-1), 0u);
  EXPECT_EQ(Ppm(0.1), 100000u);
  EXPECT_EQ(Ppm(0.0000004), 0u);
  EXPECT_EQ(Ppm(0.0000006), 1u);
  EXPECT_EQ(Ppm(0.0000016), 2u);
  EXPECT_EQ(Ppm(0.25), 250000u);
  EXPECT_EQ(Ppm(1), kMillion);
  EXPECT_EQ(Ppm(7), kMillion);
}

TEST(KernelDeterminismTest, SameSeedSameHash) {
  auto run = [](uint64_t seed) {
    Kernel::Options options;
    options.seed = seed;
    options.network.loss = 0.2;
    Kernel k(options);
    k.AddEndpoint("out", false);
    k.AddNode("a", [](Env* env) { return std::make_unique<Echo>(env); });
    Request r;
    r.mutable_ping();
    for (int i = 0; i < 50; ++i) k.AwaitReply(k.SendRequest("out", "a", r, 0, ""), absl::Seconds(1));
    return k.hash();
  };
  EXPECT_EQ(run(3), run(3));
  EXPECT_NE(run(3), run(4));
}

}  // namespace
}  // namespace sim
}  // namespace parley
