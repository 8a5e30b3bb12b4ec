#include "server/client_listener.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/status.h"
#include "server/frame.h"
#include "server/thread_name.h"

namespace parley {
namespace {

constexpr size_t kMaxOutputBytes = 8 << 20;  // a client that stops reading is dropped

}  // namespace

class ClientListener::Connection : public Endpoint {
 public:
  Connection(ClientListener* listener, int fd, std::string address)
      : listener_(listener), fd_(fd), address_(std::move(address)), last_refill_(absl::Now()),
        tokens_(listener->options_.burst) {}

  const std::string& Self() const override { return address_; }

  void Deliver(Envelope envelope) override {
    ++listener_->stats_.frames_out;
    Write(EncodeFrame(envelope));
  }

  void DeliverMany(std::vector<Envelope> envelopes) override {
    std::string frames;
    for (const Envelope& e : envelopes) frames += EncodeFrame(e);
    listener_->stats_.frames_out += envelopes.size();
    Write(frames);
  }

  // Writes in the sender's thread when nothing is queued (the socket is
  // non-blocking); only a remainder waits for the poll loop. The network never
  // delivers once the connection is detached, and it is detached before its
  // fd closes.
  void Write(const std::string& frames) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (overflowed_) return;
      size_t sent = 0;
      if (out_.empty()) {
        const ssize_t n = send(fd_, frames.data(), frames.size(), MSG_NOSIGNAL);
        if (n > 0) sent = static_cast<size_t>(n);
        if (sent == frames.size()) return;
      }
      if (out_.size() + frames.size() - sent > kMaxOutputBytes) {
        overflowed_ = true;  // a client that stops reading is dropped
      } else {
        out_.append(frames, sent, std::string::npos);
      }
    }
    listener_->WantWrite(fd_);
  }

  bool WantsWrite() {
    std::lock_guard<std::mutex> lock(mu_);
    return !out_.empty();
  }

  // Returns false when the connection should close now.
  bool Flush() {
    std::lock_guard<std::mutex> lock(mu_);
    if (overflowed_) return false;
    while (!out_.empty()) {
      const ssize_t n = send(fd_, out_.data(), out_.size(), MSG_NOSIGNAL);
      if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK;
      out_.erase(0, n);
    }
    return !closing_;
  }

  // Reads what is there; returns false when the connection should close.
  bool Read() {
    char buf[16384];
    for (;;) {
      const ssize_t n = recv(fd_, buf, sizeof(buf), 0);
      if (n == 0) return false;
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        return false;
      }
      in_.append(buf, n);
      if (in_.size() > 4 * listener_->options_.max_frame_bytes + 16) break;
    }
    for (;;) {
      Envelope envelope;
      const FrameResult r = DecodeFrame(&in_, listener_->options_.max_frame_bytes, &envelope);
      if (r == FrameResult::kNeedMore) return true;
      if (r == FrameResult::kTooLarge) {
        ++listener_->stats_.too_large;
        return Refuse(0, absl::ResourceExhaustedError(absl::StrCat(
                             "frame larger than ", listener_->options_.max_frame_bytes, " bytes")));
      }
      if (r == FrameResult::kMalformed) {
        ++listener_->stats_.malformed;
        return Refuse(0, absl::InvalidArgumentError("malformed frame"));
      }
      ++listener_->stats_.frames_in;
      Forward(std::move(envelope));
    }
  }

  void Forward(Envelope envelope) {
    if (!envelope.has_request()) {
      return Deliver(Reply(envelope.correlation_id(),
                           absl::InvalidArgumentError("a client frame must carry a request")));
    }
    if (!TakeToken()) {
      ++listener_->stats_.rate_limited;
      return Deliver(Reply(envelope.correlation_id(),
                           absl::ResourceExhaustedError("rate limit: slow down")));
    }
    envelope.set_from(address_);     // replies come back to this connection
    envelope.clear_auth_user_id();   // the gateway decides who this is
    listener_->network_->Send(address_, listener_->options_.gateway_address, std::move(envelope));
  }

  // Tells the gateway the session is gone, so its presence is released now.
  void Logout() {
    Envelope bye;
    bye.set_from(address_);
    bye.mutable_request()->mutable_gateway_logout();
    listener_->network_->Send(address_, listener_->options_.gateway_address, std::move(bye));
  }

  int fd() const { return fd_; }
  bool polling_out = false;  // poll thread only: EPOLLOUT is set for fd_

 private:
  static Envelope Reply(uint64_t correlation_id, const absl::Status& status) {
    Envelope e;
    e.set_correlation_id(correlation_id);
    *e.mutable_reply() = ErrorReply(status);
    return e;
  }
  bool Refuse(uint64_t correlation_id, const absl::Status& status) {
    Deliver(Reply(correlation_id, status));
    std::lock_guard<std::mutex> lock(mu_);
    closing_ = true;  // closed once the error frame is written
    return true;
  }
  bool TakeToken() {
    const absl::Time now = absl::Now();
    tokens_ = std::min(listener_->options_.burst,
                       tokens_ + absl::ToDoubleSeconds(now - last_refill_) *
                                     listener_->options_.requests_per_s);
    last_refill_ = now;
    if (tokens_ < 1) return false;
    tokens_ -= 1;
    return true;
  }

  ClientListener* listener_;
  const int fd_;
  const std::string address_;
  std::string in_;
  std::mutex mu_;
  std::string out_;
  bool overflowed_ = false;
  bool closing_ = false;
  absl::Time last_refill_;
  double tokens_;
};

absl::StatusOr<std::unique_ptr<ClientListener>> ClientListener::Start(Network* network,
                                                                     ListenerOptions options) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError("socket failed");
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(options.port);
  if (inet_pton(AF_INET, options.host.c_str(), &addr.sin_addr) != 1) {
    close(fd);
    return absl::InvalidArgumentError(absl::StrCat("not an IPv4 address: ", options.host));
  }
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(fd, 128) != 0) {
    const std::string why = strerror(errno);
    close(fd);
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.host, ":", options.port, ": ", why));
  }
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  auto listener = std::unique_ptr<ClientListener>(
      new ClientListener(network, std::move(options), fd, ntohs(addr.sin_port)));
  listener->thread_ = std::thread([l = listener.get()] {
    NameThisThread("listener");
    l->Run();
  });
  return listener;
}

ClientListener::ClientListener(Network* network, ListenerOptions options, int fd, int port)
    : network_(network), options_(std::move(options)), listen_fd_(fd), port_(port) {
  if (pipe2(wake_, O_NONBLOCK | O_CLOEXEC) != 0) wake_[0] = wake_[1] = -1;
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  for (int fd : {listen_fd_, wake_[0]}) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
  }
}

ClientListener::~ClientListener() {
  stopping_ = true;
  const char b = 1;
  (void)!write(wake_[1], &b, 1);
  if (thread_.joinable()) thread_.join();
  std::vector<int> fds;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [fd, c] : connections_) fds.push_back(fd);
  }
  for (int fd : fds) Close(fd);
  close(listen_fd_);
  close(wake_[0]);
  close(wake_[1]);
  close(epoll_fd_);
}

void ClientListener::Close(int fd) {
  std::shared_ptr<Connection> c;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = connections_.find(fd);
    if (it == connections_.end()) return;
    c = it->second;
    connections_.erase(it);
  }
  network_->Detach(c->Self());
  c->Logout();
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  close(fd);
  ++stats_.closed;
}

void ClientListener::WantWrite(int fd) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    want_write_.insert(fd);
  }
  const char b = 1;
  (void)!write(wake_[1], &b, 1);
}

std::shared_ptr<ClientListener::Connection> ClientListener::Find(int fd) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = connections_.find(fd);
  return it == connections_.end() ? nullptr : it->second;
}

void ClientListener::Service(const std::shared_ptr<Connection>& c, bool readable) {
  bool keep = true;
  if (readable) keep = c->Read();
  if (keep) keep = c->Flush();
  if (!keep) return Close(c->fd());
  const bool out = c->WantsWrite();
  if (out == c->polling_out) return;
  c->polling_out = out;
  epoll_event ev{};
  ev.events = EPOLLIN | (out ? EPOLLOUT : 0);
  ev.data.fd = c->fd();
  epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c->fd(), &ev);
}

void ClientListener::Run() {
  constexpr int kMaxEvents = 256;
  epoll_event events[kMaxEvents];
  while (!stopping_) {
    const int n = epoll_wait(epoll_fd_, events, kMaxEvents, 200);
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == wake_[0]) {
        char drain[256];
        while (read(wake_[0], drain, sizeof(drain)) > 0) {
        }
        std::set<int> want;
        {
          std::lock_guard<std::mutex> lock(mu_);
          want.swap(want_write_);
        }
        for (int w : want) {
          if (auto c = Find(w)) Service(c, false);
        }
        continue;
      }
      if (fd == listen_fd_) {
        Accept();
        continue;
      }
      if (auto c = Find(fd)) Service(c, (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0);
    }
  }
}

void ClientListener::Accept() {
  for (;;) {
    const int cfd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (cfd < 0) return;
    const int one = 1;
    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    std::shared_ptr<Connection> c;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (connections_.size() >= options_.max_connections) {
        close(cfd);
        continue;
      }
      c = std::make_shared<Connection>(
          this, cfd, absl::StrCat("tcp.", options_.gateway_address, ".", next_id_++));
      connections_[cfd] = c;
    }
    network_->Attach(c.get());
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = cfd;
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, cfd, &ev);
    ++stats_.accepted;
  }
}

}  // namespace parley
