#include "core/message/conversation.h"

#include <algorithm>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/service_node.h"

namespace parley {

std::string Conversation::Id() const {
  return is_group ? GroupConversationId(group_id) : PrivateConversationId(low, high);
}

std::string PrivateConversationId(uint64_t a, uint64_t b) {
  return absl::StrCat("p:", std::min(a, b), ":", std::max(a, b));
}

std::string GroupConversationId(uint64_t group_id) { return absl::StrCat("g:", group_id); }

absl::StatusOr<Conversation> ParseConversation(absl::string_view id) {
  const absl::Status bad =
      absl::InvalidArgumentError(absl::StrCat("'", id, "' is not a conversation id"));
  std::vector<absl::string_view> parts = absl::StrSplit(id, ':');
  Conversation c;
  if (parts.size() == 2 && parts[0] == "g") {
    if (!absl::SimpleAtoi(parts[1], &c.group_id) || c.group_id == 0) return bad;
    c.is_group = true;
  } else if (parts.size() == 3 && parts[0] == "p") {
    if (!absl::SimpleAtoi(parts[1], &c.low) || !absl::SimpleAtoi(parts[2], &c.high)) return bad;
    if (c.low == 0 || c.low >= c.high) return bad;
  } else {
    return bad;
  }
  if (c.Id() != id) return bad;  // no leading zeros or signs
  return c;
}

uint32_t ShardOf(absl::string_view conversation_id, uint32_t num_shards) {
  uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a: stable across processes
  for (char ch : conversation_id) {
    h ^= static_cast<unsigned char>(ch);
    h *= 0x100000001b3ULL;
  }
  return num_shards == 0 ? 0 : static_cast<uint32_t>(h % num_shards);
}

std::string ShardAddress(uint32_t shard) {
  return InstanceAddress(kMessageService, absl::StrCat(shard));
}

}  // namespace parley
