#include "sim/policy.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "core/message/conversation.h"
#include "core/proto/common.pb.h"

namespace parley {
namespace sim {
namespace {

using Result = std::optional<Violation>;

Violation Fail(const char* checker, int64_t entry, std::string why) {
  return Violation{checker, entry, std::move(why)};
}

std::pair<uint64_t, uint64_t> Pair(uint64_t x, uint64_t y) {
  return x < y ? std::make_pair(x, y) : std::make_pair(y, x);
}

std::string CodeName(int32_t code) {
  const std::string name = ErrorCode_Name(static_cast<ErrorCode>(code));
  return name.empty() ? absl::StrCat("code ", code) : name;
}

// Operations a client may never call: the gateway's internal surface.
bool Internal(const std::string& kind) {
  static const std::set<std::string>* const kInternal = new std::set<std::string>{
      "check_friends", "membership_history", "shard_sync", "shard_list_conversations",
      "kv_get", "kv_set", "kv_delete", "kv_lock", "kv_unlock", "register_instance",
      "deregister_instance", "discover", "watch", "check_tokens", "revoke_device_tokens"};
  return kInternal->count(kind) > 0;
}

Verdict Allow() { return Verdict{Verdict::kAllow, 0, ""}; }
Verdict Forbid(std::string why, int32_t code = CODE_PERMISSION_DENIED) {
  return Verdict{Verdict::kForbid, code, std::move(why)};
}
Verdict Skip() { return Verdict{}; }

const Message* FinalMessage(const FinalState& s, const std::string& conv, uint64_t seq) {
  auto c = s.messages.find(conv);
  if (c == s.messages.end()) return nullptr;
  auto m = c->second.find(seq);
  return m == c->second.end() ? nullptr : &m->second;
}

std::string Who(const Op& op) {
  return absl::StrCat(op.entry->client(), " (user ", op.user, ")");
}

}  // namespace

// ---- Timeline ---------------------------------------------------------------------------------

void Timeline::Change(int64_t from_us, int64_t to_us, bool value, const void* by) {
  steps_.push_back({from_us, to_us, value, by});
}

std::optional<bool> Timeline::During(int64_t a, int64_t b, const void* excluding) const {
  const Step* last = nullptr;  // of the steps wholly before a, the one that ended last
  for (const Step& s : steps_) {
    if (s.by != nullptr && s.by == excluding) continue;  // the judged request's own effect
    if (s.to_us >= a && s.from_us <= b) return std::nullopt;  // may happen inside [a, b]
    if (s.to_us < a && (last == nullptr || s.to_us > last->to_us)) last = &s;
  }
  if (last == nullptr) return false;
  // A step that overlaps the last one may have taken effect after it.
  for (const Step& s : steps_) {
    if (s.by != nullptr && s.by == excluding) continue;
    if (s.to_us < a && &s != last && s.to_us >= last->from_us && s.value != last->value) {
      return std::nullopt;
    }
  }
  return last->value;
}

std::optional<bool> Timeline::EverTrue(int64_t a, int64_t b) const {
  bool maybe = false;
  for (const Step& s : steps_) {
    if (!s.value || s.from_us > b) continue;
    if (s.to_us < a) return true;  // took effect before [a, b] began
    maybe = true;                  // may have, or not yet
  }
  return maybe ? std::nullopt : std::optional<bool>(false);
}

bool OutcomeUnknown(int32_t code) {
  switch (code) {
    case CODE_UNAVAILABLE:
    case CODE_DEADLINE_EXCEEDED:
    case CODE_CANCELLED:
    case CODE_UNKNOWN:
    case CODE_ABORTED:
    case CODE_INTERNAL:
    case CODE_DATA_LOSS:
      return true;
    default:
      return false;
  }
}

// ---- the model --------------------------------------------------------------------------------

PolicyModel::PolicyModel(const History& history, Options options) : options_(options) {
  std::map<std::pair<std::string, std::string>, size_t> sends;  // (client, client_msg_id) -> op
  for (const HistoryEntry& e : history.entries()) {
    switch (e.kind()) {
      case HistoryEntry::SEND_INVOKED: {
        Op op;
        op.entry = &e;
        op.kind = e.detail() == "recall"                 ? "recall"
                  : e.conversation().rfind("g:", 0) == 0 ? "send_group"
                                                         : "send_private";
        op.user = e.sender_id();
        op.from_us = e.time_us();
        sends[{e.client(), e.client_msg_id()}] = ops_.size();
        ops_.push_back(op);
        break;
      }
      case HistoryEntry::SEND_ACKED:
      case HistoryEntry::SEND_FAILED: {
        auto it = sends.find({e.client(), e.client_msg_id()});
        if (it == sends.end()) break;
        Op& op = ops_[it->second];
        if (op.replied) break;
        op.outcome = &e;
        op.replied = true;
        op.to_us = e.time_us();
        op.code = e.kind() == HistoryEntry::SEND_ACKED ? CODE_OK : e.code();
        if (e.kind() == HistoryEntry::SEND_ACKED) {
          if (op.kind == "recall") {
            recall_acked_.emplace(std::make_pair(op.entry->conversation(), op.entry->seq()),
                                  e.time_us());
          } else {
            sender_[{e.conversation(), e.seq()}] = op.user;
            body_[{e.conversation(), e.seq()}] = op.entry->body();
            sent_[{e.conversation(), e.seq()}] = {op.from_us, e.time_us()};
          }
        }
        break;
      }
      case HistoryEntry::REQUEST: {
        Op op;
        op.entry = &e;
        op.outcome = &e;
        op.kind = e.detail();
        op.user = e.user_id();
        op.from_us = e.invoked_us();
        op.replied = !e.no_reply();
        op.to_us = op.replied ? e.time_us() : kNeverUs;
        op.code = e.code();
        ops_.push_back(op);
        break;
      }
      default:
        break;
    }
  }
  for (const Op& op : ops_) Apply(op);
  // What could have begun or ended memberships (for the final-state trace).
  for (const Op& op : ops_) {
    const bool maybe_applied = !op.replied || op.code == CODE_OK || OutcomeUnknown(op.code);
    if (!maybe_applied || Judge(op).kind == Verdict::kForbid) continue;
    const HistoryEntry& e = *op.entry;
    const uint64_t g = e.group_id();
    if (op.kind == "create_group" || op.kind == "invite" || op.kind == "join_group") {
      if (op.kind != "invite") ++joins_[{g, op.user}];
      for (uint64_t id : e.ids()) ++joins_[{g, id}];
    } else if (op.kind == "leave_group") {
      ++leaves_[{g, op.user}];
    } else if (op.kind == "kick") {
      ++leaves_[{g, e.target_id()}];
    } else if (op.kind == "dissolve") {
      ++leaves_[{g, 0}];  // everyone's
    }
  }
}

void PolicyModel::Apply(const Op& op) {
  const HistoryEntry& e = *op.entry;
  if (e.kind() != HistoryEntry::REQUEST) return;
  if (op.replied && op.code != CODE_OK && !OutcomeUnknown(op.code)) return;  // refused: no effect
  const int64_t a = op.from_us;
  const int64_t b = op.replied && op.code == CODE_OK ? op.to_us : kNeverUs;
  const uint64_t u = op.user, t = e.target_id(), g = e.group_id();
  const void* by = op.entry;
  if (op.kind == "add_friend" || op.kind == "remove_friend") {
    if (t != 0 && t != u) friends_[Pair(u, t)].Change(a, b, op.kind == "add_friend", by);
  } else if (op.kind == "block") {
    if (t != 0 && t != u) blocks_[{u, t}].Change(a, b, e.flag(), by);
  } else if (op.kind == "create_group") {
    if (g == 0) return;  // the id came back only with a reply
    owner_[g] = u;
    owns_[{g, u}].Change(a, b, true, by);
    open_[g].Change(a, b, e.flag(), by);
    member_[{g, u}].Change(a, b, true, by);
    for (uint64_t id : e.ids()) {
      member_[{g, id}].Change(a, b, true, by);
      banned_[{g, id}].Change(a, b, false, by);
    }
  } else if (op.kind == "invite") {
    for (uint64_t id : e.ids()) {
      member_[{g, id}].Change(a, b, true, by);
      banned_[{g, id}].Change(a, b, false, by);
    }
  } else if (op.kind == "join_group") {
    member_[{g, u}].Change(a, b, true, by);
  } else if (op.kind == "leave_group") {
    member_[{g, u}].Change(a, b, false, by);
  } else if (op.kind == "kick") {
    member_[{g, t}].Change(a, b, false, by);
    banned_[{g, t}].Change(a, b, true, by);
  } else if (op.kind == "dissolve") {
    dissolved_[g].Change(a, b, true, by);
  } else if (op.kind == "set_group_open") {
    open_[g].Change(a, b, e.flag(), by);
  } else if (op.kind == "transfer_ownership") {
    owns_[{g, u}].Change(a, b, false, by);
    if (t != 0) owns_[{g, t}].Change(a, b, true, by);
  }
}

namespace {
template <typename Map, typename Key>
std::optional<bool> Fact(const Map& map, const Key& key, int64_t a, int64_t b,
                         const void* excluding) {
  auto it = map.find(key);
  if (it == map.end()) return false;
  return it->second.During(a, b, excluding);
}
}  // namespace

std::optional<bool> PolicyModel::Dissolved(uint64_t group, int64_t a, int64_t b) const {
  return Fact(dissolved_, group, a, b, judging_);
}

std::optional<bool> PolicyModel::Member(uint64_t group, uint64_t user, int64_t a,
                                        int64_t b) const {
  if (Owner(group) == 0) return std::nullopt;  // a group the history never saw created
  const std::optional<bool> dissolved = Dissolved(group, a, b);
  const std::optional<bool> member = Fact(member_, std::make_pair(group, user), a, b, judging_);
  if (dissolved == true) return false;
  if (!dissolved.has_value()) return member == false ? std::optional<bool>(false) : std::nullopt;
  return member;
}

std::optional<bool> PolicyModel::Friends(uint64_t x, uint64_t y, int64_t a, int64_t b) const {
  return Fact(friends_, Pair(x, y), a, b, judging_);
}

std::optional<bool> PolicyModel::Blocked(uint64_t x, uint64_t y, int64_t a, int64_t b) const {
  const std::optional<bool> one = Fact(blocks_, std::make_pair(x, y), a, b, judging_);
  const std::optional<bool> two = Fact(blocks_, std::make_pair(y, x), a, b, judging_);
  if (one == true || two == true) return true;
  if (!one.has_value() || !two.has_value()) return std::nullopt;
  return false;
}

std::optional<bool> PolicyModel::Open(uint64_t group, int64_t a, int64_t b) const {
  return Fact(open_, group, a, b, judging_);
}

std::optional<bool> PolicyModel::Banned(uint64_t group, uint64_t user, int64_t a,
                                        int64_t b) const {
  return Fact(banned_, std::make_pair(group, user), a, b, judging_);
}

std::optional<bool> PolicyModel::Owns(uint64_t group, uint64_t user, int64_t a, int64_t b) const {
  if (Owner(group) == 0) return std::nullopt;
  return Fact(owns_, std::make_pair(group, user), a, b, judging_);
}

std::optional<bool> PolicyModel::EverMember(uint64_t group, uint64_t user, int64_t a,
                                            int64_t b) const {
  if (Owner(group) == 0) return std::nullopt;
  auto it = member_.find({group, user});
  if (it == member_.end()) return false;
  return it->second.EverTrue(a, b);
}

uint64_t PolicyModel::Owner(uint64_t group) const {
  auto it = owner_.find(group);
  return it == owner_.end() ? 0 : it->second;
}

uint64_t PolicyModel::Sender(const std::string& conversation, uint64_t seq) const {
  auto it = sender_.find({conversation, seq});
  return it == sender_.end() ? 0 : it->second;
}

int64_t PolicyModel::RecallAckedUs(const std::string& conversation, uint64_t seq) const {
  auto it = recall_acked_.find({conversation, seq});
  return it == recall_acked_.end() ? kNeverUs : it->second;
}

std::string PolicyModel::Body(const std::string& conversation, uint64_t seq) const {
  auto it = body_.find({conversation, seq});
  return it == body_.end() ? "" : it->second;
}

int PolicyModel::Joins(uint64_t group, uint64_t user) const {
  auto it = joins_.find({group, user});
  return it == joins_.end() ? 0 : it->second;
}

int PolicyModel::Leaves(uint64_t group, uint64_t user) const {
  int n = 0;
  for (uint64_t who : {user, uint64_t{0}}) {
    auto it = leaves_.find({group, who});
    if (it != leaves_.end()) n += it->second;
  }
  return n;
}

Verdict PolicyModel::Judge(const Op& op) const {
  judging_ = op.entry;
  Verdict v = JudgeUnscoped(op);
  judging_ = nullptr;
  return v;
}

Verdict PolicyModel::JudgeUnscoped(const Op& op) const {
  const HistoryEntry& e = *op.entry;
  const std::string& k = op.kind;
  const uint64_t u = op.user, t = e.target_id(), g = e.group_id();
  const int64_t a = op.from_us, b = op.to_us;
  if (u == 0) return Skip();
  if (Internal(k)) return Forbid(absl::StrCat(k, " is an internal operation"));
  // Group operations are judged only on groups the history saw created and
  // knows not to be dissolved (other refusals come first there).
  auto live = [&] { return Owner(g) != 0 && Dissolved(g, a, b) == false; };
  if (k == "join_group") {
    if (!live() || Member(g, u, a, b) != false) return Skip();
    const std::optional<bool> open = Open(g, a, b);
    const std::optional<bool> banned = Banned(g, u, a, b);
    if (open == false) return Forbid(absl::StrCat("group ", g, " is closed (invitation only)"));
    if (banned == true) {
      return Forbid(absl::StrCat("user ", u, " was kicked from group ", g, " and not invited since"));
    }
    if (open == true && banned == false) return Allow();
    return Skip();
  }
  if (k == "leave_group") {
    if (!live()) return Skip();
    const std::optional<bool> owns = Owns(g, u, a, b);
    if (owns == true) {
      return Forbid(absl::StrCat("the owner of group ", g, " cannot leave it (dissolve instead)"),
                    CODE_FAILED_PRECONDITION);
    }
    return owns == false && Member(g, u, a, b) == true ? Allow() : Skip();
  }
  if (k == "kick" || k == "dissolve" || k == "set_group_open" || k == "rename_group" ||
      k == "transfer_ownership") {
    if (!live()) return Skip();
    const std::optional<bool> owns = Owns(g, u, a, b);
    if (owns == false) {
      return Forbid(absl::StrCat("only the owner of group ", g, " may ", k, " (user ", u,
                                 " is not it)"));
    }
    if (owns != true) return Skip();
    if (k == "kick") return t != u && Member(g, t, a, b) == true ? Allow() : Skip();
    if (k == "transfer_ownership") {
      if (t == 0 || t == u) return Skip();
      const std::optional<bool> member = Member(g, t, a, b);
      if (member == false) {
        return Forbid(absl::StrCat("user ", t, " is not a member of group ", g),
                      CODE_FAILED_PRECONDITION);
      }
      return member == true ? Allow() : Skip();
    }
    return Allow();
  }
  if (k == "history") {
    absl::StatusOr<Conversation> c = ParseConversation(e.conversation());
    if (!c.ok()) return Skip();
    if (!c->is_group) {
      return c->Includes(u) ? Allow()
                            : Forbid(absl::StrCat(e.conversation(), " is not user ", u, "'s"));
    }
    const std::optional<bool> ever = EverMember(c->group_id, u, a, b);
    if (ever == false) {
      return Forbid(absl::StrCat("user ", u, " was never a member of group ", c->group_id));
    }
    return ever == true ? Allow() : Skip();
  }
  if (k == "invite" || k == "create_group") {
    if (k == "invite") {
      if (!live()) return Skip();
      const std::optional<bool> member = Member(g, u, a, b);
      if (member == false) return Forbid(absl::StrCat("only members invite to group ", g));
      if (member != true) return Skip();
    }
    bool all_known = true;
    for (uint64_t id : e.ids()) {
      if (id == u || id == 0) return Skip();
      const std::optional<bool> f = Friends(u, id, a, b);
      const std::optional<bool> bl = Blocked(u, id, a, b);
      if (bl == true) return Forbid(absl::StrCat("a block stands between users ", u, " and ", id));
      if (f == false) return Forbid(absl::StrCat("user ", id, " is not a friend of user ", u));
      all_known = all_known && f == true && bl == false;
    }
    return all_known ? Allow() : Skip();
  }
  if (k == "group_info" || k == "member_ids" || k == "is_member") {
    if (Owner(g) == 0) return Skip();
    if (k == "is_member" && t == u) return Allow();
    const std::optional<bool> member = Member(g, u, a, b);
    if (member == false) return Forbid(absl::StrCat(k, " of group ", g, " is for its members"));
    return member == true ? Allow() : Skip();
  }
  if (k == "user_groups") {
    if (t == 0 || t == u) return Allow();
    return Forbid(absl::StrCat("user_groups of user ", t, " is for that user only"));
  }
  if (k == "read" || k == "ack") {
    absl::StatusOr<Conversation> c = ParseConversation(e.conversation());
    if (!c.ok()) return Skip();
    if (!c->is_group) {
      return c->Includes(u) ? Allow()
                            : Forbid(absl::StrCat(e.conversation(), " is not user ", u, "'s"));
    }
    const std::optional<bool> member = Member(c->group_id, u, a, b);
    if (member == false) {
      return Forbid(absl::StrCat("user ", u, " is not a member of group ", c->group_id));
    }
    return member == true ? Allow() : Skip();
  }
  if (k == "add_friend") {
    // Friends already: ALREADY_EXISTS comes before the block checks.
    if (t == 0 || t == u || Friends(u, t, a, b) != false) return Skip();
    if (Fact(blocks_, std::make_pair(t, u), a, b, judging_) == true) {
      return Forbid(absl::StrCat("user ", t, " blocked user ", u));
    }
    if (Fact(blocks_, std::make_pair(u, t), a, b, judging_) == true) {
      return Forbid(absl::StrCat("user ", u, " blocked user ", t, " (unblock first)"),
                    CODE_FAILED_PRECONDITION);
    }
    return Skip();
  }
  if (k == "send_private") {
    absl::StatusOr<Conversation> c = ParseConversation(e.conversation());
    if (!c.ok() || c->is_group || !c->Includes(u)) return Skip();
    const uint64_t other = c->low == u ? c->high : c->low;
    const std::optional<bool> bl = Blocked(u, other, a, b);
    const std::optional<bool> f = Friends(u, other, a, b);
    if (bl == true) return Forbid(absl::StrCat("a block stands between users ", u, " and ", other));
    if (f == false) return Forbid(absl::StrCat("users ", u, " and ", other, " are not friends"));
    return f == true && bl == false ? Allow() : Skip();
  }
  if (k == "send_group") {
    absl::StatusOr<Conversation> c = ParseConversation(e.conversation());
    if (!c.ok() || !c->is_group) return Skip();
    const std::optional<bool> member = Member(c->group_id, u, a, b);
    if (member == false) {
      return Forbid(absl::StrCat("user ", u, " is not a member of group ", c->group_id));
    }
    return member == true && Dissolved(c->group_id, a, b) == false ? Allow() : Skip();
  }
  if (k == "recall") {
    const uint64_t sender = Sender(e.conversation(), e.seq());
    if (sender == 0) return Skip();
    if (sender != u) {
      return Forbid(absl::StrCat("only the sender (user ", sender, ") recalls ", e.conversation(),
                                 "#", e.seq()));
    }
    if (options_.recall_window_us > 0) {
      auto sent = sent_.find({e.conversation(), e.seq()});
      if (sent != sent_.end() &&
          a - sent->second.second > options_.recall_window_us + options_.clock_slack_us) {
        return Forbid(absl::StrCat("the recall window passed: ", e.conversation(), "#", e.seq(),
                                   " was acked ", (a - sent->second.second) / 1000,
                                   " ms before its recall (window ",
                                   options_.recall_window_us / 1000, " ms)"),
                      CODE_FAILED_PRECONDITION);
      }
    }
    absl::StatusOr<Conversation> c = ParseConversation(e.conversation());
    if (!c.ok()) return Skip();
    if (c->is_group && Member(c->group_id, u, a, b) != true) return Skip();
    return Allow();
  }
  if (k == "list_conversations" || k == "sync" || k == "get_users" || k == "list_friends" ||
      k == "update_profile" || k == "remove_friend" || k == "find_user" || k == "list_devices") {
    return Allow();
  }
  if (k == "block") return t != 0 && t != u ? Allow() : Skip();
  return Skip();
}

// ---- access_control ---------------------------------------------------------------------------

Result AccessControl(const History& h, const FinalState& s) {
  const PolicyModel model(h, PolicyModel::Options{s.recall_window_us, s.clock_slack_us});
  std::set<std::pair<uint64_t, std::string>> stored;  // (sender, client_msg_id)
  for (const auto& [conv, messages] : s.messages) {
    for (const auto& [seq, m] : messages) stored.insert({m.sender_id(), m.client_msg_id()});
  }
  for (const Op& op : model.ops()) {
    const Verdict v = model.Judge(op);
    const HistoryEntry& e = *op.entry;
    const int64_t at = op.outcome != nullptr ? op.outcome->index() : e.index();
    if (v.kind == Verdict::kForbid) {
      if (op.replied && op.code == CODE_OK) {
        return Fail("access_control", at,
                    absl::StrCat(Who(op), " was granted ", op.kind, " although ", v.why));
      }
      if (op.replied && op.code != v.code && !OutcomeUnknown(op.code) &&
          op.code != CODE_RESOURCE_EXHAUSTED && op.code != CODE_UNAUTHENTICATED) {
        return Fail("access_control", at,
                    absl::StrCat(Who(op), "'s ", op.kind, " was refused with ", CodeName(op.code),
                                 "; the policy refuses it with ", CodeName(v.code), " (", v.why,
                                 ")"));
      }
      // Refused (or unanswered), and it must have left no trace.
      if ((op.kind == "send_private" || op.kind == "send_group") &&
          stored.count({op.user, e.client_msg_id()}) > 0) {
        return Fail("access_control", e.index(),
                    absl::StrCat(Who(op), "'s ", op.kind, " ", e.client_msg_id(),
                                 " is in the store although ", v.why));
      }
    }
    if (v.kind == Verdict::kAllow && op.replied && op.code == CODE_PERMISSION_DENIED) {
      return Fail("access_control", at,
                  absl::StrCat(Who(op), "'s ", op.kind,
                               " was refused PERMISSION_DENIED although the policy allows it"));
    }
    // An allowed, granted membership change took effect at the version it was acked with.
    if (v.kind == Verdict::kAllow && op.replied && op.code == CODE_OK && e.version() != 0 &&
        (op.kind == "join_group" || op.kind == "leave_group" || op.kind == "kick")) {
      const uint64_t who = op.kind == "kick" ? e.target_id() : op.user;
      auto it = s.intervals.find({who, e.group_id()});
      bool found = false;
      if (it != s.intervals.end()) {
        for (const MembershipInterval& i : it->second) {
          found = found || (op.kind == "join_group" ? i.join_version() == e.version()
                                                    : i.leave_version() == e.version());
        }
      }
      if (!found) {
        return Fail("access_control", at,
                    absl::StrCat(Who(op), "'s ", op.kind, " of group ", e.group_id(),
                                 " was acked at version ", e.version(),
                                 " but the group's membership log has no such change for user ",
                                 who));
      }
    }
  }
  // A granted dissolve leaves no member, and a granted create its owner in the log.
  for (const Op& op : model.ops()) {
    if (!op.replied || op.code != CODE_OK || model.Judge(op).kind == Verdict::kForbid) continue;
    const HistoryEntry& e = *op.entry;
    if (op.kind == "dissolve") {
      auto members = s.members.find(e.group_id());
      if (members != s.members.end() && !members->second.empty()) {
        return Fail("access_control", e.index(),
                    absl::StrCat(Who(op), " dissolved group ", e.group_id(), " but ",
                                 members->second.size(), " members are still stored"));
      }
      for (const auto& [key, intervals] : s.intervals) {
        if (key.second == e.group_id() && !intervals.empty() &&
            intervals.back().leave_version() == 0) {
          return Fail("access_control", e.index(),
                      absl::StrCat(Who(op), " dissolved group ", e.group_id(), " but user ",
                                   key.first, "'s membership of it never ended"));
        }
      }
    }
    if (op.kind == "create_group" && e.group_id() != 0 &&
        s.intervals.count({op.user, e.group_id()}) == 0 && !s.intervals.empty()) {
      return Fail("access_control", e.index(),
                  absl::StrCat(Who(op), " created group ", e.group_id(),
                               " but the membership log never shows it as a member"));
    }
  }
  // The final membership log: every membership began and ended by a request
  // the policy could allow.
  for (const auto& [key, intervals] : s.intervals) {
    const auto [user, group] = key;
    if (model.Owner(group) == 0) continue;  // created without the history seeing its id
    int ends = 0;
    for (const MembershipInterval& i : intervals) ends += i.leave_version() != 0;
    if (static_cast<int>(intervals.size()) > model.Joins(group, user)) {
      return Fail("access_control", -1,
                  absl::StrCat("user ", user, " became a member of group ", group, " ",
                               intervals.size(), " times (first at version ",
                               intervals[0].join_version(), ") but only ",
                               model.Joins(group, user),
                               " requests the policy could allow would have made it one"));
    }
    if (ends > model.Leaves(group, user)) {
      return Fail("access_control", -1,
                  absl::StrCat("user ", user, "'s membership of group ", group, " ended ", ends,
                               " times but only ", model.Leaves(group, user),
                               " requests the policy could allow would have ended it"));
    }
  }
  // Read cursors exist only in one's own conversations.
  for (const auto& [key, read] : s.read_cursors) {
    const auto& [conv, user] = key;
    absl::StatusOr<Conversation> c = ParseConversation(conv);
    if (!c.ok() || read == 0) continue;
    const bool own = c->is_group ? s.intervals.count({user, c->group_id}) > 0 : c->Includes(user);
    if (!own) {
      return Fail("access_control", -1,
                  absl::StrCat("user ", user, " has a read cursor (", read, ") in ", conv,
                               ", which was never its conversation"));
    }
  }
  return std::nullopt;
}

// ---- privacy ----------------------------------------------------------------------------------

Result Privacy(const History& h, const FinalState& s) {
  const PolicyModel model(h);
  auto entitled_conversation = [&](const Op& op, const std::string& conv) -> std::optional<std::string> {
    absl::StatusOr<Conversation> c = ParseConversation(conv);
    if (!c.ok()) return absl::StrCat("a malformed conversation ", conv);
    if (!c->is_group) {
      if (!c->Includes(op.user)) return absl::StrCat(conv, ", a conversation of two other users");
      return std::nullopt;
    }
    if (model.Member(c->group_id, op.user, op.from_us, op.to_us) == false) {
      return absl::StrCat(conv, " of group ", c->group_id, ", which it was not a member of");
    }
    return std::nullopt;
  };
  for (const HistoryEntry& e : h.entries()) {
    if (e.kind() != HistoryEntry::DELIVERED) continue;
    absl::StatusOr<Conversation> c = ParseConversation(e.conversation());
    if (c.ok() && !c->is_group && !c->Includes(e.user_id())) {
      return Fail("privacy", e.index(),
                  absl::StrCat(e.client(), " (user ", e.user_id(), ") was delivered ",
                               e.conversation(), "#", e.seq(), ", a conversation of two other users"));
    }
  }
  for (const Op& op : model.ops()) {
    const HistoryEntry& e = *op.entry;
    if (e.kind() != HistoryEntry::REQUEST || !op.replied || op.code != CODE_OK) continue;
    const std::string& k = op.kind;
    const uint64_t g = e.group_id();
    if (Internal(k)) {
      return Fail("privacy", e.index(),
                  absl::StrCat(Who(op), " was answered the internal operation ", k));
    }
    if ((k == "group_info" || k == "member_ids" || (k == "is_member" && e.target_id() != op.user)) &&
        model.Member(g, op.user, op.from_us, op.to_us) == false) {
      return Fail("privacy", e.index(),
                  absl::StrCat(Who(op), " was served ", k, " of group ", g, " (",
                               e.reply_ids_size(), " member ids) while not a member"));
    }
    if (k == "user_groups" && e.target_id() != 0 && e.target_id() != op.user) {
      return Fail("privacy", e.index(),
                  absl::StrCat(Who(op), " was served the groups of user ", e.target_id()));
    }
    if (k == "update_profile" && e.reply_ids_size() > 0 && e.reply_ids(0) != op.user) {
      return Fail("privacy", e.index(),
                  absl::StrCat(Who(op), " changed the profile of user ", e.reply_ids(0),
                               e.forged().empty() ? "" : absl::StrCat(" (forged ", e.forged(), ")")));
    }
    if (k == "read" || k == "ack" || k == "list_conversations") {
      std::vector<std::string> convs(e.conversations().begin(), e.conversations().end());
      if (k != "list_conversations") convs.push_back(e.conversation());
      for (const std::string& conv : convs) {
        if (std::optional<std::string> why = entitled_conversation(op, conv)) {
          return Fail("privacy", e.index(),
                      absl::StrCat(Who(op), " was served ", k, " state of ", *why));
        }
      }
    }
    if (k == "sync" || k == "history") {
      for (const Message& m : e.received()) {
        absl::StatusOr<Conversation> c = ParseConversation(m.conversation());
        const bool ok = c.ok() && (c->is_group ? Visible(s, op.user, m) : c->Includes(op.user));
        if (!ok) {
          return Fail("privacy", e.index(),
                      absl::StrCat(Who(op), " was served ", m.conversation(), "#", m.seq(),
                                   " (group version ", m.group_version(),
                                   ") by a sync, outside what it may read"));
        }
      }
      for (const std::string& conv : e.conversations()) {
        absl::StatusOr<Conversation> c = ParseConversation(conv);
        const bool ok = c.ok() && (c->is_group ? s.intervals.count({op.user, c->group_id}) > 0
                                               : c->Includes(op.user));
        if (!ok) {
          return Fail("privacy", e.index(),
                      absl::StrCat(Who(op), " was served a sync page of ", conv,
                                   ", never its conversation"));
        }
      }
    }
  }
  return std::nullopt;
}

// ---- recall -----------------------------------------------------------------------------------

Result RecallChecker(const History& h, const FinalState& s) {
  const PolicyModel model(h);
  for (const Op& op : model.ops()) {
    const HistoryEntry& e = *op.entry;
    if (op.kind == "recall" && op.replied && op.code == CODE_OK) {
      const std::string& conv = e.conversation();
      const uint64_t seq = e.seq();
      const int64_t acked = op.to_us;
      auto served = s.body_served_us.find({conv, seq});
      if (served != s.body_served_us.end() && served->second > acked) {
        return Fail("recall", op.outcome->index(),
                    absl::StrCat("a shard served the body of ", conv, "#", seq, " ",
                                 (served->second - acked) / 1000, " ms after its recall was acked"));
      }
      const Message* original = FinalMessage(s, conv, seq);
      if (original != nullptr && !original->recalled() && !s.messages.empty()) {
        return Fail("recall", op.outcome->index(),
                    absl::StrCat("the recall of ", conv, "#", seq,
                                 " was acked but the stored original is not marked recalled"));
      }
      const std::string body = model.Body(conv, seq);
      if (!body.empty() && !s.store_blob.empty() && s.store_blob.find(body) != std::string::npos) {
        return Fail("recall", op.outcome->index(),
                    absl::StrCat("the body of ", conv, "#", seq,
                                 " is still in a store after its recall was acked"));
      }
    }
    if (e.kind() == HistoryEntry::REQUEST && (op.kind == "sync" || op.kind == "history") &&
        op.replied && op.code == CODE_OK) {
      for (const Message& m : e.received()) {
        if (!m.body().empty() && model.RecallAckedUs(m.conversation(), m.seq()) < op.from_us) {
          return Fail("recall", e.index(),
                      absl::StrCat(Who(op), " was served the body of ", m.conversation(), "#",
                                   m.seq(), " by a sync sent after its recall was acked"));
        }
      }
    }
  }
  // Only a message's sender recalls it.
  for (const auto& [conv, messages] : s.messages) {
    for (const auto& [seq, m] : messages) {
      if (m.kind() != Message::RECALL) continue;
      auto original = messages.find(m.recalled_seq());
      if (original != messages.end() && original->second.sender_id() != m.sender_id()) {
        return Fail("recall", -1,
                    absl::StrCat("user ", m.sender_id(), " recalled ", conv, "#", m.recalled_seq(),
                                 " (", conv, "#", seq, "), a message of user ",
                                 original->second.sender_id()));
      }
    }
  }
  return std::nullopt;
}

}  // namespace sim
}  // namespace parley
