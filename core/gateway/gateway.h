// Gateway: the IM server that holds client sessions, at "gw.<id>". A client
// logs in with a token (its signature verified here, whether it is still
// current asked of the user service in one call), which registers its presence
// in kv (user, device, gateway, epoch, lease); the gateway renews the leases
// of its sessions in batches. Every client request is forwarded to its
// service with the session's authenticated user id — a client never chooses
// its sender. A push from a message shard is forwarded to each addressed
// session still here; the rest are skipped (they will sync).
#ifndef PARLEY_CORE_GATEWAY_GATEWAY_H_
#define PARLEY_CORE_GATEWAY_GATEWAY_H_

#include <cstdint>
#include <functional>
#include <vector>
#include <map>
#include <string>
#include <utility>

#include "absl/time/time.h"
#include "core/service_node.h"
#include "core/user/token.h"

namespace parley {

struct GatewayOptions {
  std::string gateway_id = "1";
  uint32_t num_shards = 1;
  std::string token_key = TestTokenKey();
  absl::Duration presence_lease = absl::Seconds(3);
  absl::Duration renew_interval = absl::Seconds(1);
  // How often the tokens of the sessions held here are checked with the user
  // service (batched): a session whose token was revoked (a password change,
  // a logout of its device elsewhere) closes within this long.
  absl::Duration token_check_interval = absl::Seconds(5);
  // A session not heard from (requests or pings) for this long is dropped.
  absl::Duration idle_timeout = absl::Seconds(6);
  size_t max_sessions = 100000;
  CallOptions calls = {absl::Milliseconds(500), 3};
  // A register or login is forwarded once, waiting as long as its client
  // said it waits (Envelope.timeout_us), but no longer than this.
  absl::Duration max_auth_wait = absl::Seconds(10);
  // Overload: while this many calls to the services are in flight from this
  // gateway, a client request that would make more is refused at once with
  // RESOURCE_EXHAUSTED, before anything is forwarded (so nothing was done),
  // rather than queued behind them until it times out. 0: no limit.
  size_t max_backend_calls = 4096;
};

struct GatewayStats {
  uint64_t logins = 0;
  uint64_t login_failures = 0;
  uint64_t forwarded = 0;
  uint64_t refused = 0;  // unauthenticated or not a client operation
  uint64_t overloaded = 0;  // refused RESOURCE_EXHAUSTED: max_backend_calls in flight
  uint64_t sends_unknown = 0;  // sends answered "outcome unknown" (DEADLINE_EXCEEDED)
  uint64_t pushes_received = 0;
  uint64_t pushed_to_sessions = 0;
  uint64_t push_targets_skipped = 0;  // no longer here
  uint64_t sessions_expired = 0;
  uint64_t sessions_revoked = 0;  // closed because their token was revoked
};

// Login epochs: at most this (2^53, exact in a double), and at most
// kMaxEpochStep above the device's current epoch (0 when it has no live
// presence), so no login can push a device's epoch out of its reach.
inline constexpr uint64_t kMaxEpoch = uint64_t{1} << 53;
inline constexpr uint64_t kMaxEpochStep = uint64_t{1} << 20;

class Gateway : public ServiceNode {
 public:
  Gateway(Env* env, GatewayOptions options);
  void Stop() override;

  const GatewayStats& stats() const { return stats_; }
  size_t sessions() const { return sessions_.size(); }
  // The sessions held here, as presence records, in (user, device) order.
  std::vector<PresenceRecord> SessionSnapshot() const;

 protected:
  absl::Status OnStart() override;
  void HandleRequest(const Envelope& request) override;
  void HandleOther(const Envelope& envelope) override;

 private:
  struct Session {
    uint64_t user_id = 0;
    std::string device_id;
    uint64_t epoch = 0;
    absl::Time last_seen;
    // The token's claims that the user service checks (TokenRef).
    std::string token_device;  // "" for a token of no device
    uint64_t generation = 0;
    uint64_t device_generation = 0;
  };
  using DeviceKey = std::pair<uint64_t, std::string>;

  void Login(const Envelope& envelope);
  // After the token check: the presence write, then the session.
  void OpenSession(const Envelope& envelope, const Session& session);
  void Logout(const Envelope& envelope, const Session& session);
  void Forward(const Envelope& envelope, const Session& session);
  // Sends `request` to `service` (or a fixed address) for the session's user
  // and relays the reply to the client.
  void Relay(const Envelope& envelope, const Session& session, const std::string& service,
             const std::string& address, Request request);
  // A send (send_private, send_group, recall) to its shard. The shard's own
  // answers go back as they are; when the call itself failed (every attempt
  // timed out or found the shard unavailable) the send may have committed,
  // so the client is told the outcome is unknown: DEADLINE_EXCEEDED "outcome
  // unknown ...", to be retried with the same client_msg_id.
  void RelaySend(const Envelope& envelope, const Session& session, const std::string& address,
                 Request request);
  using ShardRequestFn = std::function<Request(const Reply& group_reply, uint32_t shard)>;
  using MergeFn = std::function<Reply(const std::vector<Reply>& shard_replies)>;
  // Asks the group service `group_request`, then every message shard the
  // request `shard_request` builds from that answer, and replies to the
  // client with `merge` of the shards' replies (UNAVAILABLE if any failed).
  void FanOut(const Envelope& envelope, const Session& session, Request group_request,
              ShardRequestFn shard_request, MergeFn merge);
  void Sync(const Envelope& envelope, const Session& session);
  void ListConversations(const Envelope& envelope, const Session& session);
  // list_devices: the user service's devices of the session's user, with
  // their presence from kv.
  void ListDevices(const Envelope& envelope, const Session& session);
  // logout_device: the user service ends the device's tokens; a session of
  // it held here is checked (and closed) before the answer, one elsewhere
  // closes at its gateway's next token check.
  void LogoutDevice(const Envelope& envelope, const Session& session);
  void Renew();
  void CheckTokens();
  // Asks the user service whether the tokens of these sessions are still
  // current and closes those that are not (and still hold that token);
  // then `done`, whatever the answer.
  void CheckSessions(std::vector<std::pair<std::string, TokenRef>> batch,
                     std::function<void()> done);
  static TokenRef RefOf(const Session& session);
  void ChangePassword(const Envelope& envelope, const Session& session);
  void DropSession(const std::string& client, bool release_presence);
  KvWrite PresenceWrite(const Session& session) const;
  CallOptions CallsFor(const Envelope& envelope, const Session& session) const;

  GatewayOptions options_;
  absl::StatusOr<TokenSigner> signer_;
  std::map<std::string, Session> sessions_;        // by client address
  std::map<DeviceKey, std::string> by_device_;     // (user, device) -> client address
  GatewayStats stats_;
};

}  // namespace parley

#endif  // PARLEY_CORE_GATEWAY_GATEWAY_H_
