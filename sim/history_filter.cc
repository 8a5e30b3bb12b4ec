#include "sim/history_filter.h"

#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace parley {
namespace sim {
namespace {

constexpr int64_t kMaxIndex = int64_t{1} << 40;  // keeps around +- k from overflowing

bool ClientMatches(const std::string& want, const HistoryEntry& e) {
  uint64_t user = 0;
  if (absl::SimpleAtoi(want, &user)) return e.user_id() == user;
  return e.client() == want || absl::StartsWith(e.client(), absl::StrCat(want, "."));
}

absl::Status ParseMs(const char* name, const std::string& v, int64_t* out) {
  if (v.empty()) return absl::OkStatus();
  if (!absl::SimpleAtoi(v, out) || *out < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, "=", v, ": must be a whole number of ms, 0 or more"));
  }
  return absl::OkStatus();
}

}  // namespace

bool HistoryFilter::empty() const {
  return client.empty() && conversation.empty() && from_ms < 0 && to_ms < 0 && around < 0;
}

std::string HistoryFilter::ToString() const {
  std::vector<std::string> parts;
  if (!client.empty()) parts.push_back(absl::StrCat("client=", client));
  if (!conversation.empty()) parts.push_back(absl::StrCat("conversation=", conversation));
  if (from_ms >= 0) parts.push_back(absl::StrCat("from_ms=", from_ms));
  if (to_ms >= 0) parts.push_back(absl::StrCat("to_ms=", to_ms));
  if (around >= 0) parts.push_back(absl::StrCat("around=", around, ":", around_k));
  return parts.empty() ? "none" : absl::StrJoin(parts, " ");
}

absl::StatusOr<HistoryFilter> ParseHistoryFilter(const std::string& client,
                                                 const std::string& conversation,
                                                 const std::string& from_ms,
                                                 const std::string& to_ms,
                                                 const std::string& around) {
  HistoryFilter f;
  f.client = client;
  f.conversation = conversation;
  absl::Status st = ParseMs("from_ms", from_ms, &f.from_ms);
  if (st.ok()) st = ParseMs("to_ms", to_ms, &f.to_ms);
  if (!st.ok()) return st;
  if (f.from_ms >= 0 && f.to_ms >= 0 && f.from_ms > f.to_ms) {
    return absl::InvalidArgumentError(
        absl::StrCat("--from_ms=", f.from_ms, " is after --to_ms=", f.to_ms));
  }
  if (!around.empty()) {
    const std::vector<std::string> parts = absl::StrSplit(around, ':');
    bool ok = parts.size() <= 2 && absl::SimpleAtoi(parts[0], &f.around) && f.around >= 0;
    if (ok && parts.size() == 2) ok = absl::SimpleAtoi(parts[1], &f.around_k) && f.around_k >= 0;
    ok = ok && f.around <= kMaxIndex && f.around_k <= kMaxIndex;
    if (!ok) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--around=", around, ": must be N or N:K, entry #N and K entries either side"));
    }
  }
  return f;
}

int64_t EntryMs(const HistoryEntry& e) { return (e.time_us() - 1700000000000000LL) / 1000; }

bool Passes(const HistoryFilter& f, const HistoryEntry& e) {
  const int64_t ms = EntryMs(e);
  if (f.from_ms >= 0 && ms < f.from_ms) return false;
  if (f.to_ms >= 0 && ms > f.to_ms) return false;
  if (e.kind() == HistoryEntry::FAULT) return true;  // faults explain what happened
  const int64_t index = static_cast<int64_t>(e.index());
  if (f.around >= 0 && (index < f.around - f.around_k || index > f.around + f.around_k)) {
    return false;
  }
  if (!f.client.empty() && !ClientMatches(f.client, e)) return false;
  if (!f.conversation.empty() && e.conversation() != f.conversation) return false;
  return true;
}

}  // namespace sim
}  // namespace parley
