// NatsServerProcess: a nats-server child process on a free loopback port with
// JetStream under `dir` — what tests use, and what parleyd starts when no
// --nats is given. Waits for the server's ports file before returning.
//
// Durability: with `sync_always` (the default) the server is started with
// `jetstream { sync_interval: always }`, so JetStream fsyncs a message before
// it acknowledges the publish. nats-server added that setting in 2.10;
// Debian 12's 2.9.10 refuses it ("unknown field"), and 2.9 has no other way
// to sync before the ack (its file store syncs every 2 minutes). There the
// server is started without it and syncs_always() is false: the caller must
// say so (parleyd logs a warning). See docs/operations.md.
#ifndef PARLEY_SERVER_NATS_SERVER_PROCESS_H_
#define PARLEY_SERVER_NATS_SERVER_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace parley {

class NatsServerProcess {
 public:
  static absl::StatusOr<std::unique_ptr<NatsServerProcess>> Start(
      const std::string& dir, absl::Duration timeout = absl::Seconds(10),
      const std::string& binary = "/usr/sbin/nats-server", int port = -1,
      const std::vector<std::string>& extra_args = {}, bool sync_always = true);
  // What `binary --version` prints ("nats-server: v2.9.10"), trimmed; "" if
  // it cannot be run.
  static std::string Version(const std::string& binary = "/usr/sbin/nats-server");
  ~NatsServerProcess();  // stops it

  const std::string& url() const { return url_; }
  pid_t pid() const { return pid_; }
  // JetStream fsyncs before acknowledging (sync_interval: always took).
  bool syncs_always() const { return syncs_always_; }
  // SIGINT, then waits for the exit (SIGKILL after `grace`).
  absl::Status Stop(absl::Duration grace = absl::Seconds(5));

 private:
  NatsServerProcess(pid_t pid, std::string url) : pid_(pid), url_(std::move(url)) {}
  static absl::StatusOr<std::unique_ptr<NatsServerProcess>> StartOnce(
      const std::string& dir, absl::Duration timeout, const std::string& binary, int port,
      const std::vector<std::string>& extra_args, const std::string& config);
  pid_t pid_;
  std::string url_;
  bool syncs_always_ = false;
};

}  // namespace parley

#endif  // PARLEY_SERVER_NATS_SERVER_PROCESS_H_
