#include "server/tcp_client_host.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "absl/strings/numbers.h"
#include "server/frame.h"

namespace parley {

TcpClientHost::TcpClientHost(std::string address, std::vector<std::string> servers,
                             std::unique_ptr<OrderedStore> store, uint64_t seed)
    : address_(std::move(address)),
      servers_(std::move(servers)),
      store_(std::move(store)),
      rng_(seed),
      loop_(address_) {}

TcpClientHost::~TcpClientHost() { Stop(); }

void TcpClientHost::Start(std::function<std::unique_ptr<Node>(Env*)> factory) {
  loop_.Start();
  loop_.RunSync([this, &factory] {
    node_ = factory(this);
    node_->Start();
  });
}

void TcpClientHost::Stop() {
  if (stopping_.exchange(true)) return;
  if (node_) loop_.RunSync([this] { node_->Stop(); });
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (fd_ >= 0) shutdown(fd_, SHUT_RDWR);
  }
  for (std::thread& t : readers_) t.join();
  loop_.Stop();
  node_.reset();
  if (fd_ >= 0) close(fd_);
}

void TcpClientHost::RunOnLoop(const std::function<void(Node*)>& fn) {
  loop_.RunSync([&] { fn(node_.get()); });
}

bool TcpClientHost::Dial() {
  for (size_t attempt = 0; attempt < servers_.size(); ++attempt) {
    const std::string& server = servers_[next_server_++ % servers_.size()];
    const size_t colon = server.rfind(':');
    int port = 0;
    if (colon == std::string::npos || !absl::SimpleAtoi(server.substr(colon + 1), &port)) continue;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    if (inet_pton(AF_INET, server.substr(0, colon).c_str(), &addr.sin_addr) != 1) continue;
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      close(fd);
      continue;
    }
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    fd_ = fd;
    readers_.emplace_back([this, fd] { ReadLoop(fd); });
    return true;
  }
  return false;
}

void TcpClientHost::ReadLoop(int fd) {
  std::string buffer;
  char chunk[16384];
  for (;;) {
    const ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
    if (n <= 0) break;
    buffer.append(chunk, n);
    for (;;) {
      Envelope envelope;
      const FrameResult r = DecodeFrame(&buffer, 16 << 20, &envelope);
      if (r != FrameResult::kFrame) break;
      loop_.Post([this, envelope = std::move(envelope)] {
        if (node_) node_->OnEnvelope(envelope);
      });
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (fd_ == fd) fd_ = -1;  // dial again on the next send
  close(fd);
}

void TcpClientHost::Send(const std::string& to, Envelope envelope) {
  const std::string frame = EncodeFrame(envelope);
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) return;
  if (fd_ < 0 && !Dial()) return;  // lost, as on the wire: the client retries
  size_t sent = 0;
  while (sent < frame.size()) {
    const ssize_t n = send(fd_, frame.data() + sent, frame.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) {
      shutdown(fd_, SHUT_RDWR);
      return;
    }
    sent += n;
  }
}

TimerId TcpClientHost::SetTimer(absl::Duration after) {
  const TimerId id = next_timer_++;
  timers_[id] = loop_.PostAfter(after, [this, id] {
    timers_.erase(id);
    if (node_) node_->OnTimer(id);
  });
  return id;
}

void TcpClientHost::CancelTimer(TimerId id) {
  auto it = timers_.find(id);
  if (it == timers_.end()) return;
  loop_.Cancel(it->second);
  timers_.erase(it);
}

}  // namespace parley
