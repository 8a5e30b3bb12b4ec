// Client: the reference client, a state machine like every node. It finds a
// gateway through the registry, logs in (registering first if asked), syncs
// from its stored cursors, and delivers each (conversation, seq) to the app
// exactly once and in order: a push that leaves a gap triggers a sync. It
// acks cumulatively, retries each send with the same client_msg_id until it
// is acked (one send in flight, so a sender's messages keep their order), and
// reconnects with backoff — possibly to another gateway — after a failure.
// Cursors, the login epoch and unsent messages live in its own store.
#ifndef PARLEY_CORE_CLIENT_CLIENT_H_
#define PARLEY_CORE_CLIENT_CLIENT_H_

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "core/service_node.h"

namespace parley {

// What the app sees; the simulator records it as history.
class ClientObserver {
 public:
  virtual ~ClientObserver() = default;
  // A session opened: from here on the client acts as `user_id`.
  virtual void OnOnline(const std::string& client, uint64_t user_id) {}
  virtual void OnDelivered(const std::string& client, const Message& message) {}
  virtual void OnSendAcked(const std::string& client, const std::string& client_msg_id,
                           const SendReply& ack) {}
  virtual void OnSendFailed(const std::string& client, const std::string& client_msg_id,
                            const absl::Status& status) {}
};

struct ClientOptions {
  std::string name;
  std::string password;
  std::string nickname;
  std::string device_id = "d1";
  // Registers the name if logging in says it is unknown.
  bool auto_register = true;
  absl::Duration request_timeout = absl::Milliseconds(500);
  int request_attempts = 2;
  // Register and login: one attempt that waits this long (the server hashes
  // the password, slow by design, and a crowd of logins queues); a failure
  // reconnects with backoff rather than piling retries onto the queue.
  absl::Duration auth_timeout = absl::Seconds(5);
  absl::Duration ping_interval = absl::Seconds(1);
  // How often the client asks the registry for the gateways (it needs them
  // only to pick one when it connects).
  absl::Duration discover_interval = absl::Milliseconds(500);
  // While online the client also syncs this often: a lost push with nothing
  // after it in its conversation is still delivered (push is only a hint).
  absl::Duration sync_interval = absl::Seconds(5);  // on average; each wait is 0.5x..1.5x
  absl::Duration backoff_min = absl::Milliseconds(100);
  absl::Duration backoff_max = absl::Seconds(5);
  absl::Duration ack_delay = absl::Milliseconds(50);
  // Messages one sync asks for: the server's most (1000), so a device back
  // from offline gets a typical backlog in one round trip rather than five
  // (the reply is bounded by bytes too, ~512 KiB, and pages on with has_more).
  uint32_t sync_page = 1000;
  // If set (e.g. "gw.2") and known, connect there rather than at random.
  std::string preferred_gateway;
  // If set, always this gateway, without the registry (a TCP client: the
  // connection is the gateway).
  std::string fixed_gateway;
  // Connect at Start (otherwise wait for Connect()).
  bool connect_on_start = true;
  ClientObserver* observer = nullptr;  // not owned; may be null
  // A message that arrives ahead of a gap waits this long for the missing
  // ones (a push can be overtaken by the ack of a later send, which skips the
  // presence lookup) before the client syncs; zero: sync at once.
  absl::Duration gap_wait = absl::Milliseconds(200);
  // Sends on the wire at once. 1 (the default): each waits for the one
  // before it. More pipelines them (a load generator's closed loop); replies
  // may then come back in any order, and a retried send may commit after a
  // later one, so the sender's own messages keep seq order, not send order.
  size_t max_sends_in_flight = 1;
  size_t max_early = 1000;  // messages waiting across conversations; beyond: sync
  // Keep every delivered message for delivered() (tests, the CLI). A load
  // run that watches deliveries through `observer` turns it off.
  bool keep_delivered = true;
};

struct ClientStats {
  uint64_t connects = 0;
  uint64_t reconnects = 0;
  uint64_t delivered = 0;
  uint64_t duplicates_dropped = 0;
  uint64_t gap_syncs = 0;
  uint64_t early_arrivals = 0;  // held for a gap that then filled or synced
  uint64_t syncs = 0;
  uint64_t pings = 0;  // sent: only after ping_interval without an OK reply
  uint64_t sends_acked = 0;
  uint64_t send_retries = 0;
  uint64_t sends_failed = 0;
  // Messages delivered by each sync reply (the first 4096 syncs).
  std::vector<uint32_t> sync_sizes;
};

class Client : public ServiceNode {
 public:
  enum class State { kOffline, kConnecting, kOnline };

  Client(Env* env, ClientOptions options);

  // Queues a message; returns its client_msg_id. Sent when online.
  std::string SendPrivate(uint64_t to_user_id, const std::string& body);
  std::string SendGroup(uint64_t group_id, const std::string& body);
  // Queues the recall of one of the user's messages, in order with its sends.
  std::string Recall(const std::string& conversation, uint64_t seq);
  // Any other client operation through the gateway; fails at once when offline.
  void Call(const Request& request, std::function<void(const Reply&)> done);
  // Changes the user's password (every other token of the user ends); this
  // session goes on with the new token the reply carries.
  void ChangePassword(const std::string& new_password, std::function<void(const Reply&)> done);
  // Like Call, but the envelope to the gateway carries `forged_auth_user_id`
  // and, if non-empty, `forged_from` as its sender: the simulator's attackers
  // (the gateway must trust neither).
  void CallForged(const Request& request, uint64_t forged_auth_user_id,
                  const std::string& forged_from, std::function<void(const Reply&)> done);
  // Marks `seq` of `conversation` read on this device.
  void MarkRead(const std::string& conversation, uint64_t seq);

  // Going offline on purpose (logout) and coming back.
  void Disconnect();
  void Connect();

  State state() const { return state_; }
  uint64_t user_id() const { return user_id_; }
  const std::string& gateway() const { return gateway_; }
  // The app-visible stream, in delivery order (since this incarnation).
  const std::vector<Message>& delivered() const { return delivered_; }
  uint64_t cursor(const std::string& conversation) const;
  size_t pending_sends() const { return pending_.size(); }
  const ClientStats& stats() const { return stats_; }

 protected:
  absl::Status OnStart() override;
  void HandleRequest(const Envelope& request) override;
  void HandleOther(const Envelope& envelope) override;
  // Only while not online: a client needs the gateways to pick one when it
  // connects, not while it is connected. Losing or ending the connection
  // asks at once (ResumeDiscovery).
  bool DiscoveryWanted() const override { return state_ != State::kOnline; }

 private:
  using Done = std::function<void(const Reply&)>;

  // Calls the current gateway; a reply from an older connection is dropped.
  // `request` by value: a caller done with it moves it in.
  void GatewayCall(Request request, Done done);
  void GatewayCall(Request request, const CallOptions& call, Done done);
  // Register and login (see ClientOptions::auth_timeout).
  void AuthCall(const Request& request, Done done);
  void StartConnect();
  void LoginAt(const std::string& gateway, uint64_t generation, bool registered);
  void OpenSession(uint64_t generation);
  void ConnectionLost(const absl::Status& why);
  void Ping(uint64_t generation);
  void PeriodicSync(uint64_t generation);

  // Every conversation from its cursor; or, `gaps_only`, just the gaps
  // before the messages waiting in early_ (what follows them is on its way).
  void Sync(bool gaps_only = false);
  // `own`: built from the ack of this client's send, or one of the messages
  // the ack carries (SendReply.unseen, offered first). Its gap is messages
  // whose pushes are on their way (they left the shard before the reply), so
  // it waits for them without arming the gap timer; the periodic sync is the
  // safety net.
  void Offer(const Message& message, bool own = false);
  void Deliver(const Message& message);
  // Delivers what waits in early_ for `conversation` once it is next in line,
  // drops what is already delivered, and persists the cursor.
  void DeliverEarly(const std::string& conversation);
  void ArmGapTimer();
  absl::Duration SyncInterval();
  void ScheduleAcks();
  void FlushAcks();

  std::string QueueSend(Request request);
  void PumpSends();
  // Puts pending send `n` on the wire and handles its reply.
  void SendPending(uint64_t n, const Request& request);

  ClientOptions options_;
  State state_ = State::kOffline;
  bool want_online_ = false;
  uint64_t generation_ = 0;  // grows with every connection attempt
  std::string gateway_;
  std::string last_failed_gateway_;
  absl::Duration backoff_;
  // When the current connection's gateway last answered OK: each such reply
  // shows the gateway alive and the session fresh (the gateway counts every
  // request toward its idle timeout), so a ping is sent only after a whole
  // ping_interval without one.
  absl::Time last_ok_reply_ = absl::InfinitePast();
  std::string token_;
  absl::Time token_expires_ = absl::InfinitePast();
  uint64_t user_id_ = 0;
  uint64_t epoch_ = 0;

  std::map<std::string, uint64_t> cursors_;
  std::map<std::string, uint64_t> acked_;
  bool ack_timer_armed_ = false;
  // Messages that arrived ahead of a gap, per conversation, by seq.
  std::map<std::string, std::map<uint64_t, Message>> early_;
  size_t early_count_ = 0;
  bool gap_timer_armed_ = false;
  bool sync_in_flight_ = false;
  bool sync_again_ = false;

  // Unsent messages in send order: sequence -> SendPrivate/SendGroup request.
  std::map<uint64_t, Request> pending_;
  uint64_t next_msg_ = 1;
  std::string nonce_;
  // Sends on the wire now (keys of pending_), at most max_sends_in_flight.
  std::set<uint64_t> sends_on_wire_;
  // Pipelined sends waiting out a backoff before going on the wire again.
  std::set<uint64_t> backing_off_;
  absl::Duration send_backoff_;

  std::vector<Message> delivered_;
  ClientStats stats_;
};

}  // namespace parley

#endif  // PARLEY_CORE_CLIENT_CLIENT_H_
