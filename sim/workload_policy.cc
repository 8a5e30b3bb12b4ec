// Workload, the access policy's side: attackers trying every class of request
// the policy forbids, and owners and users doing what it allows (kicks,
// opening and closing groups, invitations, blocks).
#include <cmath>
#include <iterator>
#include <set>

#include "absl/strings/str_cat.h"
#include "core/message/conversation.h"
#include "core/status.h"
#include "sim/ratio.h"
#include "sim/workload.h"

namespace parley {
namespace sim {
namespace {

// The last ceil(adversary_fraction * users) users are attackers.
size_t Attackers(const Workload& w) {
  const uint64_t ppm = Ppm(w.adversary_fraction());
  return static_cast<size_t>((ppm * w.users() + kMillion - 1) / kMillion);
}

}  // namespace

bool WorkloadDriver::IsAdversary(size_t client_index) const {
  const Workload& w = r_.s.workload();
  const size_t attackers = Attackers(w);
  return r_.clients[client_index].user_index + attackers >= w.users();
}

Client* WorkloadDriver::OnlineAdversary(size_t* index) {
  const Workload& w = r_.s.workload();
  const size_t attackers = Attackers(w);
  if (attackers == 0) return nullptr;
  // Attackers are the last users; their clients are at the end of r_.clients.
  size_t first = r_.clients.size();
  while (first > 0 && IsAdversary(first - 1)) --first;
  if (first == r_.clients.size()) return nullptr;
  for (int attempt = 0; attempt < 8; ++attempt) {
    const size_t i = first + r_.rng.Uniform(r_.clients.size() - first);
    Client* c = r_.world.NodeAs<Client>(r_.clients[i].address);
    if (c != nullptr && c->state() == Client::State::kOnline && c->user_id() != 0) {
      *index = i;
      r_.recorder.SetUser(r_.clients[i].address, c->user_id());
      return c;
    }
  }
  return nullptr;
}

void WorkloadDriver::DoAttack() {
  size_t i = 0;
  Client* c = OnlineAdversary(&i);
  if (c == nullptr) return;
  const uint64_t me = c->user_id();
  std::vector<uint64_t> groups;
  for (const auto& [g, owner] : r_.group_owner) groups.push_back(g);
  const uint64_t any_group = groups.empty() ? 1 : groups[r_.rng.Uniform(groups.size())];
  const uint64_t foreign_group = [&] {
    for (int k = 0; k < 8 && !groups.empty(); ++k) {
      const uint64_t g = groups[r_.rng.Uniform(groups.size())];
      if (r_.groups[g].count(me) == 0) return g;
    }
    return any_group;
  }();
  auto some_user = [&] {
    for (int k = 0; k < 8; ++k) {
      Client* o = r_.world.NodeAs<Client>(r_.clients[r_.rng.Uniform(r_.clients.size())].address);
      if (o != nullptr && o->user_id() != 0 && o->user_id() != me) return o->user_id();
    }
    return me + 1;
  };
  const uint64_t victim = some_user();
  Request r;
  std::string forged;
  uint64_t forged_auth = 0;
  std::string forged_from;
  bool was_kicked = false;
  for (const auto& [g, u] : r_.kicked) was_kicked = was_kicked || u == me;
  // A kicked attacker tries to get back in more often than anything else.
  const uint64_t kind = was_kicked && Chance(r_.rng, 300000) ? 1 : r_.rng.Uniform(16);
  switch (kind) {
    case 0: {  // join a group uninvited: a closed one (refused) or an open one (allowed)
      std::vector<uint64_t> open;
      for (uint64_t g : r_.open_groups) {
        if (r_.groups.count(g) > 0 && r_.groups[g].count(me) == 0) open.push_back(g);
      }
      const uint64_t g = !open.empty() && Chance(r_.rng, 500000) ? open[r_.rng.Uniform(open.size())]
                                                              : foreign_group;
      r.mutable_join_group()->set_group_id(g);
      Issue(i, r, [this, g, me](const Reply& reply) {
        if (reply.status().code() == CODE_OK) r_.groups[g].insert(me);
      }, /*adversary=*/true);
      return;
    }
    case 1: {  // rejoin after a kick
      std::vector<uint64_t> mine;
      for (const auto& [g, u] : r_.kicked) {
        if (u == me) mine.push_back(g);
      }
      r.mutable_join_group()->set_group_id(mine.empty() ? foreign_group
                                                        : mine[r_.rng.Uniform(mine.size())]);
      break;
    }
    case 2:
      r.mutable_group_info()->set_group_id(foreign_group);
      break;
    case 3:
      r.mutable_member_ids()->set_group_id(foreign_group);
      break;
    case 4:
      r.mutable_is_member()->set_group_id(foreign_group);
      r.mutable_is_member()->set_user_id(victim);
      break;
    case 5:
      r.mutable_user_groups()->set_user_id(victim);
      break;
    case 6: {  // sync naming conversations it does not belong to
      SyncRequest* sync = r.mutable_sync();
      Cursor* g = sync->add_cursors();
      g->set_conversation(GroupConversationId(foreign_group));
      Cursor* p = sync->add_cursors();
      const uint64_t other = some_user();
      p->set_conversation(PrivateConversationId(victim, other == victim ? victim + 1 : other));
      sync->set_only_listed(Chance(r_.rng, 500000));
      sync->set_max_messages(50);
      break;
    }
    case 7: {  // read or ack of a foreign conversation
      const uint64_t other = some_user();
      const std::string conv = Chance(r_.rng, 500000) ? GroupConversationId(foreign_group)
                                                   : PrivateConversationId(victim, other == victim ? victim + 1 : other);
      const uint64_t how = r_.rng.Uniform(3);
      if (how == 2) {
        r.mutable_history()->set_conversation(conv);
        r.mutable_history()->set_limit(50);
      } else if (how == 0) {
        r.mutable_read()->set_conversation(conv);
        r.mutable_read()->set_seq(1 + r_.rng.Uniform(5));
      } else {
        r.mutable_ack()->set_conversation(conv);
        r.mutable_ack()->set_seq(1 + r_.rng.Uniform(5));
        r.mutable_ack()->set_device_id("d1");
      }
      break;
    }
    case 8: {  // recall somebody else's message
      const HistoryEntry* pick = RecentAck(/*of_other_user=*/true, me);
      if (pick == nullptr) return;
      const std::string id = c->Recall(pick->conversation(), pick->seq());
      HistoryEntry* e = r_.recorder.Add(HistoryEntry::SEND_INVOKED, r_.clients[i].address);
      e->set_conversation(pick->conversation());
      e->set_seq(pick->seq());
      e->set_client_msg_id(id);
      e->set_sender_id(me);
      e->set_detail("recall");
      e->set_adversary(true);
      return;
    }
    case 9: {  // kick, dissolve, open, or invite without the right
      const uint64_t k = r_.rng.Uniform(6);
      if (k == 4) {
        r.mutable_rename_group()->set_group_id(any_group);
        r.mutable_rename_group()->set_name(absl::StrCat("pwned", r_.rng.Uniform(100)));
      } else if (k == 5) {
        r.mutable_transfer_ownership()->set_group_id(any_group);
        r.mutable_transfer_ownership()->set_new_owner_id(me);
      } else if (k == 0) {
        r.mutable_kick()->set_group_id(any_group);
        r.mutable_kick()->set_user_id(victim);
      } else if (k == 1) {
        r.mutable_dissolve()->set_group_id(any_group);
      } else if (k == 2) {
        r.mutable_set_group_open()->set_group_id(any_group);
        r.mutable_set_group_open()->set_open(true);
      } else {
        // Into a group it is not in; or into one it is in, a stranger or a
        // friend who blocked it.
        std::vector<uint64_t> member_of;
        for (const auto& [g, members] : r_.groups) {
          if (members.count(me) > 0) member_of.push_back(g);
        }
        const std::set<uint64_t>& mine = r_.friends[me];
        const std::set<uint64_t>& blockers = r_.blocked_by[me];
        const uint64_t how = r_.rng.Uniform(3);
        if (how == 0 || member_of.empty()) {
          r.mutable_invite()->set_group_id(foreign_group);
          r.mutable_invite()->add_user_ids(mine.empty() ? victim : *mine.begin());
        } else {
          r.mutable_invite()->set_group_id(member_of[r_.rng.Uniform(member_of.size())]);
          uint64_t who = victim;
          if (how == 2 && !blockers.empty()) {
            who = *std::next(blockers.begin(), r_.rng.Uniform(blockers.size()));
          }
          r.mutable_invite()->add_user_ids(who);
        }
      }
      break;
    }
    case 10: {  // send across a block (friend or not), or to a stranger
      const std::set<uint64_t>& blockers = r_.blocked_by[me];
      const uint64_t to = blockers.empty() ? victim
                                           : *std::next(blockers.begin(), r_.rng.Uniform(blockers.size()));
      std::string body = absl::StrCat("<b", me, ".", next_body_++, ">");
      const std::string id = c->SendPrivate(to, body);
      HistoryEntry* e = r_.recorder.Add(HistoryEntry::SEND_INVOKED, r_.clients[i].address);
      e->set_conversation(PrivateConversationId(me, to));
      e->set_client_msg_id(id);
      e->set_sender_id(me);
      e->set_body(body);
      e->set_adversary(true);
      return;
    }
    case 11: {  // post to a group it is not in
      std::string body = absl::StrCat("<b", me, ".", next_body_++, ">");
      const std::string id = c->SendGroup(foreign_group, body);
      HistoryEntry* e = r_.recorder.Add(HistoryEntry::SEND_INVOKED, r_.clients[i].address);
      e->set_conversation(GroupConversationId(foreign_group));
      e->set_client_msg_id(id);
      e->set_sender_id(me);
      e->set_body(body);
      e->set_adversary(true);
      return;
    }
    case 12: {  // forged envelope fields: act as the victim
      forged = Chance(r_.rng, 500000) ? "auth_user_id" : "auth_user_id,from";
      forged_auth = victim;
      if (forged != "auth_user_id") {
        for (const ClientInfo& other : r_.clients) {
          Client* o = r_.world.NodeAs<Client>(other.address);
          if (o != nullptr && o->user_id() == victim) forged_from = other.address;
        }
      }
      const uint64_t k = r_.rng.Uniform(3);
      if (k == 0) {
        r.mutable_update_profile()->set_nickname(absl::StrCat("forged", r_.rng.Uniform(1000)));
      } else if (k == 1) {
        r.mutable_member_ids()->set_group_id(foreign_group);
      } else {
        r.mutable_user_groups()->set_user_id(victim);
      }
      break;
    }
    case 13: {  // internal operations
      const uint64_t k = r_.rng.Uniform(5);
      if (k == 0) {
        r.mutable_check_friends()->set_owner_id(victim);
        r.mutable_check_friends()->add_user_ids(me);
      } else if (k == 1) {
        r.mutable_membership_history()->set_user_id(victim);
      } else if (k == 2) {
        r.mutable_shard_sync()->set_user_id(victim);
      } else if (k == 3) {
        r.mutable_kv_get()->add_prefixes("presence/");
      } else {
        r.mutable_shard_list_conversations()->set_user_id(victim);
      }
      break;
    }
    case 14: {  // befriend somebody who blocked it; or recall its own message past the window
      const std::set<uint64_t>& blockers = r_.blocked_by[me];
      if (!blockers.empty() && Chance(r_.rng, 500000)) {
        r.mutable_add_friend()->set_friend_id(
            *std::next(blockers.begin(), r_.rng.Uniform(blockers.size())));
        break;
      }
      // Its oldest acknowledged message still in the history's reach.
      const HistoryEntry* oldest = nullptr;
      for (const HistoryEntry& e : r_.recorder.history().entries()) {
        if (e.kind() == HistoryEntry::SEND_ACKED && e.sender_id() == me) {
          oldest = &e;
          break;
        }
      }
      if (oldest == nullptr) return;
      const std::string id = c->Recall(oldest->conversation(), oldest->seq());
      HistoryEntry* e = r_.recorder.Add(HistoryEntry::SEND_INVOKED, r_.clients[i].address);
      e->set_conversation(oldest->conversation());
      e->set_seq(oldest->seq());
      e->set_client_msg_id(id);
      e->set_sender_id(me);
      e->set_detail("recall");
      e->set_adversary(true);
      return;
    }
    default:  // list its own conversations (judged for what it lists)
      r.mutable_list_conversations();
      break;
  }
  Issue(i, r, nullptr, /*adversary=*/true, forged, forged_auth, forged_from);
}

void WorkloadDriver::DoModerate() {
  size_t i = 0;
  Client* c = OnlineClient(&i);
  if (c == nullptr || IsAdversary(i)) return;
  const uint64_t me = c->user_id();
  std::vector<uint64_t> owned;
  for (const auto& [g, owner] : r_.group_owner) {
    if (owner == me && r_.groups.count(g) > 0) owned.push_back(g);
  }
  const uint64_t k = r_.rng.Uniform(10);
  Request r;
  if (k < 2 || owned.empty()) {  // block (attackers first) or unblock
    size_t j = 0;
    Client* other = Chance(r_.rng, 700000) ? OnlineAdversary(&j) : OnlineClient(&j);
    if (other == nullptr || other->user_id() == me) return;
    const uint64_t target = other->user_id();
    const bool block = r_.blocked_by[target].count(me) == 0 || Chance(r_.rng, 200000);
    r.mutable_block()->set_target_id(target);
    r.mutable_block()->set_blocked(block);
    Issue(i, r, [this, me, target, block](const Reply& reply) {
      if (reply.status().code() != CODE_OK) return;
      if (block) {
        r_.blocked_by[target].insert(me);
      } else {
        r_.blocked_by[target].erase(me);
      }
    });
    return;
  }
  const uint64_t g = owned[r_.rng.Uniform(owned.size())];
  if (k < 6) {  // kick a member, attackers first
    std::vector<uint64_t> members, bad;
    for (uint64_t u : r_.groups[g]) {
      if (u == me) continue;
      members.push_back(u);
      for (size_t x = 0; x < r_.clients.size(); ++x) {
        Client* o = r_.world.NodeAs<Client>(r_.clients[x].address);
        if (o != nullptr && o->user_id() == u && IsAdversary(x)) bad.push_back(u);
      }
    }
    if (members.empty()) return;
    const uint64_t target = !bad.empty() ? bad[r_.rng.Uniform(bad.size())]
                                         : members[r_.rng.Uniform(members.size())];
    r.mutable_kick()->set_group_id(g);
    r.mutable_kick()->set_user_id(target);
    Issue(i, r, [this, g, target](const Reply& reply) {
      if (reply.status().code() != CODE_OK) return;
      r_.groups[g].erase(target);
      r_.kicked.insert({g, target});
    });
  } else if (k < 8) {  // open or close it
    const bool open = r_.open_groups.count(g) == 0;
    r.mutable_set_group_open()->set_group_id(g);
    r.mutable_set_group_open()->set_open(open);
    Issue(i, r, [this, g, open](const Reply& reply) {
      if (reply.status().code() != CODE_OK) return;
      if (open) {
        r_.open_groups.insert(g);
      } else {
        r_.open_groups.erase(g);
      }
    });
  } else if (k < 9) {  // invite a kicked friend back (or any friend)
    std::vector<uint64_t> pool;
    for (const auto& [kg, u] : r_.kicked) {
      if (kg == g && r_.friends[me].count(u) > 0) pool.push_back(u);
    }
    if (pool.empty()) pool.assign(r_.friends[me].begin(), r_.friends[me].end());
    if (pool.empty()) return;
    const uint64_t who = pool[r_.rng.Uniform(pool.size())];
    r.mutable_invite()->set_group_id(g);
    r.mutable_invite()->add_user_ids(who);
    Issue(i, r, [this, g, who](const Reply& reply) {
      if (reply.status().code() != CODE_OK) return;
      r_.groups[g].insert(who);
      r_.kicked.erase({g, who});
    });
  } else if (Chance(r_.rng, 300000)) {  // hand the group to a member, or rename it
    std::vector<uint64_t> members;
    for (uint64_t u : r_.groups[g]) {
      if (u != me) members.push_back(u);
    }
    if (members.empty() || Chance(r_.rng, 500000)) {
      r.mutable_rename_group()->set_group_id(g);
      r.mutable_rename_group()->set_name(absl::StrCat("group", g, "-", r_.rng.Uniform(1000)));
      Issue(i, r, nullptr);
      return;
    }
    const uint64_t heir = members[r_.rng.Uniform(members.size())];
    r.mutable_transfer_ownership()->set_group_id(g);
    r.mutable_transfer_ownership()->set_new_owner_id(heir);
    Issue(i, r, [this, g, heir](const Reply& reply) {
      if (reply.status().code() == CODE_OK) r_.group_owner[g] = heir;
    });
  } else if (Chance(r_.rng, 500000)) {  // the owner tries to leave (refused: dissolve instead)
    r.mutable_leave_group()->set_group_id(g);
    Issue(i, r, nullptr);
  } else if (Chance(r_.rng, 500000)) {  // dissolve, rarely
    r.mutable_dissolve()->set_group_id(g);
    Issue(i, r, [this, g](const Reply& reply) {
      if (reply.status().code() != CODE_OK) return;
      r_.groups.erase(g);
    });
  }
}

}  // namespace sim
}  // namespace parley
