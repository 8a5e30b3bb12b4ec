#include "sim/history.h"

#include "absl/strings/str_cat.h"

namespace parley {
namespace sim {

HistoryEntry* HistoryRecorder::Add(HistoryEntry::Kind kind, const std::string& client) {
  HistoryEntry* e = history_.add_entries();
  e->set_index(history_.entries_size() - 1);
  e->set_time_us(absl::ToUnixMicros(now_()));
  e->set_kind(kind);
  e->set_client(client);
  auto it = users_.find(client);
  if (it != users_.end()) e->set_user_id(it->second);
  return e;
}

void HistoryRecorder::OnDelivered(const std::string& client, const Message& message) {
  HistoryEntry* e = Add(HistoryEntry::DELIVERED, client);
  e->set_conversation(message.conversation());
  e->set_seq(message.seq());
  e->set_sender_id(message.sender_id());
  e->set_client_msg_id(message.client_msg_id());
  *e->mutable_message() = message;
  e->mutable_message()->clear_body();  // bodies are not needed by any checker
}

void HistoryRecorder::OnSendAcked(const std::string& client, const std::string& client_msg_id,
                                  const SendReply& ack) {
  HistoryEntry* e = Add(HistoryEntry::SEND_ACKED, client);
  e->set_client_msg_id(client_msg_id);
  e->set_conversation(ack.conversation());
  e->set_seq(ack.seq());
  e->set_sender_id(e->user_id());
}

void HistoryRecorder::OnSendFailed(const std::string& client, const std::string& client_msg_id,
                                   const absl::Status& status) {
  HistoryEntry* e = Add(HistoryEntry::SEND_FAILED, client);
  e->set_client_msg_id(client_msg_id);
  e->set_code(static_cast<int32_t>(status.code()));
  e->set_detail(status.ToString());
}

std::string Describe(const HistoryEntry& e) {
  std::string out = absl::StrCat("#", e.index(), " t=", (e.time_us() - 1700000000000000LL) / 1000,
                                 "ms ", HistoryEntry::Kind_Name(e.kind()), " ", e.client());
  if (e.user_id() != 0) absl::StrAppend(&out, " (user ", e.user_id(), ")");  // as checkers name it
  if (!e.conversation().empty()) absl::StrAppend(&out, " ", e.conversation(), "#", e.seq());
  if (!e.client_msg_id().empty()) absl::StrAppend(&out, " id=", e.client_msg_id());
  if (e.sender_id() != 0) absl::StrAppend(&out, " sender=", e.sender_id());
  if (e.group_id() != 0) {
    absl::StrAppend(&out, " group=", e.group_id());
    if (e.kind() == HistoryEntry::MEMBERSHIP_ACKED) absl::StrAppend(&out, e.joined() ? " joined" : " left");
  }
  if (e.kind() == HistoryEntry::REQUEST || e.kind() == HistoryEntry::SEND_FAILED) {
    absl::StrAppend(&out, e.no_reply() ? " no-reply" : " code=", e.no_reply() ? "" : absl::StrCat(e.code()));
  }
  if (e.target_id() != 0) absl::StrAppend(&out, " target=", e.target_id());
  if (e.kind() == HistoryEntry::REQUEST && e.flag()) absl::StrAppend(&out, " flag");
  if (e.version() != 0) absl::StrAppend(&out, " v", e.version());
  if (e.adversary()) absl::StrAppend(&out, " ADVERSARY");
  if (!e.forged().empty()) absl::StrAppend(&out, " forged=", e.forged());
  if (!e.detail().empty()) absl::StrAppend(&out, " (", e.detail(), ")");
  return out;
}

}  // namespace sim
}  // namespace parley
