// NatsServerProcess: a nats-server child process on a free loopback port with
// JetStream under `dir` — what tests use, and what parleyd starts when no
// --nats is given. Waits for the server's ports file before returning.
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
      const std::vector<std::string>& extra_args = {});
  ~NatsServerProcess();  // stops it

  const std::string& url() const { return url_; }
  pid_t pid() const { return pid_; }
  // SIGINT, then waits for the exit (SIGKILL after `grace`).
  absl::Status Stop(absl::Duration grace = absl::Seconds(5));

 private:
  NatsServerProcess(pid_t pid, std::string url) : pid_(pid), url_(std::move(url)) {}
  pid_t pid_;
  std::string url_;
};

}  // namespace parley

#endif  // PARLEY_SERVER_NATS_SERVER_PROCESS_H_
