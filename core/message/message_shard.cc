#include "core/message/message_shard.h"

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/check.h"
#include "core/message/message_keys.h"
#include "core/services.h"
#include "core/status.h"
#include "core/testing/bugs.h"

namespace parley {

// Probes counted here (core/probe.h).
const DeclaredProbe kDispatchReplay("dispatch_replay",
                         "a message's pushes dispatched again from the outbox after a restart");
const DeclaredProbe kDedupHit("dedup_hit",
                         "a retried send answered from its idempotency record");

MessageShard::MessageShard(Env* env, MessageOptions options)
    : ServiceNode(env, ServiceOptions{kMessageService, absl::StrCat(options.shard),
                                      {kFriendService, kGroupService}}),
      options_(std::move(options)) {}

absl::Status MessageShard::OnStart() {
  // Replay every dispatch a crash interrupted.
  std::vector<KeyValue> pending;
  absl::Status s = store().Scan(message_keys::kDispatchPrefix, "", SIZE_MAX, &pending);
  if (!s.ok()) return s;
  for (const KeyValue& row : pending) {
    DispatchRecord record;
    if (!record.ParseFromString(row.second)) {
      return absl::DataLossError(absl::StrCat("corrupt dispatch record ", row.first));
    }
    // The stored record names its message; the message (as a recall may
    // since have scrubbed it) is read from its own key.
    const auto key = std::make_pair(record.message().conversation(), record.message().seq());
    std::string value;
    s = store().Get(message_keys::Message(key.first, key.second), &value);
    if (absl::IsNotFound(s)) {
      return absl::DataLossError(absl::StrCat("dispatch record ", row.first, " has no message"));
    }
    if (!s.ok()) return s;
    if (!record.mutable_message()->ParseFromString(value)) {
      return absl::DataLossError(absl::StrCat("corrupt message for dispatch record ", row.first));
    }
    dispatch_queue_.insert(key);
    dispatch_records_[key] = std::move(record);
    ++stats_.dispatch_replayed;
    probes().Count(kDispatchReplay);
  }
  PumpDispatches();
  return absl::OkStatus();
}

void MessageShard::HandleRequest(const Envelope& envelope) {
  switch (envelope.request().op_case()) {
    case Request::kSendPrivate:
      return SendPrivate(envelope);
    case Request::kSendGroup:
      return SendGroup(envelope);
    case Request::kRecall:
      return Recall(envelope);
    case Request::kShardSync:
      return ShardSync(envelope);
    case Request::kShardListConversations:
      return ListConversations(envelope);
    case Request::kAck:
    case Request::kRead:
      return MoveCursor(envelope);
    case Request::kHistory:
      return History(envelope);
    default:
      return RespondError(
          envelope, absl::UnimplementedError("a message shard does not serve this request"));
  }
}

// ---- sending ------------------------------------------------------------------------

absl::Status MessageShard::ValidateSend(const Envelope& envelope, const std::string& client_msg_id,
                                        const std::string& body) {
  if (envelope.auth_user_id() == 0) return absl::UnauthenticatedError("sending needs a login");
  if (client_msg_id.empty() || client_msg_id.size() > options_.max_client_msg_id_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("client_msg_id must be 1 to ",
                                                   options_.max_client_msg_id_bytes, " bytes"));
  }
  if (body.empty()) return absl::InvalidArgumentError("message body is empty");
  if (body.size() > options_.max_body_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("message body is ", body.size(), " bytes; the limit is ",
                     options_.max_body_bytes));
  }
  return absl::OkStatus();
}

bool MessageShard::ReplayIdempotent(const Envelope& envelope, uint64_t sender,
                                    const std::string& client_msg_id) {
  std::string value;
  absl::Status s = store().Get(message_keys::Idempotency(sender, client_msg_id), &value);
  if (absl::IsNotFound(s)) return false;
  if (!s.ok()) {
    // Unknown whether it was sent: sending it again could send it twice.
    RespondError(envelope, absl::UnavailableError(absl::StrCat("store read failed: ", s.message())));
    return true;
  }
  Reply reply;
  if (!reply.mutable_send()->ParseFromString(value)) return false;
  ++stats_.idempotent_replays;
  probes().Count(kDedupHit);
  AddUnseen(envelope, reply.mutable_send());
  Respond(envelope, reply);
  return true;
}

absl::Status MessageShard::CheckOwned(const std::string& conversation) const {
  const uint32_t owner = ShardOf(conversation, options_.num_shards);
  if (owner != options_.shard) {
    return absl::FailedPreconditionError(
        absl::StrCat("conversation ", conversation, " belongs to shard ", owner, ", not ",
                     options_.shard));
  }
  return absl::OkStatus();
}

// A failed read answers 0 and taints the callback (see ServiceNode::store()):
// the reply becomes UNAVAILABLE and Commit refuses, so a seq is never assigned
// from it.
// The conversation's last message key holds its max seq: no counter of its
// own to write with every message. Read from the store once (a seek, dearer
// than a point read in LevelDB), then kept by this shard's commits: the shard
// is the conversation's only writer.
uint64_t MessageShard::MaxSeq(const std::string& conversation) {
  if (BugPlanted(Bug::kSeqInMemory)) return seq_in_memory_[conversation];
  auto known = max_seq_.find(conversation);
  if (known != max_seq_.end()) return known->second;
  KeyValue last;
  absl::Status s = store().Last(message_keys::MessagePrefix(conversation), &last);
  if (absl::IsNotFound(s)) {
    RememberMaxSeq(conversation, 0);
    return 0;
  }
  if (!s.ok()) return 0;  // not remembered: the callback is tainted
  const uint64_t seq = LastIdOf(last.first);
  RememberMaxSeq(conversation, seq);
  return seq;
}

void MessageShard::Committed(const std::string& conversation, uint64_t seq) {
  auto known = max_seq_.find(conversation);
  if (known != max_seq_.end()) {
    known->second = std::max(known->second, seq);
  } else {
    RememberMaxSeq(conversation, seq);
  }
}

void MessageShard::RememberMaxSeq(const std::string& conversation, uint64_t seq) {
  if (options_.max_seq_cache == 0) return;
  auto [it, inserted] = max_seq_.insert_or_assign(conversation, seq);
  if (!inserted) return;
  max_seq_order_.push_back(conversation);
  while (max_seq_.size() > options_.max_seq_cache) {
    max_seq_.erase(max_seq_order_.front());
    max_seq_order_.pop_front();
  }
}

void MessageShard::AddUnseen(const Envelope& envelope, SendReply* ack) {
  const uint64_t user = envelope.auth_user_id();
  const Request& request = envelope.request();
  const std::string& origin = request.has_send_private() ? request.send_private().origin_device_id()
                              : request.has_send_group() ? request.send_group().origin_device_id()
                                                         : std::string();
  const std::string& conv = ack->conversation();
  // Highest seqs first, then reversed: the ones closest to the sender's own
  // are the likeliest still in flight towards it.
  std::vector<const Message*> picked;
  size_t bytes = 0;
  auto end = dispatch_records_.lower_bound({conv, ack->seq()});
  for (auto it = end; it != dispatch_records_.begin();) {
    --it;
    if (it->first.first != conv) break;
    const DispatchRecord& record = it->second;
    const Message& m = record.message();
    // The sending device has its own messages from their replies.
    if (!origin.empty() && m.sender_id() == user && record.origin_device_id() == origin) continue;
    // Only what the requester is pushed anyway: a recipient of the message.
    if (std::find(record.recipients().begin(), record.recipients().end(), user) ==
        record.recipients().end()) {
      continue;
    }
    const size_t cost = SyncReplyCost(m.ByteSizeLong());
    if (picked.size() >= options_.max_unseen_in_reply ||
        (!picked.empty() && bytes + cost > options_.max_unseen_bytes)) {
      break;
    }
    bytes += cost;
    picked.push_back(&m);
  }
  for (auto m = picked.rbegin(); m != picked.rend(); ++m) *ack->add_unseen() = **m;
  stats_.unseen_in_replies += picked.size();
}

void MessageShard::CommitMessage(const Envelope& envelope, Message message,
                                 std::vector<uint64_t> recipients,
                                 const Conversation& conversation) {
  // Re-checked here: a duplicate may have committed while we asked around.
  if (ReplayIdempotent(envelope, message.sender_id(), message.client_msg_id())) return;
  const std::string& conv = message.conversation();
  const uint64_t seq = MaxSeq(conv) + 1;
  // Paired with MaxSeq: no message is stored at the seq about to be
  // assigned, so a seq is never given twice. The planted in-memory counter
  // (seq_in_memory) breaks exactly this, and the simulator reports it as a
  // broken invariant; the planted write-behind bugs are left for the
  // checkers to catch. Not after a failed read: that seq is never committed
  // (Commit refuses).
  if (read_failure().ok() && !BugPlanted(Bug::kAckBeforeCommit) &&
      !BugPlanted(Bug::kDispatchWithoutOutbox)) {
    std::string existing;
    PARLEY_CHECK(!store().Get(message_keys::Message(conv, seq), &existing).ok())
        << "seq " << seq << " of " << conv << " is already taken";
  }
  message.set_seq(seq);
  message.set_time_us(absl::ToUnixMicros(env().Now()));

  WriteBatch batch;
  batch.Put(message_keys::Message(conv, seq), message.SerializeAsString());
  Reply reply;
  SendReply* ack = reply.mutable_send();
  ack->set_conversation(conv);
  ack->set_seq(seq);
  ack->set_time_us(message.time_us());
  batch.Put(message_keys::Idempotency(message.sender_id(), message.client_msg_id()),
            ack->SerializeAsString());
  if (!conversation.is_group && seq == 1) {
    batch.Put(message_keys::UserConversation(conversation.low, conv), "");
    batch.Put(message_keys::UserConversation(conversation.high, conv), "");
  }
  // Stored, the dispatch record names its message instead of holding a copy
  // (the message is in this batch under its own key): a message is written
  // once, and a recall's scrub of its body reaches the dispatch too.
  DispatchRecord record;
  record.mutable_message()->set_conversation(conv);
  record.mutable_message()->set_seq(seq);
  record.mutable_recipients()->Add(recipients.begin(), recipients.end());
  const Request& request = envelope.request();
  record.set_origin_device_id(request.has_send_private() ? request.send_private().origin_device_id()
                              : request.has_send_group() ? request.send_group().origin_device_id()
                                                         : "");
  batch.Put(message_keys::Dispatch(conv, seq), record.SerializeAsString());
  *record.mutable_message() = message;  // in memory: the whole message, to push
  // A recall withdraws the original's body in the same batch: once the
  // recall is acked no store key holds it.
  std::optional<DispatchRecord> scrubbed;
  if (message.kind() == Message::RECALL) {
    absl::Status staged = StageRecall(message, &batch, &scrubbed);
    if (!staged.ok()) {
      ++stats_.rejected;
      return RespondError(envelope, staged);
    }
  }

  if (BugPlanted(Bug::kSeqInMemory)) seq_in_memory_[conv] = seq;
  if (BugPlanted(Bug::kAckBeforeCommit) || BugPlanted(Bug::kDispatchWithoutOutbox)) {
    // Write-behind: the batch is written a little later; a crash in between
    // loses it, and sends in between reuse the seq.
    if (BugPlanted(Bug::kAckBeforeCommit)) Respond(envelope, reply);
    if (BugPlanted(Bug::kDispatchWithoutOutbox)) Dispatch(record);
    timers().After(absl::Milliseconds(20), [this, batch, envelope, reply, scrubbed, conv, seq] {
      if (!Commit(batch).ok()) return;
      Committed(conv, seq);
      if (scrubbed.has_value()) UpdateDispatchRecord(*scrubbed);
      if (BugPlanted(Bug::kDispatchWithoutOutbox)) Respond(envelope, reply);
    });
    return;
  }
  absl::Status s = Commit(batch);
  if (!s.ok()) {
    return RespondError(envelope,
                        absl::UnavailableError(absl::StrCat("store write failed: ", s.message())));
  }
  ++stats_.sent;
  Committed(conv, seq);
  if (scrubbed.has_value()) UpdateDispatchRecord(*scrubbed);
  AddUnseen(envelope, ack);  // after the idempotency record was staged: not in it
  Respond(envelope, std::move(reply));  // acked only after the batch committed
  dispatch_queue_.emplace(conv, seq);
  dispatch_records_[{conv, seq}] = std::move(record);
  PumpDispatches();
}

void MessageShard::SendPrivate(const Envelope& envelope) {
  const SendPrivateRequest& request = envelope.request().send_private();
  const uint64_t sender = envelope.auth_user_id();
  absl::Status s = ValidateSend(envelope, request.client_msg_id(), request.body());
  if (s.ok() && (request.to_user_id() == 0 || request.to_user_id() == sender)) {
    s = absl::InvalidArgumentError("to_user_id must name another user");
  }
  const std::string conv_id = PrivateConversationId(sender, request.to_user_id());
  if (s.ok()) s = CheckOwned(conv_id);
  if (!s.ok()) {
    ++stats_.rejected;
    return RespondError(envelope, s);
  }
  if (ReplayIdempotent(envelope, sender, request.client_msg_id())) return;
  Conversation conversation = *ParseConversation(conv_id);
  Message message;
  message.set_conversation(conv_id);
  message.set_sender_id(sender);
  message.set_client_msg_id(request.client_msg_id());
  message.set_body(request.body());
  std::vector<uint64_t> recipients = {conversation.low, conversation.high};
  if (options_.open_private) {
    return CommitMessage(envelope, std::move(message), std::move(recipients), conversation);
  }
  Request check;
  check.mutable_check_friends()->set_owner_id(sender);
  check.mutable_check_friends()->add_user_ids(request.to_user_id());
  rpc().Call(kFriendService, check, options_.calls,
             [this, envelope, message = std::move(message), recipients = std::move(recipients),
              conversation](const Reply& reply) mutable {
               absl::Status s = ReplyStatus(reply);
               if (!s.ok()) {
                 return RespondError(envelope, absl::UnavailableError(absl::StrCat(
                                                   "friend service: ", s.message())));
               }
               if (reply.check_friends().blocked_ids_size() > 0) {
                 ++stats_.rejected;
                 return RespondError(envelope, absl::PermissionDeniedError(
                                                   "a block stands between sender and recipient"));
               }
               if (reply.check_friends().friend_ids_size() == 0) {
                 ++stats_.rejected;
                 return RespondError(envelope, absl::PermissionDeniedError(
                                                   "private messages go to friends only"));
               }
               CommitMessage(envelope, std::move(message), std::move(recipients), conversation);
             });
}

void MessageShard::WithGroupMembers(const Envelope& envelope, uint64_t group_id, uint64_t sender,
                                    std::function<void(std::vector<uint64_t>, uint64_t)> next) {
  Request request;
  request.mutable_member_ids()->set_group_id(group_id);
  rpc().Call(kGroupService, request, options_.calls,
             [this, envelope, group_id, sender, next = std::move(next)](const Reply& reply) {
               absl::Status s = ReplyStatus(reply);
               if (absl::IsNotFound(s)) {
                 ++stats_.rejected;
                 return RespondError(envelope, s);
               }
               if (!s.ok()) {
                 return RespondError(envelope, absl::UnavailableError(absl::StrCat(
                                                   "group service: ", s.message())));
               }
               std::vector<uint64_t> members(reply.member_ids().member_ids().begin(),
                                             reply.member_ids().member_ids().end());
               if (!std::binary_search(members.begin(), members.end(), sender) &&
                   !BugPlanted(Bug::kSkipMembershipCheck)) {
                 ++stats_.rejected;
                 return RespondError(envelope, absl::PermissionDeniedError(absl::StrCat(
                                                   "not a member of group ", group_id)));
               }
               next(std::move(members), reply.member_ids().version());
             });
}

void MessageShard::SendGroup(const Envelope& envelope) {
  const SendGroupRequest& request = envelope.request().send_group();
  const uint64_t sender = envelope.auth_user_id();
  absl::Status s = ValidateSend(envelope, request.client_msg_id(), request.body());
  if (s.ok() && request.group_id() == 0) s = absl::InvalidArgumentError("group_id is 0");
  const std::string conv_id = GroupConversationId(request.group_id());
  if (s.ok()) s = CheckOwned(conv_id);
  if (!s.ok()) {
    ++stats_.rejected;
    return RespondError(envelope, s);
  }
  if (ReplayIdempotent(envelope, sender, request.client_msg_id())) return;
  Message message;
  message.set_conversation(conv_id);
  message.set_sender_id(sender);
  message.set_client_msg_id(request.client_msg_id());
  message.set_body(request.body());
  WithGroupMembers(envelope, request.group_id(), sender,
                   [this, envelope, message, conv_id](std::vector<uint64_t> members,
                                                      uint64_t version) mutable {
                     message.set_group_version(version);
                     CommitMessage(envelope, std::move(message), std::move(members),
                                   *ParseConversation(conv_id));
                   });
}

void MessageShard::Recall(const Envelope& envelope) {
  const RecallRequest& request = envelope.request().recall();
  const uint64_t sender = envelope.auth_user_id();
  absl::StatusOr<Conversation> conversation = ParseConversation(request.conversation());
  absl::Status s = conversation.status();
  if (s.ok()) s = ValidateSend(envelope, request.client_msg_id(), "recall");
  if (s.ok()) s = CheckOwned(request.conversation());
  if (!s.ok()) return RespondError(envelope, s);
  if (ReplayIdempotent(envelope, sender, request.client_msg_id())) return;
  std::string value;
  Message original;
  s = store().Get(message_keys::Message(request.conversation(), request.seq()), &value);
  if (!s.ok() && !absl::IsNotFound(s)) return RespondError(envelope, absl::UnavailableError(absl::StrCat("store read failed: ", s.message())));
  if (!s.ok() || !original.ParseFromString(value)) {
    return RespondError(envelope, absl::NotFoundError(absl::StrCat(
                                      "no message ", request.seq(), " in ", request.conversation())));
  }
  if (original.sender_id() != sender) {
    return RespondError(envelope,
                        absl::PermissionDeniedError("only the sender recalls a message"));
  }
  if (original.kind() != Message::NORMAL) {
    return RespondError(envelope, absl::InvalidArgumentError("a recall cannot be recalled"));
  }
  if (original.recalled()) {
    return RespondError(envelope, absl::FailedPreconditionError(absl::StrCat(
                                      "message ", request.seq(), " in ", request.conversation(),
                                      " is already recalled")));
  }
  if (env().Now() - absl::FromUnixMicros(original.time_us()) > options_.recall_window) {
    return RespondError(envelope, absl::FailedPreconditionError(absl::StrCat(
                                      "the recall window of ",
                                      absl::FormatDuration(options_.recall_window),
                                      " has passed")));
  }
  Message recall;
  recall.set_conversation(request.conversation());
  recall.set_sender_id(sender);
  recall.set_client_msg_id(request.client_msg_id());
  recall.set_kind(Message::RECALL);
  recall.set_recalled_seq(request.seq());
  if (!conversation->is_group) {
    return CommitMessage(envelope, std::move(recall), {conversation->low, conversation->high},
                         *conversation);
  }
  WithGroupMembers(envelope, conversation->group_id, sender,
                   [this, envelope, recall, conversation = *conversation](
                       std::vector<uint64_t> members, uint64_t version) mutable {
                     recall.set_group_version(version);
                     CommitMessage(envelope, std::move(recall), std::move(members), conversation);
                   });
}

absl::Status MessageShard::StageRecall(const Message& recall, WriteBatch* batch,
                                       std::optional<DispatchRecord>* scrubbed) {
  const std::string& conv = recall.conversation();
  const uint64_t seq = recall.recalled_seq();
  std::string value;
  Message original;
  if (!store().Get(message_keys::Message(conv, seq), &value).ok() ||
      !original.ParseFromString(value)) {
    return absl::NotFoundError(absl::StrCat("no message ", seq, " in ", conv));
  }
  // Checked again here: another recall of it may have committed while this
  // one asked the group service.
  if (original.recalled()) {
    return absl::FailedPreconditionError(
        absl::StrCat("message ", seq, " in ", conv, " is already recalled"));
  }
  if (BugPlanted(Bug::kRecallKeepsBody)) return absl::OkStatus();
  original.clear_body();
  original.set_recalled(true);
  batch->Put(message_keys::Message(conv, seq), original.SerializeAsString());
  // A stored dispatch record holds no body (it names the message); the
  // pending one in memory is scrubbed once the batch commits.
  auto pending = dispatch_records_.find({conv, seq});
  if (pending != dispatch_records_.end()) {
    DispatchRecord record = pending->second;
    record.mutable_message()->clear_body();
    record.mutable_message()->set_recalled(true);
    *scrubbed = std::move(record);
  }
  return absl::OkStatus();
}

void MessageShard::UpdateDispatchRecord(const DispatchRecord& record) {
  auto it = dispatch_records_.find({record.message().conversation(), record.message().seq()});
  if (it != dispatch_records_.end()) it->second = record;  // a done dispatch stays done
}

// ---- dispatch ------------------------------------------------------------------------

void MessageShard::PumpDispatches() {
  while (!dispatch_queue_.empty() &&
         dispatch_in_flight_.size() < options_.max_dispatches_in_flight) {
    auto next = *dispatch_queue_.begin();
    dispatch_queue_.erase(dispatch_queue_.begin());
    auto record = dispatch_records_.find(next);
    if (record == dispatch_records_.end()) continue;  // already done
    if (!dispatch_in_flight_.insert(next).second) continue;
    Dispatch(record->second);
  }
}

void MessageShard::Dispatch(const DispatchRecord& record) {
  // Look up every recipient's sessions, in batches, then push once per gateway.
  struct Lookup {
    size_t outstanding = 0;
    bool failed = false;
    std::vector<PresenceRecord> sessions;
  };
  auto lookup = std::make_shared<Lookup>();
  const Message message = record.message();
  std::vector<Request> requests;
  for (int i = 0; i < record.recipients_size(); ++i) {
    if (i % options_.presence_batch == 0) requests.emplace_back();
    requests.back().mutable_kv_get()->add_prefixes(
        message_keys::PresencePrefix(record.recipients(i)));
  }
  lookup->outstanding = requests.size();
  const std::string origin_device = record.origin_device_id();
  auto finish = [this, lookup, captured = message, origin_device] {
    // The record as it is now: a recall that committed during the presence
    // lookup scrubbed it, and its body must not go out.
    auto current = dispatch_records_.find({captured.conversation(), captured.seq()});
    const Message message =
        current != dispatch_records_.end() ? current->second.message() : captured;
    if (lookup->failed) {
      ++stats_.dispatch_retries;
      timers().After(options_.dispatch_retry_after, [this, message] {
        dispatch_in_flight_.erase({message.conversation(), message.seq()});
        dispatch_queue_.emplace(message.conversation(), message.seq());
        PumpDispatches();
      });
      return;
    }
    std::map<std::string, Push> by_gateway;
    const auto key = std::make_pair(message.conversation(), message.seq());
    for (const PresenceRecord& p : lookup->sessions) {
      if (!origin_device.empty() && p.user_id() == message.sender_id() &&
          p.device_id() == origin_device) {
        ++stats_.push_to_origin_skipped;  // it has the message from its ack
        continue;
      }
      Push& push = by_gateway[p.gateway_id()];
      Push::Target* target = push.add_targets();
      target->set_user_id(p.user_id());
      target->set_device_id(p.device_id());
      target->set_epoch(p.epoch());
    }
    // A conversation's pushes leave in seq order: while an earlier seq's
    // dispatch is pending (its lookup slower, or failed and waiting), this
    // one waits for it, out of the in-flight slots (so it blocks nothing).
    auto first = dispatch_records_.lower_bound({key.first, 0});
    if (current != dispatch_records_.end() && first != dispatch_records_.end() &&
        first->first.first == key.first && first->first.second < key.second) {
      ++stats_.dispatch_parked;
      parked_[key] = std::move(by_gateway);
      dispatch_in_flight_.erase(key);
      PumpDispatches();
      return;
    }
    SendPushes(message, std::move(by_gateway));
    DispatchDone(message);
  };
  if (requests.empty()) return finish();
  for (const Request& request : requests) {
    rpc().CallAddress(kKvAddress, request, options_.calls, [lookup, finish](const Reply& reply) {
      if (reply.status().code() != CODE_OK) {
        lookup->failed = true;
      } else {
        for (const KvEntry& entry : reply.kv_get().entries()) {
          PresenceRecord p;
          if (p.ParseFromString(entry.value())) lookup->sessions.push_back(std::move(p));
        }
      }
      if (--lookup->outstanding == 0) finish();
    });
  }
}

void MessageShard::SendPushes(const Message& message, std::map<std::string, Push> by_gateway) {
  for (auto& [gateway, push] : by_gateway) {
    *push.mutable_message() = message;
    Envelope envelope;
    envelope.set_from(env().Self());
    stats_.push_targets += push.targets_size();
    envelope.mutable_push()->Swap(&push);
    ++stats_.pushes;
    env().Send(GatewayAddress(gateway), std::move(envelope));
  }
}

void MessageShard::DispatchDone(const Message& done) {
  std::string conversation = done.conversation();
  uint64_t seq = done.seq();
  while (true) {
    WriteBatch batch;
    batch.Delete(message_keys::Dispatch(conversation, seq));
    // If this delete is lost, the dispatch repeats after a restart; clients
    // drop the duplicate by (conversation, seq). If it fails it is tried
    // again later: the dispatch is done either way.
    if (!Commit(batch).ok()) RetryDispatchDelete(conversation, seq);
    ++stats_.dispatched;
    dispatch_in_flight_.erase({conversation, seq});
    dispatch_records_.erase({conversation, seq});
    // The conversation's next pending dispatch, if its pushes were parked
    // waiting for this one, goes now (and so on down the line).
    auto next = dispatch_records_.lower_bound({conversation, 0});
    if (next == dispatch_records_.end() || next->first.first != conversation) break;
    auto parked = parked_.find(next->first);
    if (parked == parked_.end()) break;
    std::map<std::string, Push> by_gateway = std::move(parked->second);
    parked_.erase(parked);
    seq = next->first.second;
    SendPushes(next->second.message(), std::move(by_gateway));
  }
  PumpDispatches();
}

void MessageShard::RetryDispatchDelete(const std::string& conversation, uint64_t seq) {
  timers().After(options_.dispatch_retry_after, [this, conversation, seq] {
    // Queued again meanwhile (a restart replayed it): that dispatch deletes it.
    if (dispatch_records_.count({conversation, seq}) > 0) return;
    WriteBatch batch;
    batch.Delete(message_keys::Dispatch(conversation, seq));
    if (!Commit(batch).ok()) RetryDispatchDelete(conversation, seq);
  });
}

// ---- reading and cursors ------------------------------------------------------------------

namespace {

// A group message of a version after the one `membership` was read at: an
// open interval does not say whether the reader was still a member then.
bool BeyondSnapshot(const Message& message, const GroupMembership* membership) {
  return membership != nullptr && membership->as_of_version() > 0 &&
         message.group_version() > membership->as_of_version();
}

bool Visible(const Message& message, const GroupMembership* membership) {
  if (membership == nullptr) return true;  // private: both participants see all
  if (BeyondSnapshot(message, membership)) return false;
  for (const MembershipInterval& i : membership->intervals()) {
    if (message.group_version() >= i.join_version() &&
        (i.leave_version() == 0 || message.group_version() < i.leave_version())) {
      return true;
    }
  }
  return false;
}

}  // namespace

void MessageShard::ShardSync(const Envelope& envelope) {
  const ShardSyncRequest& request = envelope.request().shard_sync();
  const uint64_t user = request.user_id();
  if (user == 0) return RespondError(envelope, absl::InvalidArgumentError("no user named"));
  uint32_t budget = request.max_messages() == 0 ? options_.default_page
                                                : std::min(request.max_messages(), options_.max_page);
  std::map<std::string, const Cursor*> cursors;
  for (const Cursor& c : request.cursors()) cursors[c.conversation()] = &c;
  // The user's conversations on this shard, in id order.
  std::map<std::string, const GroupMembership*> conversations;
  std::vector<KeyValue> rows;
  absl::Status s = store().Scan(message_keys::UserConversationPrefix(user), "", SIZE_MAX, &rows);
  // Conversations that could not be listed are not "no conversations".
  if (!s.ok()) return RespondError(envelope, absl::UnavailableError(absl::StrCat("store read failed: ", s.message())));
  const size_t prefix = message_keys::UserConversationPrefix(user).size();
  for (const KeyValue& row : rows) conversations[row.first.substr(prefix)] = nullptr;
  for (const GroupMembership& g : request.groups()) {
    const std::string conv = GroupConversationId(g.group_id());
    if (ShardOf(conv, options_.num_shards) == options_.shard) conversations[conv] = &g;
  }

  Reply reply;
  SyncReply* out = reply.mutable_sync();
  size_t bytes = 0;  // of messages in the reply so far
  for (const auto& [conv, membership] : conversations) {
    auto listed = cursors.find(conv);
    if (request.only_listed() && listed == cursors.end()) continue;
    const uint64_t max_seq = MaxSeq(conv);
    const uint64_t cursor = listed != cursors.end() ? listed->second->seq() : 0;
    // The last seq this page may reach: max_seq, or the caller's bound.
    const uint64_t until = listed != cursors.end() && listed->second->until_seq() > 0
                               ? std::min(listed->second->until_seq(), max_seq)
                               : max_seq;
    if (max_seq == 0) continue;
    ConversationPage* page = out->add_conversations();
    page->set_conversation(conv);
    page->set_max_seq(max_seq);
    page->set_through_seq(std::max(cursor, uint64_t{0}));
    if (cursor >= until) continue;
    // Scan at most 4x the budget, so a long run of messages the user may not
    // see still ends the page; in chunks, so a page that fills up early (by
    // count or bytes) has not read the rest into memory.
    constexpr uint64_t kScanChunk = 64;
    uint64_t scan_left = std::min<uint64_t>(std::max<uint32_t>(budget, 1) * 4, until - cursor);
    std::string scan_from = message_keys::Message(conv, cursor);
    bool page_done = false;
    while (scan_left > 0 && !page_done) {
      std::vector<KeyValue> messages;
      const uint64_t chunk = std::min(scan_left, kScanChunk);
      s = store().Scan(message_keys::MessagePrefix(conv), scan_from, chunk, &messages);
      if (!s.ok()) return RespondError(envelope, absl::UnavailableError(absl::StrCat("store read failed: ", s.message())));
      if (messages.empty()) break;
      scan_left -= std::min<uint64_t>(scan_left, messages.size());
      scan_from = messages.back().first;
      for (const KeyValue& row : messages) {
        Message m;
        if (!m.ParseFromString(row.second)) continue;
        if (m.seq() > until) {
          page_done = true;
          break;
        }
        // Newer than the membership the caller read: the page ends before
        // it (has_more), and the next sync, with a fresher read, decides.
        if (BeyondSnapshot(m, membership)) {
          page_done = true;
          break;
        }
        if (Visible(m, membership)) {
          if (budget == 0) {
            page_done = true;
            break;
          }
          // Bounded by bytes as well: a page of large messages ends early
          // (has_more), never below one message per reply.
          const size_t cost = SyncReplyCost(m.ByteSizeLong());
          if (bytes > 0 && bytes + cost > options_.max_sync_reply_bytes) {
            budget = 0;  // the reply is full: later conversations wait too
            page_done = true;
            break;
          }
          *page->add_messages() = m;
          bytes += cost;
          --budget;
        }
        page->set_through_seq(m.seq());
      }
      if (messages.size() < chunk) break;
    }
    page->set_has_more(page->through_seq() < until);
    out->set_has_more(out->has_more() || page->has_more());
  }
  Respond(envelope, std::move(reply));
}

uint64_t MessageShard::Unread(const std::string& conv, uint64_t user, uint64_t read,
                              uint64_t max_seq, const GroupMembership* membership) {
  if (read >= max_seq) return 0;
  if (BugPlanted(Bug::kUnreadCountsOwn)) return max_seq - read;
  std::vector<KeyValue> rows;
  // A failed scan taints the callback (see ServiceNode::store()): the reply
  // carrying this count becomes UNAVAILABLE.
  if (!store()
           .Scan(message_keys::MessagePrefix(conv), message_keys::Message(conv, read),
                 max_seq - read, &rows)
           .ok()) {
    return 0;
  }
  uint64_t unread = 0;
  for (const KeyValue& row : rows) {
    Message m;
    if (!m.ParseFromString(row.second)) continue;
    if (m.seq() > max_seq) break;
    if (m.kind() != Message::NORMAL || m.recalled() || m.sender_id() == user) continue;
    if (Visible(m, membership)) ++unread;
  }
  return unread;
}

void MessageShard::ListConversations(const Envelope& envelope) {
  const ShardListConversationsRequest& request = envelope.request().shard_list_conversations();
  const uint64_t user = request.user_id();
  // Private conversations (null: no membership to apply) and the groups the
  // gateway listed (the user's current memberships) that live here.
  std::map<std::string, const GroupMembership*> conversations;
  std::vector<KeyValue> rows;
  absl::Status s = store().Scan(message_keys::UserConversationPrefix(user), "", SIZE_MAX, &rows);
  // Conversations that could not be listed are not "no conversations".
  if (!s.ok()) return RespondError(envelope, absl::UnavailableError(absl::StrCat("store read failed: ", s.message())));
  const size_t prefix = message_keys::UserConversationPrefix(user).size();
  for (const KeyValue& row : rows) conversations[row.first.substr(prefix)] = nullptr;
  for (const GroupMembership& g : request.groups()) {
    const std::string conv = GroupConversationId(g.group_id());
    if (ShardOf(conv, options_.num_shards) == options_.shard) conversations[conv] = &g;
  }
  Reply reply;
  for (const auto& [conv, membership] : conversations) {
    const uint64_t max_seq = MaxSeq(conv);
    if (max_seq == 0) continue;
    uint64_t read = 0;
    std::string value;
    if (store().Get(message_keys::Read(conv, user), &value).ok()) absl::SimpleAtoi(value, &read);
    ConversationState* state = reply.mutable_list_conversations()->add_conversations();
    state->set_conversation(conv);
    state->set_max_seq(max_seq);
    state->set_read_seq(read);
    state->set_unread(Unread(conv, user, read, max_seq, membership));
  }
  Respond(envelope, std::move(reply));
}

void MessageShard::WithMembership(uint64_t user, uint64_t group_id,
                                  std::function<void(absl::Status, GroupMembership)> next) {
  Request request;
  request.mutable_membership_history()->set_user_id(user);
  rpc().Call(kGroupService, request, options_.calls,
             [group_id, next = std::move(next)](const Reply& reply) {
               absl::Status s = ReplyStatus(reply);
               GroupMembership membership;
               membership.set_group_id(group_id);
               if (!s.ok()) {
                 return next(absl::UnavailableError(absl::StrCat("group service: ", s.message())),
                             membership);
               }
               for (const GroupMembership& g : reply.membership_history().groups()) {
                 if (g.group_id() == group_id) membership = g;
               }
               next(absl::OkStatus(), std::move(membership));
             });
}

void MessageShard::MoveCursor(const Envelope& envelope) {
  const bool is_read = envelope.request().has_read();
  const std::string& conv =
      is_read ? envelope.request().read().conversation() : envelope.request().ack().conversation();
  const std::string& device =
      is_read ? envelope.request().read().device_id() : envelope.request().ack().device_id();
  const uint64_t user = envelope.auth_user_id();
  absl::StatusOr<Conversation> conversation = ParseConversation(conv);
  absl::Status s = conversation.status();
  if (s.ok() && user == 0) s = absl::UnauthenticatedError("cursors need a login");
  if (s.ok() && !conversation->is_group && !conversation->Includes(user)) {
    s = absl::PermissionDeniedError(absl::StrCat("not a participant of ", conv));
  }
  if (s.ok() && (device.empty() || device.size() > 64)) {
    s = absl::InvalidArgumentError("device_id must be 1 to 64 bytes");
  }
  if (s.ok()) s = CheckOwned(conv);
  if (!s.ok()) return RespondError(envelope, s);
  if (!conversation->is_group) return ApplyCursor(envelope, nullptr);
  // A group's cursors are for its current members only (a former member
  // would otherwise learn max_seq and unread counts).
  const uint64_t group_id = conversation->group_id;
  WithMembership(user, group_id, [this, envelope, group_id](absl::Status s,
                                                             GroupMembership membership) {
    if (!s.ok()) return RespondError(envelope, s);
    const bool current = membership.intervals_size() > 0 &&
                         membership.intervals(membership.intervals_size() - 1).leave_version() == 0;
    if (!current && !BugPlanted(Bug::kCursorForAnyone)) {
      ++stats_.rejected;
      return RespondError(envelope, absl::PermissionDeniedError(
                                        absl::StrCat("not a member of group ", group_id)));
    }
    ApplyCursor(envelope, &membership);
  });
}

void MessageShard::History(const Envelope& envelope) {
  const std::string& conv = envelope.request().history().conversation();
  const uint64_t user = envelope.auth_user_id();
  absl::StatusOr<Conversation> conversation = ParseConversation(conv);
  absl::Status s = conversation.status();
  if (s.ok() && user == 0) s = absl::UnauthenticatedError("history needs a login");
  if (s.ok() && !conversation->is_group && !conversation->Includes(user)) {
    s = absl::PermissionDeniedError(absl::StrCat("not a participant of ", conv));
  }
  if (s.ok()) s = CheckOwned(conv);
  if (!s.ok()) {
    ++stats_.rejected;
    return RespondError(envelope, s);
  }
  if (!conversation->is_group) return HistoryPage(envelope, nullptr);
  // A group's history is for whoever was ever a member, and shows what its
  // intervals cover (the rule of sync): a former member keeps what was sent
  // while it was in.
  const uint64_t group_id = conversation->group_id;
  WithMembership(user, group_id, [this, envelope, group_id](absl::Status s,
                                                             GroupMembership membership) {
    if (!s.ok()) return RespondError(envelope, s);
    if (membership.intervals_size() == 0) {
      ++stats_.rejected;
      return RespondError(envelope, absl::PermissionDeniedError(
                                        absl::StrCat("never a member of group ", group_id)));
    }
    HistoryPage(envelope, &membership);
  });
}

void MessageShard::HistoryPage(const Envelope& envelope, const GroupMembership* membership) {
  const HistoryRequest& request = envelope.request().history();
  const std::string& conv = request.conversation();
  const uint32_t limit = request.limit() == 0
                             ? options_.history_default_page
                             : std::min(request.limit(), options_.history_max_page);
  const uint64_t max_seq = MaxSeq(conv);
  // Seqs below `top` are due; 0 (or past the end) starts from the newest.
  const uint64_t top = request.before_seq() == 0 ? max_seq + 1
                                                 : std::min(request.before_seq(), max_seq + 1);
  std::vector<Message> page;  // newest first
  size_t bytes = 0;
  bool has_more = false;
  // Downwards in chunks of ascending scans (seqs are dense: 1..max_seq), so a
  // page that fills early has not read the rest. Past a full page, only until
  // the next visible message: has_more says exactly whether one remains.
  constexpr uint64_t kChunk = 64;
  uint64_t high = top;  // the chunk is [low, high)
  bool done = high <= 1;
  while (!done) {
    const uint64_t low = high > kChunk ? high - kChunk : 1;
    std::vector<KeyValue> rows;
    absl::Status s = store().Scan(message_keys::MessagePrefix(conv),
                                  message_keys::Message(conv, low - 1), high - low, &rows);
    if (!s.ok()) return RespondError(envelope, absl::UnavailableError(absl::StrCat("store read failed: ", s.message())));
    for (auto row = rows.rbegin(); row != rows.rend(); ++row) {
      Message m;
      if (!m.ParseFromString(row->second) || m.seq() >= high) continue;
      if (!Visible(m, membership)) continue;
      const size_t cost = SyncReplyCost(m.ByteSizeLong());
      if (page.size() >= limit || (!page.empty() && bytes + cost > options_.max_sync_reply_bytes)) {
        has_more = true;
        done = true;
        break;
      }
      bytes += cost;
      page.push_back(std::move(m));
    }
    high = low;
    if (high <= 1) done = true;
  }
  Reply reply;
  HistoryReply* out = reply.mutable_history();
  out->set_has_more(has_more);
  out->set_next_before_seq(page.empty() ? 0 : page.back().seq());  // the lowest returned
  for (auto m = page.rbegin(); m != page.rend(); ++m) *out->add_messages() = std::move(*m);
  Respond(envelope, std::move(reply));
}

void MessageShard::ApplyCursor(const Envelope& envelope, const GroupMembership* membership) {
  const bool is_read = envelope.request().has_read();
  const std::string& conv =
      is_read ? envelope.request().read().conversation() : envelope.request().ack().conversation();
  const uint64_t seq = is_read ? envelope.request().read().seq() : envelope.request().ack().seq();
  const std::string& device =
      is_read ? envelope.request().read().device_id() : envelope.request().ack().device_id();
  const uint64_t user = envelope.auth_user_id();
  const uint64_t max_seq = MaxSeq(conv);
  const uint64_t target = std::min(seq, max_seq);
  std::string value;
  CursorRecord cursor;
  if (store().Get(message_keys::Cursor(conv, user, device), &value).ok()) {
    cursor.ParseFromString(value);
  }
  uint64_t user_read = 0;
  if (store().Get(message_keys::Read(conv, user), &value).ok()) absl::SimpleAtoi(value, &user_read);
  // Monotonic maxima: an old or repeated cursor changes nothing.
  const CursorRecord before = cursor;
  cursor.set_delivered_seq(std::max(cursor.delivered_seq(), target));
  if (is_read) cursor.set_read_seq(std::max(cursor.read_seq(), target));
  cursor.set_delivered_seq(std::max(cursor.delivered_seq(), cursor.read_seq()));
  const uint64_t new_user_read = std::max(user_read, cursor.read_seq());
  WriteBatch batch;
  if (cursor.SerializeAsString() != before.SerializeAsString()) {
    batch.Put(message_keys::Cursor(conv, user, device), cursor.SerializeAsString());
  }
  if (new_user_read != user_read) batch.Put(message_keys::Read(conv, user), absl::StrCat(new_user_read));
  if (!batch.empty()) {
    absl::Status s = Commit(batch);
    if (!s.ok()) return RespondError(envelope, absl::UnavailableError(s.message()));
  }
  Reply reply;
  reply.mutable_cursor()->set_delivered_seq(cursor.delivered_seq());
  reply.mutable_cursor()->set_read_seq(cursor.read_seq());
  // Only a read's reply carries the count: acks are the hot path (one every
  // few deliveries) and the count costs a scan after the read cursor.
  if (is_read) {
    reply.mutable_cursor()->set_unread(Unread(conv, user, new_user_read, max_seq, membership));
  }
  Respond(envelope, std::move(reply));
}

}  // namespace parley
