// FaultProxy: a loopback TCP proxy the real runner (server/real_run.h) puts
// between one parleyd and nats-server, so that it can cut that process off
// NATS with real means. Each accepted connection is forwarded to the
// upstream address byte for byte; the runner switches the mode at any time:
//
//   kPass     forward both ways (the default);
//   kDrop     a partition: every open connection is closed at once and new
//             ones are accepted and closed straight away (the parleyd's NATS
//             client sees the link die and keeps redialling);
//   kOneWay   nothing from the client (the parleyd) reaches upstream: its
//             bytes are read and discarded, upstream's bytes still flow to it.
//
// Loopback only: it listens on 127.0.0.1 and refuses a non-loopback upstream.
// One thread accepts, one thread per connection pumps both directions with
// poll(2) (at most 100 ms between looks at the mode and at Stop).
#ifndef PARLEY_SERVER_FAULT_PROXY_H_
#define PARLEY_SERVER_FAULT_PROXY_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"

namespace parley {

class FaultProxy {
 public:
  enum class Mode { kPass = 0, kDrop = 1, kOneWay = 2 };

  // Listens on 127.0.0.1 (a free port) and forwards to `upstream_host`:`upstream_port`.
  static absl::StatusOr<std::unique_ptr<FaultProxy>> Start(const std::string& upstream_host,
                                                           int upstream_port);
  ~FaultProxy();  // Stop()
  void Stop();

  int port() const { return port_; }
  void SetMode(Mode mode);
  Mode mode() const { return static_cast<Mode>(mode_.load()); }

  // Counters, for the report and the tests.
  uint64_t accepted() const { return accepted_.load(); }
  uint64_t cut() const { return cut_.load(); }            // connections closed by kDrop
  uint64_t refused() const { return refused_.load(); }    // accepted and closed while kDrop
  uint64_t discarded_bytes() const { return discarded_.load(); }  // kOneWay's

 private:
  FaultProxy(std::string host, int upstream_port) : host_(std::move(host)), upstream_port_(upstream_port) {}
  void AcceptLoop();
  void Pump(int client_fd, int upstream_fd);

  const std::string host_;
  const int upstream_port_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<int> mode_{0};
  std::atomic<uint64_t> generation_{0};  // bumped by each switch to kDrop
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> accepted_{0}, cut_{0}, refused_{0}, discarded_{0};
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<std::thread> pumps_;  // guarded by mu_
};

}  // namespace parley

#endif  // PARLEY_SERVER_FAULT_PROXY_H_
