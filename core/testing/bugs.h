// Planted bugs: switches that re-create classic mistakes, so a test can prove
// the simulator's checkers catch them. The simulator (`parley_sim --bug=NAME`,
// tests) plants a bug for the current thread only; in server mode only
// `parleyd --planted_bug=NAME` plants one, in its whole process (real-run
// tests); otherwise every switch reads false.
#ifndef PARLEY_CORE_TESTING_BUGS_H_
#define PARLEY_CORE_TESTING_BUGS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace parley {

enum class Bug {
  kNone = 0,
  kPublishWithoutOutbox,    // publish after the write instead of via the outbox
  kAckBeforeCommit,         // ack a send before its batch is durable
  kNoClientDedup,           // the client delivers a seq it already delivered
  kNoSyncOnReconnect,       // the client never syncs (only pushes reach it)
  kLeaseNeverExpires,       // kv keeps presence past its lease
  kUnversionedCacheFill,    // a cache fill overwrites whatever kv holds
  kSeqInMemory,             // a shard's seq counter is not persisted
  kSkipMembershipCheck,     // anyone may post to a group
  kIgnoreGap,               // the client delivers past a gap
  kApplyEventsUnversioned,  // consumers apply old and duplicate events
  kDispatchWithoutOutbox,   // push before the commit, from memory
  kJoinIgnoresPolicy,       // join skips the open/invite-only and kicked checks
  kKickWithoutBan,          // a kicked user may rejoin an open group at once
  kInfoForAnyone,           // group_info/member_ids/is_member answer non-members
  kCursorForAnyone,         // read/ack on a group conversation skip the membership check
  kRecallKeepsBody,         // a recall leaves the original body in the store (sync serves it)
  kUnreadCountsOwn,         // unread counts one's own messages and recall entries
  kIgnoreReadError,         // a friend list the store failed to read is rendered empty and cached
  kCanary,                  // fails every 100th seed on purpose
};

// True while `bug` is planted on this thread (or in the whole process).
bool BugPlanted(Bug bug);

// Plants `bug` on every thread of the process, for good: parleyd's
// --planted_bug, so that a real run (server/real_run.h) can show a server-side
// bug caught. The simulator never calls it.
void PlantBugInProcess(Bug bug);

// Plants `bug` on this thread for the guard's lifetime.
class ScopedBug {
 public:
  explicit ScopedBug(Bug bug);
  ~ScopedBug();
  ScopedBug(const ScopedBug&) = delete;
  ScopedBug& operator=(const ScopedBug&) = delete;

 private:
  Bug previous_;
};

absl::StatusOr<Bug> ParseBug(absl::string_view name);
std::string BugName(Bug bug);
// Every bug but kNone, in declaration order.
std::vector<Bug> AllBugs();

}  // namespace parley

#endif  // PARLEY_CORE_TESTING_BUGS_H_
