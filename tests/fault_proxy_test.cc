// The real runner's fault proxy on loopback: it forwards both ways; kDrop
// closes open connections and closes new ones at once; kOneWay discards what
// the client sends while upstream's bytes still reach it; kPass heals.
#include "server/fault_proxy.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace parley {
namespace {

// An upstream that greets each connection with "hi\n" and echoes what it reads.
class EchoServer {
 public:
  EchoServer() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    listen(fd_, 16);
    socklen_t len = sizeof(addr);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] {
      while (!stop_) {
        pollfd p{fd_, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0) continue;
        const int c = accept(fd_, nullptr, nullptr);
        if (c < 0) continue;
        conns_.emplace_back([this, c] {
          send(c, "hi\n", 3, MSG_NOSIGNAL);
          char buf[256];
          while (!stop_) {
            pollfd q{c, POLLIN, 0};
            if (poll(&q, 1, 50) <= 0) continue;
            const ssize_t n = recv(c, buf, sizeof(buf), 0);
            if (n <= 0) break;
            send(c, buf, static_cast<size_t>(n), MSG_NOSIGNAL);
          }
          close(c);
        });
      }
    });
  }
  ~EchoServer() {
    stop_ = true;
    thread_.join();
    for (std::thread& t : conns_) t.join();
    close(fd_);
  }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::vector<std::thread> conns_;  // the accept thread only
};

int Dial(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  return fd;
}

// What arrives within `ms` (at most 255 bytes); "<closed>" once the peer closed.
std::string ReadFor(int fd, int ms) {
  std::string out;
  char buf[256];
  for (int waited = 0; waited < ms; waited += 20) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 20) <= 0) continue;
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) return out + "<closed>";
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

TEST(FaultProxyTest, PassDropOneWayAndHeal) {
  EchoServer echo;
  auto proxy = FaultProxy::Start("127.0.0.1", echo.port());
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  FaultProxy& p = **proxy;

  // Pass: the greeting and the echo.
  const int a = Dial(p.port());
  EXPECT_EQ(ReadFor(a, 300), "hi\n");
  send(a, "ping", 4, MSG_NOSIGNAL);
  EXPECT_EQ(ReadFor(a, 300), "ping");

  // Drop: the open connection is closed, a new one is closed at once.
  p.SetMode(FaultProxy::Mode::kDrop);
  EXPECT_EQ(ReadFor(a, 500), "<closed>");
  close(a);
  const int b = Dial(p.port());
  EXPECT_EQ(ReadFor(b, 500), "<closed>");
  close(b);
  EXPECT_EQ(p.cut(), 1u);
  EXPECT_GE(p.refused(), 1u);

  // One way: upstream's greeting arrives, what the client sends does not.
  p.SetMode(FaultProxy::Mode::kOneWay);
  const int c = Dial(p.port());
  EXPECT_EQ(ReadFor(c, 300), "hi\n");
  send(c, "lost", 4, MSG_NOSIGNAL);
  EXPECT_EQ(ReadFor(c, 300), "");
  EXPECT_EQ(p.discarded_bytes(), 4u);

  // Healed: the same connection carries both ways again.
  p.SetMode(FaultProxy::Mode::kPass);
  send(c, "back", 4, MSG_NOSIGNAL);
  EXPECT_EQ(ReadFor(c, 300), "back");
  close(c);
  p.Stop();
}

TEST(FaultProxyTest, LoopbackOnly) {
  EXPECT_FALSE(FaultProxy::Start("10.0.0.1", 4222).ok());
}

}  // namespace
}  // namespace parley
