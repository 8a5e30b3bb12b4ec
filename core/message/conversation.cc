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

namespace {

// A canonical decimal id: digits only, no leading zero (so never 0), no sign,
// no overflow. Exactly the strings absl::StrCat writes for ids above 0.
bool ParseCanonicalId(absl::string_view s, uint64_t* id) {
  if (s.empty() || s[0] < '1' || s[0] > '9') return false;
  for (char ch : s) {
    if (ch < '0' || ch > '9') return false;
  }
  return absl::SimpleAtoi(s, id);
}

}  // namespace

absl::StatusOr<Conversation> ParseConversation(absl::string_view id) {
  // The error is built only when it is returned, and a good id is checked
  // without rebuilding it: ids are parsed on every message-path request and by
  // the checkers for every stored message, and nearly all of them are good.
  auto bad = [id] {
    return absl::InvalidArgumentError(absl::StrCat("'", id, "' is not a conversation id"));
  };
  // Split on ':' as absl::StrSplit does (empty parts kept), without a vector.
  absl::string_view parts[3];
  size_t n = 0;
  for (absl::string_view rest = id;;) {
    if (n == 3) return bad();
    const size_t colon = rest.find(':');
    parts[n++] = rest.substr(0, colon);
    if (colon == absl::string_view::npos) break;
    rest.remove_prefix(colon + 1);
  }
  Conversation c;
  if (n == 2 && parts[0] == "g") {
    if (!ParseCanonicalId(parts[1], &c.group_id)) return bad();
    c.is_group = true;
  } else if (n == 3 && parts[0] == "p") {
    if (!ParseCanonicalId(parts[1], &c.low) || !ParseCanonicalId(parts[2], &c.high)) return bad();
    if (c.low >= c.high) return bad();
  } else {
    return bad();
  }
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
