#include "server/fault_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/time.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <random>
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

void FaultProxy::SetDelay(int latency_ms, int jitter_ms, uint64_t seed) {
  seed_.store(seed);
  jitter_ms_.store(std::max(0, jitter_ms));
  latency_ms_.store(std::max(0, latency_ms));
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
    const uint64_t number = ++accepted_;
    std::lock_guard<std::mutex> lock(mu_);
    pumps_.emplace_back([this, fd, up, number] { Pump(fd, up, number); });
  }
}

void FaultProxy::Pump(int client_fd, int upstream_fd, uint64_t number) {
  using Clock = std::chrono::steady_clock;
  constexpr size_t kMaxHeldBytes = 4 << 20;  // per direction: past it, stop reading that side
  const uint64_t born = generation_.load();
  std::mt19937_64 rng(seed_.load() ^ (number * 0x9E3779B97F4A7C15ull));
  struct Held {
    Clock::time_point due;
    std::string bytes;
  };
  // [0] client -> upstream, [1] upstream -> client.
  const int from[2] = {client_fd, upstream_fd};
  const int to[2] = {upstream_fd, client_fd};
  std::deque<Held> held[2];
  size_t held_bytes[2] = {0, 0};
  Clock::time_point last_due[2] = {Clock::time_point::min(), Clock::time_point::min()};
  bool eof[2] = {false, false};
  char buf[16384];
  bool open = true;
  while (open && !stopping_) {
    if (generation_.load() != born) {  // a partition since this connection opened
      ++cut_;
      break;
    }
    // Forward what is due; a side that has closed closes the connection once
    // what it sent has been forwarded (as TCP delivers before the FIN).
    const Clock::time_point now = Clock::now();
    int timeout_ms = 100;
    for (int i = 0; i < 2 && open; ++i) {
      while (!held[i].empty() && held[i].front().due <= now) {
        const std::string& b = held[i].front().bytes;
        if (!WriteAll(to[i], b.data(), b.size())) open = false;
        held_bytes[i] -= b.size();
        held[i].pop_front();
        if (!open) break;
      }
      if (!held[i].empty()) {
        const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(held[i].front().due - now);
        timeout_ms = std::min<int>(timeout_ms, std::max<int>(1, static_cast<int>(wait.count()) + 1));
      }
      if (eof[i] && held[i].empty()) open = false;
    }
    if (!open) break;
    pollfd pfds[2];
    for (int i = 0; i < 2; ++i) {
      const bool reading = !eof[i] && held_bytes[i] < kMaxHeldBytes;
      pfds[i] = {reading ? from[i] : -1, POLLIN, 0};  // a negative fd is skipped
    }
    const int n = poll(pfds, 2, timeout_ms);
    if (n <= 0) continue;
    for (int i = 0; i < 2 && open; ++i) {
      if (pfds[i].fd < 0 || (pfds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      const ssize_t r = recv(from[i], buf, sizeof(buf), 0);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) {
        open = false;
        break;
      }
      if (r == 0) {
        eof[i] = true;
        continue;
      }
      if (generation_.load() != born) break;
      if (i == 0 && mode() == Mode::kOneWay) {
        discarded_ += static_cast<uint64_t>(r);
        continue;
      }
      const int latency = latency_ms_.load(), jitter = jitter_ms_.load();
      if (latency == 0 && jitter == 0 && held[i].empty()) {
        if (!WriteAll(to[i], buf, static_cast<size_t>(r))) open = false;
        continue;
      }
      const int ms = latency + (jitter > 0 ? static_cast<int>(rng() % static_cast<uint64_t>(jitter + 1)) : 0);
      const Clock::time_point due = std::max(Clock::now() + std::chrono::milliseconds(ms), last_due[i]);
      last_due[i] = due;
      held[i].push_back({due, std::string(buf, static_cast<size_t>(r))});
      held_bytes[i] += static_cast<size_t>(r);
      ++delayed_;
    }
  }
  close(client_fd);
  close(upstream_fd);
}

}  // namespace parley
