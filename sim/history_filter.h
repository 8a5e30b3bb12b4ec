// replay's filters over a run's history: by client, conversation, time and
// position. An entry is shown when it passes all filters that are set;
// FAULT entries pass all but the time window (they explain what happened).
#ifndef PARLEY_SIM_HISTORY_FILTER_H_
#define PARLEY_SIM_HISTORY_FILTER_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "sim/history.pb.h"

namespace parley {
namespace sim {

struct HistoryFilter {
  std::string client;  // an address (client.user6.d1), a prefix of one (client.user6) or a user id
  std::string conversation;          // p:2:3, g:4
  int64_t from_ms = -1, to_ms = -1;  // t as the history prints it; -1: not set
  int64_t around = -1;               // an entry index; -1: not set
  int64_t around_k = 20;             // entries either side of `around`

  bool empty() const;
  // "client=168 around=12:20", or "none".
  std::string ToString() const;
};

// Parses the flag values ("" for a flag not given); the error names the flag
// and what it allows.
absl::StatusOr<HistoryFilter> ParseHistoryFilter(const std::string& client,
                                                 const std::string& conversation,
                                                 const std::string& from_ms,
                                                 const std::string& to_ms,
                                                 const std::string& around);

// The entry's time as the history prints it: ms since the run's start.
int64_t EntryMs(const HistoryEntry& entry);

bool Passes(const HistoryFilter& filter, const HistoryEntry& entry);

}  // namespace sim
}  // namespace parley

#endif  // PARLEY_SIM_HISTORY_FILTER_H_
