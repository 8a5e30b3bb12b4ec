// Request/reply over the seam: retries on another instance after a timeout,
// and a clear error when every instance is dead.
#include "core/rpc/rpc_client.h"

#include <memory>
#include <optional>
#include <set>

#include "core/registry/registry_service.h"
#include "core/service_node.h"
#include "core/status.h"
#include "fakes/fake_cluster.h"
#include "gtest/gtest.h"

namespace parley {
namespace {

// Answers every request with its own address in the status message.
class EchoService : public ServiceNode {
 public:
  EchoService(Env* env, std::string id) : ServiceNode(env, ServiceOptions{"echo", id, {}}) {}
  int served = 0;

 protected:
  void HandleRequest(const Envelope& request) override {
    ++served;
    Reply reply;
    reply.mutable_status()->set_message(env().Self());
    Respond(request, reply);
  }
};

// Calls "echo" through its RpcClient when a test asks.
class Caller : public ServiceNode {
 public:
  explicit Caller(Env* env) : ServiceNode(env, ServiceOptions{"", "", {"echo"}}) {}
  void CallEcho(CallOptions options, std::function<void(const Reply&)> done) {
    Request request;
    request.mutable_get_users()->add_user_ids(1);
    rpc().Call("echo", request, options, std::move(done));
  }
  const RpcStats& stats() const { return rpc_stats(); }
  size_t pending_calls_for_test() { return rpc().pending_calls(); }

 protected:
  void HandleRequest(const Envelope& request) override {}
};

class RpcClientTest : public ::testing::Test {
 protected:
  RpcClientTest() {
    net_.Add(kRegistryAddress, [](Env* env) { return std::make_unique<RegistryService>(env); });
    for (const char* id : {"1", "2", "3"}) {
      net_.Add(InstanceAddress("echo", id),
               [id](Env* env) { return std::make_unique<EchoService>(env, id); });
    }
    net_.Add("caller", [](Env* env) { return std::make_unique<Caller>(env); });
    net_.Advance(absl::Seconds(1));  // registered and discovered
  }

  Reply CallEcho(CallOptions options = CallOptions()) {
    std::optional<Reply> result;
    net_.NodeAs<Caller>("caller")->CallEcho(options, [&](const Reply& r) { result = r; });
    for (int i = 0; i < 1000 && !result.has_value(); ++i) net_.Advance(absl::Milliseconds(10));
    EXPECT_TRUE(result.has_value());
    return result.value_or(Reply());
  }
  Caller* caller() { return net_.NodeAs<Caller>("caller"); }

  FakeCluster net_;
};

TEST_F(RpcClientTest, CallsAreSpreadOverInstances) {
  std::set<std::string> answered_by;
  for (int i = 0; i < 6; ++i) answered_by.insert(CallEcho().status().message());
  EXPECT_EQ(answered_by.size(), 3u);
  EXPECT_EQ(caller()->stats().timeouts, 0u);
}

TEST_F(RpcClientTest, ADeadInstanceTimesOutAndTheCallSucceedsOnAnother) {
  net_.Crash(InstanceAddress("echo", "1"));
  net_.Crash(InstanceAddress("echo", "2"));
  // The caller's directory still lists the dead ones (the registry has not
  // expired them yet), so some calls go to a dead instance first.
  CallOptions options;
  options.timeout = absl::Milliseconds(100);
  for (int i = 0; i < 3; ++i) {
    Reply reply = CallEcho(options);
    EXPECT_EQ(reply.status().code(), CODE_OK);
    EXPECT_EQ(reply.status().message(), InstanceAddress("echo", "3"));
  }
  EXPECT_GE(caller()->stats().timeouts, 1u);
  EXPECT_GE(caller()->stats().retried_on_other_instance, 1u);
  EXPECT_EQ(caller()->stats().failed, 0u);
}

TEST_F(RpcClientTest, AllInstancesDeadGivesAClearError) {
  for (const char* id : {"1", "2", "3"}) net_.Crash(InstanceAddress("echo", id));
  CallOptions options;
  options.timeout = absl::Milliseconds(100);
  options.max_attempts = 3;
  Reply reply = CallEcho(options);
  EXPECT_EQ(reply.status().code(), CODE_UNAVAILABLE);
  EXPECT_NE(reply.status().message().find("all 3 attempts to service 'echo' failed"),
            std::string::npos)
      << reply.status().message();
  EXPECT_EQ(caller()->stats().failed, 1u);
  EXPECT_EQ(caller()->pending_calls_for_test(), 0u);
}

TEST_F(RpcClientTest, AnUnknownServiceFailsAfterItsAttempts) {
  Request request;
  std::optional<Reply> result;
  CallOptions options;
  options.timeout = absl::Milliseconds(50);
  options.max_attempts = 2;
  caller()->CallEcho(options, [&](const Reply& r) { result = r; });
  net_.Advance(absl::Seconds(1));
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->status().code(), CODE_OK);  // control: echo is known

  // After every echo instance is gone from the registry, the directory empties.
  for (const char* id : {"1", "2", "3"}) net_.Crash(InstanceAddress("echo", id));
  net_.Advance(absl::Seconds(3));
  result.reset();
  caller()->CallEcho(options, [&](const Reply& r) { result = r; });
  net_.Advance(absl::Seconds(1));
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->status().code(), CODE_UNAVAILABLE);
  EXPECT_NE(result->status().message().find("no known instance of service 'echo'"),
            std::string::npos)
      << result->status().message();
}

// A call made before any instance is known (a one-attempt login right after
// start) goes out as soon as discovery finds one, instead of waiting out its
// whole timeout and failing.
TEST(RpcClientStartTest, AnAttemptMadeBeforeDiscoveryGoesOutOnceAnInstanceIsKnown) {
  FakeCluster net;
  net.Add(kRegistryAddress, [](Env* env) { return std::make_unique<RegistryService>(env); });
  net.Add("caller", [](Env* env) { return std::make_unique<Caller>(env); });
  net.Advance(absl::Milliseconds(100));
  std::optional<Reply> result;
  CallOptions options;
  options.timeout = absl::Seconds(10);
  options.max_attempts = 1;
  net.NodeAs<Caller>("caller")->CallEcho(options, [&](const Reply& r) { result = r; });
  net.Advance(absl::Milliseconds(300));
  EXPECT_FALSE(result.has_value());
  net.Add(InstanceAddress("echo", "1"), [](Env* env) { return std::make_unique<EchoService>(env, "1"); });
  for (int i = 0; i < 400 && !result.has_value(); ++i) net.Advance(absl::Milliseconds(10));
  ASSERT_TRUE(result.has_value()) << "not answered within 4 s of the instance starting";
  EXPECT_EQ(result->status().code(), CODE_OK) << result->status().message();
  EXPECT_EQ(result->status().message(), InstanceAddress("echo", "1"));
}

}  // namespace
}  // namespace parley
