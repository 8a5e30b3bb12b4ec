#include "core/client/client.h"

#include <algorithm>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/check.h"
#include "core/keys.h"
#include "core/services.h"
#include "core/status.h"
#include "core/testing/bugs.h"

namespace parley {

// Probes counted here (core/probe.h).
const DeclaredProbe kClientReconnect("client_reconnect",
                         "the client connected again after losing its gateway");
const DeclaredProbe kClientDuplicateDropped("client_duplicate_dropped",
                         "the client dropped a message it already had");
const DeclaredProbe kGapSync("gap_sync",
                         "the client saw a gap in a conversation and synced it");
const DeclaredProbe kSendRetry("send_retry",
                         "the client sent a message again after no ack");
const DeclaredProbe kSyncSize("sync_size",
                         "messages one sync reply delivered to the client", DeclaredProbe::Kind::kSamples);

namespace {

// The client's own store (the device's local database).
constexpr char kEpochKey[] = "c/epoch";
constexpr char kNextMsgKey[] = "c/next_msg";
// A random tag of this device's local store: client_msg_ids stay unique even
// when a device starts over with an empty store (its counter restarts at 1).
constexpr char kNonceKey[] = "c/nonce";
constexpr char kCursorPrefix[] = "c/cursor/";
constexpr char kPendingPrefix[] = "c/pending/";

// 0 if the key is absent; an error if the store could not say (a counter
// read as 0 would reuse client_msg_ids).
absl::StatusOr<uint64_t> ReadCounter(OrderedStore& store, const char* key) {
  std::string value;
  uint64_t n = 0;
  absl::Status s = store.Get(key, &value);
  if (absl::IsNotFound(s)) return 0;
  if (!s.ok()) return s;
  absl::SimpleAtoi(value, &n);
  return n;
}

// Errors worth trying again later; any other error is the answer.
bool Retryable(ErrorCode code) {
  return code == CODE_UNAVAILABLE || code == CODE_DEADLINE_EXCEEDED ||
         code == CODE_UNAUTHENTICATED || code == CODE_ABORTED || code == CODE_INTERNAL;
}

// A send is retried, with the same client_msg_id, on these; on any other
// error (PERMISSION_DENIED, INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION,
// ...) asking again would get the same answer, so it is reported as failed.
// RESOURCE_EXHAUSTED is a rate limit: the same send succeeds later.
bool SendRetryable(ErrorCode code) {
  return Retryable(code) || code == CODE_RESOURCE_EXHAUSTED;
}

}  // namespace

Client::Client(Env* env, ClientOptions options)
    : ServiceNode(env, [&options] {
        ServiceOptions o{"", "",
                         options.fixed_gateway.empty() ? std::vector<std::string>{kGatewayService}
                                                       : std::vector<std::string>{}};
        o.discover_interval = options.discover_interval;
        return o;
      }()),
      options_(std::move(options)),
      backoff_(options_.backoff_min),
      send_backoff_(options_.backoff_min) {}

absl::Status Client::OnStart() {
  absl::StatusOr<uint64_t> epoch = ReadCounter(store(), kEpochKey);
  if (!epoch.ok()) return epoch.status();
  absl::StatusOr<uint64_t> next_msg = ReadCounter(store(), kNextMsgKey);
  if (!next_msg.ok()) return next_msg.status();
  epoch_ = *epoch;
  next_msg_ = std::max<uint64_t>(1, *next_msg);
  absl::Status nonce = store().Get(kNonceKey, &nonce_);
  if (!nonce.ok() && !absl::IsNotFound(nonce)) return nonce;
  if (!nonce.ok()) {
    nonce_ = absl::StrFormat("%08x", env().Rng().Next() & 0xffffffffu);
    WriteBatch batch;
    batch.Put(kNonceKey, nonce_);
    absl::Status s = Commit(batch);
    if (!s.ok()) return s;
  }
  std::vector<KeyValue> rows;
  absl::Status s = store().Scan(kCursorPrefix, "", SIZE_MAX, &rows);
  if (!s.ok()) return s;
  for (const KeyValue& row : rows) {
    uint64_t seq = 0;
    absl::SimpleAtoi(row.second, &seq);
    cursors_[row.first.substr(sizeof(kCursorPrefix) - 1)] = seq;
  }
  rows.clear();
  s = store().Scan(kPendingPrefix, "", SIZE_MAX, &rows);
  if (!s.ok()) return s;
  for (const KeyValue& row : rows) {
    Request request;
    if (!request.ParseFromString(row.second)) {
      return absl::DataLossError(absl::StrCat("corrupt pending send ", row.first));
    }
    pending_[LastIdOf(row.first)] = std::move(request);
  }
  if (options_.connect_on_start) Connect();
  return absl::OkStatus();
}

uint64_t Client::cursor(const std::string& conversation) const {
  auto it = cursors_.find(conversation);
  return it == cursors_.end() ? 0 : it->second;
}

void Client::HandleRequest(const Envelope& envelope) {
  RespondError(envelope, absl::UnimplementedError("a client serves no requests"));
}

// ---- connection -------------------------------------------------------------------------

void Client::GatewayCall(Request request, Done done) {
  CallOptions call;
  call.timeout = options_.request_timeout;
  call.max_attempts = options_.request_attempts;
  GatewayCall(std::move(request), call, std::move(done));
}

void Client::AuthCall(const Request& request, Done done) {
  CallOptions call;
  call.timeout = options_.auth_timeout;
  call.max_attempts = 1;
  GatewayCall(request, call, std::move(done));
}

void Client::GatewayCall(Request request, const CallOptions& call, Done done) {
  const uint64_t generation = generation_;
  rpc().CallAddress(gateway_, std::move(request), call,
                    [this, generation, done = std::move(done)](const Reply& reply) {
                      if (generation != generation_) return;  // an older connection's
                      if (reply.status().code() == CODE_OK) last_ok_reply_ = env().Now();
                      done(reply);
                    });
}

void Client::Connect() {
  if (want_online_) return;
  want_online_ = true;
  backoff_ = options_.backoff_min;
  StartConnect();
}

void Client::Disconnect() {
  want_online_ = false;
  if (state_ == State::kOnline) {
    Request logout;
    logout.mutable_gateway_logout();
    GatewayCall(std::move(logout), [](const Reply&) {});
    token_.clear();  // a logout ends the device's tokens: the next connect logs in
  }
  ++generation_;  // whatever is in flight belongs to the old connection
  state_ = State::kOffline;
  sync_in_flight_ = false;
  sends_on_wire_.clear();
  backing_off_.clear();
  ResumeDiscovery();  // a fresh list of gateways for the next connect
}

void Client::ConnectionLost(const absl::Status& why) {
  if (!want_online_) return;
  ++stats_.reconnects;
  probes().Count(kClientReconnect);
  ++generation_;
  state_ = State::kConnecting;
  sync_in_flight_ = false;
  sends_on_wire_.clear();
  backing_off_.clear();
  if (!gateway_.empty()) last_failed_gateway_ = gateway_;
  gateway_.clear();
  ResumeDiscovery();  // the gateways now, before the next attempt picks one
  // Exponential backoff with jitter, bounded.
  const absl::Duration wait = backoff_ + absl::Microseconds(env().Rng().Uniform(
                                              absl::ToInt64Microseconds(backoff_) / 2 + 1));
  backoff_ = std::min(backoff_ * 2, options_.backoff_max);
  const uint64_t generation = generation_;
  timers().After(wait, [this, generation] {
    if (generation == generation_) StartConnect();
  });
}

void Client::StartConnect() {
  if (!want_online_) return;
  state_ = State::kConnecting;
  std::vector<std::string> candidates;
  if (!options_.fixed_gateway.empty()) candidates.push_back(options_.fixed_gateway);
  for (const Instance& i : directory().Instances(kGatewayService)) {
    if (i.address() != last_failed_gateway_) candidates.push_back(i.address());
  }
  if (candidates.empty() && !last_failed_gateway_.empty()) {
    for (const Instance& i : directory().Instances(kGatewayService)) {
      candidates.push_back(i.address());
    }
  }
  if (candidates.empty()) {
    return ConnectionLost(absl::UnavailableError("no gateway known yet"));
  }
  ++generation_;
  gateway_ = candidates[env().Rng().Uniform(candidates.size())];
  if (std::find(candidates.begin(), candidates.end(), options_.preferred_gateway) !=
      candidates.end()) {
    gateway_ = options_.preferred_gateway;
  }
  if (!token_.empty() && token_expires_ > env().Now() + absl::Minutes(1)) {
    return OpenSession(generation_);
  }
  LoginAt(gateway_, generation_, /*registered=*/false);
}

void Client::LoginAt(const std::string& gateway, uint64_t generation, bool registered) {
  Request login;
  login.mutable_login()->set_name(options_.name);
  login.mutable_login()->set_password(options_.password);
  login.mutable_login()->set_device_id(options_.device_id);  // a token for this device only
  AuthCall(login, [this, generation, registered](const Reply& reply) {
    if (reply.status().code() == CODE_OK) {
      token_ = reply.login().token();
      token_expires_ = absl::FromUnixMicros(reply.login().expires_us());
      user_id_ = reply.login().user_id();
      return OpenSession(generation);
    }
    if (reply.status().code() == CODE_UNAUTHENTICATED && options_.auto_register && !registered) {
      Request reg;
      reg.mutable_register_()->set_name(options_.name);
      reg.mutable_register_()->set_password(options_.password);
      reg.mutable_register_()->set_nickname(options_.nickname);
      return AuthCall(reg, [this, generation](const Reply& reply) {
        if (reply.status().code() != CODE_OK && reply.status().code() != CODE_ALREADY_EXISTS) {
          return ConnectionLost(ReplyStatus(reply));
        }
        LoginAt(gateway_, generation, /*registered=*/true);
      });
    }
    ConnectionLost(ReplyStatus(reply));
  });
}

void Client::OpenSession(uint64_t generation) {
  ++epoch_;
  WriteBatch batch;
  batch.Put(kEpochKey, absl::StrCat(epoch_));
  if (!Commit(batch).ok()) return ConnectionLost(absl::UnavailableError("local store failed"));
  Request login;
  login.mutable_gateway_login()->set_token(token_);
  login.mutable_gateway_login()->set_device_id(options_.device_id);
  login.mutable_gateway_login()->set_epoch(epoch_);
  GatewayCall(std::move(login), [this, generation](const Reply& reply) {
    if (reply.status().code() != CODE_OK) {
      // Expired or revoked (a logout, a password change): log in again with
      // the password.
      if (reply.status().code() == CODE_UNAUTHENTICATED) token_.clear();
      // A newer login of this device, or an epoch too far above the device's:
      // the next attempt goes just above the device's current epoch, so a
      // stray huge epoch elsewhere never locks this device out.
      if (reply.status().code() == CODE_FAILED_PRECONDITION ||
          reply.status().code() == CODE_OUT_OF_RANGE) {
        const uint64_t current = reply.gateway_login().device_epoch();
        epoch_ = reply.status().code() == CODE_FAILED_PRECONDITION ? std::max(epoch_, current)
                                                                   : current;
      }
      return ConnectionLost(ReplyStatus(reply));
    }
    state_ = State::kOnline;
    backoff_ = options_.backoff_min;
    ++stats_.connects;
    if (options_.observer != nullptr) options_.observer->OnOnline(env().Self(), user_id_);
    const uint64_t g = generation_;
    timers().After(options_.ping_interval, [this, g] { Ping(g); });
    if (!BugPlanted(Bug::kNoSyncOnReconnect)) {
      timers().After(SyncInterval(), [this, g] { PeriodicSync(g); });
      Sync();
    }
    PumpSends();
  });
}

void Client::Ping(uint64_t generation) {
  if (generation != generation_ || state_ != State::kOnline) return;
  // Another request was answered within the interval: that was the ping.
  const absl::Time due = last_ok_reply_ + options_.ping_interval;
  if (due > env().Now()) {
    timers().After(due - env().Now(), [this, generation] { Ping(generation); });
    return;
  }
  ++stats_.pings;
  Request ping;
  ping.mutable_ping();
  GatewayCall(std::move(ping), [this, generation](const Reply& reply) {
    if (reply.status().code() != CODE_OK) return ConnectionLost(ReplyStatus(reply));
    timers().After(options_.ping_interval, [this, generation] { Ping(generation); });
  });
}

void Client::PeriodicSync(uint64_t generation) {
  if (generation != generation_ || state_ != State::kOnline) return;
  Sync();
  timers().After(SyncInterval(), [this, generation] { PeriodicSync(generation); });
}

absl::Duration Client::SyncInterval() {
  // Jittered (0.5x to 1.5x): clients that came online together must not
  // sync together ever after (a burst every interval shows in tail latency).
  return options_.sync_interval * (0.5 + env().Rng().UniformDouble());
}

void Client::Call(const Request& request, std::function<void(const Reply&)> done) {
  if (state_ != State::kOnline) {
    return done(ErrorReply(absl::UnavailableError("the client is not connected")));
  }
  GatewayCall(request, [this, done = std::move(done)](const Reply& reply) {
    if (reply.status().code() == CODE_UNAUTHENTICATED) ConnectionLost(ReplyStatus(reply));
    done(reply);
  });
}

void Client::ChangePassword(const std::string& new_password,
                            std::function<void(const Reply&)> done) {
  if (state_ != State::kOnline) {
    return done(ErrorReply(absl::UnavailableError("the client is not connected")));
  }
  Request request;
  request.mutable_change_password()->set_old_password(options_.password);
  request.mutable_change_password()->set_new_password(new_password);
  AuthCall(request, [this, new_password, done = std::move(done)](const Reply& reply) {
    if (reply.status().code() == CODE_OK) {
      options_.password = new_password;
      token_ = reply.change_password().token();
      token_expires_ = absl::FromUnixMicros(reply.change_password().expires_us());
    }
    done(reply);
  });
}

void Client::CallForged(const Request& request, uint64_t forged_auth_user_id,
                        const std::string& forged_from, std::function<void(const Reply&)> done) {
  if (state_ != State::kOnline) {
    return done(ErrorReply(absl::UnavailableError("the client is not connected")));
  }
  CallOptions call;
  call.timeout = options_.request_timeout;
  call.max_attempts = options_.request_attempts;
  call.auth_user_id = forged_auth_user_id;
  call.from = forged_from;
  // An UNAUTHENTICATED answer is about the forged identity, not this
  // client's session: no reconnect.
  GatewayCall(request, call, std::move(done));
}

// ---- receiving -----------------------------------------------------------------------------

void Client::HandleOther(const Envelope& envelope) {
  if (!envelope.has_client_push() || state_ != State::kOnline) return;
  Offer(envelope.client_push().message());
}

void Client::Offer(const Message& message, bool own) {
  const uint64_t current = cursor(message.conversation());
  if (message.seq() <= current && !BugPlanted(Bug::kNoClientDedup)) {
    ++stats_.duplicates_dropped;
    probes().Count(kClientDuplicateDropped);
    return;
  }
  if (message.seq() > current + 1 && !BugPlanted(Bug::kIgnoreGap)) {
    // Something in between is missing: wait a little for it, then ask for it.
    if (options_.gap_wait > absl::ZeroDuration() && early_count_ < options_.max_early) {
      if (early_[message.conversation()].emplace(message.seq(), message).second) {
        ++early_count_;
        ++stats_.early_arrivals;
      }
      if (own) return;
      return ArmGapTimer();
    }
    ++stats_.gap_syncs;
    probes().Count(kGapSync);
    return Sync();
  }
  // The cursor is stored before the app sees the message: if the write
  // fails, nothing was delivered and a later push or sync brings it again
  // (delivered first, a restart would deliver it twice).
  WriteBatch batch;
  batch.Put(kCursorPrefix + message.conversation(), absl::StrCat(message.seq()));
  if (!Commit(batch).ok()) return;
  Deliver(message);
  DeliverEarly(message.conversation());
}

void Client::DeliverEarly(const std::string& conversation) {
  auto it = early_.find(conversation);
  if (it == early_.end()) return;
  std::map<uint64_t, Message>& waiting = it->second;
  // First where the cursor gets to, to store it before the app sees any of
  // them (see Offer); a failed write leaves them all waiting.
  uint64_t through = cursor(conversation);
  for (const auto& [seq, message] : waiting) {
    if (seq > through + 1) break;
    through = std::max(through, seq);
  }
  if (through > cursor(conversation)) {
    WriteBatch batch;
    batch.Put(kCursorPrefix + conversation, absl::StrCat(through));
    if (!Commit(batch).ok()) return;
  }
  while (!waiting.empty()) {
    auto first = waiting.begin();
    const uint64_t current = cursor(conversation);
    if (first->first > current + 1) break;  // still a gap
    if (first->first == current + 1) Deliver(first->second);
    // else: already delivered (by a sync)
    waiting.erase(first);
    --early_count_;
  }
  if (waiting.empty()) early_.erase(it);
}

void Client::ArmGapTimer() {
  if (gap_timer_armed_) return;
  gap_timer_armed_ = true;
  timers().After(options_.gap_wait, [this] {
    gap_timer_armed_ = false;
    if (early_.empty()) return;  // every gap filled in time
    // Still missing: ask for just the gaps; what waits is delivered after them.
    ++stats_.gap_syncs;
    probes().Count(kGapSync);
    Sync(/*gaps_only=*/true);
  });
}

void Client::Deliver(const Message& message) {
  // Paired with the cursor: the app sees each conversation's seqs strictly
  // increasing, never one twice (unless the dedup is switched off on purpose).
  if (!BugPlanted(Bug::kNoClientDedup)) {
    PARLEY_CHECK_GT(message.seq(), cursor(message.conversation()))
        << "delivering " << message.conversation() << " out of order or twice";
  }
  cursors_[message.conversation()] = message.seq();
  if (options_.keep_delivered) delivered_.push_back(message);
  ++stats_.delivered;
  if (options_.observer != nullptr) options_.observer->OnDelivered(env().Self(), message);
  ScheduleAcks();
}

void Client::Sync(bool gaps_only) {
  if (state_ != State::kOnline) return;
  if (sync_in_flight_) {
    // A gap still open after the reply re-arms the gap timer.
    if (!gaps_only) sync_again_ = true;
    return;
  }
  sync_in_flight_ = true;
  sync_again_ = false;
  ++stats_.syncs;
  Request request;
  if (gaps_only) {
    request.mutable_sync()->set_only_listed(true);
    for (const auto& [conv, waiting] : early_) {
      Cursor* c = request.mutable_sync()->add_cursors();
      c->set_conversation(conv);
      c->set_seq(cursor(conv));
      c->set_until_seq(waiting.begin()->first - 1);
    }
  } else {
    for (const auto& [conv, seq] : cursors_) {
      Cursor* c = request.mutable_sync()->add_cursors();
      c->set_conversation(conv);
      c->set_seq(seq);
    }
  }
  request.mutable_sync()->set_max_messages(options_.sync_page);
  GatewayCall(std::move(request), [this](const Reply& reply) {
    sync_in_flight_ = false;
    if (reply.status().code() != CODE_OK) {
      if (Retryable(reply.status().code())) return ConnectionLost(ReplyStatus(reply));
      if (!early_.empty()) ArmGapTimer();
      return;
    }
    // Where each cursor gets to, stored before the app sees anything (see
    // Offer): a failed write delivers nothing, and the next sync asks again.
    std::map<std::string, uint64_t> through;
    auto planned = [this, &through](const std::string& conv) -> uint64_t& {
      return through.emplace(conv, cursor(conv)).first->second;
    };
    WriteBatch batch;
    batch.Reserve(reply.sync().conversations_size());
    for (const ConversationPage& page : reply.sync().conversations()) {
      for (const Message& m : page.messages()) {
        uint64_t& c = planned(m.conversation());
        c = std::max(c, m.seq());
      }
      uint64_t& c = planned(page.conversation());
      c = std::max(c, page.through_seq());
      batch.Put(kCursorPrefix + page.conversation(), absl::StrCat(c));
    }
    if (!Commit(batch).ok()) {
      if (!early_.empty()) ArmGapTimer();
      return;
    }
    uint32_t size = 0;
    for (const ConversationPage& page : reply.sync().conversations()) {
      size += page.messages_size();
      for (const Message& m : page.messages()) {
        if (m.seq() > cursor(m.conversation())) Deliver(m);
      }
      if (page.through_seq() > cursor(page.conversation())) {
        cursors_[page.conversation()] = page.through_seq();
      }
    }
    for (const ConversationPage& page : reply.sync().conversations()) {
      DeliverEarly(page.conversation());
    }
    if (stats_.sync_sizes.size() < 4096) stats_.sync_sizes.push_back(size);
    probes().Sample(kSyncSize, size);
    if (reply.sync().has_more() || sync_again_) return Sync();
    if (!early_.empty()) ArmGapTimer();
  });
}

void Client::ScheduleAcks() {
  if (ack_timer_armed_) return;
  ack_timer_armed_ = true;
  timers().After(options_.ack_delay, [this] {
    ack_timer_armed_ = false;
    FlushAcks();
  });
}

void Client::FlushAcks() {
  if (state_ != State::kOnline) return;
  for (const auto& [conv, seq] : cursors_) {
    if (acked_[conv] >= seq) continue;
    Request ack;
    ack.mutable_ack()->set_conversation(conv);
    ack.mutable_ack()->set_seq(seq);
    ack.mutable_ack()->set_device_id(options_.device_id);
    GatewayCall(std::move(ack), [this, conv = conv, seq = seq](const Reply& reply) {
      // A refused ack (e.g. the user left the group) stays refused: asking
      // again would only be refused again, so it counts as done.
      if (reply.status().code() == CODE_OK || reply.status().code() == CODE_PERMISSION_DENIED) {
        acked_[conv] = std::max(acked_[conv], seq);
      }
    });
  }
}

void Client::MarkRead(const std::string& conversation, uint64_t seq) {
  Request read;
  read.mutable_read()->set_conversation(conversation);
  read.mutable_read()->set_seq(seq);
  read.mutable_read()->set_device_id(options_.device_id);
  Call(read, [](const Reply&) {});
}

// ---- sending --------------------------------------------------------------------------------

std::string Client::SendPrivate(uint64_t to_user_id, const std::string& body) {
  Request request;
  request.mutable_send_private()->set_to_user_id(to_user_id);
  request.mutable_send_private()->set_body(body);
  return QueueSend(std::move(request));
}

std::string Client::SendGroup(uint64_t group_id, const std::string& body) {
  Request request;
  request.mutable_send_group()->set_group_id(group_id);
  request.mutable_send_group()->set_body(body);
  return QueueSend(std::move(request));
}

std::string Client::Recall(const std::string& conversation, uint64_t seq) {
  Request request;
  request.mutable_recall()->set_conversation(conversation);
  request.mutable_recall()->set_seq(seq);
  return QueueSend(std::move(request));
}

std::string Client::QueueSend(Request request) {
  const uint64_t n = next_msg_;
  const std::string id = absl::StrCat(options_.device_id, "-", nonce_, "-", n);
  if (request.has_send_private()) request.mutable_send_private()->set_client_msg_id(id);
  if (request.has_send_group()) request.mutable_send_group()->set_client_msg_id(id);
  if (request.has_recall()) request.mutable_recall()->set_client_msg_id(id);
  WriteBatch batch;
  batch.Put(kPendingPrefix + PadId(n), request.SerializeAsString());
  batch.Put(kNextMsgKey, absl::StrCat(n + 1));
  absl::Status s = Commit(batch);
  if (!s.ok()) {
    // The counter is stored before a message using it goes out: sent with an
    // unsaved counter, its id would name another message after a restart,
    // and that one would be answered with this one's ack. Never sent, the
    // message is lost with the device's memory, as in a crash.
    env().FailStop(absl::StrCat("client store failed saving send ", id, ": ", s.message()));
    return id;
  }
  next_msg_ = n + 1;
  PARLEY_CHECK(pending_.count(n) == 0) << "client_msg_id " << id << " queued twice";
  pending_[n] = std::move(request);
  PumpSends();
  return id;
}

void Client::PumpSends() {
  if (state_ != State::kOnline) return;
  const size_t window = std::max<size_t>(1, options_.max_sends_in_flight);
  for (auto it = pending_.begin(); it != pending_.end() && sends_on_wire_.size() < window; ++it) {
    if (sends_on_wire_.count(it->first) > 0 || backing_off_.count(it->first) > 0) continue;
    SendPending(it->first, it->second);
  }
}

void Client::SendPending(uint64_t n, const Request& request) {
  sends_on_wire_.insert(n);
  GatewayCall(request, [this, n, request](const Reply& reply) {
    sends_on_wire_.erase(n);
    const std::string& id = request.has_send_private() ? request.send_private().client_msg_id()
                            : request.has_send_group() ? request.send_group().client_msg_id()
                                                       : request.recall().client_msg_id();
    const ErrorCode code = reply.status().code();
    auto retry_later = [this, n] {
      const uint64_t generation = generation_;
      // Pipelined, the other sends' replies pump too: this one sits out its
      // backoff rather than going straight back on the wire.
      if (options_.max_sends_in_flight > 1) backing_off_.insert(n);
      timers().After(send_backoff_, [this, generation, n] {
        if (generation != generation_) return;
        backing_off_.erase(n);
        PumpSends();
      });
      send_backoff_ = std::min(send_backoff_ * 2, options_.backoff_max);
    };
    if (code != CODE_OK && SendRetryable(code)) {
      ++stats_.send_retries;
      probes().Count(kSendRetry);
      if (code == CODE_UNAUTHENTICATED) return ConnectionLost(ReplyStatus(reply));
      return retry_later();
    }
    WriteBatch batch;
    batch.Delete(kPendingPrefix + PadId(n));
    // Kept pending if the delete fails: sent again later with the same
    // client_msg_id, the server answers it the same, and this is tried again.
    if (!Commit(batch).ok()) return retry_later();
    send_backoff_ = options_.backoff_min;
    pending_.erase(n);
    if (code != CODE_OK) {
      ++stats_.sends_failed;
      if (options_.observer != nullptr) {
        options_.observer->OnSendFailed(env().Self(), id, ReplyStatus(reply));
      }
    } else {
      ++stats_.sends_acked;
      if (options_.observer != nullptr) options_.observer->OnSendAcked(env().Self(), id, reply.send());
      // The sender sees its own message in order like any other.
      Message own;
      own.set_conversation(reply.send().conversation());
      own.set_seq(reply.send().seq());
      own.set_sender_id(user_id_);
      own.set_client_msg_id(id);
      if (request.has_recall()) {
        own.set_kind(Message::RECALL);
        own.set_recalled_seq(request.recall().seq());
      } else {
        own.set_body(request.has_send_private() ? request.send_private().body()
                                                : request.send_group().body());
      }
      own.set_time_us(reply.send().time_us());
      // First what the reply carries of the conversation below it (messages
      // whose pushes had not left the shard), so its own seq opens no gap.
      for (const Message& m : reply.send().unseen()) {
        if (m.conversation() == own.conversation() && m.seq() < own.seq()) {
          Offer(m, /*own=*/true);
        }
      }
      Offer(own, /*own=*/true);
    }
    PumpSends();
  });
}

}  // namespace parley
