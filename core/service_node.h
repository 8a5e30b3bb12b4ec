// ServiceNode: the common shape of every service of the core. It owns the
// node's timers, rpc client, directory and outbox; registers the instance with
// the registry and heartbeats; keeps its view of the services it calls fresh;
// and answers retried requests from the request log instead of applying them
// twice. A domain service implements HandleRequest (and HandleEvent).
#ifndef PARLEY_CORE_SERVICE_NODE_H_
#define PARLEY_CORE_SERVICE_NODE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "core/env.h"
#include "core/outbox.h"
#include "core/rpc/directory.h"
#include "core/rpc/rpc_client.h"
#include "core/timers.h"

namespace parley {

// Well-known addresses of the singleton nodes.
inline constexpr char kRegistryAddress[] = "svc.registry";
inline constexpr char kKvAddress[] = "svc.kv";

// The address of one instance of a service: "svc.<service>.<instance_id>".
std::string InstanceAddress(const std::string& service, const std::string& instance_id);

struct ServiceOptions {
  // Registered with the registry when non-empty.
  std::string service;
  std::string instance_id;
  // Services this node calls; their instances are discovered periodically.
  std::vector<std::string> dependencies;
  absl::Duration heartbeat_interval = absl::Milliseconds(500);
  absl::Duration discover_interval = absl::Milliseconds(500);
  absl::Duration registry_timeout = absl::Milliseconds(300);
  Outbox::Options outbox;
  // Replies kept for retried requests: long enough for any retry to come.
  absl::Duration request_log_ttl = absl::Minutes(10);
  absl::Duration request_log_sweep_interval = absl::Seconds(10);
  size_t request_log_trim_batch = 1000;
};

class ServiceNode : public Node {
 public:
  ServiceNode(Env* env, ServiceOptions options);

  void Start() final;
  void OnEnvelope(const Envelope& envelope) final;
  void OnEvent(const Event& event, uint64_t delivery_id) final;
  void OnPublishAck(const std::string& event_id) final;
  void OnTimer(TimerId id) final;
  void OnBusReconnected() final;
  void Stop() override;

  const ServiceOptions& options() const { return options_; }
  const RpcStats& rpc_stats() const { return rpc_.stats(); }
  const OutboxStats& outbox_stats() const { return outbox_.stats(); }
  size_t outbox_unacked() const { return outbox_.unacked(); }
  size_t outbox_retained() const { return outbox_.retained(); }
  uint64_t request_log_trimmed() const { return request_log_trimmed_; }
  // Rounds of discovery that asked the registry (DiscoveryWanted said yes).
  uint64_t discoveries() const { return discoveries_; }
  ServiceDirectory& directory() { return directory_; }
  // False after Start failed to recover the store: every request then gets
  // UNAVAILABLE.
  bool healthy() const { return healthy_; }

 protected:
  // Domain hooks.
  virtual absl::Status OnStart() { return absl::OkStatus(); }
  virtual void HandleRequest(const Envelope& request) = 0;
  // Default: acknowledges and ignores.
  virtual void HandleEvent(const Event& event, uint64_t delivery_id);
  // Asked at each discovery interval: false pauses discovery (the node keeps
  // the instances it knows, and no timer runs) until ResumeDiscovery, which
  // asks the registry at once and then every interval again. Default: always.
  virtual bool DiscoveryWanted() const { return true; }
  void ResumeDiscovery();
  // Envelopes that are neither requests nor replies (pushes). Default: drop.
  virtual void HandleOther(const Envelope& envelope) {}

  Env& env() { return *env_; }
  // The node's store, read through a guard: a Get or Scan that fails (any
  // error but NOT_FOUND) taints the current callback, so that nothing
  // computed from what the read did not return can leave the node as an
  // answer. While tainted, Respond answers UNAVAILABLE instead of the reply
  // it was given, Commit writes nothing and AckEvent acks nothing (the bus
  // redelivers). Every callback starts untainted. Code that can tell a failed
  // read from an empty one should still check the status and say so; the
  // guard is the backstop for helpers that answer "absent" to either.
  OrderedStore& store() { return guarded_store_; }
  // The first read of this callback that failed, or OK.
  const absl::Status& read_failure() const { return guarded_store_.failure(); }
  Timers& timers() { return timers_; }
  RpcClient& rpc() { return rpc_; }
  Outbox& outbox() { return outbox_; }

  // Acks an event delivery, unless a read of this callback failed.
  void AckEvent(uint64_t delivery_id);

  void Respond(const Envelope& request, Reply reply);
  void RespondError(const Envelope& request, const absl::Status& status);

  // For requests that change state: if this request id was already applied,
  // sends the recorded reply again and returns true.
  bool ReplayIfDone(const Envelope& request);
  // Writes `batch`, the request-log record of `request` and any events staged
  // in the outbox, atomically; then replies `reply` and starts publishing.
  // If the write fails the client gets the error and nothing was applied.
  // `reply` by value: a caller done with it moves it in.
  void CommitAndRespond(const Envelope& request, WriteBatch batch, Reply reply);
  // Writes `batch` with the outbox's staged events.
  absl::Status Commit(const WriteBatch& batch);

 private:
  // See store().
  class GuardedStore : public OrderedStore {
   public:
    explicit GuardedStore(Env* env) : env_(env) {}
    absl::Status Get(absl::string_view key, std::string* value) const override;
    absl::Status Scan(absl::string_view prefix, absl::string_view start_after, size_t limit,
                      std::vector<KeyValue>* out) const override;
    absl::Status ScanBefore(absl::string_view prefix, absl::string_view start_after,
                            absl::string_view end_before, size_t limit,
                            std::vector<KeyValue>* out) const override;
    absl::Status Last(absl::string_view prefix, KeyValue* out) const override;
    absl::Status Write(const WriteBatch& batch) override { return env_->Store().Write(batch); }
    const absl::Status& failure() const { return failure_; }
    void Clear() { failure_ = absl::OkStatus(); }

   private:
    void Note(const absl::Status& s) const {
      if (!s.ok() && !absl::IsNotFound(s) && failure_.ok()) failure_ = s;
    }
    Env* env_;
    mutable absl::Status failure_;
  };

  // Called first in every callback.
  void BeginCallback() { guarded_store_.Clear(); }
  void Heartbeat();
  void Discover();
  void TrimRequestLog();

  Env* env_;
  GuardedStore guarded_store_;
  ServiceOptions options_;
  Timers timers_;
  ServiceDirectory directory_;
  RpcClient rpc_;
  Outbox outbox_;
  bool healthy_ = true;
  uint64_t request_log_trimmed_ = 0;
  uint64_t discoveries_ = 0;
  bool discovery_paused_ = false;
  bool stopped_ = false;
};

}  // namespace parley

#endif  // PARLEY_CORE_SERVICE_NODE_H_
