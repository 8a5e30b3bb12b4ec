#include "server/client_listener.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/status.h"
#include "server/descriptors.h"
#include "server/frame.h"
#include "server/thread_name.h"

namespace parley {
namespace {

constexpr size_t kMaxOutputBytes = 8 << 20;  // a client that stops reading is dropped
// An auth request whose answer never came counts as in flight this long past
// its wait (the gateway waits at most 10 s).
constexpr absl::Duration kMaxAuthWait = absl::Seconds(10);
constexpr absl::Duration kAuthSlack = absl::Seconds(2);
constexpr absl::Duration kSweepEvery = absl::Milliseconds(250);

Envelope ErrorFrame(uint64_t correlation_id, const absl::Status& status) {
  Envelope e;
  e.set_correlation_id(correlation_id);
  *e.mutable_reply() = ErrorReply(status);
  return e;
}

std::string Ms(absl::Duration d) {
  return absl::StrCat(std::max<int64_t>(0, absl::ToInt64Milliseconds(absl::Ceil(d, absl::Milliseconds(1)))), " ms");
}

}  // namespace

class ClientListener::Connection : public Endpoint {
 public:
  Connection(ClientListener* listener, int fd, std::string address, std::string ip)
      : listener_(listener), fd_(fd), address_(std::move(address)), ip_(std::move(ip)),
        connected_at_(absl::Now()), last_frame_at_(connected_at_) {}

  const std::string& Self() const override { return address_; }
  const std::string& ip() const { return ip_; }

  // From the network (the gateway): replies and pushes.
  void Deliver(Envelope envelope) override {
    Observe(envelope);
    ++listener_->stats_.frames_out;
    Write(EncodeFrame(envelope));
  }

  void DeliverMany(std::vector<Envelope> envelopes) override {
    std::string frames;
    for (const Envelope& e : envelopes) {
      Observe(e);
      frames += EncodeFrame(e);
    }
    listener_->stats_.frames_out += envelopes.size();
    Write(frames);
  }

  // An answer of our own (never observed as the gateway's).
  void Answer(uint64_t correlation_id, const absl::Status& status) {
    ++listener_->stats_.frames_out;
    Write(EncodeFrame(ErrorFrame(correlation_id, status)));
  }

  // Writes in the sender's thread when nothing is queued (the socket is
  // non-blocking); only a remainder waits for the poll loop. The network never
  // delivers once the connection is detached, and it is detached before its
  // fd closes.
  void Write(const std::string& frames) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (overflowed_ || evicted_) return;  // evicted: only its error frame goes out
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
      if (r == FrameResult::kNeedMore) {
        // A started frame must be finished within the frame deadline.
        if (in_.empty()) {
          partial_since_ = absl::InfiniteFuture();
        } else if (partial_since_ == absl::InfiniteFuture()) {
          partial_since_ = absl::Now();
        }
        return true;
      }
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
      last_frame_at_ = absl::Now();
      partial_since_ = absl::InfiniteFuture();
      Forward(std::move(envelope));
    }
  }

  void Forward(Envelope envelope) {
    const ListenerOptions& o = listener_->options_;
    const uint64_t corr = envelope.correlation_id();
    if (!envelope.has_request()) {
      return Answer(corr, absl::InvalidArgumentError("a client frame must carry a request"));
    }
    // timeout_us is unsigned: 2^63 and above would turn negative here and in
    // every queue the request waits in.
    if (envelope.timeout_us() > static_cast<uint64_t>(absl::ToInt64Microseconds(o.max_request_timeout))) {
      ++listener_->stats_.bad_timeout;
      return Answer(corr, absl::InvalidArgumentError(absl::StrCat(
                              "timeout_us ", envelope.timeout_us(), " is out of range (at most ",
                              absl::ToInt64Microseconds(o.max_request_timeout), ")")));
    }
    if (!TakeToken()) {
      ++listener_->stats_.rate_limited;
      return Answer(corr, absl::ResourceExhaustedError("rate limit: slow down"));
    }
    uint64_t user_id;
    {
      std::lock_guard<std::mutex> lock(mu_);
      user_id = user_id_;
    }
    if (user_id != 0) {
      absl::Status s = listener_->TakeUserToken(user_id);
      if (!s.ok()) {
        ++listener_->stats_.user_rate_limited;
        return Answer(corr, s);
      }
    }
    const Request::OpCase op = envelope.request().op_case();
    const absl::Time now = absl::Now();
    if ((op == Request::kRegister || op == Request::kLogin || op == Request::kGatewayLogin) &&
        o.available) {
      absl::Status s = o.available();
      if (!s.ok()) {
        ++listener_->stats_.refused_unavailable;
        return Answer(corr, s);
      }
    }
    if (op == Request::kRegister || op == Request::kLogin) {
      absl::Status s = AdmitAuth(op == Request::kRegister, now);
      if (s.ok()) s = listener_->AdmitAuth(ip_, op == Request::kRegister);
      if (!s.ok()) {
        if (absl::StrContains(s.message(), "registrations")) {
          ++listener_->stats_.registrations_refused;
        } else {
          ++listener_->stats_.auth_refused;
        }
        return Answer(corr, s);
      }
      const absl::Duration wait =
          envelope.timeout_us() > 0
              ? std::min(absl::Microseconds(static_cast<int64_t>(envelope.timeout_us())), kMaxAuthWait)
              : kMaxAuthWait;
      std::lock_guard<std::mutex> lock(mu_);
      in_flight_[corr] = {op == Request::kLogin, now + wait + kAuthSlack};
    } else if (op == Request::kGatewayLogin) {
      std::lock_guard<std::mutex> lock(mu_);
      if (gateway_logins_.size() >= 16) gateway_logins_.erase(gateway_logins_.begin());
      gateway_logins_[corr] = now;
    }
    envelope.set_from(address_);     // replies come back to this connection
    envelope.clear_auth_user_id();   // the gateway decides who this is
    listener_->network_->Send(address_, listener_->options_.gateway_address, std::move(envelope));
  }

  // Tells the gateway the session is gone, so its presence is released now.
  void Logout() {
    Envelope bye;
    bye.set_from(address_);
    // Closed, not logged out: the session ends, the device's tokens stay good.
    bye.mutable_request()->mutable_gateway_logout()->set_connection_closed(true);
    listener_->network_->Send(address_, listener_->options_.gateway_address, std::move(bye));
  }

  // Poll thread: the deadline this connection has passed, if any.
  absl::Status Overdue(absl::Time now) {
    const ListenerOptions& o = listener_->options_;
    bool authenticated;
    {
      std::lock_guard<std::mutex> lock(mu_);
      authenticated = authenticated_;
    }
    if (o.frame_deadline > absl::ZeroDuration() && now - partial_since_ > o.frame_deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("frame not finished within ", Ms(o.frame_deadline), " of its first byte"));
    }
    if (!authenticated && o.login_deadline > absl::ZeroDuration() &&
        now - connected_at_ > o.login_deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("no gateway_login within ", Ms(o.login_deadline), " of connecting"));
    }
    if (o.idle_deadline > absl::ZeroDuration() && now - last_frame_at_ > o.idle_deadline) {
      return absl::DeadlineExceededError(absl::StrCat("idle: no request for ", Ms(o.idle_deadline)));
    }
    return absl::OkStatus();
  }

  // Poll thread: answers with `status` and closes once it is written (or
  // soon regardless: see expired_at).
  void Expire(const absl::Status& status, absl::Time now) {
    expired_at = now;
    Refuse(0, status);
  }

  // Poll thread, at the global cap: unless it has logged in, queues the error
  // frame, writes what it can and marks the connection evicted (nothing else
  // is written to it, and a gateway_login answered from now on does not
  // count); the caller closes it. False if it has logged in.
  bool Evict(const absl::Status& status) {
    const std::string frame = EncodeFrame(ErrorFrame(0, status));
    std::lock_guard<std::mutex> lock(mu_);
    if (authenticated_) return false;
    evicted_ = true;
    closing_ = true;
    if (!overflowed_) out_ += frame;
    while (!out_.empty()) {
      const ssize_t n = send(fd_, out_.data(), out_.size(), MSG_NOSIGNAL);
      if (n <= 0) break;
      out_.erase(0, n);
    }
    // Unread input would make close() reset the connection, losing the frame.
    char buf[16384];
    for (int i = 0; i < 16 && recv(fd_, buf, sizeof(buf), 0) > 0; ++i) {
    }
    return true;
  }

  int fd() const { return fd_; }
  bool polling_out = false;  // poll thread only: EPOLLOUT is set for fd_
  // Guarded by the listener's mu_: its place in the listener's
  // unauthenticated_ list, while listed.
  std::list<Connection*>::iterator unauthenticated_at;
  bool unauthenticated_listed = false;
  absl::Time expired_at = absl::InfiniteFuture();  // poll thread only

 private:
  struct InFlight {
    bool login;
    absl::Time expires;
  };

  // Poll thread: may this connection send a register/login now?
  absl::Status AdmitAuth(bool is_register, absl::Time now) {
    const ListenerOptions& o = listener_->options_;
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = in_flight_.begin(); it != in_flight_.end();) {
      it = it->second.expires < now ? in_flight_.erase(it) : std::next(it);
    }
    if (static_cast<int>(in_flight_.size()) >= o.max_auth_in_flight) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "at most ", o.max_auth_in_flight,
          " register/login at a time on a connection: wait for the answer"));
    }
    if (now < next_auth_) {
      return absl::ResourceExhaustedError(
          absl::StrCat(consecutive_failures_, " failed logins on this connection: next register/login in ",
                       Ms(next_auth_ - now)));
    }
    return absl::OkStatus();
  }

  // Network thread: learns from the gateway's replies how auth went.
  void Observe(const Envelope& e) {
    if (!e.has_reply()) return;
    const ErrorCode code = e.reply().status().code();
    bool failed = false;
    bool logged_in = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (in_flight_.empty() && gateway_logins_.empty()) return;
      auto it = in_flight_.find(e.correlation_id());
      if (it != in_flight_.end()) {
        const bool login = it->second.login;
        in_flight_.erase(it);
        if (login && code == CODE_OK) {
          consecutive_failures_ = 0;
        } else if (login && code == CODE_UNAUTHENTICATED) {
          failed = true;
          ++consecutive_failures_;
          if (consecutive_failures_ >= 2) {
            const ListenerOptions& o = listener_->options_;
            const double factor = std::ldexp(1.0, std::min(consecutive_failures_ - 2, 30));
            next_auth_ = absl::Now() + std::min(o.login_failure_delay * factor, o.login_failure_delay_max);
          }
        }
      } else if (gateway_logins_.erase(e.correlation_id()) > 0 && code == CODE_OK &&
                 e.reply().has_gateway_login() && !evicted_) {
        // (Evicted first: the reply is dropped and the connection closes.)
        logged_in = !authenticated_;
        authenticated_ = true;
        user_id_ = e.reply().gateway_login().user_id();
      }
    }
    if (failed) listener_->LoginFailed(ip_);
    if (logged_in) listener_->LoggedIn(this);
  }

  bool Refuse(uint64_t correlation_id, const absl::Status& status) {
    Answer(correlation_id, status);
    std::lock_guard<std::mutex> lock(mu_);
    closing_ = true;  // closed once the error frame is written
    return true;
  }
  bool TakeToken() {
    return requests_.TryTake(absl::Now(), listener_->options_.requests_per_s,
                             listener_->options_.burst);
  }

  ClientListener* listener_;
  const int fd_;
  const std::string address_;
  const std::string ip_;
  // Poll thread only.
  std::string in_;
  const absl::Time connected_at_;
  absl::Time last_frame_at_;
  absl::Time partial_since_ = absl::InfiniteFuture();
  std::mutex mu_;
  std::string out_;
  bool overflowed_ = false;
  bool closing_ = false;
  bool evicted_ = false;  // closed at the global cap before it logged in
  // Guarded by mu_: what the gateway's replies said.
  bool authenticated_ = false;
  uint64_t user_id_ = 0;
  std::map<uint64_t, InFlight> in_flight_;            // register/login by correlation id
  std::map<uint64_t, absl::Time> gateway_logins_;     // gateway_login by correlation id
  int consecutive_failures_ = 0;
  absl::Time next_auth_ = absl::InfinitePast();
  TokenBucket requests_;  // the per-connection request limit
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
  // Room for every connection we may hold, plus 512 for our other files, on
  // top of what the process has reserved already (each LevelDB store
  // reserves its own descriptors when it opens).
  rlim_t limit = 0;
  if (!ReserveDescriptors(options.max_connections + 512, &limit) && options.log) {
    options.log(absl::StrCat("warning: open files limited to ", limit,
                             " (the hard limit), short of room for --max_connections=",
                             options.max_connections, " plus 512 beyond the stores' descriptors"));
  }
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(fd, 4096) != 0) {
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
    if (c->unauthenticated_listed) {
      unauthenticated_.erase(c->unauthenticated_at);
      c->unauthenticated_listed = false;
    }
  }
  {
    std::lock_guard<std::mutex> lock(limits_mu_);
    auto a = addresses_.find(c->ip());
    if (a != addresses_.end() && a->second.connections > 0) --a->second.connections;
  }
  network_->Detach(c->Self());
  c->Logout();
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  close(fd);
  ++stats_.closed;
}

void ClientListener::LoggedIn(Connection* c) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!c->unauthenticated_listed) return;  // closed or being evicted
  unauthenticated_.erase(c->unauthenticated_at);
  c->unauthenticated_listed = false;
}

bool ClientListener::EvictUnauthenticated() {
  const absl::Status why =
      absl::ResourceExhaustedError("server full: closing connections that have not logged in");
  for (;;) {  // each pass takes one connection off the list: amortized O(1)
    std::shared_ptr<Connection> c;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (unauthenticated_.empty()) return false;
      Connection* oldest = unauthenticated_.front();
      unauthenticated_.pop_front();
      oldest->unauthenticated_listed = false;
      auto it = connections_.find(oldest->fd());
      if (it == connections_.end() || it->second.get() != oldest) continue;
      c = it->second;
    }
    if (!c->Evict(why)) continue;  // it logged in meanwhile
    ++stats_.evicted_unauthenticated;
    Close(c->fd());
    return true;
  }
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
  ev.events = EPOLLIN | (out ? static_cast<uint32_t>(EPOLLOUT) : 0u);
  ev.data.fd = c->fd();
  epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c->fd(), &ev);
}

void ClientListener::Run() {
  constexpr int kMaxEvents = 256;
  epoll_event events[kMaxEvents];
  while (!stopping_) {
    const int n = epoll_wait(epoll_fd_, events, kMaxEvents, 100);
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
    if (absl::Now() - last_sweep_ >= kSweepEvery) Sweep();
  }
}

void ClientListener::Log(const std::string& line) {
  if (options_.log) options_.log(line);
}

void ClientListener::Sweep() {
  const absl::Time now = absl::Now();
  last_sweep_ = now;
  std::vector<std::shared_ptr<Connection>> all;
  {
    std::lock_guard<std::mutex> lock(mu_);
    all.reserve(connections_.size());
    for (const auto& [fd, c] : connections_) all.push_back(c);
  }
  for (const auto& c : all) {
    if (c->expired_at != absl::InfiniteFuture()) {
      // Answered; a client that does not read its error frame goes anyway.
      if (now - c->expired_at > absl::Seconds(2)) Close(c->fd());
      continue;
    }
    absl::Status why = c->Overdue(now);
    if (why.ok()) continue;
    ++stats_.deadline_closed;
    c->Expire(why, now);
    Service(c, false);
  }
  if (now - last_forget_ < absl::Seconds(30)) return;
  last_forget_ = now;
  // Forget state that has gone back to where a newcomer starts.
  std::lock_guard<std::mutex> lock(limits_mu_);
  for (auto it = users_.begin(); it != users_.end();) {
    const bool full = it->second.Full(now, options_.user_requests_per_s, options_.user_burst);
    it = full ? users_.erase(it) : std::next(it);
  }
  for (auto it = addresses_.begin(); it != addresses_.end();) {
    const AddressState& a = it->second;
    const bool idle = a.connections == 0 && a.failures.Value(now) <= 0 &&
                      a.registrations.Full(now, options_.address_registrations_per_s,
                                           options_.address_registration_burst);
    it = idle ? addresses_.erase(it) : std::next(it);
  }
}

bool ClientListener::Admit(int cfd, const std::string& ip) {
  size_t total;
  {
    std::lock_guard<std::mutex> lock(mu_);
    total = connections_.size();
  }
  auto refuse = [cfd](const std::string& why) {
    const std::string frame = EncodeFrame(ErrorFrame(0, absl::ResourceExhaustedError(why)));
    (void)!send(cfd, frame.data(), frame.size(), MSG_NOSIGNAL);
    close(cfd);
    return false;
  };
  const size_t soft = options_.max_connections - std::min(options_.connection_headroom, options_.max_connections);
  auto report = [&] {
    const absl::Time now = absl::Now();
    if (now - last_full_log_ < absl::Seconds(10)) return;
    last_full_log_ = now;
    Log(absl::StrCat("connection cap reached: ", total, " connections (--max_connections=",
                     options_.max_connections, " less --connection_headroom=", options_.connection_headroom,
                     "); evicted ", evicted_since_log_, " that had not logged in and refused ",
                     full_since_log_, " since the last report"));
    evicted_since_log_ = 0;
    full_since_log_ = 0;
  };
  if (total >= options_.max_connections) {
    ++stats_.refused_full;
    ++full_since_log_;
    report();
    close(cfd);
    return false;
  }
  {
    // The per-address cap first: a connection it refuses evicts nobody.
    std::lock_guard<std::mutex> lock(limits_mu_);
    auto a = addresses_.find(ip);
    if (a != addresses_.end() && a->second.connections >= options_.max_connections_per_address) {
      ++stats_.refused_per_address;
      return refuse(absl::StrCat("too many connections from ", ip, " (at most ",
                                 options_.max_connections_per_address, ")"));
    }
  }
  if (total >= soft) {
    if (EvictUnauthenticated()) {
      ++evicted_since_log_;
      report();
    } else {
      ++stats_.refused_full;
      ++full_since_log_;
      report();
      return refuse(absl::StrCat("server full: ", total,
                                 " connections, all logged in; try again later"));
    }
  }
  std::lock_guard<std::mutex> lock(limits_mu_);
  ++addresses_[ip].connections;
  return true;
}

absl::Status ClientListener::AdmitAuth(const std::string& ip, bool is_register) {
  const absl::Time now = absl::Now();
  std::lock_guard<std::mutex> lock(limits_mu_);
  AddressState& a = addresses_[ip];
  if (a.failures.Value(now) > options_.address_login_failures) {
    if (now < a.next_auth) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "too many failed logins from ", ip, ": next register/login from this address in ",
          Ms(a.next_auth - now)));
    }
    a.next_auth = now + options_.address_login_interval;
  }
  if (is_register) {
    const double burst = options_.address_registration_burst;
    if (!a.registrations.TryTake(now, options_.address_registrations_per_s, burst)) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "too many registrations from ", ip, " (", options_.address_registrations_per_s,
          "/s, burst ", burst, "): slow down"));
    }
  }
  return absl::OkStatus();
}

absl::Status ClientListener::TakeUserToken(uint64_t user_id) {
  const absl::Time now = absl::Now();
  std::lock_guard<std::mutex> lock(limits_mu_);
  if (!users_[user_id].TryTake(now, options_.user_requests_per_s, options_.user_burst)) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "rate limit for user ", user_id, " across its connections (", options_.user_requests_per_s,
        "/s): slow down"));
  }
  return absl::OkStatus();
}

void ClientListener::LoginFailed(const std::string& ip) {
  const absl::Time now = absl::Now();
  bool crossed = false;
  {
    std::lock_guard<std::mutex> lock(limits_mu_);
    AddressState& a = addresses_[ip];
    const double before = a.failures.Value(now);
    crossed = before <= options_.address_login_failures &&
              before + 1 > options_.address_login_failures;
    a.failures.Add(now, 1);
  }
  if (crossed) {
    Log(absl::StrCat("failed logins from ", ip, " passed ", options_.address_login_failures,
                     ": one register/login per ", absl::FormatDuration(options_.address_login_interval),
                     " from it"));
  }
}

void ClientListener::Accept() {
  for (;;) {
    sockaddr_in peer{};
    socklen_t peer_len = sizeof(peer);
    const int cfd = accept4(listen_fd_, reinterpret_cast<sockaddr*>(&peer), &peer_len,
                            SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (cfd < 0) return;
    const int one = 1;
    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    char ip_text[INET_ADDRSTRLEN] = "?";
    inet_ntop(AF_INET, &peer.sin_addr, ip_text, sizeof(ip_text));
    const std::string ip = ip_text;
    if (!Admit(cfd, ip)) continue;
    std::shared_ptr<Connection> c;
    {
      std::lock_guard<std::mutex> lock(mu_);
      c = std::make_shared<Connection>(
          this, cfd, absl::StrCat("tcp.", options_.gateway_address, ".", next_id_++), ip);
      connections_[cfd] = c;
      c->unauthenticated_at = unauthenticated_.insert(unauthenticated_.end(), c.get());
      c->unauthenticated_listed = true;
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
