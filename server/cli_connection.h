// CliConnection: one blocking connection from the `parley` CLI to a parleyd
// gateway (docs/protocol.md): dial the first server of a list that answers,
// send a request, wait for its reply. Transport failures come back as
// UNAVAILABLE replies that say what happened (connection refused, bad address,
// closed by the server), at once rather than after a timeout.
#ifndef PARLEY_SERVER_CLI_CONNECTION_H_
#define PARLEY_SERVER_CLI_CONNECTION_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "core/proto/rpc.pb.h"

namespace parley {

class CliConnection {
 public:
  CliConnection() = default;
  ~CliConnection();
  CliConnection(const CliConnection&) = delete;
  CliConnection& operator=(const CliConnection&) = delete;

  // Dials "host:port" (a malformed address or a refused connection fails at
  // once; an unanswered one after `timeout`).
  absl::Status Dial(const std::string& server, absl::Duration timeout = absl::Seconds(3));
  void Close();
  bool connected() const { return fd_ >= 0; }
  const std::string& server() const { return server_; }

  // Sends `request` and waits for its reply. A transport failure or an error
  // frame is a Reply whose status says so (and the connection is closed).
  // `request_id`: empty makes a fresh one (a retry passes the first's).
  Reply Call(const Request& request, absl::Duration timeout,
             const std::string& request_id = "");

  // A fresh request id, unique across runs.
  static std::string NewId(const std::string& prefix);

 private:
  Reply Fail(const std::string& why);
  int fd_ = -1;
  std::string server_;
  std::string buffer_;
  uint64_t next_correlation_ = 1;
};

// Parses "host:port" (host may be a name, an IPv4 address, or [v6]).
bool ParseHostPort(const std::string& server, std::string* host, std::string* port);

}  // namespace parley

#endif  // PARLEY_SERVER_CLI_CONNECTION_H_
