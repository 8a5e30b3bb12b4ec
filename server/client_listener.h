// ClientListener: the TCP side of a gateway. Each connection is an endpoint
// "tcp.<gateway>.<n>" on the network: its frames (requests) are forwarded to
// the gateway with the connection as sender — the gateway authenticates the
// session by that address, so a client never picks its user id — and what the
// gateway sends back (replies, pushes) is written to the socket. Frames are
// size-limited and each connection is rate-limited; bad input gets an error
// frame or a clean close, and other connections keep being served.
#ifndef PARLEY_SERVER_CLIENT_LISTENER_H_
#define PARLEY_SERVER_CLIENT_LISTENER_H_

#include <atomic>
#include <cstdint>
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
  size_t max_connections = 10000;
};

struct ListenerStats {
  std::atomic<uint64_t> accepted{0};
  std::atomic<uint64_t> closed{0};
  std::atomic<uint64_t> frames_in{0};
  std::atomic<uint64_t> frames_out{0};
  std::atomic<uint64_t> malformed{0};
  std::atomic<uint64_t> too_large{0};
  std::atomic<uint64_t> rate_limited{0};
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
  ClientListener(Network* network, ListenerOptions options, int fd, int port);
  void Run();
  void Accept();
  // Reads (if readable) and writes what is queued; closes when done with it.
  void Service(const std::shared_ptr<Connection>& c, bool readable);
  std::shared_ptr<Connection> Find(int fd);
  // A connection has output the sender's thread could not write: the poll
  // thread takes it over (thread-safe).
  void WantWrite(int fd);
  void Close(int fd);

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
  uint64_t next_id_ = 1;
  ListenerStats stats_;
  std::thread thread_;
};

}  // namespace parley

#endif  // PARLEY_SERVER_CLIENT_LISTENER_H_
