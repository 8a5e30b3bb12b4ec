// Parleyd: hosts any set of the core's nodes in one process — on a few shared
// event loops (--loops), each node with its LevelDB under --data_dir — on a
// real nats-server (its own child on a free loopback port unless --nats names
// one), plus the gateway's TCP listener for clients.
#ifndef PARLEY_SERVER_PARLEYD_H_
#define PARLEY_SERVER_PARLEYD_H_

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/client_listener.h"
#include "server/nats_network.h"
#include "server/nats_server_process.h"
#include "server/node_host.h"

namespace parley {

struct ParleydOptions {
  // Comma-separated: registry, kv, user, friend, group, message, gateway; or "all".
  std::string roles = "all";
  std::string nats_url;  // empty: start nats-server under data_dir/nats
  // The embedded nats-server's port. 0: the one in <data_dir>/nats/port from
  // the last start (a free one the first time, or if that one stays taken),
  // so that parleyd pointed at it (--nats) find it again after a restart.
  // Set: that port or fail. The port in use is written to the port file.
  int nats_port = 0;
  // How often parleyd logs client connects and disconnects (when they
  // changed) and the errors it counted.
  absl::Duration report_interval = absl::Seconds(10);
  std::string data_dir = "parley-data";
  std::string listen = "127.0.0.1:7700";
  std::string gateway_id = "1";
  uint32_t shards = 2;
  // Event-loop threads the nodes share (the user node, whose password
  // hashing takes milliseconds, always has one of its own besides). 0: a
  // loop for every node (the default: on 2 cores it carried 43% more
  // messages per second than one shared loop, at less CPU per message;
  // docs/scaling.md).
  int loops = 0;
  std::string event_bus = "jetstream";  // or "local"
  // The token key: --token_key (at least 32 bytes), or the file
  // --token_key_file (must exist; share it between parleyd), or by default
  // <data_dir>/token.key, created with 32 random bytes (mode 0600) on first
  // start and reused. A key under 32 bytes refuses to start.
  std::string token_key;
  std::string token_key_file;
  bool minimal_password_cost = false;   // argon2id's minimum: tests and load runs only
  int stream_replicas = 1;              // 3 on a 3-node NATS cluster
  // How long each producer keeps an event after JetStream acked it, to
  // publish it again after nats-server restarts or parleyd starts (the
  // backstop for nats-server 2.9, which syncs every 2 minutes). The stream's
  // dedup window is made at least this plus a minute. 0: deleted at the ack.
  absl::Duration event_retention = absl::Minutes(3);
  // Calls from the gateway to the services in flight past which a client
  // request is refused RESOURCE_EXHAUSTED at once (0: no bound).
  uint64_t max_backend_calls = 4096;
  double client_requests_per_s = 200;   // per connection (token bucket)
  double client_burst = 400;
  // Connection hardening: deadlines, caps, fair logins, per-user and
  // per-address limits (see ListenerOptions). Host, port, gateway address,
  // the per-connection rate and the log are filled in from the fields above.
  ListenerOptions client_limits;
};

// The token key `options` name (see ParleydOptions::token_key), creating the
// default key file if absent; INVALID_ARGUMENT/NOT_FOUND with what to do.
absl::StatusOr<std::string> LoadTokenKey(const ParleydOptions& options,
                                         const std::function<void(const std::string&)>& log);

class Parleyd {
 public:
  using Log = std::function<void(const std::string&)>;
  static absl::StatusOr<std::unique_ptr<Parleyd>> Start(const ParleydOptions& options, Log log);
  ~Parleyd();
  // Drains: stops the listener, the nodes (gracefully), the network and nats-server.
  void Stop();

  int listen_port() const { return listener_ ? listener_->port() : 0; }
  const std::string& nats_url() const { return nats_url_; }
  NatsNetwork* network() { return network_.get(); }
  const ListenerStats* listener_stats() const { return listener_ ? &listener_->stats() : nullptr; }
  // <data_dir>/nats/port: where the embedded nats-server's port is kept.
  static std::string NatsPortFile(const std::string& data_dir);

 private:
  Parleyd(ParleydOptions options, Log log) : options_(std::move(options)), log_(std::move(log)) {}
  absl::Status Run();
  absl::Status AddHost(const std::string& address, NodeHost::Factory factory, HostLoop* loop);
  absl::Status StartNatsServer();
  // The monitor thread: logs NATS state changes (handed over from cnats's
  // threads through nats_events_) and, every report_interval, client counts
  // and errors when they changed.
  void Monitor();
  void StopMonitor();

  ParleydOptions options_;
  Log log_;
  std::string nats_url_;
  std::unique_ptr<NatsServerProcess> nats_server_;
  std::unique_ptr<NatsNetwork> network_;
  std::vector<std::unique_ptr<HostLoop>> loops_;  // outlive hosts_
  std::vector<std::unique_ptr<NodeHost>> hosts_;
  std::unique_ptr<ClientListener> listener_;
  bool stopped_ = false;
  int nats_listener_id_ = 0;
  std::mutex monitor_mu_;
  std::condition_variable monitor_cv_;
  std::deque<NatsNetwork::ConnectionState> nats_events_;  // guarded by monitor_mu_
  bool monitor_stop_ = false;                              // guarded by monitor_mu_
  std::atomic<bool> nats_lost_{false};
  std::thread monitor_;
};

}  // namespace parley

#endif  // PARLEY_SERVER_PARLEYD_H_
