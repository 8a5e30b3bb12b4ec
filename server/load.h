// The load generator: many reference clients over TCP against one or more
// parleyds, a private/group mix at a fixed rate (or as fast as one send in
// flight per client allows), then a drain; it records the history as the
// simulator does and runs the simulator's checkers on what the clients saw.
#ifndef PARLEY_SERVER_LOAD_H_
#define PARLEY_SERVER_LOAD_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "sim/checkers.h"

namespace parley {

struct LoadOptions {
  std::vector<std::string> servers;  // HOST:PORT, loopback only
  int clients = 20;
  double duration_s = 10;
  double rate_per_s = 0;       // total sends per second; 0: as fast as possible
  double group_fraction = 0.3;
  int group_size = 10;
  bool churn = false;          // clients drop and come back during the run
  uint64_t seed = 1;
  std::string run_id;          // makes user names unique per run
  double drain_s = 30;         // most time to wait for the last messages
  int client_threads = 2;      // event loops (and socket readers) the clients share
  // Unpaced, each client sends at most this many messages per second (0: no
  // cap), under parleyd's per-connection limit (200 requests/s by default).
  double client_rate = 100;
  // Logging in waits as long as clients keep coming online; it gives up when
  // none has for this long (parleyd hashes each password with argon2id, so a
  // crowd of logins takes a while unless it runs --minimal_password_cost).
  double login_stall_s = 30;
  // Told each phase and, every few seconds of a long one, how far it got.
  std::function<void(const std::string&)> progress;
};

struct LoadResult {
  int clients = 0;
  uint64_t sent = 0, acked = 0, failed = 0, delivered = 0;
  uint64_t lost = 0, duplicated = 0, reordered = 0;
  double msgs_per_s = 0, p50_ms = 0, p99_ms = 0, p999_ms = 0;
  // Summed over the clients: pushes that arrived after a gap (each answered
  // by a sync), syncs in all, messages their replies carried (of the first
  // 4096 syncs of each client), duplicates dropped, send retries, reconnects.
  uint64_t gap_syncs = 0, syncs = 0, sync_messages = 0, duplicates_dropped = 0, send_retries = 0, reconnects = 0;
  // Sessions opened (the first login of each client, then each reconnect
  // that got back online), and sends that ended failed.
  uint64_t connects = 0, sends_failed_by_clients = 0;
  // What each reconnect followed, from the clients' traffic: "login: no reply
  // in time", "ping: UNAVAILABLE", "the server closed the connection", ...
  // Reconnects not yet retried when the run ended are not in it.
  std::map<std::string, uint64_t> reconnect_reasons;
  uint64_t churn_reconnects = 0;  // --churn's own drops (not in `reconnects`)
  // Where the wall time went: login, setup, sending, draining, checking.
  std::vector<std::pair<std::string, double>> phases;
  double wall_s = 0;
  std::vector<sim::Violation> violations;
  std::string LoadLine() const;  // "LOAD clients=... p99_ms=..."
  // Lines that explain the counts: syncs by cause, retries, reconnects by
  // reason, and where the wall time went.
  std::vector<std::string> Explain() const;
};

absl::StatusOr<LoadResult> RunLoad(const LoadOptions& options);

}  // namespace parley

#endif  // PARLEY_SERVER_LOAD_H_
