#include "server/fault_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/time.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>

#include "absl/strings/str_cat.h"

namespace parley {
namespace {

bool WriteAll(int fd, const char* data, size_t n) {
  while (n > 0) {
    const ssize_t w = send(fd, data, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    data += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

}  // namespace

absl::StatusOr<std::unique_ptr<FaultProxy>> FaultProxy::Start(const std::string& upstream_host,
                                                              int upstream_port) {
  if (upstream_host != "127.0.0.1" && upstream_host != "localhost") {
    return absl::InvalidArgumentError(absl::StrCat("the fault proxy is loopback only, not ", upstream_host));
  }
  auto p = std::unique_ptr<FaultProxy>(new FaultProxy("127.0.0.1", upstream_port));
  p->listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (p->listen_fd_ < 0) return absl::InternalError("socket failed");
  const int one = 1;
  setsockopt(p->listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(p->listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(p->listen_fd_, 64) != 0) {
    return absl::InternalError(absl::StrCat("fault proxy: bind/listen: ", std::strerror(errno)));
  }
  socklen_t len = sizeof(addr);
  getsockname(p->listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  p->port_ = ntohs(addr.sin_port);
  p->acceptor_ = std::thread([raw = p.get()] { raw->AcceptLoop(); });
  return p;
}

FaultProxy::~FaultProxy() { Stop(); }

void FaultProxy::Stop() {
  if (stopping_.exchange(true)) return;
  if (listen_fd_ >= 0) shutdown(listen_fd_, SHUT_RDWR);
  if (acceptor_.joinable()) acceptor_.join();
  if (listen_fd_ >= 0) close(listen_fd_);
  listen_fd_ = -1;
  std::vector<std::thread> pumps;
  {
    std::lock_guard<std::mutex> lock(mu_);
    pumps.swap(pumps_);
  }
  for (std::thread& t : pumps) t.join();  // each sees stopping_ within 100 ms
}

void FaultProxy::SetMode(Mode mode) {
  if (mode == Mode::kDrop) generation_.fetch_add(1);
  mode_.store(static_cast<int>(mode));
}

void FaultProxy::AcceptLoop() {
  while (!stopping_) {
    pollfd pfd{listen_fd_, POLLIN, 0};
    const int n = poll(&pfd, 1, 100);
    if (n <= 0) continue;
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    if (mode() == Mode::kDrop) {
      ++refused_;
      close(fd);
      continue;
    }
    const int up = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(upstream_port_));
    if (up < 0 || connect(up, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      if (up >= 0) close(up);
      close(fd);  // upstream down (nats-server restarting): the client redials
      continue;
    }
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(up, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    // A peer that stops reading (SIGSTOP) stalls a write at most this long.
    timeval tv{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    setsockopt(up, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    ++accepted_;
    std::lock_guard<std::mutex> lock(mu_);
    pumps_.emplace_back([this, fd, up] { Pump(fd, up); });
  }
}

void FaultProxy::Pump(int client_fd, int upstream_fd) {
  const uint64_t born = generation_.load();
  char buf[16384];
  bool open = true;
  while (open && !stopping_) {
    if (generation_.load() != born) {  // a partition since this connection opened
      ++cut_;
      break;
    }
    pollfd pfds[2] = {{client_fd, POLLIN, 0}, {upstream_fd, POLLIN, 0}};
    const int n = poll(pfds, 2, 100);
    if (n <= 0) continue;
    for (int i = 0; i < 2 && open; ++i) {
      if ((pfds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      const ssize_t r = recv(pfds[i].fd, buf, sizeof(buf), 0);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) {
        open = false;
        break;
      }
      if (generation_.load() != born) break;
      if (i == 0 && mode() == Mode::kOneWay) {
        discarded_ += static_cast<uint64_t>(r);
        continue;
      }
      if (!WriteAll(i == 0 ? upstream_fd : client_fd, buf, static_cast<size_t>(r))) open = false;
    }
  }
  close(client_fd);
  close(upstream_fd);
}

}  // namespace parley
