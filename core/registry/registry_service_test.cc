#include "core/registry/registry_service.h"

#include <memory>

#include "core/services.h"
#include "core/status.h"
#include "fakes/core_cluster.h"
#include "fakes/fake_cluster.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace parley {
namespace {

class RegistryServiceTest : public ::testing::Test {
 protected:
  RegistryServiceTest() {
    net_.Add(kRegistryAddress, [](Env* env) { return std::make_unique<RegistryService>(env); });
  }

  Reply Register(const std::string& service, const std::string& id) {
    Request request;
    Instance* instance = request.mutable_register_instance()->mutable_instance();
    instance->set_service(service);
    instance->set_instance_id(id);
    instance->set_address(InstanceAddress(service, id));
    return net_.Call(kRegistryAddress, request);
  }
  std::vector<std::string> Discover(const std::string& service) {
    Request request;
    request.mutable_discover()->set_service(service);
    Reply reply = net_.Call(kRegistryAddress, request);
    EXPECT_EQ(reply.status().code(), CODE_OK);
    std::vector<std::string> ids;
    for (const Instance& i : reply.discover().instances()) ids.push_back(i.instance_id());
    return ids;
  }

  FakeCluster net_;
};

using ::testing::ElementsAre;
using ::testing::IsEmpty;

TEST_F(RegistryServiceTest, RegisteredInstancesAreDiscoveredInIdOrder) {
  ASSERT_EQ(Register("user", "2").status().code(), CODE_OK);
  ASSERT_EQ(Register("user", "1").status().code(), CODE_OK);
  ASSERT_EQ(Register("friend", "1").status().code(), CODE_OK);
  EXPECT_THAT(Discover("user"), ElementsAre("1", "2"));
  EXPECT_THAT(Discover("friend"), ElementsAre("1"));
  EXPECT_THAT(Discover("group"), IsEmpty());
}

TEST_F(RegistryServiceTest, MissedHeartbeatsExpireAnInstance) {
  Register("user", "1");
  Register("user", "2");
  // Instance 1 keeps heartbeating; instance 2 falls silent.
  for (int i = 0; i < 6; ++i) {
    net_.Advance(absl::Milliseconds(500));
    Register("user", "1");
  }
  EXPECT_THAT(Discover("user"), ElementsAre("1"));
  EXPECT_EQ(net_.NodeAs<RegistryService>(kRegistryAddress)->stats().expired, 1u);
  // A heartbeat after expiry registers it again.
  Register("user", "2");
  EXPECT_THAT(Discover("user"), ElementsAre("1", "2"));
}

TEST_F(RegistryServiceTest, DeregisterRemovesAtOnce) {
  Register("user", "1");
  Request request;
  request.mutable_deregister_instance()->set_service("user");
  request.mutable_deregister_instance()->set_instance_id("1");
  EXPECT_TRUE(net_.Call(kRegistryAddress, request).deregister_instance().removed());
  EXPECT_THAT(Discover("user"), IsEmpty());
  EXPECT_FALSE(net_.Call(kRegistryAddress, request).deregister_instance().removed());
}

TEST_F(RegistryServiceTest, WatchersHearOfEveryChange) {
  Request watch;
  watch.mutable_watch()->set_service("user");
  watch.mutable_watch()->set_lease_ms(60000);
  Reply reply = net_.Call(kRegistryAddress, watch);
  ASSERT_EQ(reply.status().code(), CODE_OK);
  EXPECT_EQ(reply.watch().current().instances_size(), 0);

  Register("user", "1");
  net_.RunUntilIdle();
  ASSERT_EQ(net_.test_inbox().size(), 1u);
  EXPECT_EQ(net_.test_inbox()[0].registry_update().current().instances_size(), 1);
  // Expiry is a change too.
  net_.Advance(absl::Seconds(3));
  ASSERT_EQ(net_.test_inbox().size(), 2u);
  EXPECT_EQ(net_.test_inbox()[1].registry_update().current().instances_size(), 0);
}

TEST_F(RegistryServiceTest, BadInputIsRefused) {
  EXPECT_EQ(Register("", "1").status().code(), CODE_INVALID_ARGUMENT);
  EXPECT_EQ(Register("user", "").status().code(), CODE_INVALID_ARGUMENT);
  EXPECT_EQ(Register(std::string(200, 's'), "1").status().code(), CODE_INVALID_ARGUMENT);
  Request watch;
  watch.mutable_watch()->set_service("user");
  EXPECT_EQ(net_.Call(kRegistryAddress, watch).status().code(), CODE_INVALID_ARGUMENT);
  EXPECT_THAT(Discover("user"), IsEmpty());
}

TEST(RegistryInClusterTest, ServicesRegisterThemselvesAndStopHeartbeatingWhenDead) {
  CoreClusterOptions options;
  options.user_replicas = 2;
  CoreCluster c(options);
  Request request;
  request.mutable_discover()->set_service(kUserService);
  EXPECT_EQ(c.Call(kRegistryAddress, request).discover().instances_size(), 2);
  c.net().Crash(CoreCluster::Address(kUserService, 1));
  c.Settle();
  Reply reply = c.Call(kRegistryAddress, request);
  ASSERT_EQ(reply.discover().instances_size(), 1);
  EXPECT_EQ(reply.discover().instances(0).address(), CoreCluster::Address(kUserService, 0));
}

}  // namespace
}  // namespace parley
