// Driving a reference client that runs on a TcpClientHost from another thread
// (the CLI, the load generator, tests): wait for a condition on its loop, or
// make one call and wait for the reply.
#ifndef PARLEY_SERVER_CLIENT_DRIVER_H_
#define PARLEY_SERVER_CLIENT_DRIVER_H_

#include <functional>

#include "absl/time/time.h"
#include "core/client/client.h"
#include "server/tcp_client_host.h"

namespace parley {

// Polls `done` on the client's loop until it holds or `timeout` passes.
bool WaitForClient(TcpClientHost& host, const std::function<bool(Client*)>& done,
                   absl::Duration timeout = absl::Seconds(15));

// Sends `request` through the client and waits for the reply (DEADLINE_EXCEEDED
// after `timeout`).
Reply CallClient(TcpClientHost& host, const Request& request,
                 absl::Duration timeout = absl::Seconds(10));

}  // namespace parley

#endif  // PARLEY_SERVER_CLIENT_DRIVER_H_
