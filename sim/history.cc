#include "sim/history.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

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
  if (!explain_) return;
  auto it = arrivals_.find({client, message.conversation(), message.seq()});
  if (it == arrivals_.end()) return;
  e->set_origin(it->second.first);
  e->set_gateway(it->second.second);
  arrivals_.erase(it);
}

void HistoryRecorder::NoteArrival(const std::string& client, const std::string& conversation,
                                  uint64_t seq, const char* origin, const std::string& gateway) {
  arrivals_[{client, conversation, seq}] = {origin, gateway};
}

HistoryEntry* HistoryRecorder::AddNetwork(HistoryEntry::Fate fate, const std::string& from,
                                          const std::string& to) {
  HistoryEntry* e = history_.add_network();
  e->set_index(history_.entries_size());
  e->set_time_us(absl::ToUnixMicros(now_()));
  e->set_kind(HistoryEntry::NETWORK);
  e->set_fate(fate);
  e->set_from(from);
  e->set_to(to);
  const std::string& client = from.rfind("client.", 0) == 0 ? from : to;
  if (client.rfind("client.", 0) == 0) {
    e->set_client(client);
    auto it = users_.find(client);
    if (it != users_.end()) e->set_user_id(it->second);
  }
  return e;
}

void HistoryRecorder::ResolveSendConversations() {
  std::map<std::string, const HistoryEntry*> sends;  // client_msg_id -> SEND_INVOKED
  for (const HistoryEntry& e : history_.entries()) {
    if (e.kind() == HistoryEntry::SEND_INVOKED) sends.emplace(e.client_msg_id(), &e);
  }
  for (HistoryEntry& n : *history_.mutable_network()) {
    if (!n.conversation().empty() || n.client_msg_id().empty()) continue;
    auto it = sends.find(n.client_msg_id());
    if (it == sends.end()) continue;
    n.set_conversation(it->second->conversation());
    if (n.user_id() == 0) n.set_user_id(it->second->user_id());
  }
}

namespace {

std::string Ms(int64_t us) {
  return us % 1000 == 0 ? absl::StrCat(us / 1000, "ms") : absl::StrFormat("%.3fms", us / 1000.0);
}

std::string DescribeNetwork(const HistoryEntry& e) {
  std::string out = absl::StrCat("~", e.index(), " t=", (e.time_us() - 1700000000000000LL) / 1000,
                                 "ms NETWORK ", HistoryEntry::Fate_Name(e.fate()), " ", e.detail(),
                                 " ", e.from(), " -> ", e.to());
  if (e.user_id() != 0) absl::StrAppend(&out, " (user ", e.user_id(), ")");
  if (!e.conversation().empty()) {
    absl::StrAppend(&out, " ", e.conversation());
    if (e.seq() != 0) absl::StrAppend(&out, "#", e.seq());
  }
  if (!e.client_msg_id().empty()) absl::StrAppend(&out, " id=", e.client_msg_id());
  switch (e.fate()) {
    case HistoryEntry::DELAYED:
      absl::StrAppend(&out, ": ", Ms(e.delay_us()), " on the link (usually at most ",
                      Ms(e.usual_delay_us()), ")");
      break;
    case HistoryEntry::DUPLICATED:
      absl::StrAppend(&out, ": a second copy, ", Ms(e.delay_us()), " on the link");
      break;
    case HistoryEntry::BLOCKED: absl::StrAppend(&out, ": dropped by a partition"); break;
    case HistoryEntry::LOST: absl::StrAppend(&out, ": dropped by the link's loss"); break;
    case HistoryEntry::RECEIVER_DOWN:
      absl::StrAppend(&out, ": dropped, ", e.to(), " is down");
      break;
    default: break;
  }
  return out;
}

}  // namespace

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
  if (e.kind() == HistoryEntry::NETWORK) return DescribeNetwork(e);
  std::string out = absl::StrCat("#", e.index(), " t=", (e.time_us() - 1700000000000000LL) / 1000,
                                 "ms ", HistoryEntry::Kind_Name(e.kind()), " ", e.client());
  if (e.user_id() != 0) absl::StrAppend(&out, " (user ", e.user_id(), ")");  // as checkers name it
  if (!e.conversation().empty()) absl::StrAppend(&out, " ", e.conversation(), "#", e.seq());
  if (!e.client_msg_id().empty()) absl::StrAppend(&out, " id=", e.client_msg_id());
  if (e.sender_id() != 0) absl::StrAppend(&out, " sender=", e.sender_id());
  if (!e.origin().empty()) absl::StrAppend(&out, " via ", e.origin(), " from ", e.gateway());
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
