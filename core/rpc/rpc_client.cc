#include "core/rpc/rpc_client.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "core/status.h"

namespace parley {

// Probes counted here (core/probe.h).
const DeclaredProbe kRetryOnOtherInstance("retry_on_other_instance",
                         "a call retried on another instance of the service");
const DeclaredProbe kRpcTimeout("rpc_timeout",
                         "a call attempt timed out waiting for its reply");

void RpcClient::Call(const std::string& service, Request request, const CallOptions& options,
                     Callback done) {
  // Built in place in calls_: a PendingCall is not moved around.
  const uint64_t call_id = next_call_id_++;
  PendingCall& call = calls_[call_id];
  call.service = service;
  call.request = std::move(request);
  call.options = options;
  call.done = std::move(done);
  Start(call_id, call);
}

void RpcClient::CallAddress(const std::string& address, Request request,
                            const CallOptions& options, Callback done) {
  const uint64_t call_id = next_call_id_++;
  PendingCall& call = calls_[call_id];
  call.address = address;
  call.request = std::move(request);
  call.options = options;
  call.done = std::move(done);
  Start(call_id, call);
}

void RpcClient::Start(uint64_t call_id, PendingCall& call) {
  // Unique per node incarnation: the node's address plus a random nonce drawn
  // once per call keeps ids distinct across restarts.
  call.request_id = !call.options.request_id.empty()
                        ? call.options.request_id
                        : absl::StrCat(env_->Self(), "#", call_id, ".",
                                       env_->Rng().Next() % 1000000007);
  ++stats_.calls;
  Attempt(call_id);
}

void RpcClient::Attempt(uint64_t call_id) {
  PendingCall& call = calls_.at(call_id);
  std::string target = call.address;
  if (!call.service.empty()) {
    target = call.options.use_hash
                 ? directory_->PickByHash(call.service, call.options.hash_key, call.tried)
                 : directory_->Pick(call.service, call.tried);
    if (target.empty()) {
      // Nothing known yet (the directory may still be filling): the attempt
      // looks again every kInstancePoll until its timeout, and goes out as
      // soon as an instance is known, so a caller started before discovery
      // (a one-attempt login right after start, say) still gets through.
      ++call.attempts;
      ++stats_.attempts;
      WaitForInstance(call_id, env_->Now() + call.options.timeout);
      return;
    }
    if (call.attempts > 0 && call.tried.count(target) == 0) {
      ++stats_.retried_on_other_instance;
      if (probes_ != nullptr) probes_->Count(kRetryOnOtherInstance);
    }
    call.address = target;
  }
  call.tried.insert(target);
  ++call.attempts;
  ++stats_.attempts;

  const uint64_t correlation_id = next_correlation_id_++;
  correlation_to_call_[correlation_id] = call_id;
  call.correlation_id = correlation_id;
  Envelope envelope;
  envelope.set_correlation_id(correlation_id);
  envelope.set_from(call.options.from.empty() ? env_->Self() : call.options.from);
  envelope.set_request_id(call.request_id);
  envelope.set_auth_user_id(call.options.auth_user_id);
  envelope.set_timeout_us(absl::ToInt64Microseconds(call.options.timeout));
  if (call.attempts >= call.options.max_attempts) {
    // The last attempt: nothing sends the request again, so it moves.
    envelope.mutable_request()->Swap(&call.request);
  } else {
    *envelope.mutable_request() = call.request;
  }
  // Two words captured: the callback fits in std::function's own storage
  // (no allocation per attempt); the rest is in the call.
  call.timer = timers_->After(call.options.timeout, [this, call_id] { OnAttemptTimeout(call_id); });
  env_->Send(target, std::move(envelope));
}

void RpcClient::OnAttemptTimeout(uint64_t call_id) {
  auto it = calls_.find(call_id);
  if (it == calls_.end()) return;  // finished: its timer was cancelled
  correlation_to_call_.erase(it->second.correlation_id);
  ++stats_.timeouts;
  if (probes_ != nullptr) probes_->Count(kRpcTimeout);
  // The attempt went to call.address (nothing changes it until the next attempt).
  OnAttemptFailed(call_id, absl::StrCat("timed out waiting for ", it->second.address));
}

void RpcClient::WaitForInstance(uint64_t call_id, absl::Time deadline) {
  PendingCall& call = calls_.at(call_id);
  const absl::Duration left = deadline - env_->Now();
  call.timer = timers_->After(std::max(absl::ZeroDuration(), std::min(kInstancePoll, left)),
                              [this, call_id, deadline] {
    auto it = calls_.find(call_id);
    if (it == calls_.end()) return;
    PendingCall& c = it->second;
    c.timer = 0;
    const std::string target = c.options.use_hash
                                   ? directory_->PickByHash(c.service, c.options.hash_key, c.tried)
                                   : directory_->Pick(c.service, c.tried);
    if (!target.empty()) {
      --c.attempts;  // this attempt goes out now, not as another one
      --stats_.attempts;
      Attempt(call_id);
      return;
    }
    if (env_->Now() >= deadline) {
      OnAttemptFailed(call_id, absl::StrCat("no known instance of service '", c.service, "'"));
      return;
    }
    WaitForInstance(call_id, deadline);
  });
}

void RpcClient::OnAttemptFailed(uint64_t call_id, const std::string& why) {
  auto it = calls_.find(call_id);
  if (it == calls_.end()) return;
  PendingCall& call = it->second;
  call.timer = 0;
  if (call.attempts < call.options.max_attempts) {
    Attempt(call_id);
    return;
  }
  const std::string what = call.service.empty() ? call.address : "service '" + call.service + "'";
  Finish(call_id, ErrorReply(absl::UnavailableError(absl::StrCat(
                      "all ", call.attempts, " attempts to ", what, " failed; last: ", why))));
}

bool RpcClient::OnReply(const Envelope& envelope) {
  auto corr = correlation_to_call_.find(envelope.correlation_id());
  if (corr == correlation_to_call_.end()) {
    ++stats_.late_replies;
    return false;
  }
  const uint64_t call_id = corr->second;
  correlation_to_call_.erase(corr);
  auto it = calls_.find(call_id);
  if (it == calls_.end()) return false;
  if (it->second.timer != 0) {
    timers_->Cancel(it->second.timer);
    it->second.timer = 0;
  }
  // UNAVAILABLE from the callee (e.g. it is still starting) is worth another
  // instance; every other reply, error or not, is the answer.
  if (envelope.reply().status().code() == CODE_UNAVAILABLE) {
    OnAttemptFailed(call_id, envelope.reply().status().message());
    return true;
  }
  Finish(call_id, envelope.reply());
  return true;
}

void RpcClient::Finish(uint64_t call_id, const Reply& reply) {
  auto it = calls_.find(call_id);
  if (it == calls_.end()) return;
  Callback done = std::move(it->second.done);
  const TimerId timer = it->second.timer;
  calls_.erase(it);
  if (timer != 0) timers_->Cancel(timer);
  // Each attempt's correlation id was already forgotten by its timeout or its
  // reply, so nothing of this call is left behind.
  if (reply.status().code() != CODE_OK) ++stats_.failed;
  done(reply);
}

}  // namespace parley
