#include "server/tcp_client_host.h"

#include <cstdio>
#include <cstdlib>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "absl/strings/numbers.h"
#include "server/frame.h"
#include "server/thread_name.h"

namespace parley {

struct ClientRuntime::Reader {
  std::shared_ptr<TcpClientHost*> host;
  std::string buffer;
};

ClientRuntime::ClientRuntime(std::string name) : loop_(std::move(name)) {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = wake_fd_;
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
  loop_.Start();
  thread_ = std::thread([this] {
    NameThisThread("reader." + loop_.name());
    Run();
  });
}

ClientRuntime::~ClientRuntime() {
  stopping_ = true;
  const uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof(one));
  thread_.join();
  loop_.Stop();
  close(wake_fd_);
  close(epoll_fd_);
}

void ClientRuntime::Watch(int fd, std::shared_ptr<TcpClientHost*> host) {
  std::lock_guard<std::mutex> lock(mu_);
  auto reader = std::make_unique<Reader>();
  reader->host = std::move(host);
  readers_[fd] = std::move(reader);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = fd;
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
}

void ClientRuntime::Unwatch(int fd) {
  std::lock_guard<std::mutex> lock(mu_);
  if (readers_.erase(fd) > 0) epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
}

void ClientRuntime::Run() {
  constexpr int kMaxEvents = 256;
  epoll_event events[kMaxEvents];
  std::string chunk(64 * 1024, '\0');
  while (!stopping_) {
    const int n = epoll_wait(epoll_fd_, events, kMaxEvents, 500);
    using Frames = std::vector<std::pair<std::shared_ptr<TcpClientHost*>, Envelope>>;
    Frames frames;
    std::vector<std::pair<std::shared_ptr<TcpClientHost*>, int>> ended;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (int i = 0; i < n; ++i) {
        const int fd = events[i].data.fd;
        if (fd == wake_fd_) continue;
        auto it = readers_.find(fd);
        if (it == readers_.end()) continue;  // unwatched meanwhile
        Reader& r = *it->second;
        bool end = false;
        const ssize_t got = recv(fd, chunk.data(), chunk.size(), MSG_DONTWAIT);
        if (got > 0) {
          r.buffer.append(chunk.data(), got);
        } else if (got == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
          end = true;
        }
        for (;;) {
          Envelope envelope;
          const FrameResult f = DecodeFrame(&r.buffer, 16 << 20, &envelope);
          if (f == FrameResult::kFrame) {
            frames.emplace_back(r.host, std::move(envelope));
            continue;
          }
          if (f != FrameResult::kNeedMore) end = true;  // the server is beyond repair
          break;
        }
        if (end) {
          ended.emplace_back(r.host, fd);
          epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
          readers_.erase(it);
        }
      }
    }
    if (frames.empty() && ended.empty()) continue;
    // One task per wakeup for everything read.
    loop_.Post([frames = std::move(frames), ended = std::move(ended)]() mutable {
      for (auto& [host, envelope] : frames) {
        if (*host != nullptr && (*host)->node_) {
          if ((*host)->tap_.received) (*host)->tap_.received(envelope);
          (*host)->node_->OnEnvelope(envelope);
        }
      }
      for (auto& [host, fd] : ended) {
        if (*host != nullptr) (*host)->OnEndOfStream(fd);
      }
    });
  }
}

TcpClientHost::TcpClientHost(std::string address, std::vector<std::string> servers,
                             std::unique_ptr<OrderedStore> store, uint64_t seed,
                             ClientRuntime* runtime)
    : address_(std::move(address)),
      servers_(std::move(servers)),
      store_(std::move(store)),
      rng_(seed),
      own_runtime_(runtime == nullptr ? std::make_unique<ClientRuntime>(address_) : nullptr),
      runtime_(runtime != nullptr ? runtime : own_runtime_.get()),
      self_(std::make_shared<TcpClientHost*>(this)) {}

TcpClientHost::~TcpClientHost() { Stop(); }

void TcpClientHost::Start(std::function<std::unique_ptr<Node>(Env*)> factory) {
  loop().RunSync([this, &factory] {
    node_ = factory(this);
    node_->Start();
  });
}

void TcpClientHost::Stop() {
  if (stopping_.exchange(true)) return;
  loop().RunSync([this] {
    if (node_) node_->Stop();
    for (const auto& [id, loop_id] : timers_) loop().Cancel(loop_id);
    timers_.clear();
    *self_ = nullptr;  // tasks still queued for this host find nobody
  });
  int fd;
  {
    std::lock_guard<std::mutex> lock(mu_);
    fd = fd_;
    fd_ = -1;
  }
  if (fd >= 0) {
    runtime_->Unwatch(fd);
    close(fd);
  }
  node_.reset();
  own_runtime_.reset();
}

void TcpClientHost::RunOnLoop(const std::function<void(Node*)>& fn) {
  loop().RunSync([&] { fn(node_.get()); });
}

void TcpClientHost::PostToLoop(std::function<void(Node*)> fn) {
  loop().Post([self = self_, fn = std::move(fn)] {
    if (*self != nullptr) fn((*self)->node_.get());
  });
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
    runtime_->Watch(fd, self_);
    return true;
  }
  return false;
}

void TcpClientHost::OnEndOfStream(int fd) {
  // The reader has let go of `fd`; it is ours to close.
  bool current = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    current = fd_ == fd;
    if (current) fd_ = -1;  // dial again on the next send
  }
  close(fd);
  if (current && tap_.connection) tap_.connection("the server closed the connection");
}

void TcpClientHost::Send(const std::string& to, Envelope envelope) {
  if (tap_.sent) tap_.sent(envelope);
  const std::string frame = EncodeFrame(envelope);
  std::unique_lock<std::mutex> lock(mu_);
  if (stopping_) return;
  if (fd_ < 0 && !Dial()) {  // lost, as on the wire: the client retries
    lock.unlock();
    if (tap_.connection) tap_.connection("could not connect to a server");
    return;
  }
  size_t sent = 0;
  while (sent < frame.size()) {
    const ssize_t n = send(fd_, frame.data() + sent, frame.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) {
      shutdown(fd_, SHUT_RDWR);  // the reader sees the end and hands the fd back
      return;
    }
    sent += n;
  }
}

TimerId TcpClientHost::SetTimer(absl::Duration after) {
  const TimerId id = next_timer_++;
  timers_[id] = loop().PostAfter(after, [this, self = self_, id] {
    if (*self == nullptr) return;
    timers_.erase(id);
    if (node_) node_->OnTimer(id);
  });
  return id;
}

void TcpClientHost::FailStop(const std::string& reason) {
  std::fprintf(stderr, "client %s: fail-stop: %s\n", Self().c_str(), reason.c_str());
  std::fflush(stderr);
  std::_Exit(70);
}

void TcpClientHost::CancelTimer(TimerId id) {
  auto it = timers_.find(id);
  if (it == timers_.end()) return;
  loop().Cancel(it->second);
  timers_.erase(it);
}

}  // namespace parley
