#include "core/service_node.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/proto/records.pb.h"
#include "core/keys.h"
#include "core/status.h"

namespace parley {
namespace {

std::string RequestLogKey(const std::string& request_id) {
  return absl::StrCat("reqlog/", request_id);
}

// Time index of the request log, so old records are trimmed in time order:
// reqlogt/<time_us:20>/<request_id>.
constexpr char kRequestLogTimePrefix[] = "reqlogt/";
std::string RequestLogTimeKey(int64_t time_us, const std::string& request_id) {
  return absl::StrCat(kRequestLogTimePrefix, PadId(static_cast<uint64_t>(time_us)), "/", request_id);
}

// The outbox keeps acked events at least as long as the environment says its
// bus may lose them.
Outbox::Options WithRetention(Env* env, Outbox::Options options) {
  options.retention = std::max(options.retention, env->AckedEventRetention());
  return options;
}

}  // namespace

std::string InstanceAddress(const std::string& service, const std::string& instance_id) {
  return absl::StrCat("svc.", service, ".", instance_id);
}

ServiceNode::ServiceNode(Env* env, ServiceOptions options)
    : env_(env),
      guarded_store_(env),
      options_(std::move(options)),
      timers_(env),
      rpc_(env, &timers_, &directory_),
      outbox_(env, &timers_, WithRetention(env, options_.outbox)) {
  // The rpc client's and the outbox's probes are this node's.
  rpc_.set_probes(&probes());
  outbox_.set_probes(&probes());
}

absl::Status ServiceNode::GuardedStore::Get(absl::string_view key, std::string* value) const {
  absl::Status s = env_->Store().Get(key, value);
  Note(s);
  return s;
}

absl::Status ServiceNode::GuardedStore::Scan(absl::string_view prefix,
                                             absl::string_view start_after, size_t limit,
                                             std::vector<KeyValue>* out) const {
  absl::Status s = env_->Store().Scan(prefix, start_after, limit, out);
  Note(s);
  return s;
}

absl::Status ServiceNode::GuardedStore::ScanBefore(absl::string_view prefix,
                                                   absl::string_view start_after,
                                                   absl::string_view end_before, size_t limit,
                                                   std::vector<KeyValue>* out) const {
  absl::Status s = env_->Store().ScanBefore(prefix, start_after, end_before, limit, out);
  Note(s);
  return s;
}

absl::Status ServiceNode::GuardedStore::Last(absl::string_view prefix, KeyValue* out) const {
  absl::Status s = env_->Store().Last(prefix, out);
  Note(s);
  return s;
}

void ServiceNode::Start() {
  BeginCallback();
  absl::Status s = outbox_.Recover();
  if (s.ok()) s = OnStart();
  if (s.ok() && !read_failure().ok()) s = read_failure();
  if (!s.ok()) {
    // A node whose store cannot be read must not serve from a partial view.
    healthy_ = false;
    // A store that failed now may work a second later: the host restarts the
    // node. Corruption stays corrupt, so that node stays up refusing.
    if (!absl::IsDataLoss(s)) {
      env_->FailStop(absl::StrCat(env_->Self(), " could not recover its store: ", s.message()));
    }
    return;
  }
  timers_.After(options_.request_log_sweep_interval, [this] { TrimRequestLog(); });
  if (!options_.service.empty()) Heartbeat();
  if (!options_.dependencies.empty()) Discover();
}

void ServiceNode::Stop() {
  BeginCallback();
  stopped_ = true;
  if (options_.service.empty()) return;
  Request request;
  request.mutable_deregister_instance()->set_service(options_.service);
  request.mutable_deregister_instance()->set_instance_id(options_.instance_id);
  Envelope envelope;
  envelope.set_from(env_->Self());
  *envelope.mutable_request() = request;
  env_->Send(kRegistryAddress, envelope);
}

void ServiceNode::TrimRequestLog() {
  const int64_t cutoff_us = absl::ToUnixMicros(env_->Now() - options_.request_log_ttl);
  // Only the records at or before the cutoff, the oldest first: the scan
  // stops at the first time index key past it (there is none before it if
  // the cutoff is before the epoch).
  const std::string end_before =
      cutoff_us < 0 ? std::string(kRequestLogTimePrefix)
                    : absl::StrCat(kRequestLogTimePrefix, PadId(static_cast<uint64_t>(cutoff_us) + 1));
  std::vector<KeyValue> rows;
  // A failed scan or write trims nothing this round; the next one tries again.
  absl::Status s = store().ScanBefore(kRequestLogTimePrefix, "", end_before,
                                      options_.request_log_trim_batch, &rows);
  if (!s.ok()) rows.clear();
  WriteBatch batch;
  const size_t prefix = sizeof(kRequestLogTimePrefix) - 1;
  for (const KeyValue& row : rows) {
    if (static_cast<int64_t>(LastIdOf(row.first.substr(0, prefix + 20))) > cutoff_us) break;
    batch.Delete(row.first);
    batch.Delete(RequestLogKey(row.first.substr(prefix + 21)));
  }
  if (!batch.empty() && Commit(batch).ok()) request_log_trimmed_ += batch.size() / 2;
  timers_.After(options_.request_log_sweep_interval, [this] { TrimRequestLog(); });
}

void ServiceNode::Heartbeat() {
  if (stopped_) return;
  Request request;
  Instance* instance = request.mutable_register_instance()->mutable_instance();
  instance->set_service(options_.service);
  instance->set_instance_id(options_.instance_id);
  instance->set_address(env_->Self());
  CallOptions call;
  call.timeout = options_.registry_timeout;
  call.max_attempts = 1;
  // A lost heartbeat is simply followed by the next one.
  rpc_.CallAddress(kRegistryAddress, std::move(request), call, [](const Reply&) {});
  timers_.After(options_.heartbeat_interval, [this] { Heartbeat(); });
}

void ServiceNode::ResumeDiscovery() {
  if (!discovery_paused_ || options_.dependencies.empty()) return;
  discovery_paused_ = false;
  Discover();
}

void ServiceNode::Discover() {
  if (stopped_) return;
  if (!DiscoveryWanted()) {
    discovery_paused_ = true;  // until ResumeDiscovery
    return;
  }
  ++discoveries_;  // scheduled only with dependencies (Start, ResumeDiscovery)
  for (const std::string& service : options_.dependencies) {
    Request request;
    request.mutable_discover()->set_service(service);
    CallOptions call;
    call.timeout = options_.registry_timeout;
    call.max_attempts = 1;
    rpc_.CallAddress(kRegistryAddress, std::move(request), call, [this, service](const Reply& reply) {
      if (reply.status().code() != CODE_OK || !reply.has_discover()) return;
      std::vector<Instance> instances(reply.discover().instances().begin(),
                                      reply.discover().instances().end());
      directory_.Update(service, std::move(instances));
    });
  }
  timers_.After(options_.discover_interval, [this] { Discover(); });
}

void ServiceNode::OnEnvelope(const Envelope& envelope) {
  BeginCallback();
  switch (envelope.body_case()) {
    case Envelope::kReply:
      rpc_.OnReply(envelope);
      return;
    case Envelope::kRegistryUpdate: {
      const RegistryUpdate& update = envelope.registry_update();
      std::vector<Instance> instances(update.current().instances().begin(),
                                      update.current().instances().end());
      directory_.Update(update.service(), std::move(instances));
      return;
    }
    case Envelope::kRequest:
      if (!healthy_) {
        RespondError(envelope, absl::UnavailableError(
                                   absl::StrCat(env_->Self(), " failed to recover its store")));
        return;
      }
      HandleRequest(envelope);
      return;
    default:
      HandleOther(envelope);
      return;
  }
}

void ServiceNode::OnEvent(const Event& event, uint64_t delivery_id) {
  BeginCallback();
  if (!healthy_) return;  // not acked: the bus redelivers elsewhere or later
  HandleEvent(event, delivery_id);
}

void ServiceNode::HandleEvent(const Event& event, uint64_t delivery_id) {
  AckEvent(delivery_id);
}

void ServiceNode::AckEvent(uint64_t delivery_id) {
  // Not acked: its effect may rest on what a failed read did not return.
  if (!read_failure().ok()) return;
  env_->AckEvent(delivery_id);
}

void ServiceNode::OnPublishAck(const std::string& event_id) {
  BeginCallback();
  outbox_.OnPublishAck(event_id);
}

void ServiceNode::OnTimer(TimerId id) {
  BeginCallback();
  timers_.Fire(id);
}

void ServiceNode::OnBusReconnected() {
  BeginCallback();
  if (healthy_) outbox_.ReplayRetained();
}

void ServiceNode::Respond(const Envelope& request, Reply reply) {
  if (request.from().empty()) return;  // one-way: nobody to answer
  if (!read_failure().ok()) {
    // Whatever this reply says was computed without what the read failed to
    // return: retryable, and nothing was written (Commit refuses too).
    reply = ErrorReply(absl::UnavailableError(
        absl::StrCat("store read failed: ", read_failure().message())));
  }
  Envelope envelope;
  envelope.set_correlation_id(request.correlation_id());
  envelope.set_from(env_->Self());
  envelope.set_request_id(request.request_id());
  envelope.mutable_reply()->Swap(&reply);
  env_->Send(request.from(), std::move(envelope));
}

void ServiceNode::RespondError(const Envelope& request, const absl::Status& status) {
  Respond(request, ErrorReply(status));
}

bool ServiceNode::ReplayIfDone(const Envelope& request) {
  if (request.request_id().empty()) return false;
  std::string value;
  absl::Status s = store().Get(RequestLogKey(request.request_id()), &value);
  if (absl::IsNotFound(s)) return false;
  if (!s.ok()) {
    // Unknown whether it was applied: applying it again could apply it twice.
    RespondError(request, absl::UnavailableError(absl::StrCat("store read failed: ", s.message())));
    return true;
  }
  RequestLogRecord record;
  if (!record.ParseFromString(value)) return false;
  if (record.op() != 0 && record.op() != static_cast<int32_t>(request.request().op_case())) {
    RespondError(request, absl::InvalidArgumentError(absl::StrCat(
                              "request_id ", request.request_id(),
                              " was used for another operation; a retry must repeat its request")));
    return true;
  }
  Reply reply;
  reply.Swap(record.mutable_reply());
  Respond(request, std::move(reply));
  return true;
}

void ServiceNode::CommitAndRespond(const Envelope& request, WriteBatch batch, Reply reply) {
  if (!request.request_id().empty()) {
    // The reply is lent to the record while it is serialized, not copied.
    RequestLogRecord record;
    record.mutable_reply()->Swap(&reply);
    record.set_time_us(absl::ToUnixMicros(env_->Now()));
    record.set_op(static_cast<int32_t>(request.request().op_case()));
    batch.Put(RequestLogKey(request.request_id()), record.SerializeAsString());
    batch.Put(RequestLogTimeKey(record.time_us(), request.request_id()), "");
    reply.Swap(record.mutable_reply());
  }
  absl::Status s = Commit(batch);
  if (!s.ok()) {
    RespondError(request, absl::UnavailableError(absl::StrCat("store write failed: ", s.message())));
    return;
  }
  Respond(request, std::move(reply));
}

absl::Status ServiceNode::Commit(const WriteBatch& batch) {
  if (!read_failure().ok()) {
    // The batch was built from a read that failed: it may be wrong.
    outbox_.Aborted();
    return absl::UnavailableError(absl::StrCat("store read failed: ", read_failure().message()));
  }
  absl::Status s = store().Write(batch);
  if (!s.ok()) {
    outbox_.Aborted();
    return s;
  }
  outbox_.Committed();
  return absl::OkStatus();
}

}  // namespace parley
