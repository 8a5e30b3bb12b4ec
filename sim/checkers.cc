#include "sim/checkers.h"

#include <algorithm>
#include <set>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "core/message/conversation.h"
#include "sim/policy.h"

namespace parley {
namespace sim {
namespace {

using Result = std::optional<Violation>;

Violation Fail(const char* checker, int64_t entry, std::string why) {
  return Violation{checker, entry, std::move(why)};
}

// A client as every message names it: its address (client.user<N>.d<K>, N
// the workload's index) and the user id the registry gave it.
std::string Who(const std::string& client, uint64_t user) {
  if (user == 0) return client;
  return absl::StrCat(client, " (user ", user, ")");
}
std::string Who(const HistoryEntry& e) { return Who(e.client(), e.user_id()); }

// The client at `user`'s device `device`, if the run had one.
std::string WhoDevice(const FinalState& s, uint64_t user, const std::string& device) {
  const std::string suffix = "." + device;
  for (const auto& [client, u] : s.clients) {
    if (u == user && client.size() > suffix.size() &&
        client.compare(client.size() - suffix.size(), suffix.size(), suffix) == 0) {
      return Who(client, user);
    }
  }
  return absl::StrCat("user ", user, " device ", device);
}

// A checker's findings, each with its cause: the first is reported, with the
// others of the same cause counted in it (one failure per cause).
class Findings {
 public:
  void Add(std::string cause, Violation v) { all_.emplace_back(std::move(cause), std::move(v)); }
  Result First() const {
    if (all_.empty()) return std::nullopt;
    Violation v = all_[0].second;
    v.cause = all_[0].first;
    std::set<int64_t> entries;
    for (size_t i = 1; i < all_.size(); ++i) {
      if (all_[i].first != v.cause) continue;
      ++v.further;
      if (all_[i].second.entry >= 0 && all_[i].second.entry != v.entry) {
        entries.insert(all_[i].second.entry);
      }
    }
    v.further_entries.assign(entries.begin(), entries.end());
    if (v.further == 0) return v;
    absl::StrAppend(&v.explanation, "; the same cause (", v.cause, ") explains ", v.further,
                    " further finding", v.further == 1 ? "" : "s");
    if (!entries.empty()) {
      std::vector<std::string> shown;
      for (int64_t e : entries) {
        if (shown.size() == 10) break;
        shown.push_back(absl::StrCat("#", e));
      }
      absl::StrAppend(&v.explanation, ", at entr", entries.size() == 1 ? "y " : "ies ",
                      absl::StrJoin(shown, ", "), entries.size() > shown.size() ? ", …" : "");
    }
    return v;
  }

 private:
  std::vector<std::pair<std::string, Violation>> all_;
};

std::string Seq(const std::string& conversation, uint64_t seq) {
  return absl::StrCat(conversation, "#", seq);
}

// Keys into the history's and the final state's own strings: a lookup builds
// no string (they live as long as the checker runs), and string_view orders
// as std::string does, so nothing iterated changes order.
using ClientSeq = std::tuple<absl::string_view, absl::string_view, uint64_t>;  // client, conv, seq

// Visible() for a conversation already parsed (parse once per message, not
// once per reader).
bool VisibleIn(const FinalState& state, uint64_t user, const Conversation& c,
               uint64_t group_version) {
  if (!c.is_group) return c.Includes(user);
  auto it = state.intervals.find({user, c.group_id});
  if (it == state.intervals.end()) return false;
  for (const MembershipInterval& i : it->second) {
    if (group_version >= i.join_version() &&
        (i.leave_version() == 0 || group_version < i.leave_version())) {
      return true;
    }
  }
  return false;
}

const Message* FindMessage(const FinalState& s, const std::string& conv, uint64_t seq) {
  auto c = s.messages.find(conv);
  if (c == s.messages.end()) return nullptr;
  auto m = c->second.find(seq);
  return m == c->second.end() ? nullptr : &m->second;
}

// ---- no_lost_ack: every acked message reaches every device of every recipient.
Result NoLostAck(const History& h, const FinalState& s) {
  Findings found;
  std::set<ClientSeq> delivered;
  for (const HistoryEntry& e : h.entries()) {
    if (e.kind() == HistoryEntry::DELIVERED) delivered.insert({e.client(), e.conversation(), e.seq()});
  }
  std::set<std::pair<uint64_t, std::string>> stored;  // sender, client_msg_id
  for (const auto& [conv, messages] : s.messages) {
    for (const auto& [seq, m] : messages) stored.insert({m.sender_id(), m.client_msg_id()});
  }
  for (const HistoryEntry& e : h.entries()) {
    if (e.kind() != HistoryEntry::SEND_ACKED) continue;
    const Message* m = FindMessage(s, e.conversation(), e.seq());
    const bool names_it = m != nullptr && m->client_msg_id() == e.client_msg_id() &&
                          m->sender_id() == e.sender_id();
    // An ack naming the wrong seq of a message that is stored is not a lost
    // message: idempotent_send reports it (one failure per cause).
    if (!names_it && !e.client_msg_id().empty() &&
        stored.count({e.sender_id(), e.client_msg_id()}) > 0) {
      continue;
    }
    const std::string lost = absl::StrCat(Seq(e.conversation(), e.seq()), " lost");
    if (m == nullptr) {
      found.Add(lost, Fail("no_lost_ack", e.index(),
                           absl::StrCat(Who(e), " was acked ", e.client_msg_id(), " as ",
                                        Seq(e.conversation(), e.seq()),
                                        ", which is not in its shard")));
      continue;
    }
    if (m->client_msg_id() != e.client_msg_id() || m->sender_id() != e.sender_id()) {
      found.Add(lost, Fail("no_lost_ack", e.index(),
                           absl::StrCat(Who(e), " was acked ", e.client_msg_id(), " as ",
                                        Seq(e.conversation(), e.seq()), " but that seq holds ",
                                        m->client_msg_id(), " of user ", m->sender_id(),
                                        ": the acked message was overwritten")));
      continue;
    }
    absl::StatusOr<Conversation> conv = ParseConversation(m->conversation());
    if (!conv.ok()) continue;  // visible to nobody
    for (const auto& [client, user] : s.clients) {
      if (!VisibleIn(s, user, *conv, m->group_version())) continue;
      if (delivered.count({client, e.conversation(), e.seq()}) == 0) {
        found.Add(lost, Fail("no_lost_ack", e.index(),
                             absl::StrCat(Seq(e.conversation(), e.seq()), ", acked to ", Who(e),
                                          ", never reached ", Who(client, user))));
      }
    }
  }
  return found.First();
}

// ---- no_duplicates: an app sees each (conversation, seq) once, and one
// (sender, client_msg_id) never stands under two seqs.
Result NoDuplicates(const History& h, const FinalState& s) {
  Findings found;
  std::set<ClientSeq> seen;
  // client, sender, id -> seq
  std::map<std::tuple<absl::string_view, uint64_t, absl::string_view>, uint64_t> by_id;
  for (const HistoryEntry& e : h.entries()) {
    if (e.kind() != HistoryEntry::DELIVERED) continue;
    if (!seen.insert({e.client(), e.conversation(), e.seq()}).second) {
      found.Add(absl::StrCat(Seq(e.conversation(), e.seq()), " delivered again"),
                Fail("no_duplicates", e.index(),
                     absl::StrCat(Who(e), " was given ", Seq(e.conversation(), e.seq()),
                                  " twice")));
      continue;
    }
    if (e.client_msg_id().empty()) continue;
    auto key = std::make_tuple(absl::string_view(e.client()), e.sender_id(),
                               absl::string_view(e.client_msg_id()));
    auto [it, fresh] = by_id.emplace(key, e.seq());
    if (!fresh && it->second != e.seq()) {
      found.Add(absl::StrCat(e.client_msg_id(), " under two seqs"),
                Fail("no_duplicates", e.index(),
                     absl::StrCat(Who(e), " saw message ", e.client_msg_id(), " of user ",
                                  e.sender_id(), " as seq ", it->second, " and as seq ", e.seq())));
    }
  }
  return found.First();
}

// ---- order: per client and conversation, increasing seqs and no visible
// message skipped before the last one delivered. Only the first delivery of
// each seq is judged: a second one is a duplicate, no_duplicates' to report;
// a skipped message acked to its sender and never delivered to the client
// is lost, no_lost_ack's to report.
Result Order(const History& h, const FinalState& s) {
  Findings found;
  // (client, conv) -> seq
  std::map<std::pair<absl::string_view, absl::string_view>, uint64_t> last;
  std::set<ClientSeq> seen;
  // A skipped message that was acked and never reached the client at all is
  // lost, not late: no_lost_ack reports it (one failure per cause).
  std::set<ClientSeq> delivered;
  std::set<std::pair<absl::string_view, uint64_t>> acked;  // conv, seq
  for (const HistoryEntry& e : h.entries()) {
    if (e.kind() == HistoryEntry::DELIVERED) {
      delivered.insert({e.client(), e.conversation(), e.seq()});
    }
    if (e.kind() != HistoryEntry::SEND_ACKED) continue;
    const Message* m = FindMessage(s, e.conversation(), e.seq());
    if (m != nullptr && m->client_msg_id() == e.client_msg_id() &&
        m->sender_id() == e.sender_id()) {
      acked.insert({e.conversation(), e.seq()});
    }
  }
  for (const HistoryEntry& e : h.entries()) {
    if (e.kind() != HistoryEntry::DELIVERED) continue;
    if (!seen.insert({e.client(), e.conversation(), e.seq()}).second) continue;
    uint64_t& prev = last[{e.client(), e.conversation()}];
    // The cause: the message that came late (or never), whose lateness
    // fails the clients it skipped and, later, those it reached late.
    if (e.seq() <= prev) {
      found.Add(absl::StrCat(Seq(e.conversation(), e.seq()), " late"),
                Fail("order", e.index(),
                     absl::StrCat(Who(e), " got ", e.conversation(), "#", e.seq(), " after #",
                                  prev)));
      continue;
    }
    auto conv = s.messages.find(e.conversation());
    if (conv != s.messages.end()) {
      // Parsed once per entry, for every message it skipped (each stored
      // under, so of, this conversation).
      const absl::StatusOr<Conversation> parsed = ParseConversation(e.conversation());
      for (auto m = conv->second.upper_bound(prev); m != conv->second.end() && m->first < e.seq();
           ++m) {
        const bool lost = acked.count({e.conversation(), m->first}) > 0 &&
                          delivered.count({e.client(), e.conversation(), m->first}) == 0;
        // (A stored message's conversation is the one it is stored under.)
        if (parsed.ok() && VisibleIn(s, e.user_id(), *parsed, m->second.group_version()) &&
            !lost) {
          found.Add(absl::StrCat(Seq(e.conversation(), m->first), " late"),
                    Fail("order", e.index(),
                         absl::StrCat(Who(e), " got ", e.conversation(), "#", e.seq(),
                                      " but never #", m->first, " before it")));
          break;  // one finding per entry: its first skipped message
        }
      }
    }
    prev = e.seq();
  }
  return found.First();
}

// ---- sender_fifo: a device's acked sends to one conversation have seqs in
// the order it sent them, and two of them never share a seq.
Result SenderFifo(const History& h, const FinalState& s) {
  std::map<std::string, std::pair<std::string, uint64_t>> invoked;  // id@client -> (conv, order)
  uint64_t order = 0;
  struct Last {
    uint64_t order = 0, seq = 0;
    std::string id;
  };
  std::map<std::pair<std::string, std::string>, Last> last;  // (client, conv) -> latest sent acked
  std::set<std::string> acked;  // id@client
  for (const HistoryEntry& e : h.entries()) {
    if (e.kind() != HistoryEntry::SEND_INVOKED && e.kind() != HistoryEntry::SEND_ACKED) continue;
    const std::string key = e.client_msg_id() + "@" + e.client();
    if (e.kind() == HistoryEntry::SEND_INVOKED) invoked[key] = {e.conversation(), ++order};
    if (e.kind() != HistoryEntry::SEND_ACKED) continue;
    auto it = invoked.find(key);
    if (it == invoked.end()) continue;
    // Only a message's first ack is judged: a later one naming another seq is
    // idempotent_send's (or no_lost_ack's) to report.
    if (!acked.insert(key).second) continue;
    Last& l = last[{e.client(), e.conversation()}];
    const bool later = it->second.second > l.order;
    if (l.order != 0 && e.seq() == l.seq && e.client_msg_id() != l.id) {
      return Fail("sender_fifo", e.index(),
                  absl::StrCat(Who(e), " was acked ", e.client_msg_id(), " as ", e.conversation(),
                               "#", e.seq(), ", the seq already acked to it for ", l.id,
                               ": one seq acked for two messages"));
    }
    if (l.order != 0 && e.seq() != l.seq && later != (e.seq() > l.seq)) {
      return Fail("sender_fifo", e.index(),
                  absl::StrCat(Who(e), " sent ", e.client_msg_id(),
                               later ? " after " : " before ", l.id, " in ", e.conversation(),
                               " but it got seq ", e.seq(), later ? " below " : " above ", l.id,
                               "'s seq ", l.seq));
    }
    if (later) l = {it->second.second, e.seq(), e.client_msg_id()};
  }
  return std::nullopt;
}

// ---- membership_safety: no group message reaches a user outside its
// membership at the message's group version.
Result MembershipSafety(const History& h, const FinalState& s) {
  for (const HistoryEntry& e : h.entries()) {
    if (e.kind() != HistoryEntry::DELIVERED || e.conversation().rfind("g:", 0) != 0) continue;
    const Message* m = FindMessage(s, e.conversation(), e.seq());
    if (m == nullptr) {
      return Fail("membership_safety", e.index(),
                  absl::StrCat("delivered ", e.conversation(), "#", e.seq(), " does not exist"));
    }
    if (!Visible(s, e.user_id(), *m)) {
      return Fail("membership_safety", e.index(),
                  absl::StrCat(Who(e), " got ", e.conversation(), "#", e.seq(),
                               " (group version ", m->group_version(),
                               ") outside its membership"));
    }
  }
  return std::nullopt;
}

// ---- profile_convergence: group member entries and friend lists show each
// user's final profile.
Result ProfileConvergence(const History& h, const FinalState& s) {
  for (const auto& [group, members] : s.members) {
    for (const auto& [user, member] : members) {
      auto p = s.profiles.find(user);
      if (p == s.profiles.end()) continue;
      if (member.nickname() != p->second.nickname() || member.avatar() != p->second.avatar()) {
        return Fail("profile_convergence", -1,
                    absl::StrCat("group ", group, " shows user ", user, " as '", member.nickname(),
                                 "' but the profile (v", p->second.version(), ") says '",
                                 p->second.nickname(), "'"));
      }
    }
  }
  for (const auto& [owner, list] : s.friend_lists) {
    for (const FriendEntry& f : list.friends()) {
      auto p = s.profiles.find(f.friend_id());
      if (p == s.profiles.end()) continue;
      if (f.nickname() != p->second.nickname() || f.avatar() != p->second.avatar()) {
        return Fail("profile_convergence", -1,
                    absl::StrCat("user ", owner, "'s friend list shows ", f.friend_id(), " as '",
                                 f.nickname(), "' but the profile (v", p->second.version(),
                                 ") says '", p->second.nickname(), "'"));
      }
    }
  }
  return std::nullopt;
}

// ---- friend_cache: every cached friend list equals the store's, and a
// user's list reads never go back in version: a read sent after another read
// returned sees at least that version (a stale fill that overwrote a newer
// entry breaks this).
Result FriendCache(const History& h, const FinalState& s) {
  std::map<uint64_t, std::vector<const HistoryEntry*>> reads;  // by user
  for (const HistoryEntry& e : h.entries()) {
    if (e.kind() == HistoryEntry::FRIENDS_LISTED) reads[e.user_id()].push_back(&e);
  }
  for (auto& [user, list] : reads) {
    // Entries are in reply order; walk the sends in time order and keep the
    // highest version of the reads that had already returned.
    std::vector<const HistoryEntry*> by_invoke = list;
    std::stable_sort(by_invoke.begin(), by_invoke.end(),
                     [](const HistoryEntry* a, const HistoryEntry* b) {
                       return a->invoked_us() < b->invoked_us();
                     });
    size_t returned = 0;
    uint64_t floor = 0;
    const HistoryEntry* floor_entry = nullptr;
    for (const HistoryEntry* r : by_invoke) {
      while (returned < list.size() && list[returned]->time_us() < r->invoked_us()) {
        if (list[returned]->version() > floor) {
          floor = list[returned]->version();
          floor_entry = list[returned];
        }
        ++returned;
      }
      if (r->version() < floor) {
        return Fail("friend_cache", r->index(),
                    absl::StrCat(Who(*r), " read its friend list at version ",
                                 r->version(), " (", r->detail(), ") after #",
                                 floor_entry->index(), " had returned version ", floor));
      }
    }
  }
  for (const auto& [owner, cached] : s.friend_cache) {
    auto truth = s.friend_lists.find(owner);
    if (truth == s.friend_lists.end()) continue;
    if (cached.SerializeAsString() != truth->second.SerializeAsString()) {
      return Fail("friend_cache", -1,
                  absl::StrCat("kv caches user ", owner, "'s friend list at version ",
                               cached.version(), " with ", cached.friends_size(),
                               " friends; the store has version ", truth->second.version(),
                               " with ", truth->second.friends_size()));
    }
  }
  return std::nullopt;
}

// ---- presence_live: every live presence entry names a session a live
// gateway holds.
Result PresenceLive(const History& h, const FinalState& s) {
  for (const PresenceRecord& p : s.presence) {
    if (s.sessions.count({p.user_id(), p.device_id(), p.gateway_id(), p.epoch()}) == 0) {
      return Fail("presence_live", -1,
                  absl::StrCat("presence says ", WhoDevice(s, p.user_id(), p.device_id()),
                               " is on gateway ", p.gateway_id(), " (epoch ", p.epoch(),
                               ") but no such session is live"));
    }
  }
  return std::nullopt;
}

// ---- unread: read cursors only move forward, cover every acknowledged read
// and never pass the conversation's end, so unread = max seq - read is right.
Result Unread(const History& h, const FinalState& s) {
  // Per device: the acknowledged read cursor never goes back.
  std::map<std::pair<std::string, std::string>, uint64_t> device;  // (client, conv) -> seq
  // Per user: the highest acknowledged read, and where it was.
  std::map<std::pair<std::string, uint64_t>, std::pair<uint64_t, int64_t>> acked;
  for (const HistoryEntry& e : h.entries()) {
    if (e.kind() != HistoryEntry::READ_ACKED) continue;
    uint64_t& d = device[{e.client(), e.conversation()}];
    if (e.seq() < d) {
      return Fail("unread", e.index(),
                  absl::StrCat("the read cursor of ", Who(e), " in ", e.conversation(),
                               " went back from ", d, " to ", e.seq()));
    }
    d = e.seq();
    auto& a = acked[{e.conversation(), e.user_id()}];
    if (e.seq() > a.first) a = {e.seq(), static_cast<int64_t>(e.index())};
  }
  for (const auto& [key, a] : acked) {
    auto cursor = s.read_cursors.find(key);
    const uint64_t stored = cursor == s.read_cursors.end() ? 0 : cursor->second;
    auto conv = s.messages.find(key.first);
    const uint64_t max_seq =
        conv == s.messages.end() || conv->second.empty() ? 0 : conv->second.rbegin()->first;
    if (stored < a.first || stored > max_seq) {
      return Fail("unread", a.second,
                  absl::StrCat("user ", key.second, "'s read cursor in ", key.first, " is ",
                               stored, "; acknowledged reads reached ", a.first,
                               " and the conversation ends at ", max_seq));
    }
  }
  // Unread counts, as served once the run had settled: the messages after the
  // read cursor that another user sent, not recall entries nor recalled, and
  // visible to the reader.
  for (const HistoryEntry& e : h.entries()) {
    if (e.kind() != HistoryEntry::REQUEST || e.detail() != "list_conversations" ||
        e.no_reply() || e.code() != 0 || e.invoked_us() < s.quiet_since_us) {
      continue;
    }
    for (const ConversationState& c : e.states()) {
      auto conv = s.messages.find(c.conversation());
      uint64_t expected = 0;
      uint64_t max_seq = 0;
      if (conv != s.messages.end()) {
        if (!conv->second.empty()) max_seq = conv->second.rbegin()->first;
        const absl::StatusOr<Conversation> parsed = ParseConversation(c.conversation());
        for (auto m = conv->second.upper_bound(c.read_seq());
             m != conv->second.end() && m->first <= c.max_seq(); ++m) {
          const Message& msg = m->second;
          if (msg.kind() == Message::NORMAL && !msg.recalled() && msg.sender_id() != e.user_id() &&
              parsed.ok() && VisibleIn(s, e.user_id(), *parsed, msg.group_version())) {
            ++expected;
          }
        }
      }
      if (c.unread() != expected || c.max_seq() != max_seq) {
        return Fail("unread", e.index(),
                    absl::StrCat(Who(e), " was told ", c.unread(), " unread in ",
                                 c.conversation(), " (read to ", c.read_seq(), ", max ", c.max_seq(),
                                 "); other users' visible messages after its cursor: ", expected,
                                 ", conversation ends at ", max_seq));
      }
    }
  }
  return std::nullopt;
}

// ---- idempotent_send: one message per (sender, client_msg_id), and every
// ack of it names that message.
Result IdempotentSend(const History& h, const FinalState& s) {
  std::map<std::pair<uint64_t, std::string>, std::pair<std::string, uint64_t>> stored;
  for (const auto& [conv, messages] : s.messages) {
    for (const auto& [seq, m] : messages) {
      auto [it, fresh] = stored.emplace(std::make_pair(m.sender_id(), m.client_msg_id()),
                                        std::make_pair(conv, seq));
      if (!fresh) {
        return Fail("idempotent_send", -1,
                    absl::StrCat("message ", m.client_msg_id(), " of user ", m.sender_id(),
                                 " is stored twice: ", it->second.first, "#", it->second.second,
                                 " and ", conv, "#", seq));
      }
    }
  }
  for (const HistoryEntry& e : h.entries()) {
    if (e.kind() != HistoryEntry::SEND_ACKED) continue;
    auto it = stored.find({e.sender_id(), e.client_msg_id()});
    if (it != stored.end() && it->second != std::make_pair(e.conversation(), e.seq())) {
      return Fail("idempotent_send", e.index(),
                  absl::StrCat(Who(e), " was acked ", e.client_msg_id(), " as ", e.conversation(), "#",
                               e.seq(), " but the message is stored as ", it->second.first, "#",
                               it->second.second));
    }
  }
  return std::nullopt;
}

// ---- registry_live: the registry's healthy instances are the live ones.
Result RegistryLive(const History& h, const FinalState& s) {
  std::set<std::string> services;
  for (const auto& [service, a] : s.registry) services.insert(service);
  for (const auto& [service, a] : s.live_instances) services.insert(service);
  for (const std::string& service : services) {
    auto r = s.registry.find(service);
    auto l = s.live_instances.find(service);
    const std::set<std::string> empty;
    const std::set<std::string>& reg = r == s.registry.end() ? empty : r->second;
    const std::set<std::string>& live = l == s.live_instances.end() ? empty : l->second;
    if (reg != live) {
      return Fail("registry_live", -1,
                  absl::StrCat("registry lists {", absl::StrJoin(reg, ","), "} for '", service,
                               "' but {", absl::StrJoin(live, ","), "} are live"));
    }
  }
  return std::nullopt;
}

}  // namespace

bool Visible(const FinalState& state, uint64_t user, const Message& message) {
  absl::StatusOr<Conversation> c = ParseConversation(message.conversation());
  return c.ok() && VisibleIn(state, user, *c, message.group_version());
}

const std::vector<std::pair<std::string, Checker>>& AllCheckers() {
  static const auto* const kAll = new std::vector<std::pair<std::string, Checker>>{
      {"no_lost_ack", NoLostAck},
      {"no_duplicates", NoDuplicates},
      {"order", Order},
      {"sender_fifo", SenderFifo},
      {"membership_safety", MembershipSafety},
      {"profile_convergence", ProfileConvergence},
      {"friend_cache", FriendCache},
      {"presence_live", PresenceLive},
      {"unread", Unread},
      {"idempotent_send", IdempotentSend},
      {"registry_live", RegistryLive},
      {"access_control", AccessControl},
      {"privacy", Privacy},
      {"recall", RecallChecker},
  };
  return *kAll;
}

std::vector<Violation> RunCheckers(const std::vector<std::string>& names, const History& history,
                                   const FinalState& state, std::string* error) {
  std::vector<Violation> out;
  for (const std::string& name : names) {
    bool known = false;
    for (const auto& [n, c] : AllCheckers()) known = known || n == name;
    if (!known) {
      *error = absl::StrCat("unknown checker '", name, "'");
      return out;
    }
  }
  for (const auto& [name, checker] : AllCheckers()) {
    if (!names.empty() && std::find(names.begin(), names.end(), name) == names.end()) continue;
    if (std::optional<Violation> v = checker(history, state)) out.push_back(*v);
  }
  return out;
}

}  // namespace sim
}  // namespace parley
