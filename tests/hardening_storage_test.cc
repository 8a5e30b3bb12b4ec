// Storage that refuses to lie. Truncating a message
// shard's LevelDB log to half used to start cleanly with about half of the
// acked messages, and the next send reused a seq: LevelDB drops a log's torn
// tail without a word, paranoid checks or not. Now a store that lost
// acknowledged batches refuses to open and names its files; parleyd refuses
// to start. Real files, a real parleyd killed with SIGKILL, real TCP.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/client/client.h"
#include "fakes/mem_store.h"
#include "gtest/gtest.h"
#include "server/client_driver.h"
#include "server/leveldb_store.h"
#include "server/nats_server_process.h"
#include "server/tcp_client_host.h"
#include "tests/process_util.h"

namespace parley {
namespace {

namespace fs = std::filesystem;

std::string TmpDir(const std::string& name) {
  const std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::vector<fs::path> Logs(const std::string& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() == ".log") out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void WriteN(LevelDbStore* store, int from, int to) {
  for (int i = from; i < to; ++i) {
    WriteBatch b;
    b.Put(absl::StrCat("m/", 100000 + i), std::string(200, 'x'));
    b.Put("meta", absl::StrCat(i + 1));
    ASSERT_TRUE(store->Write(b).ok());
  }
}

TEST(HardeningStorageTest, ALogTruncatedToHalfIsRefusedAndTheFileNamed) {
  const std::string dir = TmpDir("half");
  {
    auto store = LevelDbStore::Open(dir);
    ASSERT_TRUE(store.ok()) << store.status();
    WriteN(store->get(), 0, 300);
  }  // as after a SIGKILL: every batch was synced to the log, no table yet
  const std::vector<fs::path> logs = Logs(dir);
  ASSERT_EQ(logs.size(), 1u);
  fs::resize_file(logs[0], fs::file_size(logs[0]) / 2);
  auto reopened = LevelDbStore::Open(dir);
  ASSERT_FALSE(reopened.ok()) << "a store that lost half its acked batches opened";
  EXPECT_EQ(reopened.status().code(), absl::StatusCode::kDataLoss);
  const std::string message(reopened.status().message());
  EXPECT_TRUE(absl::StrContains(message, logs[0].string())) << message;
  EXPECT_TRUE(absl::StrContains(message, "PARLEY-SYNCED")) << message;
  EXPECT_TRUE(absl::StrContains(message, "300 were synced")) << message;
  EXPECT_TRUE(absl::StrContains(message, "docs/operations.md")) << message;
  // Still refused the next time (the mark stays): no silent second chance.
  EXPECT_FALSE(LevelDbStore::Open(dir).ok());
}

TEST(HardeningStorageTest, WithoutTheMarkLevelDbAloneDropsTheTornTailSilently) {
  // Why the mark exists: LevelDB with paranoid_checks opens a log cut in half
  // without an error and with fewer batches. This is also the documented
  // way to accept the loss by hand (docs/operations.md): remove the mark.
  const std::string dir = TmpDir("nomark");
  {
    auto store = LevelDbStore::Open(dir);
    ASSERT_TRUE(store.ok());
    WriteN(store->get(), 0, 300);
  }
  const std::vector<fs::path> logs = Logs(dir);
  ASSERT_EQ(logs.size(), 1u);
  fs::resize_file(logs[0], fs::file_size(logs[0]) / 2);
  fs::remove(dir + "/PARLEY-SYNCED");
  auto reopened = LevelDbStore::Open(dir);
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  std::string meta;
  ASSERT_TRUE((*reopened)->Get("meta", &meta).ok());
  int held = 0;
  ASSERT_TRUE(absl::SimpleAtoi(meta, &held));
  EXPECT_LT(held, 300);
  EXPECT_GT(held, 0);
  // From here on the store is guarded again: new batches, a clean reopen.
  WriteN(reopened->get(), held, held + 10);
  reopened->reset();
  EXPECT_TRUE(LevelDbStore::Open(dir).ok());
}

TEST(HardeningStorageTest, AFlippedByteInTheLogIsRefused) {
  const std::string dir = TmpDir("flip");
  {
    auto store = LevelDbStore::Open(dir);
    ASSERT_TRUE(store.ok());
    WriteN(store->get(), 0, 300);
  }
  const std::vector<fs::path> logs = Logs(dir);
  ASSERT_EQ(logs.size(), 1u);
  {
    std::fstream f(logs[0], std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(logs[0]) / 3));
    f.put('\x5a');
  }
  auto reopened = LevelDbStore::Open(dir);
  ASSERT_FALSE(reopened.ok());
  EXPECT_EQ(reopened.status().code(), absl::StatusCode::kDataLoss) << reopened.status();
  EXPECT_TRUE(absl::StrContains(reopened.status().message(), logs[0].string()))
      << reopened.status();
}

TEST(HardeningStorageTest, CleanRestartsAndADamagedMarkAreTold) {
  const std::string dir = TmpDir("clean");
  for (int round = 0; round < 3; ++round) {
    auto store = LevelDbStore::Open(dir);
    ASSERT_TRUE(store.ok()) << "round " << round << ": " << store.status();
    WriteN(store->get(), round * 50, round * 50 + 50);
    std::vector<KeyValue> all;
    ASSERT_TRUE((*store)->Scan("", "", SIZE_MAX, &all).ok());
    EXPECT_EQ(all.size(), static_cast<size_t>(round * 50 + 50 + 1)) << "the count is hidden";
  }
  { std::ofstream(dir + "/PARLEY-SYNCED") << "garbage"; }
  auto damaged = LevelDbStore::Open(dir);
  ASSERT_FALSE(damaged.ok());
  EXPECT_TRUE(absl::StrContains(damaged.status().message(), dir + "/PARLEY-SYNCED is damaged"))
      << damaged.status();
}

// The finding as found: a real parleyd, 300 acked messages over TCP, SIGKILL,
// the message shard's log cut to half, restart: refused, the file named.
TEST(HardeningStorageTest, ParleydRefusesToStartOnATruncatedShardLog) {
  const std::string tmp = TmpDir("parleyd");
  auto nats = NatsServerProcess::Start(tmp + "/nats");
  ASSERT_TRUE(nats.ok()) << nats.status();
  const int port = FreePort();
  const std::vector<std::string> args = {"server/parleyd", "--nats=" + (*nats)->url(),
                                         "--data_dir=" + tmp + "/data",
                                         absl::StrCat("--listen=127.0.0.1:", port),
                                         "--minimal_password_cost"};
  const pid_t first = Spawn(args, tmp + "/first.log");
  for (int i = 0; i < 200 && !Listening(port); ++i) absl::SleepFor(absl::Milliseconds(50));
  ASSERT_TRUE(Listening(port)) << ReadAll(tmp + "/first.log");
  absl::SleepFor(absl::Seconds(1));

  auto client = [&](const std::string& name) {
    ClientOptions o;
    o.name = name;
    o.password = "password-" + name;
    o.fixed_gateway = "gw.1";
    auto host = std::make_unique<TcpClientHost>(
        "client." + name, std::vector<std::string>{absl::StrCat("127.0.0.1:", port)},
        std::make_unique<MemStore>(), 7);
    host->Start([o](Env* e) { return std::make_unique<Client>(e, o); });
    return host;
  };
  auto online = [](Client* c) { return c->state() == Client::State::kOnline; };
  auto alice = client("alice");
  auto bob = client("bob");
  ASSERT_TRUE(WaitForClient(*alice, online));
  ASSERT_TRUE(WaitForClient(*bob, online));
  uint64_t bob_id = 0;
  bob->RunOnLoop([&](Node* n) { bob_id = dynamic_cast<Client*>(n)->user_id(); });
  Request add;
  add.mutable_add_friend()->set_friend_id(bob_id);
  ASSERT_EQ(CallClient(*alice, add).status().code(), CODE_OK);
  for (int sent = 0; sent < 300; sent += 100) {
    alice->RunOnLoop([&, sent](Node* n) {
      for (int i = sent; i < sent + 100; ++i) {
        dynamic_cast<Client*>(n)->SendPrivate(bob_id, absl::StrCat("acked message ", i));
      }
    });
    ASSERT_TRUE(WaitForClient(*alice, [](Client* c) { return c->pending_sends() == 0; },
                              absl::Seconds(30)));
  }
  kill(first, SIGKILL);
  waitpid(first, nullptr, 0);
  alice.reset();
  bob.reset();

  // The shard's store: the data dir's message shard(s).
  std::vector<fs::path> shard_logs;
  for (const auto& e : fs::directory_iterator(tmp + "/data")) {
    if (!absl::StrContains(e.path().filename().string(), "message")) continue;
    for (const fs::path& log : Logs(e.path().string())) {
      if (fs::file_size(log) > 300 * 20) shard_logs.push_back(log);
    }
  }
  ASSERT_EQ(shard_logs.size(), 1u) << "expected one message shard log holding the 300 messages";
  fs::resize_file(shard_logs[0], fs::file_size(shard_logs[0]) / 2);

  const pid_t second = Spawn(args, tmp + "/second.log");
  int status = 0;
  bool exited = false;
  for (int i = 0; i < 300 && !exited; ++i) {
    exited = waitpid(second, &status, WNOHANG) == second;
    if (!exited) absl::SleepFor(absl::Milliseconds(50));
  }
  if (!exited) {
    kill(second, SIGKILL);
    waitpid(second, nullptr, 0);
  }
  const std::string log = ReadAll(tmp + "/second.log");
  ASSERT_TRUE(exited) << "parleyd served a shard that lost acked messages:\n" << log;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) != 0) << log;
  EXPECT_TRUE(absl::StrContains(log, shard_logs[0].string())) << log;
  EXPECT_TRUE(absl::StrContains(log, "lost acknowledged writes")) << log;
  EXPECT_FALSE(Listening(port));
}

}  // namespace
}  // namespace parley
