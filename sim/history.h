// History recording: the app-visible steps of every client, in order.
#ifndef PARLEY_SIM_HISTORY_H_
#define PARLEY_SIM_HISTORY_H_

#include <map>
#include <string>

#include "core/client/client.h"
#include "sim/history.pb.h"

namespace parley {
namespace sim {

class HistoryRecorder : public ClientObserver {
 public:
  explicit HistoryRecorder(std::function<absl::Time()> now) : now_(std::move(now)) {}

  void OnOnline(const std::string& client, uint64_t user_id) override { SetUser(client, user_id); }
  void OnDelivered(const std::string& client, const Message& message) override;
  void OnSendAcked(const std::string& client, const std::string& client_msg_id,
                   const SendReply& ack) override;
  void OnSendFailed(const std::string& client, const std::string& client_msg_id,
                    const absl::Status& status) override;

  HistoryEntry* Add(HistoryEntry::Kind kind, const std::string& client);
  void SetUser(const std::string& client, uint64_t user_id) { users_[client] = user_id; }

  const History& history() const { return history_; }
  HistoryEntry* mutable_last() { return history_.mutable_entries(history_.entries_size() - 1); }

 private:
  std::function<absl::Time()> now_;
  std::map<std::string, uint64_t> users_;
  History history_;
};

// One line a person can read, e.g.
// "#12 t=3200ms DELIVERED client.user3.d1 (user 168) p:1:3#4 id=d1-... sender=1".
std::string Describe(const HistoryEntry& entry);

}  // namespace sim
}  // namespace parley

#endif  // PARLEY_SIM_HISTORY_H_
