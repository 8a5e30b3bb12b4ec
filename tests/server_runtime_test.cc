// The core's state machines on the server runtime: one event-loop thread per
// node, the system clock, LevelDB files, the in-process network and bus. Two
// clients register, log in through a gateway, befriend and chat.
#include <pthread.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "core/client/client.h"
#include "core/friend/friend_service.h"
#include "core/gateway/gateway.h"
#include "core/group/group_service.h"
#include "core/kv/kv_service.h"
#include "core/message/message_shard.h"
#include "core/registry/registry_service.h"
#include "core/services.h"
#include "core/user/user_service.h"
#include "gtest/gtest.h"
#include "fakes/mem_store.h"
#include "server/leveldb_store.h"
#include "server/nats_network.h"
#include "server/nats_server_process.h"
#include "server/node_host.h"

namespace parley {
namespace {

// Runs over the in-process network, and over a real nats-server on loopback.
class ServerRuntimeTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "local") {
      network_ = std::make_unique<LocalNetwork>();
      return;
    }
    auto server = NatsServerProcess::Start(std::string(std::getenv("TEST_TMPDIR")) + "/nats");
    ASSERT_TRUE(server.ok()) << server.status();
    nats_server_ = std::move(*server);
    JetStreamBus::Options js;
    js.ack_wait = absl::Seconds(2);
    auto network = NatsNetwork::Connect(
        nats_server_->url(), GetParam() == "nats_jetstream" ? NatsNetwork::Bus::kJetStream
                                                            : NatsNetwork::Bus::kLocal,
        js);
    ASSERT_TRUE(network.ok()) << network.status();
    nats_ = network->get();
    network_ = std::move(*network);
    // The clients are on a connection of their own, as if in another process
    // (within one network, sends between local endpoints skip the server).
    auto clients = NatsNetwork::Connect(nats_server_->url(), NatsNetwork::Bus::kLocal);
    ASSERT_TRUE(clients.ok()) << clients.status();
    client_nats_ = clients->get();
    client_network_ = std::move(*clients);
  }
  void Add(const std::string& address, NodeHost::Factory factory) {
    const std::string dir =
        std::string(std::getenv("TEST_TMPDIR")) + "/data-" + GetParam() + "/" + address;
    std::filesystem::create_directories(dir);
    auto store = LevelDbStore::Open(dir);
    ASSERT_TRUE(store.ok()) << store.status();
    Network* network = network_.get();
    if (client_network_ != nullptr && address.rfind("client.", 0) == 0) network = client_network_.get();
    hosts_.push_back(std::make_unique<NodeHost>(address, std::move(*store), network,
                                                hosts_.size() + 1));
    hosts_.back()->Start(std::move(factory));
  }
  NodeHost* host(const std::string& address) {
    for (auto& h : hosts_) {
      if (h->Self() == address) return h.get();
    }
    return nullptr;
  }
  // Polls `done` on the client's loop for up to 15 s.
  bool WaitFor(const std::string& client, const std::function<bool(Client*)>& done) {
    for (int i = 0; i < 300; ++i) {
      bool ok = false;
      host(client)->RunOnLoop([&](Node* n) { ok = done(dynamic_cast<Client*>(n)); });
      if (ok) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }
  void TearDown() override {
    for (auto it = hosts_.rbegin(); it != hosts_.rend(); ++it) (*it)->Stop();
    hosts_.clear();
    client_network_.reset();
    network_.reset();
    if (nats_server_) {
      EXPECT_TRUE(nats_server_->Stop().ok());
    }
  }

  std::unique_ptr<NatsServerProcess> nats_server_;
  NatsNetwork* nats_ = nullptr;
  NatsNetwork* client_nats_ = nullptr;
  std::unique_ptr<Network> network_;
  std::unique_ptr<Network> client_network_;
  std::vector<std::unique_ptr<NodeHost>> hosts_;
};

TEST_P(ServerRuntimeTest, TwoClientsChatThroughRealThreadsAndLevelDb) {
  Add(kRegistryAddress, [](Env* e) { return std::make_unique<RegistryService>(e); });
  Add(kKvAddress, [](Env* e) { return std::make_unique<KvService>(e); });
  Add(InstanceAddress(kUserService, "1"), [](Env* e) { return std::make_unique<UserService>(e); });
  Add(InstanceAddress(kFriendService, "1"),
      [](Env* e) { return std::make_unique<FriendService>(e); });
  Add(InstanceAddress(kGroupService, "1"), [](Env* e) { return std::make_unique<GroupService>(e); });
  Add(ShardAddress(0), [](Env* e) { return std::make_unique<MessageShard>(e, MessageOptions()); });
  Add(GatewayAddress("1"), [](Env* e) { return std::make_unique<Gateway>(e, GatewayOptions()); });
  for (const char* name : {"alice", "bob"}) {
    ClientOptions o;
    o.name = name;
    o.password = std::string("password-") + name;
    Add(std::string("client.") + name, [o](Env* e) { return std::make_unique<Client>(e, o); });
  }
  ASSERT_TRUE(WaitFor("client.alice", [](Client* c) { return c->state() == Client::State::kOnline; }));
  ASSERT_TRUE(WaitFor("client.bob", [](Client* c) { return c->state() == Client::State::kOnline; }));
  uint64_t bob_id = 0;
  host("client.bob")->RunOnLoop([&](Node* n) { bob_id = dynamic_cast<Client*>(n)->user_id(); });
  ASSERT_NE(bob_id, 0u);

  std::atomic<int> befriended{-1};
  host("client.alice")->RunOnLoop([&](Node* n) {
    Request r;
    r.mutable_add_friend()->set_friend_id(bob_id);
    dynamic_cast<Client*>(n)->Call(r, [&](const Reply& reply) { befriended = reply.status().code(); });
  });
  for (int i = 0; i < 200 && befriended < 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(25));
  ASSERT_EQ(befriended, CODE_OK);

  host("client.alice")->RunOnLoop([&](Node* n) {
    dynamic_cast<Client*>(n)->SendPrivate(bob_id, "hello over threads");
  });
  EXPECT_TRUE(WaitFor("client.bob", [](Client* c) {
    return !c->delivered().empty() && c->delivered().back().body() == "hello over threads";
  }));
  // The message is on disk in the shard's LevelDB.
  host(ShardAddress(0))->RunOnLoop([&](Node* n) {
    std::vector<KeyValue> rows;
    ASSERT_TRUE(host(ShardAddress(0))->Store().Scan("msg/", "", 10, &rows).ok());
    EXPECT_EQ(rows.size(), 1u);
  });
  // A profile change travels as an event (through the bus under test) to the
  // friend service, and alice's friend list shows it.
  std::atomic<int> updated{-1};
  host("client.bob")->RunOnLoop([&](Node* n) {
    Request r;
    r.mutable_update_profile()->set_nickname("Robert");
    dynamic_cast<Client*>(n)->Call(r, [&](const Reply& reply) { updated = reply.status().code(); });
  });
  bool converged = false;
  for (int i = 0; i < 150 && !converged; ++i) {
    std::atomic<bool> done{false};
    host("client.alice")->RunOnLoop([&](Node* n) {
      Request r;
      r.mutable_list_friends();
      dynamic_cast<Client*>(n)->Call(r, [&](const Reply& reply) {
        const FriendList& list = reply.list_friends().list();
        converged = list.friends_size() == 1 && list.friends(0).nickname() == "Robert";
        done = true;
      });
    });
    while (!done) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    if (!converged) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(updated, CODE_OK);
  EXPECT_TRUE(converged) << "the profile change never reached alice's friend list";
  if (nats_ != nullptr && nats_->jetstream() != nullptr) {
    EXPECT_GT(nats_->jetstream()->published(), 3u);  // registrations, friendship, profile
    EXPECT_GT(nats_->jetstream()->delivered(), 3u);
  }
  if (nats_ != nullptr) {
    // Client <-> gateway traffic really went through nats-server.
    EXPECT_GT(client_nats_->sent(), 10u);
    EXPECT_GT(client_nats_->received(), 10u);
    EXPECT_GT(nats_->received(), 10u);
    EXPECT_EQ(nats_->malformed(), 0u);
  }
}

INSTANTIATE_TEST_SUITE_P(Networks, ServerRuntimeTest, ::testing::Values("local", "nats_local_bus", "nats_jetstream"),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

TEST(NatsServerProcessTest, StartsOnAFreePortAndStopsCleanly) {
  auto server = NatsServerProcess::Start(std::string(std::getenv("TEST_TMPDIR")) + "/nats2");
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_EQ((*server)->url().rfind("nats://127.0.0.1:", 0), 0u) << (*server)->url();
  EXPECT_TRUE((*server)->Stop().ok());
  EXPECT_FALSE(NatsNetwork::Connect("nats://127.0.0.1:1").ok());  // nothing listens there
  EXPECT_FALSE(NatsServerProcess::Start("/tmp/x", absl::Seconds(1), "/nonexistent/nats").ok());
}

TEST(EventLoopTest, RunsTasksInOrderAndTimersAfterTheirDelay) {
  EventLoop loop("test");
  loop.Start();
  std::vector<int> seen;
  for (int i = 0; i < 5; ++i) loop.Post([&seen, i] { seen.push_back(i); });
  const auto start = std::chrono::steady_clock::now();
  std::atomic<bool> fired{false};
  loop.PostAfter(absl::Milliseconds(50), [&] { fired = true; });
  const uint64_t cancelled = loop.PostAfter(absl::Milliseconds(10), [&] { seen.push_back(99); });
  loop.Cancel(cancelled);
  while (!fired) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(50));
  loop.RunSync([] {});
  EXPECT_EQ(seen, (std::vector<int>{0, 1, 2, 3, 4}));
  loop.Stop();
  EXPECT_FALSE(loop.Post([] {}));  // stopped: dropped and counted
  EXPECT_EQ(loop.dropped(), 1u);
}

// A loop's thread carries the loop's name (top -H, perf), the end of it when
// it is longer than Linux keeps.
TEST(EventLoopTest, ItsThreadIsNamedAfterIt) {
  for (const auto& [name, shown] : std::vector<std::pair<std::string, std::string>>{
           {"svc.message.0", "svc.message.0"}, {"client.load123456_7", "nt.load123456_7"}}) {
    EventLoop loop(name);
    loop.Start();
    char buf[32] = {};
    loop.RunSync([&buf] { pthread_getname_np(pthread_self(), buf, sizeof(buf)); });
    EXPECT_EQ(std::string(buf), shown);
    loop.Stop();
  }
}

// A run of slow tasks is cut into runs of at most max_run_time, so a slow
// handler does not hold the outputs of everything queued behind it.
TEST(EventLoopTest, ALongRunIsCutByItsTime) {
  EventLoop loop("test");
  std::atomic<int> runs{0};
  loop.SetAfterRun([&runs] { ++runs; }, 1024, absl::Milliseconds(5));
  loop.Start();
  std::atomic<bool> go{false};
  loop.Post([&go] {
    while (!go) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  });
  for (int i = 0; i < 10; ++i) {
    loop.Post([] { std::this_thread::sleep_for(std::chrono::milliseconds(3)); });
  }
  go = true;
  loop.RunSync([] {});
  // 30 ms of tasks queued together: at least 5 runs of 5 ms, not one.
  EXPECT_GE(runs.load(), 5);
  loop.Stop();
}

// Load shedding in the host: a node that takes 30 ms a request, given 20
// requests at once whose callers each wait 100 ms. Those still queued after
// 100 ms are dropped unhandled; a request with no timeout never is.
// Replies to every envelope, after `think` and, if `write`, after writing
// "req/<correlation id>".
class Replier : public Node {
 public:
  Replier(Env* env, bool write, absl::Duration think) : env_(env), write_(write), think_(think) {}
  void Start() override {}
  void OnEnvelope(const Envelope& envelope) override {
    absl::SleepFor(think_);
    if (write_) {
      WriteBatch b;
      b.Put("req/" + std::to_string(envelope.correlation_id()), "done");
      ASSERT_TRUE(env_->Store().Write(b).ok());
    }
    Envelope reply;
    reply.set_correlation_id(envelope.correlation_id());
    reply.mutable_reply();
    env_->Send(envelope.from(), reply);
  }
  void OnEvent(const Event&, uint64_t) override {}
  void OnPublishAck(const std::string&) override {}
  void OnTimer(TimerId) override {}

 private:
  Env* env_;
  const bool write_;
  const absl::Duration think_;
};

class ReplyCounter : public Endpoint {
 public:
  const std::string& Self() const override { return self_; }
  void Deliver(Envelope envelope) override {
    std::lock_guard<std::mutex> lock(mu_);
    seen_.push_back(envelope.correlation_id());
  }
  std::vector<uint64_t> Seen() {
    std::lock_guard<std::mutex> lock(mu_);
    return seen_;
  }

 private:
  const std::string self_ = "caller";
  std::mutex mu_;
  std::vector<uint64_t> seen_;
};

TEST(NodeHostLoadSheddingTest, RequestsThatWaitedPastTheirTimeoutAreDropped) {
  LocalNetwork network;
  ReplyCounter caller;
  network.Attach(&caller);
  NodeHost host("node", std::make_unique<MemStore>(), &network, 1);
  host.Start([](Env* e) { return std::make_unique<Replier>(e, false, absl::Milliseconds(30)); });
  std::vector<Envelope> batch;
  for (int i = 1; i <= 21; ++i) {
    Envelope e;
    e.set_from("caller");
    e.set_correlation_id(i);
    e.mutable_request()->mutable_ping();
    if (i <= 20) e.set_timeout_us(100000);  // the last one waits forever
    batch.push_back(e);
  }
  network.SendMany("caller", "node", std::move(batch));
  for (int i = 0; i < 300 && caller.Seen().size() + host.expired() < 21; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const std::vector<uint64_t> seen = caller.Seen();
  EXPECT_EQ(seen.size() + host.expired(), 21u);
  EXPECT_GE(host.expired(), 10u) << "most waited far past 100 ms";
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.front(), 1u);  // the first waited for no one
  EXPECT_EQ(seen.back(), 21u);  // no timeout: handled however long it waited
  host.Stop();
  network.Detach("caller");
}

// Group commit in the host: a node that writes, then replies, under a disk
// whose every sync takes 20 ms. Requests arriving during a sync share the next
// one, and no reply leaves before the write it follows is on the disk.
class SlowDisk : public MemStore {
 public:
  absl::Status Write(const WriteBatch& batch) override {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    return MemStore::Write(batch);
  }
};

// Receives the replies on the host's loop thread (LocalNetwork delivers in
// the sender's thread) and checks each against the disk there.
class ReplyChecker : public Endpoint {
 public:
  explicit ReplyChecker(const MemStore* disk) : disk_(disk) {}
  const std::string& Self() const override { return self_; }
  void Deliver(Envelope envelope) override {
    std::string value;
    if (!disk_->Get("req/" + std::to_string(envelope.correlation_id()), &value).ok()) ++early_;
    ++replies_;
  }
  std::atomic<int> replies_{0}, early_{0};

 private:
  const std::string self_ = "checker";
  const MemStore* disk_;
};

TEST(NodeHostGroupCommitTest, RepliesWaitForTheirWriteAndConcurrentWritesShareASync) {
  LocalNetwork network;
  auto disk = std::make_unique<SlowDisk>();
  const MemStore* disk_view = disk.get();
  ReplyChecker checker(disk_view);
  network.Attach(&checker);
  NodeHost host("node", std::move(disk), &network, 1);
  host.Start([](Env* e) { return std::make_unique<Replier>(e, true, absl::ZeroDuration()); });
  constexpr int kRequests = 200;
  for (int i = 1; i <= kRequests; ++i) {
    Envelope e;
    e.set_from("checker");
    e.set_correlation_id(i);
    network.Send("checker", "node", e);
  }
  for (int i = 0; i < 500 && checker.replies_ < kRequests; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(checker.replies_, kRequests);
  EXPECT_EQ(checker.early_, 0);  // never acknowledged before durable
  uint64_t batches = 0, commits = 0;
  host.RunOnLoop([&](Node*) {
    batches = host.batches();
    commits = host.commits();
  });
  EXPECT_EQ(batches, static_cast<uint64_t>(kRequests));
  EXPECT_LE(commits, batches / 4) << "concurrent writes should share syncs";
  host.Stop();
  network.Detach("checker");
}

// Nodes sharing a loop: two writers on one HostLoop, each under a disk whose
// every sync takes 20 ms, answered to checkers that look at the disk. No
// reply of either leaves before the write it follows is on its node's disk;
// the writes of a run are committed together (one commit per node that wrote,
// not one per request), and stopping one host leaves the other serving.
class NamedReplyChecker : public Endpoint {
 public:
  NamedReplyChecker(std::string name, const MemStore* disk) : self_(std::move(name)), disk_(disk) {}
  const std::string& Self() const override { return self_; }
  void Deliver(Envelope envelope) override {
    std::string value;
    if (!disk_->Get("req/" + std::to_string(envelope.correlation_id()), &value).ok()) ++early_;
    ++replies_;
  }
  std::atomic<int> replies_{0}, early_{0};

 private:
  const std::string self_;
  const MemStore* disk_;
};

TEST(HostLoopTest, NodesSharingALoopReplyOnlyAfterTheirWritesAreDurable) {
  LocalNetwork network;
  HostLoop loop("shared");
  loop.Start();
  auto disk_a = std::make_unique<SlowDisk>();
  auto disk_b = std::make_unique<SlowDisk>();
  NamedReplyChecker checker_a("checker.a", disk_a.get());
  NamedReplyChecker checker_b("checker.b", disk_b.get());
  network.Attach(&checker_a);
  network.Attach(&checker_b);
  NodeHost a("node.a", std::move(disk_a), &network, 1, &loop);
  NodeHost b("node.b", std::move(disk_b), &network, 2, &loop);
  auto replier = [](Env* e) { return std::make_unique<Replier>(e, true, absl::ZeroDuration()); };
  a.Start(replier);
  b.Start(replier);
  size_t hosts = 0;
  loop.loop().RunSync([&] { hosts = loop.hosts(); });
  EXPECT_EQ(hosts, 2u);
  constexpr int kRequests = 200;
  for (int i = 1; i <= kRequests; ++i) {
    Envelope e;
    e.set_correlation_id(i);
    e.set_from("checker.a");
    network.Send("checker.a", "node.a", e);
    e.set_from("checker.b");
    network.Send("checker.b", "node.b", e);
  }
  for (int i = 0; i < 1000 && checker_a.replies_ + checker_b.replies_ < 2 * kRequests; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(checker_a.replies_, kRequests);
  EXPECT_EQ(checker_b.replies_, kRequests);
  EXPECT_EQ(checker_a.early_, 0);  // never acknowledged before durable
  EXPECT_EQ(checker_b.early_, 0);
  uint64_t commits_a = 0, commits_b = 0, runs = 0;
  loop.loop().RunSync([&] {
    commits_a = a.commits();
    commits_b = b.commits();
    runs = loop.runs();
  });
  EXPECT_LE(commits_a, kRequests / 4u) << "concurrent writes should share syncs";
  EXPECT_LE(commits_b, kRequests / 4u);
  // A run commits each node that wrote at most once.
  EXPECT_LE(commits_a, runs);
  EXPECT_LE(commits_b, runs);

  // One host stops; the other keeps serving on the loop.
  a.Stop();
  loop.loop().RunSync([&] { hosts = loop.hosts(); });
  EXPECT_EQ(hosts, 1u);
  Envelope e;
  e.set_correlation_id(kRequests + 1);
  e.set_from("checker.b");
  network.Send("checker.b", "node.b", e);
  for (int i = 0; i < 300 && checker_b.replies_ < kRequests + 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(checker_b.replies_, kRequests + 1);
  EXPECT_EQ(checker_b.early_, 0);
  b.Stop();
  loop.Stop();
  network.Detach("checker.a");
  network.Detach("checker.b");
}

}  // namespace
}  // namespace parley
