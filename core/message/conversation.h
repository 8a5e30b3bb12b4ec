// Conversation ids and their owning shard. "p:<low>:<high>" names the private
// conversation of two users, "g:<group>" a group's. A conversation belongs to
// exactly one shard, its single writer.
#ifndef PARLEY_CORE_MESSAGE_CONVERSATION_H_
#define PARLEY_CORE_MESSAGE_CONVERSATION_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace parley {

inline constexpr char kMessageService[] = "message";

struct Conversation {
  bool is_group = false;
  uint64_t group_id = 0;
  uint64_t low = 0;   // private: the lower user id
  uint64_t high = 0;  // private: the higher user id

  std::string Id() const;
  bool Includes(uint64_t user_id) const { return user_id == low || user_id == high; }
};

std::string PrivateConversationId(uint64_t a, uint64_t b);
std::string GroupConversationId(uint64_t group_id);
// INVALID_ARGUMENT for anything that is not a well-formed conversation id.
absl::StatusOr<Conversation> ParseConversation(absl::string_view id);

// The shard owning `conversation_id` among `num_shards` (a stable hash).
uint32_t ShardOf(absl::string_view conversation_id, uint32_t num_shards);
// "svc.message.<shard>".
std::string ShardAddress(uint32_t shard);

// The most bytes of messages one sync reply carries (a shard's part, and the
// gateway's merge of the parts): a page ends early, with has_more and a
// through_seq the client pages on from. Well under nats-server's default
// max_payload (1 MB), which a shard's reply crosses, and the reference
// client's frame limit. A reply always carries at least one message when one
// is due, so paging progresses whatever the budget.
inline constexpr size_t kDefaultSyncReplyBytes = 512 * 1024;
// What one message adds to a reply on top of its own encoding (its tag and
// length, generously): the budget's unit.
inline size_t SyncReplyCost(size_t message_bytes) { return message_bytes + 8; }

}  // namespace parley

#endif  // PARLEY_CORE_MESSAGE_CONVERSATION_H_
