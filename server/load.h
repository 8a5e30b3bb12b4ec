// The load generator: many reference clients over TCP against one or more
// parleyds, a private/group mix at a fixed rate (open loop) or as fast as K
// sends outstanding per sender allow (closed loop), then a drain; it records
// the history as the simulator does and runs the simulator's checkers on what
// the clients saw. Shapes: the default ring mix, 1:1 pairs, groups
// of G x S with a few senders each; plus an offline catch-up and a serial
// login measurement (RunOffline, RunLogins).
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

  // Shapes. `pairs`: clients 2i and 2i+1 are friends and send only to each
  // other (group_fraction is then ignored). `groups` > 0: that many groups of
  // `group_size` consecutive clients (clients must be groups * group_size),
  // only the first `group_senders` members of each send, and only to their
  // group.
  bool pairs = false;
  int groups = 0;
  int group_senders = 3;
  // Unpaced (rate_per_s == 0): sends outstanding per sender (closed loop);
  // the reference client queues them and keeps `on_wire` of them on the
  // wire; a send is topped up as soon as one is answered.
  int in_flight = 1;
  // Sends each client keeps on the wire (ClientOptions::max_sends_in_flight;
  // 0 or 1: one at a time). Pipelined, a send retried after a timeout may
  // commit after a later one: the protocol then promises seq order, not send
  // order, and the sender_fifo checker reports any such pair.
  int on_wire = 1;
  // Paced (open loop): a send the rate owes a sender that already has this
  // many outstanding is not made and counted in `shed` (0: no bound; the
  // client's queue then grows without end past capacity, and so does the
  // drain).
  int max_backlog = 0;
  size_t body_bytes = 4;  // bytes of each message body
  // Not counted: the first warmup_s of sending. duration_s is the measured
  // window after it. Told at the window's start (true) and end (false), e.g.
  // to sample the server's CPU.
  double warmup_s = 0;
  std::function<void(bool start)> on_window;
  // After the sends are answered, the run ends once nothing new arrived for
  // this long (past the clients' periodic sync, ~5 s, so a lost push still
  // arrives).
  double settle_s = 7;
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
  // The measured window (after the warm-up): sends acked in it, deliveries
  // to other users' clients in it (per second), the load generator's own
  // CPU-seconds (user+system of this process) over it, and the window's
  // length. p50/p99/p999 above are of sends invoked in the window, from the
  // send to its in-order delivery at another user's client.
  uint64_t window_acked = 0, window_deliveries = 0;
  double deliveries_per_s = 0, load_cpu_s = 0, window_s = 0;
  // Replies to sends received in the window, by status code name (retries
  // included: a refused send retried is counted each time), and how long
  // refusals (any code but OK) took from the send's frame to the reply.
  std::map<std::string, uint64_t> send_replies;
  double refusal_p50_ms = 0, refusal_p99_ms = 0;
  // From the history: conversations that carried a delivery, and the most
  // sends one client had outstanding (invoked, not yet acked or failed).
  uint64_t conversations = 0, max_outstanding = 0;
  uint64_t shed = 0;  // sends the open loop did not make (max_backlog)
  std::string LoadLine() const;  // "LOAD clients=... p99_ms=..."
  // Lines that explain the counts: syncs by cause, retries, reconnects by
  // reason, and where the wall time went.
  std::vector<std::string> Explain() const;
};

absl::StatusOr<LoadResult> RunLoad(const LoadOptions& options);

// Offline catch-up: user A logs out, B sends A `messages` messages (all
// acked), A logs in again; repeated `repeats` times on the same two users.
struct OfflineOptions {
  std::vector<std::string> servers;
  int messages = 1000;
  int repeats = 5;
  size_t body_bytes = 100;
  std::string run_id;
  double timeout_s = 60;  // per repeat, at most
};
struct OfflineResult {
  // Per repeat: Connect() -> the login reply, and the login reply -> the
  // last of the messages delivered to A's app (in order).
  std::vector<double> login_ms, all_ms;
  double login_median_ms = 0, all_median_ms = 0;
  uint64_t delivered = 0;  // to A, over the repeats
  std::vector<sim::Violation> violations;
};
absl::StatusOr<OfflineResult> RunOffline(const OfflineOptions& options);

// Serial logins of one user: logout, then Connect() -> the login reply (and
// -> the session open, gateway_login answered), `count` times.
struct LoginOptions {
  std::vector<std::string> servers;
  int count = 50;
  std::string run_id;
  double timeout_s = 60;  // in all
};
struct LoginResult {
  std::vector<double> login_ms, session_ms;
  double login_p50_ms = 0, login_p99_ms = 0, session_p50_ms = 0, session_p99_ms = 0;
};
absl::StatusOr<LoginResult> RunLogins(const LoginOptions& options);

}  // namespace parley

#endif  // PARLEY_SERVER_LOAD_H_
