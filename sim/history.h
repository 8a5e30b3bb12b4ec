// History recording: the app-visible steps of every client, in order.
#ifndef PARLEY_SIM_HISTORY_H_
#define PARLEY_SIM_HISTORY_H_

#include <map>
#include <string>
#include <tuple>
#include <utility>

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
  // Moves the history out (the recorder's is empty after): once, at the end
  // of a run that keeps it.
  History TakeHistory() { return std::move(history_); }
  HistoryEntry* mutable_last() { return history_.mutable_entries(history_.entries_size() - 1); }

  // Explaining (only when the run keeps its history: it costs): a copy of
  // (conversation, seq) came to `client` by `origin` from `gateway`; the
  // DELIVERED entry of that copy names both (the latest copy to come).
  void set_explain(bool on) { explain_ = on; }
  bool explain() const { return explain_; }
  void NoteArrival(const std::string& client, const std::string& conversation, uint64_t seq,
                   const char* origin, const std::string& gateway);
  // A NETWORK step (kind, time and position set; the caller fills the rest).
  HistoryEntry* AddNetwork(HistoryEntry::Fate fate, const std::string& from, const std::string& to);
  // Network steps about a send name its client_msg_id only: gives them the
  // conversation their SEND_INVOKED entry named. Call once, at the end.
  void ResolveSendConversations();

 private:
  std::function<absl::Time()> now_;
  std::map<std::string, uint64_t> users_;
  History history_;
  bool explain_ = false;
  std::map<std::tuple<std::string, std::string, uint64_t>, std::pair<const char*, std::string>>
      arrivals_;
};

// One line a person can read, e.g.
// "#12 t=3200ms DELIVERED client.user3.d1 (user 168) p:1:3#4 id=d1-... sender=1";
// a NETWORK step reads
// "~12 t=3199ms NETWORK LOST client_push gw.2 -> client.user3.d1 (user 168) p:1:3#4".
std::string Describe(const HistoryEntry& entry);

}  // namespace sim
}  // namespace parley

#endif  // PARLEY_SIM_HISTORY_H_
