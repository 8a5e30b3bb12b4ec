#include "server/client_driver.h"

#include <atomic>
#include <memory>

#include "absl/time/clock.h"
#include "core/status.h"

namespace parley {

bool WaitForClient(TcpClientHost& host, const std::function<bool(Client*)>& done,
                   absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    bool ok = false;
    host.RunOnLoop([&](Node* n) { ok = done(dynamic_cast<Client*>(n)); });
    if (ok) return true;
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(50));
  }
}

Reply CallClient(TcpClientHost& host, const Request& request, absl::Duration timeout) {
  // Shared with the callback, which may outlive this call after a timeout.
  struct Result {
    std::atomic<bool> done{false};
    Reply reply;
  };
  auto result = std::make_shared<Result>();
  host.RunOnLoop([&](Node* n) {
    dynamic_cast<Client*>(n)->Call(request, [result](const Reply& reply) {
      result->reply = reply;
      result->done = true;
    });
  });
  const absl::Time deadline = absl::Now() + timeout;
  while (!result->done && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(5));
  if (!result->done) return ErrorReply(absl::DeadlineExceededError("no reply from the client"));
  return result->reply;
}

}  // namespace parley
