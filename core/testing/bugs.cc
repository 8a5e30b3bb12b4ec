#include "core/testing/bugs.h"

#include <atomic>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace parley {
namespace {

thread_local Bug planted = Bug::kNone;
std::atomic<int> process_planted{0};  // Bug::kNone

const char* const kNames[] = {
    "none",
    "publish_without_outbox",
    "ack_before_commit",
    "no_client_dedup",
    "no_sync_on_reconnect",
    "lease_never_expires",
    "unversioned_cache_fill",
    "seq_in_memory",
    "skip_membership_check",
    "ignore_gap",
    "apply_events_unversioned",
    "dispatch_without_outbox",
    "join_ignores_policy",
    "kick_without_ban",
    "info_for_anyone",
    "cursor_for_anyone",
    "recall_keeps_body",
    "unread_counts_own",
    "ignore_read_error",
    "canary",
};
constexpr int kCount = sizeof(kNames) / sizeof(kNames[0]);

}  // namespace

bool BugPlanted(Bug bug) {
  return bug != Bug::kNone &&
         (planted == bug || process_planted.load(std::memory_order_relaxed) == static_cast<int>(bug));
}

void PlantBugInProcess(Bug bug) { process_planted.store(static_cast<int>(bug)); }

ScopedBug::ScopedBug(Bug bug) : previous_(planted) { planted = bug; }
ScopedBug::~ScopedBug() { planted = previous_; }

absl::StatusOr<Bug> ParseBug(absl::string_view name) {
  for (int i = 0; i < kCount; ++i) {
    if (name == kNames[i]) return static_cast<Bug>(i);
  }
  std::vector<std::string> names(kNames + 1, kNames + kCount);
  return absl::InvalidArgumentError(
      absl::StrCat("unknown bug '", name, "'; known: ", absl::StrJoin(names, ", ")));
}

std::string BugName(Bug bug) {
  const int i = static_cast<int>(bug);
  return i >= 0 && i < kCount ? kNames[i] : "unknown";
}

std::vector<Bug> AllBugs() {
  std::vector<Bug> out;
  for (int i = 1; i < kCount; ++i) out.push_back(static_cast<Bug>(i));
  return out;
}

}  // namespace parley
