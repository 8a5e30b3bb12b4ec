// ClientListener: the TCP side of a gateway. Each connection is an endpoint
// "tcp.<gateway>.<n>" on the network: its frames (requests) are forwarded to
// the gateway with the connection as sender — the gateway authenticates the
// session by that address, so a client never picks its user id — and what the
// gateway sends back (replies, pushes) is written to the socket. Frames are
// size-limited and each connection is rate-limited; bad input gets an error
// frame or a clean close, and other connections keep being served.
//
// Hardening (docs/protocol.md "Limits and errors"): deadlines to log in, to
// finish a started frame and for idleness; a per-address connection cap and
// a global cap with headroom (at the cap a new connection evicts the oldest
// connection that has not logged in; only when every connection has, it is
// refused with an error frame); at most
// `max_auth_in_flight` register/login per connection, so the user service's
// FIFO password-hash queue holds at most that many per connection (round
// robin across connections); failed logins slow down their connection
// (doubling waits) and, past a threshold, their address; rate limits per
// user across connections and registrations per address; an out-of-range
// timeout_us is refused. All of it lives here, outside the deterministic
// core: the gateway and the user service are unchanged.
#ifndef PARLEY_SERVER_CLIENT_LISTENER_H_
#define PARLEY_SERVER_CLIENT_LISTENER_H_

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/network.h"

namespace parley {

struct ListenerOptions {
  std::string host = "127.0.0.1";
  int port = 7700;  // 0: any free port
  std::string gateway_address = "gw.1";
  size_t max_frame_bytes = 64 * 1024;
  double requests_per_s = 200;  // token bucket per connection
  double burst = 400;
  // Connections. At `max_connections - connection_headroom` and above, a new
  // connection evicts the oldest connection without a successful
  // gateway_login (which gets an error frame, then is closed) and is
  // admitted; when every connection has logged in, the new one gets an error
  // frame and is closed instead (both logged); the headroom keeps descriptors
  // for that. At `max_connections` it is closed unanswered.
  size_t max_connections = 10000;
  size_t connection_headroom = 100;
  size_t max_connections_per_address = 1000;  // parley_load --clients=200 fits
  // Deadlines (zero: none). A connection with no successful gateway_login
  // within `login_deadline` of connecting, a frame not finished within
  // `frame_deadline` of its first byte, or no complete frame for
  // `idle_deadline`: error frame DEADLINE_EXCEEDED, then closed.
  absl::Duration login_deadline = absl::Seconds(30);
  absl::Duration frame_deadline = absl::Seconds(10);
  absl::Duration idle_deadline = absl::Minutes(2);
  // Authentication. Register/login requests one connection may have
  // unanswered; more are refused.
  int max_auth_in_flight = 1;
  // After the second failed login in a row on a connection it waits this long
  // before its next register/login, doubling with each further failure.
  absl::Duration login_failure_delay = absl::Milliseconds(500);
  absl::Duration login_failure_delay_max = absl::Seconds(8);
  // An address's failed logins, decaying by one per second: past this many,
  // the address gets one register/login per `address_login_interval`.
  double address_login_failures = 300;
  absl::Duration address_login_interval = absl::Seconds(1);
  // Requests per user across all its connections to this gateway.
  double user_requests_per_s = 300;
  double user_burst = 600;
  // Registrations per source address.
  double address_registrations_per_s = 1;
  double address_registration_burst = 250;
  // A request's timeout_us above this is refused (INVALID_ARGUMENT).
  absl::Duration max_request_timeout = absl::Minutes(10);
  std::function<void(const std::string&)> log;  // optional
  // Optional: while it returns an error, register, login and gateway_login
  // are answered with it at once (parleyd: UNAVAILABLE while its NATS
  // connection is lost, rather than letting them time out).
  std::function<absl::Status()> available;
};

struct ListenerStats {
  std::atomic<uint64_t> accepted{0};
  std::atomic<uint64_t> closed{0};
  std::atomic<uint64_t> frames_in{0};
  std::atomic<uint64_t> frames_out{0};
  std::atomic<uint64_t> malformed{0};
  std::atomic<uint64_t> too_large{0};
  std::atomic<uint64_t> rate_limited{0};
  std::atomic<uint64_t> refused_full{0};          // global cap (error frame or not)
  std::atomic<uint64_t> evicted_unauthenticated{0};  // not logged in, closed at the global cap
  std::atomic<uint64_t> refused_per_address{0};
  std::atomic<uint64_t> deadline_closed{0};       // login, frame or idle deadline
  std::atomic<uint64_t> auth_refused{0};          // in flight, failure waits, address
  std::atomic<uint64_t> user_rate_limited{0};
  std::atomic<uint64_t> registrations_refused{0};
  std::atomic<uint64_t> bad_timeout{0};
  std::atomic<uint64_t> refused_unavailable{0};  // logins while `available` said no
};

class ClientListener {
 public:
  static absl::StatusOr<std::unique_ptr<ClientListener>> Start(Network* network,
                                                              ListenerOptions options);
  ~ClientListener();  // closes every connection
  int port() const { return port_; }
  const ListenerStats& stats() const { return stats_; }

 private:
  class Connection;
  // A token bucket: refills at `rate` a second up to `burst`; starts full.
  class TokenBucket {
   public:
    double Level(absl::Time now, double rate, double burst) const {
      if (!started_) return burst;
      return std::min(burst, tokens_ + absl::ToDoubleSeconds(now - at_) * rate);
    }
    bool Full(absl::Time now, double rate, double burst) const {
      return Level(now, rate, burst) >= burst;
    }
    // Takes one token if there is one.
    bool TryTake(absl::Time now, double rate, double burst) {
      tokens_ = Level(now, rate, burst);
      at_ = now;
      started_ = true;
      if (tokens_ < 1) return false;
      tokens_ -= 1;
      return true;
    }

   private:
    bool started_ = false;
    double tokens_ = 0;
    absl::Time at_;
  };
  // A count that decays by one per second, never below zero.
  class DecayingCount {
   public:
    double Value(absl::Time now) const {
      return std::max(0.0, count_ - absl::ToDoubleSeconds(now - at_));
    }
    void Add(absl::Time now, double n) {
      count_ = Value(now) + n;
      at_ = now;
    }

   private:
    double count_ = 0;
    absl::Time at_;
  };
  // Per source address (guarded by limits_mu_).
  struct AddressState {
    size_t connections = 0;
    DecayingCount failures;  // failed logins
    absl::Time next_auth;
    TokenBucket registrations;
  };
  ClientListener(Network* network, ListenerOptions options, int fd, int port);
  void Log(const std::string& line);
  // Deadlines, and forgetting idle per-address and per-user state.
  void Sweep();
  // Whether a new connection from `ip` may stay; if not it was answered
  // (error frame) and closed.
  bool Admit(int cfd, const std::string& ip);
  // Limits across connections (thread-safe). Return an error to refuse.
  absl::Status AdmitAuth(const std::string& ip, bool is_register);
  absl::Status TakeUserToken(uint64_t user_id);
  void LoginFailed(const std::string& ip);
  void Run();
  void Accept();
  // Reads (if readable) and writes what is queued; closes when done with it.
  void Service(const std::shared_ptr<Connection>& c, bool readable);
  std::shared_ptr<Connection> Find(int fd);
  // A connection has output the sender's thread could not write: the poll
  // thread takes it over (thread-safe).
  void WantWrite(int fd);
  void Close(int fd);
  // Network thread: `c` completed gateway_login; it is no longer evictable.
  void LoggedIn(Connection* c);
  // Poll thread, at the global cap: closes the oldest connection that has not
  // logged in (error frame first); false if every connection has.
  bool EvictUnauthenticated();

  Network* network_;
  ListenerOptions options_;
  int listen_fd_;
  int port_;
  int wake_[2] = {-1, -1};  // pipe: wakes the poll loop for writes and stop
  int epoll_fd_ = -1;
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::map<int, std::shared_ptr<Connection>> connections_;
  std::set<int> want_write_;
  // Connections without a successful gateway_login, oldest first (guarded by
  // mu_; each connection keeps its position, so removal is O(1)).
  std::list<Connection*> unauthenticated_;
  uint64_t next_id_ = 1;
  std::mutex limits_mu_;
  std::map<std::string, AddressState> addresses_;
  std::map<uint64_t, TokenBucket> users_;
  absl::Time last_sweep_;
  absl::Time last_forget_;
  absl::Time last_full_log_;
  uint64_t full_since_log_ = 0;
  uint64_t evicted_since_log_ = 0;
  ListenerStats stats_;
  std::thread thread_;
};

}  // namespace parley

#endif  // PARLEY_SERVER_CLIENT_LISTENER_H_
