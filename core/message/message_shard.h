// MessageShard: the single writer of the conversations that hash to it. A
// send is idempotent on (sender, client_msg_id); the shard checks the sender
// may post (friends for private, unless open; a member for groups, asked of
// the group service), then commits in ONE batch the message, the idempotency
// record, the advanced seq and a dispatch record — and only then acks. The
// dispatcher pushes each committed message once per gateway to the online
// recipients' sessions (presence from kv), a conversation's pushes in seq
// order, and replays unfinished dispatches after a restart. A send's reply
// carries the conversation's messages below it still being dispatched
// (SendReply.unseen), so it never opens a gap for the sender. Offline recipients cost nothing: sync is the guarantee.
#ifndef PARLEY_CORE_MESSAGE_MESSAGE_SHARD_H_
#define PARLEY_CORE_MESSAGE_MESSAGE_SHARD_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "core/message/conversation.h"
#include "core/proto/records.pb.h"
#include "core/service_node.h"

namespace parley {

struct MessageOptions {
  uint32_t shard = 0;
  uint32_t num_shards = 1;
  size_t max_body_bytes = 16 * 1024;
  size_t max_client_msg_id_bytes = 64;
  // Private messages need friendship (and no block) unless open.
  bool open_private = false;
  absl::Duration recall_window = absl::Minutes(2);
  uint32_t default_page = 200;
  uint32_t max_page = 1000;
  // A history page: `limit` 0 takes the default, a larger one the maximum.
  uint32_t history_default_page = 50;
  uint32_t history_max_page = 200;
  // A sync page also ends once its messages reach this many bytes.
  size_t max_sync_reply_bytes = kDefaultSyncReplyBytes;
  // Recipients looked up in one kv request.
  size_t presence_batch = 200;
  size_t max_dispatches_in_flight = 64;
  // A send's reply carries the conversation's committed messages below its
  // seq whose dispatch is still pending (SendReply.unseen), at most this many
  // and this many bytes (the highest seqs kept).
  size_t max_unseen_in_reply = 16;
  size_t max_unseen_bytes = 64 * 1024;
  absl::Duration dispatch_retry_after = absl::Milliseconds(500);
  CallOptions calls = {absl::Milliseconds(500), 3};
  // Conversations whose max seq the shard keeps in memory (read once from the
  // store's last message key, then kept up by its own commits); the oldest
  // entry goes first when full.
  size_t max_seq_cache = 16384;
};

struct MessageStats {
  uint64_t sent = 0;
  uint64_t idempotent_replays = 0;
  uint64_t rejected = 0;
  uint64_t dispatched = 0;
  uint64_t pushes = 0;           // one per gateway per message
  uint64_t push_targets = 0;     // sessions addressed
  uint64_t push_to_origin_skipped = 0;  // the sending device (it has its ack)
  uint64_t dispatch_replayed = 0;
  uint64_t dispatch_retries = 0;
  uint64_t unseen_in_replies = 0;  // messages carried by send replies
  uint64_t dispatch_parked = 0;    // pushes held for an earlier seq's dispatch
};

class MessageShard : public ServiceNode {
 public:
  MessageShard(Env* env, MessageOptions options);
  const MessageStats& stats() const { return stats_; }
  const MessageOptions& message_options() const { return options_; }

 protected:
  absl::Status OnStart() override;
  void HandleRequest(const Envelope& request) override;

 private:
  void SendPrivate(const Envelope& envelope);
  void SendGroup(const Envelope& envelope);
  void Recall(const Envelope& envelope);
  void ShardSync(const Envelope& envelope);
  void ListConversations(const Envelope& envelope);
  void MoveCursor(const Envelope& envelope);
  // Older history, paging backwards (see HistoryRequest); once the caller
  // may read the conversation, `membership` null for a private one.
  void History(const Envelope& envelope);
  void HistoryPage(const Envelope& envelope, const GroupMembership* membership);

  // Common checks of a send; OK or the error to answer.
  absl::Status ValidateSend(const Envelope& envelope, const std::string& client_msg_id,
                            const std::string& body);
  bool ReplayIdempotent(const Envelope& envelope, uint64_t sender, const std::string& client_msg_id);
  absl::Status CheckOwned(const std::string& conversation) const;
  // Assigns the next seq and commits message, idempotency record, seq and
  // dispatch record in one batch; then acks and dispatches.
  void CommitMessage(const Envelope& envelope, Message message, std::vector<uint64_t> recipients,
                     const Conversation& conversation);
  // Asks group for the members and calls `next(members, version)` if the
  // sender is one; otherwise answers the client.
  void WithGroupMembers(const Envelope& envelope, uint64_t group_id, uint64_t sender,
                        std::function<void(std::vector<uint64_t>, uint64_t)> next);

  // For a RECALL about to commit: stages in `batch` the original rewritten
  // without its body (recalled) and, if its dispatch record is still in the
  // store, that record scrubbed too (returned in `scrubbed`, for memory).
  // FAILED_PRECONDITION if the original was recalled meanwhile.
  absl::Status StageRecall(const Message& recall, WriteBatch* batch,
                           std::optional<DispatchRecord>* scrubbed);
  // Replaces the in-memory copy of a dispatch record, if it is still there.
  void UpdateDispatchRecord(const DispatchRecord& record);
  // Asks the group service (internal call) for `user`'s membership history
  // and calls `next` with the status (UNAVAILABLE when the call failed) and
  // the user's intervals in `group_id` (none: never a member).
  void WithMembership(uint64_t user, uint64_t group_id,
                      std::function<void(absl::Status, GroupMembership)> next);
  // Moves the cursor once the caller may (see MoveCursor).
  void ApplyCursor(const Envelope& envelope, const GroupMembership* membership);
  // Messages in (read, max_seq] of `conv` that count as unread for `user`:
  // NORMAL, not recalled, from someone else and visible to the user
  // (`membership` null: a private conversation, all visible).
  uint64_t Unread(const std::string& conv, uint64_t user, uint64_t read, uint64_t max_seq,
                  const GroupMembership* membership);

  // Fills `ack->unseen` (see SendReply): the pending dispatches of the
  // conversation below ack->seq() that the requester may see and did not
  // send from its device.
  void AddUnseen(const Envelope& envelope, SendReply* ack);
  uint64_t MaxSeq(const std::string& conversation);
  void Dispatch(const DispatchRecord& record);
  void DispatchDone(const Message& message);
  // Deletes a done dispatch's record later, its delete having failed.
  void RetryDispatchDelete(const std::string& conversation, uint64_t seq);
  void PumpDispatches();
  // Sends the pushes of a dispatch whose presence lookup is done, by gateway
  // (the message as its record is now: a recall may have scrubbed it).
  void SendPushes(const Message& message, std::map<std::string, Push> by_gateway);

  MessageOptions options_;
  MessageStats stats_;
  // Committed dispatch records (their store copy is the durable one), and
  // those waiting for a slot, by (conversation, seq).
  std::map<std::pair<std::string, uint64_t>, DispatchRecord> dispatch_records_;
  std::set<std::pair<std::string, uint64_t>> dispatch_queue_;
  std::set<std::pair<std::string, uint64_t>> dispatch_in_flight_;
  // Dispatches whose lookup is done but whose conversation has an earlier
  // seq still pending: their pushes leave once it is done, so a
  // conversation's pushes leave in seq order. Not counted in flight.
  std::map<std::pair<std::string, uint64_t>, std::map<std::string, Push>> parked_;
  // Max seqs known from the store (MaxSeq) and this shard's commits, and the
  // order they were first cached in (the oldest is evicted first). Lost on a
  // restart, as it should be: the store is read again.
  std::map<std::string, uint64_t> max_seq_;
  std::deque<std::string> max_seq_order_;
  void RememberMaxSeq(const std::string& conversation, uint64_t seq);
  // After a message at `seq` of `conversation` committed.
  void Committed(const std::string& conversation, uint64_t seq);
  // Only with the planted bug seq_in_memory: the counters, lost on restart.
  std::map<std::string, uint64_t> seq_in_memory_;
};

}  // namespace parley

#endif  // PARLEY_CORE_MESSAGE_MESSAGE_SHARD_H_
