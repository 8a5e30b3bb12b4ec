// A 3-node NATS cluster on loopback with JetStream and an R3 event stream;
// two parleyd processes connect to different nodes (A: every role and
// gateway 1, B: gateway 2), clients spread over both, and the load
// generator's checkers pass. Tagged manual: about half a minute.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "server/load.h"
#include "server/nats_server_process.h"
#include "tests/process_util.h"

namespace parley {
namespace {

TEST(ClusterTest, TwoParleydOnAThreeNodeClusterWithAnR3Stream) {
  const std::string tmp = std::getenv("TEST_TMPDIR");
  int client_ports[3], cluster_ports[3];
  for (int i = 0; i < 3; ++i) {
    client_ports[i] = FreePort();
    cluster_ports[i] = FreePort();
  }
  std::vector<std::unique_ptr<NatsServerProcess>> nodes;
  for (int i = 0; i < 3; ++i) {
    std::string routes;
    for (int j = 0; j < 3; ++j) {
      if (j == i) continue;
      if (!routes.empty()) routes += ",";
      routes += absl::StrCat("nats://127.0.0.1:", cluster_ports[j]);
    }
    auto node = NatsServerProcess::Start(
        absl::StrCat(tmp, "/n", i), absl::Seconds(15), "/usr/sbin/nats-server", client_ports[i],
        {"--server_name", absl::StrCat("n", i), "--cluster_name", "parley", "--cluster",
         absl::StrCat("nats://127.0.0.1:", cluster_ports[i]), "--routes", routes});
    ASSERT_TRUE(node.ok()) << node.status();
    nodes.push_back(std::move(*node));
  }
  const std::string url_a = absl::StrCat(nodes[0]->url(), ",", nodes[1]->url());
  const std::string url_b = absl::StrCat(nodes[2]->url(), ",", nodes[1]->url());
  const int port_a = FreePort(), port_b = FreePort();
  const std::string key = SharedTokenKeyFlag(tmp + "/token.key");  // both gateways verify tokens
  const pid_t a = Spawn({"server/parleyd", "--nats=" + url_a, "--data_dir=" + tmp + "/a",
                         absl::StrCat("--listen=127.0.0.1:", port_a), "--gateway_id=1",
                         "--stream_replicas=3", "--minimal_password_cost", key},
                        tmp + "/a.log");
  for (int i = 0; i < 600 && !Listening(port_a); ++i) absl::SleepFor(absl::Milliseconds(50));
  ASSERT_TRUE(Listening(port_a)) << "parleyd A did not come up (see a.log)";
  const pid_t b = Spawn({"server/parleyd", "--nats=" + url_b, "--data_dir=" + tmp + "/b",
                         absl::StrCat("--listen=127.0.0.1:", port_b), "--gateway_id=2",
                         "--roles=gateway", "--stream_replicas=3", "--minimal_password_cost", key},
                        tmp + "/b.log");
  for (int i = 0; i < 600 && !Listening(port_b); ++i) absl::SleepFor(absl::Milliseconds(50));
  ASSERT_TRUE(Listening(port_b));
  absl::SleepFor(absl::Seconds(1));

  for (const std::string& server : {absl::StrCat("127.0.0.1:", port_a), absl::StrCat("127.0.0.1:", port_b)}) {
    LoadOptions l;
    l.servers = {server};
    l.clients = 6;
    l.duration_s = 3;
    l.group_size = 3;
    l.rate_per_s = 100;
    l.run_id = server == absl::StrCat("127.0.0.1:", port_a) ? "ca" : "cb";
    absl::StatusOr<LoadResult> r = RunLoad(l);
    ASSERT_TRUE(r.ok()) << r.status();
    for (const sim::Violation& v : r->violations) ADD_FAILURE() << v.checker << ": " << v.explanation;
    EXPECT_GT(r->acked, 50u);
    std::printf("%s via %s\n", r->LoadLine().c_str(), server.c_str());
  }
  for (pid_t p : {b, a}) {
    kill(p, SIGINT);
    int status = 0;
    waitpid(p, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
}

}  // namespace
}  // namespace parley
