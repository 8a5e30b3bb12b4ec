// Workload: the setup and the ordinary users' actions (sends, profile
// changes, reads, recalls, joins and leaves, churn, friend-list reads and
// changes, retired devices, fresh syncs), the action table they are drawn
// from, and how a client request reaches the history.
#include "sim/workload.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <set>

#include "absl/strings/str_cat.h"
#include "core/message/conversation.h"
#include "core/status.h"
#include "sim/ratio.h"

namespace parley {
namespace sim {

const std::vector<WorkloadAction>& WorkloadActions() {
  static const auto* const kActions = new std::vector<WorkloadAction>{
      {"send", "send_rate_per_s", [](const Workload& w) { return w.send_rate_per_s(); },
       &WorkloadDriver::DoSend},
      {"profile_change", "profile_change_rate_per_s",
       [](const Workload& w) { return w.profile_change_rate_per_s(); }, &WorkloadDriver::DoProfile},
      {"read", "read_rate_per_s", [](const Workload& w) { return w.read_rate_per_s(); },
       &WorkloadDriver::DoRead},
      {"recall", "recall_rate_per_s", [](const Workload& w) { return w.recall_rate_per_s(); },
       &WorkloadDriver::DoRecall},
      {"join_leave", "join_leave_rate_per_s",
       [](const Workload& w) { return w.join_leave_rate_per_s(); }, &WorkloadDriver::DoJoinLeave},
      {"churn", "churn_rate_per_s", [](const Workload& w) { return w.churn_rate_per_s(); },
       &WorkloadDriver::DoChurn},
      {"list_friends", "list_friends_rate_per_s",
       [](const Workload& w) { return w.list_friends_rate_per_s(); }, &WorkloadDriver::DoListFriends},
      {"friend_change", "friend_change_rate_per_s",
       [](const Workload& w) { return w.friend_change_rate_per_s(); },
       &WorkloadDriver::DoFriendChange},
      {"retire", "retire_rate_per_s", [](const Workload& w) { return w.retire_rate_per_s(); },
       &WorkloadDriver::DoRetire},
      // Attacks need attackers: no adversary_fraction, no attacks.
      {"attack", "adversary_rate_per_s",
       [](const Workload& w) { return w.adversary_fraction() > 0 ? w.adversary_rate_per_s() : 0; },
       &WorkloadDriver::DoAttack},
      {"moderate", "moderation_rate_per_s",
       [](const Workload& w) { return w.moderation_rate_per_s(); }, &WorkloadDriver::DoModerate},
      {"fresh_sync", "fresh_sync_rate_per_s",
       [](const Workload& w) { return w.fresh_sync_rate_per_s(); }, &WorkloadDriver::DoFreshSync},
  };
  return *kActions;
}

Client* WorkloadDriver::OnlineClient(size_t* index) {
  for (int attempt = 0; attempt < 8; ++attempt) {
    const size_t i = r_.rng.Uniform(r_.clients.size());
    Client* c = r_.world.NodeAs<Client>(r_.clients[i].address);
    if (c != nullptr && c->state() == Client::State::kOnline && c->user_id() != 0) {
      if (index != nullptr) *index = i;
      r_.recorder.SetUser(r_.clients[i].address, c->user_id());
      return c;
    }
  }
  return nullptr;
}

void WorkloadDriver::ScheduleSetup() {
  const Workload& w = r_.s.workload();
  // Friends, once everybody had time to register and log in.
  r_.world.After(absl::Seconds(3), [this, w] {
    for (size_t i = 0; i < r_.clients.size(); ++i) {
      Client* c = r_.world.NodeAs<Client>(r_.clients[i].address);
      if (c != nullptr && c->user_id() != 0) r_.recorder.SetUser(r_.clients[i].address, c->user_id());
    }
    for (size_t i = 0; i < r_.clients.size(); ++i) {
      if (r_.clients[i].address.back() != '1') continue;  // first devices only
      for (uint32_t k = 0; k < w.friends_per_user(); ++k) {
        const size_t j = r_.rng.Uniform(r_.clients.size());
        Client* a = r_.world.NodeAs<Client>(r_.clients[i].address);
        Client* b = r_.world.NodeAs<Client>(r_.clients[j].address);
        if (a == nullptr || b == nullptr || a->user_id() == 0 || b->user_id() == 0 ||
            a->user_id() == b->user_id()) {
          continue;
        }
        Request r;
        r.mutable_add_friend()->set_friend_id(b->user_id());
        const uint64_t x = a->user_id(), y = b->user_id();
        Issue(i, r, [this, x, y](const Reply& reply) {
          if (reply.status().code() == CODE_OK || reply.status().code() == CODE_ALREADY_EXISTS) {
            r_.friends[x].insert(y);
            r_.friends[y].insert(x);
          }
        });
      }
    }
  }, "setup-friends");
  // Groups of friends.
  r_.world.After(absl::Seconds(6), [this, w] {
    for (uint32_t g = 0; g < w.groups(); ++g) {
      size_t oi = 0;
      Client* owner = OnlineClient(&oi);
      if (owner == nullptr) continue;
      const std::set<uint64_t>& mine = r_.friends[owner->user_id()];
      std::vector<uint64_t> pool(mine.begin(), mine.end());
      Request r;
      r.mutable_create_group()->set_name(absl::StrCat("group", g));
      const bool open = Chance(r_.rng, Ppm(w.open_group_fraction()));
      r.mutable_create_group()->set_open(open);
      std::vector<uint64_t> members = {owner->user_id()};
      for (uint32_t k = 0; k + 1 < w.group_size() && !pool.empty(); ++k) {
        const size_t pick = r_.rng.Uniform(pool.size());
        r.mutable_create_group()->add_member_ids(pool[pick]);
        members.push_back(pool[pick]);
        pool.erase(pool.begin() + pick);
      }
      const uint64_t owner_id = owner->user_id();
      Issue(oi, r, [this, owner_id, members, open](const Reply& reply) {
        if (reply.status().code() != CODE_OK) return;
        const uint64_t group = reply.create_group().group().group_id();
        if (open) r_.open_groups.insert(group);
        r_.group_owner[group] = owner_id;
        r_.groups[group].insert(members.begin(), members.end());
      });
    }
  }, "setup-groups");
}

void WorkloadDriver::ScheduleChaos() {
  r_.world.At(r_.chaos_start, [this] { NextAction(); }, "chaos-start");
}

void WorkloadDriver::NextAction() {
  const Workload& w = r_.s.workload();
  const std::vector<WorkloadAction>& actions = WorkloadActions();
  // Rates as integers (micro-hertz): the pick is an integer draw.
  std::vector<uint64_t> rates;
  uint64_t total = 0;
  for (const WorkloadAction& a : actions) {
    rates.push_back(MicroHz(a.rate(w)));
    total += rates.back();
  }
  if (total == 0 || r_.world.Now() >= r_.chaos_end) return;
  uint64_t pick = r_.rng.Uniform(total);
  size_t kind = 0;
  while (pick >= rates[kind]) pick -= rates[kind++];
  (this->*actions[kind].run)();
  // Exponential gaps: a Poisson process of actions.
  r_.world.After(absl::Microseconds(ExponentialMicros(r_.rng, MeanIntervalMicros(total))),
                 [this] { NextAction(); }, "workload");
}

void WorkloadDriver::DoSend() {
  size_t i = 0;
  Client* c = OnlineClient(&i);
  if (c == nullptr) return;
  const uint64_t me = c->user_id();
  // Unique per message, so a recalled body can be looked for anywhere.
  const uint64_t number = next_body_++;
  std::string body = absl::StrCat("<b", me, ".", number, ">");
  // A send the scenario's send_filter cuts: drawn to here, then not made.
  const Workload& w = r_.s.workload();
  const bool cut = w.has_send_filter() && !std::binary_search(w.send_filter().keep().begin(),
                                                               w.send_filter().keep().end(), number);
  if (body.size() < r_.s.workload().body_bytes()) body.resize(r_.s.workload().body_bytes(), 'x');
  std::vector<uint64_t> my_groups;
  for (const auto& [g, members] : r_.groups) {
    if (members.count(me) > 0) my_groups.push_back(g);
  }
  const uint64_t private_ppm = Ppm(r_.s.workload().private_fraction());
  if (!r_.groups.empty() &&
      Chance(r_.rng, Ppm(r_.s.workload().non_member_send_fraction()) * (kMillion - private_ppm) /
                         kMillion)) {
    // A user error: posting to some group, member or not.
    auto it = r_.groups.begin();
    std::advance(it, r_.rng.Uniform(r_.groups.size()));
    my_groups = {it->first};
  }
  const bool private_send = my_groups.empty() || Chance(r_.rng, private_ppm);
  std::string conv, id;
  if (private_send) {
    const std::set<uint64_t>& mine = r_.friends[me];
    if (mine.empty()) return;
    auto it = mine.begin();
    std::advance(it, r_.rng.Uniform(mine.size()));
    if (cut) return;
    conv = PrivateConversationId(me, *it);
    id = c->SendPrivate(*it, body);
  } else {
    const uint64_t g = my_groups[r_.rng.Uniform(my_groups.size())];
    if (cut) return;
    conv = GroupConversationId(g);
    id = c->SendGroup(g, body);
  }
  HistoryEntry* e = r_.recorder.Add(HistoryEntry::SEND_INVOKED, r_.clients[i].address);
  e->set_conversation(conv);
  e->set_client_msg_id(id);
  e->set_sender_id(me);
  e->set_body(body);
}

void WorkloadDriver::DoProfile() {
  size_t i = 0;
  Client* c = OnlineClient(&i);
  if (c == nullptr) return;
  Request r;
  r.mutable_update_profile()->set_nickname(absl::StrCat("nick", r_.rng.Uniform(1000000)));
  if (Chance(r_.rng, 300000)) r.mutable_update_profile()->set_avatar(absl::StrCat("a", r_.rng.Uniform(100), ".png"));
  const std::string address = r_.clients[i].address;
  auto record = [this, address](const Reply& reply) {
    if (reply.status().code() != CODE_OK) return;
    HistoryEntry* e = r_.recorder.Add(HistoryEntry::PROFILE_UPDATED, address);
    e->set_version(reply.update_profile().profile().version());
    e->set_detail(reply.update_profile().profile().nickname());
  };
  Issue(i, r, record);
  const double second = r_.s.workload().profile_second_edit_fraction();
  if (second > 0 && Chance(r_.rng, Ppm(second))) {
    // Sent right behind the first, not after its reply: the user service
    // commits both within moments, so their events leave close together.
    r.mutable_update_profile()->set_nickname(absl::StrCat("nick", r_.rng.Uniform(1000000)));
    Issue(i, r, record);
  }
}

void WorkloadDriver::DoRead() {
  size_t i = 0;
  Client* c = OnlineClient(&i);
  if (c == nullptr || c->delivered().empty()) return;
  const Message& m = c->delivered()[r_.rng.Uniform(c->delivered().size())];
  Request r;
  r.mutable_read()->set_conversation(m.conversation());
  r.mutable_read()->set_seq(m.seq());
  const std::string address = r_.clients[i].address;
  const std::string conv = m.conversation();
  Issue(i, r, [this, address, conv](const Reply& reply) {
    if (reply.status().code() != CODE_OK) return;
    HistoryEntry* e = r_.recorder.Add(HistoryEntry::READ_ACKED, address);
    e->set_conversation(conv);
    e->set_seq(reply.cursor().read_seq());
  });
}

void WorkloadDriver::DoRecall() {
  // A recent acknowledged send of some client, found in the history.
  const auto& entries = r_.recorder.history().entries();
  std::vector<const HistoryEntry*> recent;
  for (int i = entries.size() - 1; i >= 0 && recent.size() < 50; --i) {
    if (entries[i].kind() == HistoryEntry::SEND_ACKED) {
      recent.push_back(&entries[i]);
    }
  }
  if (recent.empty()) return;
  const HistoryEntry* pick = recent[r_.rng.Uniform(recent.size())];
  const std::string address = pick->client();
  SendReply ack;
  ack.set_conversation(pick->conversation());
  ack.set_seq(pick->seq());
  Client* c = r_.world.NodeAs<Client>(address);
  if (c == nullptr || c->state() != Client::State::kOnline) return;
  const std::string id = c->Recall(ack.conversation(), ack.seq());
  HistoryEntry* e = r_.recorder.Add(HistoryEntry::SEND_INVOKED, address);
  e->set_conversation(ack.conversation());
  e->set_seq(ack.seq());
  e->set_client_msg_id(id);
  e->set_sender_id(c->user_id());
  e->set_detail("recall");
}

void WorkloadDriver::DoJoinLeave() {
  size_t i = 0;
  Client* c = OnlineClient(&i);
  if (c == nullptr || r_.groups.empty()) return;
  auto it = r_.groups.begin();
  std::advance(it, r_.rng.Uniform(r_.groups.size()));
  const uint64_t group = it->first;
  const uint64_t me = c->user_id();
  const bool member = it->second.count(me) > 0;
  if (member && r_.group_owner[group] == me) return;  // owners stay
  Request r;
  if (member) {
    r.mutable_leave_group()->set_group_id(group);
  } else {
    r.mutable_join_group()->set_group_id(group);
  }
  const std::string address = r_.clients[i].address;
  Issue(i, r, [this, address, group, me, member](const Reply& reply) {
    if (reply.status().code() != CODE_OK) return;
    if (member) {
      r_.groups[group].erase(me);
    } else {
      r_.groups[group].insert(me);
    }
    HistoryEntry* e = r_.recorder.Add(HistoryEntry::MEMBERSHIP_ACKED, address);
    e->set_group_id(group);
    e->set_joined(!member);
    e->set_version(reply.membership().group().version());
  });
}

void WorkloadDriver::DoChurn() {
  size_t i = 0;
  Client* c = OnlineClient(&i);
  if (c == nullptr) return;
  const std::string address = r_.clients[i].address;
  c->Disconnect();
  r_.recorder.Add(HistoryEntry::CLIENT_OFFLINE, address);
  const int64_t offline_us =
      ExponentialMicros(r_.rng, std::max<int64_t>(100000, Micros(r_.s.workload().offline_s())));
  r_.world.After(absl::Microseconds(offline_us), [this, address] {
    Client* c = r_.world.NodeAs<Client>(address);
    if (c == nullptr) return;
    c->Connect();
    r_.recorder.Add(HistoryEntry::CLIENT_ONLINE, address);
  }, "churn-back");
}

void WorkloadDriver::DoRetire() {
  size_t i = 0;
  if (OnlineClient(&i) == nullptr) return;
  // Only second devices, so every user keeps one device for the checkers.
  if (r_.clients[i].address.back() == '1') return;
  r_.world.Crash(r_.clients[i].address);
  r_.retired.insert(r_.clients[i].address);
  r_.recorder.Add(HistoryEntry::CLIENT_OFFLINE, r_.clients[i].address)->set_detail("retired for good");
}

void WorkloadDriver::DoListFriends() {
  Client* c = OnlineClient(nullptr);
  if (c == nullptr) return;
  size_t i = 0;
  c = OnlineClient(&i);
  if (c == nullptr) return;
  Request r;
  r.mutable_list_friends();
  const std::string address = r_.clients[i].address;
  const int64_t invoked_us = absl::ToUnixMicros(r_.world.Now());
  Issue(i, r, [this, address, invoked_us](const Reply& reply) {
    if (reply.status().code() != CODE_OK) return;
    HistoryEntry* e = r_.recorder.Add(HistoryEntry::FRIENDS_LISTED, address);
    e->set_invoked_us(invoked_us);
    e->set_version(reply.list_friends().list().version());
    e->set_detail(reply.list_friends().from_cache() ? "cache" : "store");
  });
}

void WorkloadDriver::DoFriendChange() {
  size_t ai = 0;
  Client* a = OnlineClient(&ai);
  Client* b = OnlineClient(nullptr);
  if (a == nullptr || b == nullptr || a->user_id() == b->user_id()) return;
  const uint64_t x = a->user_id(), y = b->user_id();
  const bool remove = r_.friends[x].count(y) > 0 && Chance(r_.rng, 300000);
  Request r;
  if (remove) {
    r.mutable_remove_friend()->set_friend_id(y);
  } else {
    r.mutable_add_friend()->set_friend_id(y);
  }
  Issue(ai, r, [this, x, y, remove](const Reply& reply) {
    if (reply.status().code() != CODE_OK) return;
    if (remove) {
      r_.friends[x].erase(y);
      r_.friends[y].erase(x);
    } else {
      r_.friends[x].insert(y);
      r_.friends[y].insert(x);
    }
  });
}

void WorkloadDriver::Issue(size_t i, const Request& request, std::function<void(const Reply&)> then,
                       bool adversary, const std::string& forged, uint64_t forged_auth,
                       const std::string& forged_from) {
  Client* c = r_.world.NodeAs<Client>(r_.clients[i].address);
  if (c == nullptr) return;
  if (c->state() != Client::State::kOnline) {
    // Refused at once by the client itself: never sent, nothing to judge.
    if (then) then(ErrorReply(absl::UnavailableError("the client is not connected")));
    return;
  }
  const uint64_t id = next_issue_++;
  unanswered_[id] = Pending{i, request, absl::ToUnixMicros(r_.world.Now()), adversary, forged};
  auto done = [this, id, then = std::move(then)](const Reply& reply) {
    auto it = unanswered_.find(id);
    if (it == unanswered_.end()) return;
    const Pending p = std::move(it->second);
    unanswered_.erase(it);
    HistoryEntry* e = r_.recorder.Add(HistoryEntry::REQUEST, r_.clients[p.client_index].address);
    e->set_invoked_us(p.invoked_us);
    e->set_adversary(p.adversary);
    e->set_forged(p.forged);
    RecordRequest(e, p.request, &reply);
    if (then) then(reply);
  };
  if (!forged.empty()) {
    c->CallForged(request, forged_auth, forged_from, std::move(done));
  } else {
    c->Call(request, std::move(done));
  }
}

void WorkloadDriver::FinishUnanswered() {
  for (const auto& [id, p] : unanswered_) {
    HistoryEntry* e = r_.recorder.Add(HistoryEntry::REQUEST, r_.clients[p.client_index].address);
    e->set_invoked_us(p.invoked_us);
    e->set_adversary(p.adversary);
    e->set_forged(p.forged);
    e->set_no_reply(true);
    RecordRequest(e, p.request, nullptr);
  }
  unanswered_.clear();
}

void RecordRequest(HistoryEntry* e, const Request& r, const Reply* reply) {
  const google::protobuf::FieldDescriptor* field =
      Request::descriptor()->FindFieldByNumber(static_cast<int>(r.op_case()));
  e->set_detail(field != nullptr ? field->name() : "none");
  if (reply != nullptr) e->set_code(static_cast<int32_t>(reply->status().code()));
  switch (r.op_case()) {
    case Request::kAddFriend: e->set_target_id(r.add_friend().friend_id()); break;
    case Request::kRemoveFriend: e->set_target_id(r.remove_friend().friend_id()); break;
    case Request::kBlock:
      e->set_target_id(r.block().target_id());
      e->set_flag(r.block().blocked());
      break;
    case Request::kCreateGroup:
      e->set_flag(r.create_group().open());
      for (uint64_t id : r.create_group().member_ids()) e->add_ids(id);
      break;
    case Request::kInvite:
      e->set_group_id(r.invite().group_id());
      for (uint64_t id : r.invite().user_ids()) e->add_ids(id);
      break;
    case Request::kJoinGroup: e->set_group_id(r.join_group().group_id()); break;
    case Request::kLeaveGroup: e->set_group_id(r.leave_group().group_id()); break;
    case Request::kKick:
      e->set_group_id(r.kick().group_id());
      e->set_target_id(r.kick().user_id());
      break;
    case Request::kDissolve: e->set_group_id(r.dissolve().group_id()); break;
    case Request::kSetGroupOpen:
      e->set_group_id(r.set_group_open().group_id());
      e->set_flag(r.set_group_open().open());
      break;
    case Request::kRenameGroup: e->set_group_id(r.rename_group().group_id()); break;
    case Request::kTransferOwnership:
      e->set_group_id(r.transfer_ownership().group_id());
      e->set_target_id(r.transfer_ownership().new_owner_id());
      break;
    case Request::kHistory:
      e->set_conversation(r.history().conversation());
      e->set_seq(r.history().before_seq());
      break;
    case Request::kGroupInfo: e->set_group_id(r.group_info().group_id()); break;
    case Request::kMemberIds: e->set_group_id(r.member_ids().group_id()); break;
    case Request::kIsMember:
      e->set_group_id(r.is_member().group_id());
      e->set_target_id(r.is_member().user_id());
      break;
    case Request::kUserGroups: e->set_target_id(r.user_groups().user_id()); break;
    case Request::kMembershipHistory: e->set_target_id(r.membership_history().user_id()); break;
    case Request::kRead:
      e->set_conversation(r.read().conversation());
      e->set_seq(r.read().seq());
      break;
    case Request::kAck:
      e->set_conversation(r.ack().conversation());
      e->set_seq(r.ack().seq());
      break;
    default:
      break;
  }
  if (reply == nullptr || reply->status().code() != CODE_OK) return;
  switch (reply->result_case()) {
    case Reply::kCreateGroup:
      e->set_group_id(reply->create_group().group().group_id());
      e->set_version(reply->create_group().group().version());
      break;
    case Reply::kMembership: e->set_version(reply->membership().group().version()); break;
    case Reply::kMemberIds:
      for (uint64_t id : reply->member_ids().member_ids()) e->add_reply_ids(id);
      break;
    case Reply::kGroupInfo:
      for (const Member& m : reply->group_info().members()) e->add_reply_ids(m.user_id());
      break;
    case Reply::kUserGroups:
      for (uint64_t id : reply->user_groups().group_ids()) e->add_reply_ids(id);
      break;
    case Reply::kUpdateProfile: e->add_reply_ids(reply->update_profile().profile().user_id()); break;
    case Reply::kListConversations:
      for (const ConversationState& c : reply->list_conversations().conversations()) {
        e->add_conversations(c.conversation());
        *e->add_states() = c;
      }
      break;
    case Reply::kFindUser: e->add_reply_ids(reply->find_user().profile().user_id()); break;
    case Reply::kHistory:
      for (const Message& m : reply->history().messages()) *e->add_received() = m;
      break;
    case Reply::kSync:
      for (const ConversationPage& page : reply->sync().conversations()) {
        e->add_conversations(page.conversation());
        for (const Message& m : page.messages()) *e->add_received() = m;
      }
      break;
    default:
      break;
  }
}

void WorkloadDriver::OnServed(const std::string& from, const Envelope& envelope) {
  if (from.rfind("svc.message.", 0) != 0) return;
  const int64_t now_us = absl::ToUnixMicros(r_.world.Now());
  auto note = [&](const Message& m) {
    if (!m.body().empty()) r_.body_served_us[{m.conversation(), m.seq()}] = now_us;
  };
  if (envelope.has_push()) note(envelope.push().message());
  if (envelope.has_reply() && envelope.reply().has_sync()) {
    for (const ConversationPage& page : envelope.reply().sync().conversations()) {
      for (const Message& m : page.messages()) note(m);
    }
  }
}

const HistoryEntry* WorkloadDriver::RecentAck(bool of_other_user, uint64_t me) {
  const auto& entries = r_.recorder.history().entries();
  std::vector<const HistoryEntry*> recent;
  for (int i = entries.size() - 1; i >= 0 && recent.size() < 50 && i + 5000 >= entries.size(); --i) {
    const HistoryEntry& e = entries[i];
    if (e.kind() != HistoryEntry::SEND_ACKED) continue;
    if (of_other_user ? e.sender_id() != me : e.sender_id() == me) recent.push_back(&e);
  }
  return recent.empty() ? nullptr : recent[r_.rng.Uniform(recent.size())];
}

void WorkloadDriver::DoFreshSync() {
  size_t i = 0;
  Client* c = OnlineClient(&i);
  if (c == nullptr) return;
  Request r;
  const uint64_t k = r_.rng.Uniform(10);
  if (k < 3 && !c->delivered().empty()) {
    // Older history of one of its conversations, paging back from the end.
    const Message& m = c->delivered()[r_.rng.Uniform(c->delivered().size())];
    r.mutable_history()->set_conversation(m.conversation());
    r.mutable_history()->set_limit(20);
  } else if (k == 3) {
    // A user with two devices logs the other one out from here (it must log
    // in again with its password).
    const std::string& address = r_.clients[i].address;
    const std::string other = address.substr(0, address.size() - 1) +
                              (address.back() == '1' ? "2" : "1");
    Client* o = r_.world.NodeAs<Client>(other);
    if (o == nullptr || r_.retired.count(other) > 0) return;
    r.mutable_logout_device()->set_device_id(other.substr(other.rfind('.') + 1));
  } else if (k == 4) {
    r.mutable_list_devices();
  } else if (k == 5) {
    r.mutable_find_user()->set_name(r_.user_names[r_.rng.Uniform(r_.user_names.size())]);
  } else {
    r.mutable_sync()->set_max_messages(100);  // every conversation from zero
  }
  Issue(i, r, nullptr);
}

void WorkloadDriver::ListEverything() {
  std::set<size_t> listed_users;
  for (size_t i = 0; i < r_.clients.size(); ++i) {
    Client* c = r_.world.NodeAs<Client>(r_.clients[i].address);
    if (c == nullptr || c->state() != Client::State::kOnline || c->user_id() == 0) continue;
    if (!listed_users.insert(r_.clients[i].user_index).second) continue;
    Request r;
    r.mutable_list_conversations();
    Issue(i, r, nullptr);
  }
}

}  // namespace sim
}  // namespace parley
