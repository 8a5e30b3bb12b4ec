// RpcClient: request/reply over Env::Send. Each call gets a request id that is
// stable across retries; each attempt gets its own correlation id and timeout
// timer. On a timeout or an UNAVAILABLE reply the call is retried on another
// instance picked from the directory, up to a bounded number of attempts;
// when all fail the callback gets UNAVAILABLE naming the service and attempts.
#ifndef PARLEY_CORE_RPC_RPC_CLIENT_H_
#define PARLEY_CORE_RPC_RPC_CLIENT_H_

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>

#include "absl/time/time.h"
#include "core/env.h"
#include "core/probe.h"
#include "core/proto/rpc.pb.h"
#include "core/rpc/directory.h"
#include "core/timers.h"

namespace parley {

struct CallOptions {
  absl::Duration timeout = absl::Seconds(1);
  int max_attempts = 3;
  // Acting user, forwarded as the envelope's auth_user_id.
  uint64_t auth_user_id = 0;
  // If set, instances are picked by this hash (sticky) rather than round robin.
  bool use_hash = false;
  uint64_t hash_key = 0;
  // If set, the request id every attempt carries (a gateway passes its
  // client's id through, so the client's own retries stay idempotent).
  std::string request_id;
  // If set, the envelope's `from` instead of this node's address: only for
  // the simulator's forging clients (the transport stamps the true sender).
  std::string from;
};

struct RpcStats {
  uint64_t calls = 0;
  uint64_t attempts = 0;
  uint64_t timeouts = 0;
  uint64_t retried_on_other_instance = 0;
  uint64_t failed = 0;
  uint64_t late_replies = 0;
};

class RpcClient {
 public:
  using Callback = std::function<void(const Reply&)>;

  RpcClient(Env* env, Timers* timers, ServiceDirectory* directory)
      : env_(env), timers_(timers), directory_(directory) {}
  RpcClient(const RpcClient&) = delete;
  RpcClient& operator=(const RpcClient&) = delete;

  // Calls some instance of `service` (picked from the directory).
  // `request` is taken by value: a caller done with it moves it in.
  void Call(const std::string& service, Request request, const CallOptions& options,
            Callback done);
  // Calls the node at a fixed `address` (e.g. "svc.kv"), retrying the same one.
  void CallAddress(const std::string& address, Request request, const CallOptions& options,
                   Callback done);

  // Feeds a reply envelope. Returns false if it matches no pending attempt.
  bool OnReply(const Envelope& envelope);

  const RpcStats& stats() const { return stats_; }
  // Where the client counts its probes: its node's (nullptr: nowhere).
  void set_probes(ProbeCounters* probes) { probes_ = probes; }
  size_t pending_calls() const { return calls_.size(); }

 private:
  struct PendingCall {
    std::string service;  // empty for CallAddress
    std::string address;  // fixed address, or the last instance tried
    Request request;
    CallOptions options;
    Callback done;
    std::string request_id;
    int attempts = 0;
    std::set<std::string> tried;
    TimerId timer = 0;
    uint64_t correlation_id = 0;  // the attempt in flight's
  };

  void Start(uint64_t call_id, PendingCall& call);
  void Attempt(uint64_t call_id);
  // Polls the directory for an instance until `deadline` (the attempt's timeout).
  void WaitForInstance(uint64_t call_id, absl::Time deadline);
  static constexpr absl::Duration kInstancePoll = absl::Milliseconds(100);
  // The attempt in flight got no reply within its timeout.
  void OnAttemptTimeout(uint64_t call_id);
  void OnAttemptFailed(uint64_t call_id, const std::string& why);
  void Finish(uint64_t call_id, const Reply& reply);

  Env* env_;
  Timers* timers_;
  ServiceDirectory* directory_;
  uint64_t next_call_id_ = 1;
  uint64_t next_correlation_id_ = 1;
  std::map<uint64_t, PendingCall> calls_;
  std::map<uint64_t, uint64_t> correlation_to_call_;
  RpcStats stats_;
  ProbeCounters* probes_ = nullptr;
};

}  // namespace parley

#endif  // PARLEY_CORE_RPC_RPC_CLIENT_H_
