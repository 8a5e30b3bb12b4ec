#include "server/cli_connection.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "server/frame.h"

namespace parley {

bool ParseHostPort(const std::string& server, std::string* host, std::string* port) {
  size_t colon;
  if (!server.empty() && server[0] == '[') {
    const size_t close = server.find(']');
    if (close == std::string::npos || close + 1 >= server.size() || server[close + 1] != ':') {
      return false;
    }
    *host = server.substr(1, close - 1);
    colon = close + 1;
  } else {
    colon = server.rfind(':');
    if (colon == std::string::npos || colon == 0) return false;
    *host = server.substr(0, colon);
    if (host->find(':') != std::string::npos) return false;
  }
  *port = server.substr(colon + 1);
  int p = 0;
  return !host->empty() && absl::SimpleAtoi(*port, &p) && p > 0 && p < 65536;
}

CliConnection::~CliConnection() { Close(); }

void CliConnection::Close() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  buffer_.clear();
}

std::string CliConnection::NewId(const std::string& prefix) {
  static std::mt19937_64 rng(std::random_device{}() ^
                             static_cast<uint64_t>(absl::ToUnixNanos(absl::Now())));
  static uint64_t counter = 0;
  return absl::StrFormat("%s-%016x-%d", prefix, rng(), ++counter);
}

absl::Status CliConnection::Dial(const std::string& server, absl::Duration timeout) {
  Close();
  server_ = server;
  std::string host, port;
  if (!ParseHostPort(server, &host, &port)) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad server address '", server, "' (want HOST:PORT, e.g. 127.0.0.1:7700)"));
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const int gai = getaddrinfo(host.c_str(), port.c_str(), &hints, &found);
  if (gai != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad server address '", server, "': ", gai_strerror(gai)));
  }
  std::string last = "no address";
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    const int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
      last = strerror(errno);
      continue;
    }
    int rc = connect(fd, a->ai_addr, a->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      rc = poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout)));
      if (rc == 0) {
        last = absl::StrCat("no answer within ", absl::FormatDuration(timeout));
        close(fd);
        continue;
      }
      int err = 0;
      socklen_t len = sizeof(err);
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) {
        last = strerror(err);
        close(fd);
        continue;
      }
      rc = 0;
    } else if (rc != 0) {
      last = strerror(errno);
      close(fd);
      continue;
    }
    const int flags = fcntl(fd, F_GETFL, 0);
    fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    fd_ = fd;
    freeaddrinfo(found);
    return absl::OkStatus();
  }
  freeaddrinfo(found);
  return absl::UnavailableError(absl::StrCat("cannot connect to ", server, ": ", last));
}

Reply CliConnection::Fail(const std::string& why) {
  Close();
  Reply r;
  r.mutable_status()->set_code(CODE_UNAVAILABLE);
  r.mutable_status()->set_message(why);
  return r;
}

Reply CliConnection::Call(const Request& request, absl::Duration timeout,
                          const std::string& request_id) {
  if (fd_ < 0) return Fail("not connected");
  Envelope e;
  const uint64_t corr = next_correlation_++;
  e.set_correlation_id(corr);
  e.set_request_id(request_id.empty() ? NewId("cli") : request_id);
  e.set_timeout_us(static_cast<uint64_t>(absl::ToInt64Microseconds(timeout)));
  *e.mutable_request() = request;
  const std::string frame = EncodeFrame(e);
  for (size_t off = 0; off < frame.size();) {
    const ssize_t n = send(fd_, frame.data() + off, frame.size() - off, MSG_NOSIGNAL);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      return Fail(absl::StrCat("connection to ", server_, " lost: ", strerror(errno)));
    }
    off += static_cast<size_t>(n);
  }
  const absl::Time deadline = absl::Now() + timeout;
  char chunk[65536];
  for (;;) {
    for (;;) {
      Envelope in;
      const FrameResult f = DecodeFrame(&buffer_, 16 << 20, &in);
      if (f == FrameResult::kNeedMore) break;
      if (f != FrameResult::kFrame) return Fail(absl::StrCat("unreadable frame from ", server_));
      if (!in.has_reply()) continue;  // a push: not what this call waits for
      if (in.correlation_id() == corr) return in.reply();
      if (in.correlation_id() == 0 && in.reply().status().code() != CODE_OK) {
        Reply r = in.reply();  // an error frame about the connection
        Close();
        return r;
      }
    }
    const int64_t left_ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (left_ms <= 0) {
      Reply r;
      r.mutable_status()->set_code(CODE_DEADLINE_EXCEEDED);
      r.mutable_status()->set_message(absl::StrCat("no reply from ", server_, " within ",
                                                   absl::FormatDuration(timeout)));
      return r;
    }
    pollfd p{fd_, POLLIN, 0};
    const int rc = poll(&p, 1, static_cast<int>(left_ms));
    if (rc < 0 && errno == EINTR) continue;
    if (rc <= 0) continue;
    const ssize_t got = recv(fd_, chunk, sizeof(chunk), 0);
    if (got == 0) return Fail(absl::StrCat("connection closed by ", server_));
    if (got < 0) {
      if (errno == EINTR) continue;
      return Fail(absl::StrCat("connection to ", server_, " lost: ", strerror(errno)));
    }
    buffer_.append(chunk, static_cast<size_t>(got));
  }
}

}  // namespace parley
