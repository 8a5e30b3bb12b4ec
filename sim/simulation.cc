#include "sim/simulation.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/client/client.h"
#include "core/friend/friend_keys.h"
#include "core/friend/friend_service.h"
#include "core/gateway/gateway.h"
#include "core/group/group_keys.h"
#include "core/group/group_service.h"
#include "core/kv/kv_service.h"
#include "core/message/conversation.h"
#include "core/message/message_keys.h"
#include "core/message/message_shard.h"
#include "core/proto/records.pb.h"
#include "core/registry/registry_service.h"
#include "core/services.h"
#include "core/status.h"
#include "core/testing/bugs.h"
#include "core/user/user_keys.h"
#include "core/user/user_service.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"
#include "sim/history.h"
#include "sim/world.h"

namespace parley {
namespace sim {
namespace {

absl::Duration Seconds(double s) { return absl::Microseconds(static_cast<int64_t>(s * 1e6)); }

// The fault mix one seed runs with.
struct FaultMix {
  double loss = 0;
  double duplicate = 0;
  double reorder_ms = 0;
  double partition_rate = 0;
  double crash_rate = 0;
  double bus_rate = 0;
  double skew_ms = 0;
  double duration_max_s = 5;
};

struct FaultMix;
std::string Describe(const Scenario& s, uint64_t seed, const FaultMix& m);

class Simulation {
 public:
  Simulation(const Scenario& scenario, uint64_t seed, const RunOptions& options)
      : s_(scenario),
        seed_(seed),
        options_(options),
        world_(seed),
        rng_(SeededRng::Derive(seed, "workload")),
        nemesis_rng_(SeededRng::Derive(seed, "nemesis")),
        recorder_([this] { return world_.Now(); }) {}

  RunResult Run();
  std::string Config() {
    DrawFaults();
    return Describe(s_, seed_, mix_);
  }

 private:
  // Topology.
  void Build();
  std::vector<std::string> ServerAddresses() const;
  // Workload.
  void ScheduleSetup();
  void ScheduleChaos();
  void NextAction();
  void DoSend();
  void DoProfile();
  void DoRead();
  void DoRecall();
  void DoJoinLeave();
  void DoChurn();
  void DoListFriends();
  void DoRetire();
  void DoFriendChange();
  void DoAttack();
  void DoModerate();
  void DoFreshSync();
  Client* OnlineClient(size_t* index);
  Client* OnlineAdversary(size_t* index);
  bool IsAdversary(size_t client_index) const;
  // Every client operation other than a send goes through here, so the
  // history has it (REQUEST) with its outcome for the policy checkers.
  void Issue(size_t client_index, const Request& request, std::function<void(const Reply&)> then,
             bool adversary = false, const std::string& forged = "", uint64_t forged_auth = 0,
             const std::string& forged_from = "");
  void RecordRequest(HistoryEntry* e, const Request& request, const Reply* reply);
  void FinishUnanswered();
  void OnServed(const std::string& from, const Envelope& envelope);
  // A recent acknowledged send, from the history (for recalls).
  const HistoryEntry* RecentAck(bool of_other_user, uint64_t me);
  // Nemesis.
  void DrawFaults();
  void ScheduleFaults();
  void NextFault();
  void ScriptedFaultAt(const ScriptedFault& f);
  void RecordFault(const std::string& what);
  void Heal();
  // End.
  FinalState ReadFinalState();
  void CollectProbes(const std::string& address, Node* node);

  struct ClientInfo {
    std::string address;
    size_t user_index;
  };

  const Scenario& s_;
  const uint64_t seed_;
  const RunOptions options_;
  World world_;
  SeededRng rng_;
  SeededRng nemesis_rng_;
  HistoryRecorder recorder_;
  FaultMix mix_;
  std::string config_;
  absl::Time chaos_start_, chaos_end_;

  MemStore user_store_, friend_store_, group_store_;
  std::vector<std::string> gateways_, shards_, services_;
  std::vector<ClientInfo> clients_;
  std::vector<std::string> user_names_;
  // The workload's own belief of the social graph (from acknowledged replies).
  std::map<uint64_t, std::set<uint64_t>> friends_;
  std::map<uint64_t, std::set<uint64_t>> groups_;  // group -> members
  std::map<uint64_t, uint64_t> group_owner_;
  std::map<std::string, uint64_t> probes_;
  std::set<std::string> retired_;  // devices gone for good
  std::vector<ScriptedFault> applied_faults_;
  std::vector<double> profile_apply_ms_;
  std::vector<double> sync_sizes_;
  // The policy side of the workload.
  std::set<std::pair<uint64_t, uint64_t>> kicked_;   // (group, user)
  std::map<uint64_t, std::set<uint64_t>> blocked_by_;  // user -> users who blocked it
  std::set<uint64_t> open_groups_;
  struct Pending {
    size_t client_index;
    Request request;
    int64_t invoked_us;
    bool adversary;
    std::string forged;
  };
  std::map<uint64_t, Pending> unanswered_;
  uint64_t next_issue_ = 1;
  uint64_t next_body_ = 1;
  std::map<std::pair<std::string, uint64_t>, int64_t> body_served_us_;
  int64_t quiet_since_us_ = INT64_MAX;
};

std::vector<std::string> Simulation::ServerAddresses() const {
  std::vector<std::string> out = services_;
  out.insert(out.end(), shards_.begin(), shards_.end());
  out.insert(out.end(), gateways_.begin(), gateways_.end());
  out.push_back(kKvAddress);
  out.push_back(kRegistryAddress);
  return out;
}

void Simulation::Build() {
  const Topology& t = s_.topology();
  world_.set_lose_unsynced_batch(s_.faults().lose_unsynced_batch());
  world_.OnNodeGone([this](const std::string& a, Node* n) { CollectProbes(a, n); });
  NetworkConfig net;
  net.latency = absl::Microseconds(static_cast<int64_t>(s_.network().latency_ms() * 1000));
  net.jitter = absl::Microseconds(static_cast<int64_t>(s_.network().jitter_ms() * 1000));
  world_.set_network(net);

  world_.AddNode(kRegistryAddress, [](Env* env) { return std::make_unique<RegistryService>(env); });
  world_.AddNode(kKvAddress, [](Env* env) { return std::make_unique<KvService>(env); });
  auto replicas = [&](const char* service, uint32_t n, MemStore* store, auto make) {
    for (uint32_t i = 0; i < std::max<uint32_t>(1, n); ++i) {
      const std::string id = absl::StrCat(i + 1);
      const std::string address = InstanceAddress(service, id);
      services_.push_back(address);
      world_.AddNode(address, [make, id](Env* env) { return make(env, id); }, store);
    }
  };
  replicas(kUserService, t.user_replicas(), &user_store_, [](Env* env, const std::string& id) {
    UserOptions o;
    o.instance_id = id;
    return std::make_unique<UserService>(env, o);
  });
  const uint32_t cache_ttl_ms = t.friend_cache_ttl_ms();
  const uint32_t fill_delay_ms = t.friend_fill_delay_ms();
  replicas(kFriendService, t.friend_replicas(), &friend_store_,
           [cache_ttl_ms, fill_delay_ms](Env* env, const std::string& id) {
    FriendOptions o;
    o.instance_id = id;
    if (cache_ttl_ms > 0) o.cache_ttl = absl::Milliseconds(cache_ttl_ms);
    o.fill_delay = absl::Milliseconds(fill_delay_ms);
    return std::make_unique<FriendService>(env, o);
  });
  const uint32_t max_members = t.group_max_members();
  replicas(kGroupService, t.group_replicas(), &group_store_, [max_members](Env* env, const std::string& id) {
    GroupOptions o;
    o.instance_id = id;
    if (max_members > 0) o.max_members = max_members;
    return std::make_unique<GroupService>(env, o);
  });
  const uint32_t shards = std::max<uint32_t>(1, t.shards());
  const uint32_t recall_window_ms = t.recall_window_ms();
  for (uint32_t k = 0; k < shards; ++k) {
    shards_.push_back(ShardAddress(k));
    world_.AddNode(ShardAddress(k), [k, shards, recall_window_ms](Env* env) {
      MessageOptions o;
      o.shard = k;
      o.num_shards = shards;
      if (recall_window_ms > 0) o.recall_window = absl::Milliseconds(recall_window_ms);
      return std::make_unique<MessageShard>(env, o);
    });
  }
  for (uint32_t g = 0; g < std::max<uint32_t>(1, t.gateways()); ++g) {
    const std::string id = absl::StrCat(g + 1);
    gateways_.push_back(GatewayAddress(id));
    world_.AddNode(GatewayAddress(id), [id, shards](Env* env) {
      GatewayOptions o;
      o.gateway_id = id;
      o.num_shards = shards;
      return std::make_unique<Gateway>(env, o);
    });
  }
  const Workload& w = s_.workload();
  for (uint32_t u = 0; u < w.users(); ++u) {
    user_names_.push_back(absl::StrCat("user", u));
    const int devices = rng_.Bernoulli(w.second_device_fraction()) ? 2 : 1;
    for (int d = 1; d <= devices; ++d) {
      ClientOptions o;
      o.name = user_names_.back();
      o.password = "password-" + o.name;
      o.device_id = absl::StrCat("d", d);
      o.observer = &recorder_;
      const std::string address = absl::StrCat("client.", o.name, ".", o.device_id);
      clients_.push_back({address, u});
      world_.AddNode(address, [o](Env* env) { return std::make_unique<Client>(env, o); });
    }
  }
}

// ---- workload ---------------------------------------------------------------------------------

Client* Simulation::OnlineClient(size_t* index) {
  for (int attempt = 0; attempt < 8; ++attempt) {
    const size_t i = rng_.Uniform(clients_.size());
    Client* c = world_.NodeAs<Client>(clients_[i].address);
    if (c != nullptr && c->state() == Client::State::kOnline && c->user_id() != 0) {
      if (index != nullptr) *index = i;
      recorder_.SetUser(clients_[i].address, c->user_id());
      return c;
    }
  }
  return nullptr;
}

void Simulation::ScheduleSetup() {
  const Workload& w = s_.workload();
  // Friends, once everybody had time to register and log in.
  world_.After(absl::Seconds(3), [this, w] {
    for (size_t i = 0; i < clients_.size(); ++i) {
      Client* c = world_.NodeAs<Client>(clients_[i].address);
      if (c != nullptr && c->user_id() != 0) recorder_.SetUser(clients_[i].address, c->user_id());
    }
    for (size_t i = 0; i < clients_.size(); ++i) {
      if (clients_[i].address.back() != '1') continue;  // first devices only
      for (uint32_t k = 0; k < w.friends_per_user(); ++k) {
        const size_t j = rng_.Uniform(clients_.size());
        Client* a = world_.NodeAs<Client>(clients_[i].address);
        Client* b = world_.NodeAs<Client>(clients_[j].address);
        if (a == nullptr || b == nullptr || a->user_id() == 0 || b->user_id() == 0 ||
            a->user_id() == b->user_id()) {
          continue;
        }
        Request r;
        r.mutable_add_friend()->set_friend_id(b->user_id());
        const uint64_t x = a->user_id(), y = b->user_id();
        Issue(i, r, [this, x, y](const Reply& reply) {
          if (reply.status().code() == CODE_OK || reply.status().code() == CODE_ALREADY_EXISTS) {
            friends_[x].insert(y);
            friends_[y].insert(x);
          }
        });
      }
    }
  }, "setup-friends");
  // Groups of friends.
  world_.After(absl::Seconds(6), [this, w] {
    for (uint32_t g = 0; g < w.groups(); ++g) {
      size_t oi = 0;
      Client* owner = OnlineClient(&oi);
      if (owner == nullptr) continue;
      const std::set<uint64_t>& mine = friends_[owner->user_id()];
      std::vector<uint64_t> pool(mine.begin(), mine.end());
      Request r;
      r.mutable_create_group()->set_name(absl::StrCat("group", g));
      const bool open = rng_.Bernoulli(w.open_group_fraction());
      r.mutable_create_group()->set_open(open);
      std::vector<uint64_t> members = {owner->user_id()};
      for (uint32_t k = 0; k + 1 < w.group_size() && !pool.empty(); ++k) {
        const size_t pick = rng_.Uniform(pool.size());
        r.mutable_create_group()->add_member_ids(pool[pick]);
        members.push_back(pool[pick]);
        pool.erase(pool.begin() + pick);
      }
      const uint64_t owner_id = owner->user_id();
      Issue(oi, r, [this, owner_id, members, open](const Reply& reply) {
        if (reply.status().code() != CODE_OK) return;
        const uint64_t group = reply.create_group().group().group_id();
        if (open) open_groups_.insert(group);
        group_owner_[group] = owner_id;
        groups_[group].insert(members.begin(), members.end());
      });
    }
  }, "setup-groups");
}

void Simulation::ScheduleChaos() {
  world_.At(chaos_start_, [this] { NextAction(); }, "chaos-start");
}

void Simulation::NextAction() {
  const Workload& w = s_.workload();
  const double rates[] = {w.send_rate_per_s(),         w.profile_change_rate_per_s(),
                          w.read_rate_per_s(),         w.recall_rate_per_s(),
                          w.join_leave_rate_per_s(),   w.churn_rate_per_s(),
                          w.list_friends_rate_per_s(), w.friend_change_rate_per_s(),
                          w.retire_rate_per_s(),       w.adversary_fraction() > 0 ? w.adversary_rate_per_s() : 0,
                          w.moderation_rate_per_s(),   w.fresh_sync_rate_per_s()};
  double total = 0;
  for (double r : rates) total += r;
  if (total <= 0 || world_.Now() >= chaos_end_) return;
  double pick = rng_.UniformDouble() * total;
  size_t kind = 0;
  while (kind + 1 < std::size(rates) && pick >= rates[kind]) pick -= rates[kind++];
  switch (kind) {
    case 0: DoSend(); break;
    case 1: DoProfile(); break;
    case 2: DoRead(); break;
    case 3: DoRecall(); break;
    case 4: DoJoinLeave(); break;
    case 5: DoChurn(); break;
    case 6: DoListFriends(); break;
    case 7: DoFriendChange(); break;
    case 8: DoRetire(); break;
    case 9: DoAttack(); break;
    case 10: DoModerate(); break;
    default: DoFreshSync(); break;
  }
  // Exponential gaps: a Poisson process of actions.
  const double gap_s = -std::log(1.0 - rng_.UniformDouble()) / total;
  world_.After(Seconds(gap_s), [this] { NextAction(); }, "workload");
}

void Simulation::DoSend() {
  size_t i = 0;
  Client* c = OnlineClient(&i);
  if (c == nullptr) return;
  const uint64_t me = c->user_id();
  // Unique per message, so a recalled body can be looked for anywhere.
  std::string body = absl::StrCat("<b", me, ".", next_body_++, ">");
  if (body.size() < s_.workload().body_bytes()) body.resize(s_.workload().body_bytes(), 'x');
  std::vector<uint64_t> my_groups;
  for (const auto& [g, members] : groups_) {
    if (members.count(me) > 0) my_groups.push_back(g);
  }
  if (!groups_.empty() && rng_.Bernoulli(s_.workload().non_member_send_fraction() *
                                         (1 - s_.workload().private_fraction()))) {
    // A user error: posting to some group, member or not.
    auto it = groups_.begin();
    std::advance(it, rng_.Uniform(groups_.size()));
    my_groups = {it->first};
  }
  const bool private_send = my_groups.empty() || rng_.Bernoulli(s_.workload().private_fraction());
  std::string conv, id;
  if (private_send) {
    const std::set<uint64_t>& mine = friends_[me];
    if (mine.empty()) return;
    auto it = mine.begin();
    std::advance(it, rng_.Uniform(mine.size()));
    conv = PrivateConversationId(me, *it);
    id = c->SendPrivate(*it, body);
  } else {
    const uint64_t g = my_groups[rng_.Uniform(my_groups.size())];
    conv = GroupConversationId(g);
    id = c->SendGroup(g, body);
  }
  HistoryEntry* e = recorder_.Add(HistoryEntry::SEND_INVOKED, clients_[i].address);
  e->set_conversation(conv);
  e->set_client_msg_id(id);
  e->set_sender_id(me);
  e->set_body(body);
}

void Simulation::DoProfile() {
  size_t i = 0;
  Client* c = OnlineClient(&i);
  if (c == nullptr) return;
  Request r;
  r.mutable_update_profile()->set_nickname(absl::StrCat("nick", rng_.Uniform(1000000)));
  if (rng_.Bernoulli(0.3)) r.mutable_update_profile()->set_avatar(absl::StrCat("a", rng_.Uniform(100), ".png"));
  const std::string address = clients_[i].address;
  Issue(i, r, [this, address](const Reply& reply) {
    if (reply.status().code() != CODE_OK) return;
    HistoryEntry* e = recorder_.Add(HistoryEntry::PROFILE_UPDATED, address);
    e->set_version(reply.update_profile().profile().version());
    e->set_detail(reply.update_profile().profile().nickname());
  });
}

void Simulation::DoRead() {
  size_t i = 0;
  Client* c = OnlineClient(&i);
  if (c == nullptr || c->delivered().empty()) return;
  const Message& m = c->delivered()[rng_.Uniform(c->delivered().size())];
  Request r;
  r.mutable_read()->set_conversation(m.conversation());
  r.mutable_read()->set_seq(m.seq());
  const std::string address = clients_[i].address;
  const std::string conv = m.conversation();
  Issue(i, r, [this, address, conv](const Reply& reply) {
    if (reply.status().code() != CODE_OK) return;
    HistoryEntry* e = recorder_.Add(HistoryEntry::READ_ACKED, address);
    e->set_conversation(conv);
    e->set_seq(reply.cursor().read_seq());
  });
}

void Simulation::DoRecall() {
  // A recent acknowledged send of some client, found in the history.
  const auto& entries = recorder_.history().entries();
  std::vector<const HistoryEntry*> recent;
  for (int i = entries.size() - 1; i >= 0 && recent.size() < 50; --i) {
    if (entries[i].kind() == HistoryEntry::SEND_ACKED) {
      recent.push_back(&entries[i]);
    }
  }
  if (recent.empty()) return;
  const HistoryEntry* pick = recent[rng_.Uniform(recent.size())];
  const std::string address = pick->client();
  SendReply ack;
  ack.set_conversation(pick->conversation());
  ack.set_seq(pick->seq());
  Client* c = world_.NodeAs<Client>(address);
  if (c == nullptr || c->state() != Client::State::kOnline) return;
  const std::string id = c->Recall(ack.conversation(), ack.seq());
  HistoryEntry* e = recorder_.Add(HistoryEntry::SEND_INVOKED, address);
  e->set_conversation(ack.conversation());
  e->set_seq(ack.seq());
  e->set_client_msg_id(id);
  e->set_sender_id(c->user_id());
  e->set_detail("recall");
}

void Simulation::DoJoinLeave() {
  size_t i = 0;
  Client* c = OnlineClient(&i);
  if (c == nullptr || groups_.empty()) return;
  auto it = groups_.begin();
  std::advance(it, rng_.Uniform(groups_.size()));
  const uint64_t group = it->first;
  const uint64_t me = c->user_id();
  const bool member = it->second.count(me) > 0;
  if (member && group_owner_[group] == me) return;  // owners stay
  Request r;
  if (member) {
    r.mutable_leave_group()->set_group_id(group);
  } else {
    r.mutable_join_group()->set_group_id(group);
  }
  const std::string address = clients_[i].address;
  Issue(i, r, [this, address, group, me, member](const Reply& reply) {
    if (reply.status().code() != CODE_OK) return;
    if (member) {
      groups_[group].erase(me);
    } else {
      groups_[group].insert(me);
    }
    HistoryEntry* e = recorder_.Add(HistoryEntry::MEMBERSHIP_ACKED, address);
    e->set_group_id(group);
    e->set_joined(!member);
    e->set_version(reply.membership().group().version());
  });
}

void Simulation::DoChurn() {
  size_t i = 0;
  Client* c = OnlineClient(&i);
  if (c == nullptr) return;
  const std::string address = clients_[i].address;
  c->Disconnect();
  recorder_.Add(HistoryEntry::CLIENT_OFFLINE, address);
  const double offline_s = -std::log(1.0 - rng_.UniformDouble()) *
                           std::max(0.1, s_.workload().offline_s());
  world_.After(Seconds(offline_s), [this, address] {
    Client* c = world_.NodeAs<Client>(address);
    if (c == nullptr) return;
    c->Connect();
    recorder_.Add(HistoryEntry::CLIENT_ONLINE, address);
  }, "churn-back");
}

void Simulation::DoRetire() {
  size_t i = 0;
  if (OnlineClient(&i) == nullptr) return;
  // Only second devices, so every user keeps one device for the checkers.
  if (clients_[i].address.back() == '1') return;
  world_.Crash(clients_[i].address);
  retired_.insert(clients_[i].address);
  recorder_.Add(HistoryEntry::CLIENT_OFFLINE, clients_[i].address)->set_detail("retired for good");
}

void Simulation::DoListFriends() {
  Client* c = OnlineClient(nullptr);
  if (c == nullptr) return;
  size_t i = 0;
  c = OnlineClient(&i);
  if (c == nullptr) return;
  Request r;
  r.mutable_list_friends();
  const std::string address = clients_[i].address;
  const int64_t invoked_us = absl::ToUnixMicros(world_.Now());
  Issue(i, r, [this, address, invoked_us](const Reply& reply) {
    if (reply.status().code() != CODE_OK) return;
    HistoryEntry* e = recorder_.Add(HistoryEntry::FRIENDS_LISTED, address);
    e->set_invoked_us(invoked_us);
    e->set_version(reply.list_friends().list().version());
    e->set_detail(reply.list_friends().from_cache() ? "cache" : "store");
  });
}

void Simulation::DoFriendChange() {
  size_t ai = 0;
  Client* a = OnlineClient(&ai);
  Client* b = OnlineClient(nullptr);
  if (a == nullptr || b == nullptr || a->user_id() == b->user_id()) return;
  const uint64_t x = a->user_id(), y = b->user_id();
  const bool remove = friends_[x].count(y) > 0 && rng_.Bernoulli(0.3);
  Request r;
  if (remove) {
    r.mutable_remove_friend()->set_friend_id(y);
  } else {
    r.mutable_add_friend()->set_friend_id(y);
  }
  Issue(ai, r, [this, x, y, remove](const Reply& reply) {
    if (reply.status().code() != CODE_OK) return;
    if (remove) {
      friends_[x].erase(y);
      friends_[y].erase(x);
    } else {
      friends_[x].insert(y);
      friends_[y].insert(x);
    }
  });
}

// ---- the access policy's side of the workload ----------------------------------------------

bool Simulation::IsAdversary(size_t client_index) const {
  const Workload& w = s_.workload();
  const size_t attackers = static_cast<size_t>(std::ceil(w.adversary_fraction() * w.users()));
  return clients_[client_index].user_index + attackers >= w.users();
}

Client* Simulation::OnlineAdversary(size_t* index) {
  const Workload& w = s_.workload();
  const size_t attackers = static_cast<size_t>(std::ceil(w.adversary_fraction() * w.users()));
  if (attackers == 0) return nullptr;
  // Attackers are the last users; their clients are at the end of clients_.
  size_t first = clients_.size();
  while (first > 0 && IsAdversary(first - 1)) --first;
  if (first == clients_.size()) return nullptr;
  for (int attempt = 0; attempt < 8; ++attempt) {
    const size_t i = first + rng_.Uniform(clients_.size() - first);
    Client* c = world_.NodeAs<Client>(clients_[i].address);
    if (c != nullptr && c->state() == Client::State::kOnline && c->user_id() != 0) {
      *index = i;
      recorder_.SetUser(clients_[i].address, c->user_id());
      return c;
    }
  }
  return nullptr;
}

void Simulation::Issue(size_t i, const Request& request, std::function<void(const Reply&)> then,
                       bool adversary, const std::string& forged, uint64_t forged_auth,
                       const std::string& forged_from) {
  Client* c = world_.NodeAs<Client>(clients_[i].address);
  if (c == nullptr) return;
  if (c->state() != Client::State::kOnline) {
    // Refused at once by the client itself: never sent, nothing to judge.
    if (then) then(ErrorReply(absl::UnavailableError("the client is not connected")));
    return;
  }
  const uint64_t id = next_issue_++;
  unanswered_[id] = Pending{i, request, absl::ToUnixMicros(world_.Now()), adversary, forged};
  auto done = [this, id, then = std::move(then)](const Reply& reply) {
    auto it = unanswered_.find(id);
    if (it == unanswered_.end()) return;
    const Pending p = std::move(it->second);
    unanswered_.erase(it);
    HistoryEntry* e = recorder_.Add(HistoryEntry::REQUEST, clients_[p.client_index].address);
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

void Simulation::FinishUnanswered() {
  for (const auto& [id, p] : unanswered_) {
    HistoryEntry* e = recorder_.Add(HistoryEntry::REQUEST, clients_[p.client_index].address);
    e->set_invoked_us(p.invoked_us);
    e->set_adversary(p.adversary);
    e->set_forged(p.forged);
    e->set_no_reply(true);
    RecordRequest(e, p.request, nullptr);
  }
  unanswered_.clear();
}

void Simulation::RecordRequest(HistoryEntry* e, const Request& r, const Reply* reply) {
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

void Simulation::OnServed(const std::string& from, const Envelope& envelope) {
  if (from.rfind("svc.message.", 0) != 0) return;
  const int64_t now_us = absl::ToUnixMicros(world_.Now());
  auto note = [&](const Message& m) {
    if (!m.body().empty()) body_served_us_[{m.conversation(), m.seq()}] = now_us;
  };
  if (envelope.has_push()) note(envelope.push().message());
  if (envelope.has_reply() && envelope.reply().has_sync()) {
    for (const ConversationPage& page : envelope.reply().sync().conversations()) {
      for (const Message& m : page.messages()) note(m);
    }
  }
}

const HistoryEntry* Simulation::RecentAck(bool of_other_user, uint64_t me) {
  const auto& entries = recorder_.history().entries();
  std::vector<const HistoryEntry*> recent;
  for (int i = entries.size() - 1; i >= 0 && recent.size() < 50 && i + 5000 >= entries.size(); --i) {
    const HistoryEntry& e = entries[i];
    if (e.kind() != HistoryEntry::SEND_ACKED) continue;
    if (of_other_user ? e.sender_id() != me : e.sender_id() == me) recent.push_back(&e);
  }
  return recent.empty() ? nullptr : recent[rng_.Uniform(recent.size())];
}

void Simulation::DoAttack() {
  size_t i = 0;
  Client* c = OnlineAdversary(&i);
  if (c == nullptr) return;
  const uint64_t me = c->user_id();
  std::vector<uint64_t> groups;
  for (const auto& [g, owner] : group_owner_) groups.push_back(g);
  const uint64_t any_group = groups.empty() ? 1 : groups[rng_.Uniform(groups.size())];
  const uint64_t foreign_group = [&] {
    for (int k = 0; k < 8 && !groups.empty(); ++k) {
      const uint64_t g = groups[rng_.Uniform(groups.size())];
      if (groups_[g].count(me) == 0) return g;
    }
    return any_group;
  }();
  auto some_user = [&] {
    for (int k = 0; k < 8; ++k) {
      Client* o = world_.NodeAs<Client>(clients_[rng_.Uniform(clients_.size())].address);
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
  for (const auto& [g, u] : kicked_) was_kicked = was_kicked || u == me;
  // A kicked attacker tries to get back in more often than anything else.
  const uint64_t kind = was_kicked && rng_.Bernoulli(0.3) ? 1 : rng_.Uniform(16);
  switch (kind) {
    case 0: {  // join a group uninvited: a closed one (refused) or an open one (allowed)
      std::vector<uint64_t> open;
      for (uint64_t g : open_groups_) {
        if (groups_.count(g) > 0 && groups_[g].count(me) == 0) open.push_back(g);
      }
      const uint64_t g = !open.empty() && rng_.Bernoulli(0.5) ? open[rng_.Uniform(open.size())]
                                                              : foreign_group;
      r.mutable_join_group()->set_group_id(g);
      Issue(i, r, [this, g, me](const Reply& reply) {
        if (reply.status().code() == CODE_OK) groups_[g].insert(me);
      }, /*adversary=*/true);
      return;
    }
    case 1: {  // rejoin after a kick
      std::vector<uint64_t> mine;
      for (const auto& [g, u] : kicked_) {
        if (u == me) mine.push_back(g);
      }
      r.mutable_join_group()->set_group_id(mine.empty() ? foreign_group
                                                        : mine[rng_.Uniform(mine.size())]);
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
      sync->set_only_listed(rng_.Bernoulli(0.5));
      sync->set_max_messages(50);
      break;
    }
    case 7: {  // read or ack of a foreign conversation
      const uint64_t other = some_user();
      const std::string conv = rng_.Bernoulli(0.5) ? GroupConversationId(foreign_group)
                                                   : PrivateConversationId(victim, other == victim ? victim + 1 : other);
      const uint64_t how = rng_.Uniform(3);
      if (how == 2) {
        r.mutable_history()->set_conversation(conv);
        r.mutable_history()->set_limit(50);
      } else if (how == 0) {
        r.mutable_read()->set_conversation(conv);
        r.mutable_read()->set_seq(1 + rng_.Uniform(5));
      } else {
        r.mutable_ack()->set_conversation(conv);
        r.mutable_ack()->set_seq(1 + rng_.Uniform(5));
        r.mutable_ack()->set_device_id("d1");
      }
      break;
    }
    case 8: {  // recall somebody else's message
      const HistoryEntry* pick = RecentAck(/*of_other_user=*/true, me);
      if (pick == nullptr) return;
      const std::string id = c->Recall(pick->conversation(), pick->seq());
      HistoryEntry* e = recorder_.Add(HistoryEntry::SEND_INVOKED, clients_[i].address);
      e->set_conversation(pick->conversation());
      e->set_seq(pick->seq());
      e->set_client_msg_id(id);
      e->set_sender_id(me);
      e->set_detail("recall");
      e->set_adversary(true);
      return;
    }
    case 9: {  // kick, dissolve, open, or invite without the right
      const uint64_t k = rng_.Uniform(6);
      if (k == 4) {
        r.mutable_rename_group()->set_group_id(any_group);
        r.mutable_rename_group()->set_name(absl::StrCat("pwned", rng_.Uniform(100)));
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
        for (const auto& [g, members] : groups_) {
          if (members.count(me) > 0) member_of.push_back(g);
        }
        const std::set<uint64_t>& mine = friends_[me];
        const std::set<uint64_t>& blockers = blocked_by_[me];
        const uint64_t how = rng_.Uniform(3);
        if (how == 0 || member_of.empty()) {
          r.mutable_invite()->set_group_id(foreign_group);
          r.mutable_invite()->add_user_ids(mine.empty() ? victim : *mine.begin());
        } else {
          r.mutable_invite()->set_group_id(member_of[rng_.Uniform(member_of.size())]);
          uint64_t who = victim;
          if (how == 2 && !blockers.empty()) {
            who = *std::next(blockers.begin(), rng_.Uniform(blockers.size()));
          }
          r.mutable_invite()->add_user_ids(who);
        }
      }
      break;
    }
    case 10: {  // send across a block (friend or not), or to a stranger
      const std::set<uint64_t>& blockers = blocked_by_[me];
      const uint64_t to = blockers.empty() ? victim
                                           : *std::next(blockers.begin(), rng_.Uniform(blockers.size()));
      std::string body = absl::StrCat("<b", me, ".", next_body_++, ">");
      const std::string id = c->SendPrivate(to, body);
      HistoryEntry* e = recorder_.Add(HistoryEntry::SEND_INVOKED, clients_[i].address);
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
      HistoryEntry* e = recorder_.Add(HistoryEntry::SEND_INVOKED, clients_[i].address);
      e->set_conversation(GroupConversationId(foreign_group));
      e->set_client_msg_id(id);
      e->set_sender_id(me);
      e->set_body(body);
      e->set_adversary(true);
      return;
    }
    case 12: {  // forged envelope fields: act as the victim
      forged = rng_.Bernoulli(0.5) ? "auth_user_id" : "auth_user_id,from";
      forged_auth = victim;
      if (forged != "auth_user_id") {
        for (const ClientInfo& other : clients_) {
          Client* o = world_.NodeAs<Client>(other.address);
          if (o != nullptr && o->user_id() == victim) forged_from = other.address;
        }
      }
      const uint64_t k = rng_.Uniform(3);
      if (k == 0) {
        r.mutable_update_profile()->set_nickname(absl::StrCat("forged", rng_.Uniform(1000)));
      } else if (k == 1) {
        r.mutable_member_ids()->set_group_id(foreign_group);
      } else {
        r.mutable_user_groups()->set_user_id(victim);
      }
      break;
    }
    case 13: {  // internal operations
      const uint64_t k = rng_.Uniform(5);
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
      const std::set<uint64_t>& blockers = blocked_by_[me];
      if (!blockers.empty() && rng_.Bernoulli(0.5)) {
        r.mutable_add_friend()->set_friend_id(
            *std::next(blockers.begin(), rng_.Uniform(blockers.size())));
        break;
      }
      // Its oldest acknowledged message still in the history's reach.
      const HistoryEntry* oldest = nullptr;
      for (const HistoryEntry& e : recorder_.history().entries()) {
        if (e.kind() == HistoryEntry::SEND_ACKED && e.sender_id() == me) {
          oldest = &e;
          break;
        }
      }
      if (oldest == nullptr) return;
      const std::string id = c->Recall(oldest->conversation(), oldest->seq());
      HistoryEntry* e = recorder_.Add(HistoryEntry::SEND_INVOKED, clients_[i].address);
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

void Simulation::DoModerate() {
  size_t i = 0;
  Client* c = OnlineClient(&i);
  if (c == nullptr || IsAdversary(i)) return;
  const uint64_t me = c->user_id();
  std::vector<uint64_t> owned;
  for (const auto& [g, owner] : group_owner_) {
    if (owner == me && groups_.count(g) > 0) owned.push_back(g);
  }
  const uint64_t k = rng_.Uniform(10);
  Request r;
  if (k < 2 || owned.empty()) {  // block (attackers first) or unblock
    size_t j = 0;
    Client* other = rng_.Bernoulli(0.7) ? OnlineAdversary(&j) : OnlineClient(&j);
    if (other == nullptr || other->user_id() == me) return;
    const uint64_t target = other->user_id();
    const bool block = blocked_by_[target].count(me) == 0 || rng_.Bernoulli(0.2);
    r.mutable_block()->set_target_id(target);
    r.mutable_block()->set_blocked(block);
    Issue(i, r, [this, me, target, block](const Reply& reply) {
      if (reply.status().code() != CODE_OK) return;
      if (block) {
        blocked_by_[target].insert(me);
      } else {
        blocked_by_[target].erase(me);
      }
    });
    return;
  }
  const uint64_t g = owned[rng_.Uniform(owned.size())];
  if (k < 6) {  // kick a member, attackers first
    std::vector<uint64_t> members, bad;
    for (uint64_t u : groups_[g]) {
      if (u == me) continue;
      members.push_back(u);
      for (size_t x = 0; x < clients_.size(); ++x) {
        Client* o = world_.NodeAs<Client>(clients_[x].address);
        if (o != nullptr && o->user_id() == u && IsAdversary(x)) bad.push_back(u);
      }
    }
    if (members.empty()) return;
    const uint64_t target = !bad.empty() ? bad[rng_.Uniform(bad.size())]
                                         : members[rng_.Uniform(members.size())];
    r.mutable_kick()->set_group_id(g);
    r.mutable_kick()->set_user_id(target);
    Issue(i, r, [this, g, target](const Reply& reply) {
      if (reply.status().code() != CODE_OK) return;
      groups_[g].erase(target);
      kicked_.insert({g, target});
    });
  } else if (k < 8) {  // open or close it
    const bool open = open_groups_.count(g) == 0;
    r.mutable_set_group_open()->set_group_id(g);
    r.mutable_set_group_open()->set_open(open);
    Issue(i, r, [this, g, open](const Reply& reply) {
      if (reply.status().code() != CODE_OK) return;
      if (open) {
        open_groups_.insert(g);
      } else {
        open_groups_.erase(g);
      }
    });
  } else if (k < 9) {  // invite a kicked friend back (or any friend)
    std::vector<uint64_t> pool;
    for (const auto& [kg, u] : kicked_) {
      if (kg == g && friends_[me].count(u) > 0) pool.push_back(u);
    }
    if (pool.empty()) pool.assign(friends_[me].begin(), friends_[me].end());
    if (pool.empty()) return;
    const uint64_t who = pool[rng_.Uniform(pool.size())];
    r.mutable_invite()->set_group_id(g);
    r.mutable_invite()->add_user_ids(who);
    Issue(i, r, [this, g, who](const Reply& reply) {
      if (reply.status().code() != CODE_OK) return;
      groups_[g].insert(who);
      kicked_.erase({g, who});
    });
  } else if (rng_.Bernoulli(0.3)) {  // hand the group to a member, or rename it
    std::vector<uint64_t> members;
    for (uint64_t u : groups_[g]) {
      if (u != me) members.push_back(u);
    }
    if (members.empty() || rng_.Bernoulli(0.5)) {
      r.mutable_rename_group()->set_group_id(g);
      r.mutable_rename_group()->set_name(absl::StrCat("group", g, "-", rng_.Uniform(1000)));
      Issue(i, r, nullptr);
      return;
    }
    const uint64_t heir = members[rng_.Uniform(members.size())];
    r.mutable_transfer_ownership()->set_group_id(g);
    r.mutable_transfer_ownership()->set_new_owner_id(heir);
    Issue(i, r, [this, g, heir](const Reply& reply) {
      if (reply.status().code() == CODE_OK) group_owner_[g] = heir;
    });
  } else if (rng_.Bernoulli(0.5)) {  // the owner tries to leave (refused: dissolve instead)
    r.mutable_leave_group()->set_group_id(g);
    Issue(i, r, nullptr);
  } else if (rng_.Bernoulli(0.5)) {  // dissolve, rarely
    r.mutable_dissolve()->set_group_id(g);
    Issue(i, r, [this, g](const Reply& reply) {
      if (reply.status().code() != CODE_OK) return;
      groups_.erase(g);
    });
  }
}

void Simulation::DoFreshSync() {
  size_t i = 0;
  Client* c = OnlineClient(&i);
  if (c == nullptr) return;
  Request r;
  const uint64_t k = rng_.Uniform(10);
  if (k < 3 && !c->delivered().empty()) {
    // Older history of one of its conversations, paging back from the end.
    const Message& m = c->delivered()[rng_.Uniform(c->delivered().size())];
    r.mutable_history()->set_conversation(m.conversation());
    r.mutable_history()->set_limit(20);
  } else if (k == 3) {
    // A user with two devices logs the other one out from here (it must log
    // in again with its password).
    const std::string& address = clients_[i].address;
    const std::string other = address.substr(0, address.size() - 1) +
                              (address.back() == '1' ? "2" : "1");
    Client* o = world_.NodeAs<Client>(other);
    if (o == nullptr || retired_.count(other) > 0) return;
    r.mutable_logout_device()->set_device_id(other.substr(other.rfind('.') + 1));
  } else if (k == 4) {
    r.mutable_list_devices();
  } else if (k == 5) {
    r.mutable_find_user()->set_name(user_names_[rng_.Uniform(user_names_.size())]);
  } else {
    r.mutable_sync()->set_max_messages(100);  // every conversation from zero
  }
  Issue(i, r, nullptr);
}

// ---- nemesis -----------------------------------------------------------------------------------

void Simulation::DrawFaults() {
  const Faults& f = s_.faults();
  mix_.duration_max_s = f.fault_duration_max_s() > 0 ? f.fault_duration_max_s() : 5;
  if (!f.random()) {
    mix_.loss = f.loss_max();
    mix_.duplicate = f.duplicate_max();
    mix_.reorder_ms = f.reorder_jitter_ms();
    mix_.partition_rate = f.partition_rate_per_s();
    mix_.crash_rate = f.crash_rate_per_s();
    mix_.bus_rate = f.bus_fault_rate_per_s();
    mix_.skew_ms = f.clock_skew_max_ms();
    return;
  }
  auto maybe = [&](double max) { return nemesis_rng_.Bernoulli(0.5) ? nemesis_rng_.UniformDouble() * max : 0.0; };
  mix_.loss = maybe(f.loss_max());
  mix_.duplicate = maybe(f.duplicate_max());
  mix_.reorder_ms = maybe(f.reorder_jitter_ms());
  mix_.partition_rate = maybe(f.partition_rate_per_s());
  mix_.crash_rate = maybe(f.crash_rate_per_s());
  mix_.bus_rate = maybe(f.bus_fault_rate_per_s());
  mix_.skew_ms = maybe(f.clock_skew_max_ms());
}

void Simulation::RecordFault(const std::string& what) {
  recorder_.Add(HistoryEntry::FAULT, "nemesis")->set_detail(what);
}

void Simulation::ScheduleFaults() {
  world_.At(chaos_start_, [this] {
    NetworkConfig net = world_.network();
    net.loss = mix_.loss;
    net.duplicate = mix_.duplicate;
    net.reorder_jitter = absl::Microseconds(static_cast<int64_t>(mix_.reorder_ms * 1000));
    world_.set_network(net);
    NextFault();
  }, "faults-on");
  for (const ScriptedFault& f : s_.faults().script()) {
    world_.At(chaos_start_ + Seconds(f.at_s()), [this, f] { ScriptedFaultAt(f); }, "scripted-fault");
  }
}

void Simulation::NextFault() {
  const double total = mix_.partition_rate + mix_.crash_rate + mix_.bus_rate +
                       (mix_.skew_ms > 0 ? 0.05 : 0);
  if (total <= 0 || world_.Now() >= chaos_end_) return;
  const std::vector<std::string> servers = ServerAddresses();
  const double duration_s = 0.5 + nemesis_rng_.UniformDouble() * mix_.duration_max_s;
  double pick = nemesis_rng_.UniformDouble() * total;
  ScriptedFault f;
  f.set_duration_s(duration_s);
  if ((pick -= mix_.partition_rate) < 0) {
    const uint64_t k = nemesis_rng_.Uniform(10);
    f.set_kind(k < 5 ? ScriptedFault::PARTITION_NODE
                     : k < 8 ? ScriptedFault::PARTITION_HALVES : ScriptedFault::PARTITION_ONE_WAY);
    f.set_target(servers[nemesis_rng_.Uniform(servers.size())]);
  } else if ((pick -= mix_.crash_rate) < 0) {
    f.set_kind(ScriptedFault::CRASH);
    f.set_target(servers[nemesis_rng_.Uniform(servers.size())]);
  } else if ((pick -= mix_.bus_rate) < 0) {
    const uint64_t k = nemesis_rng_.Uniform(4);
    if (k == 3) {
      f.set_kind(ScriptedFault::KV_EVICT);
      f.set_amount_ms(50);
      ScriptedFaultAt(f);
      const double gap_s = -std::log(1.0 - nemesis_rng_.UniformDouble()) / total;
      world_.After(Seconds(gap_s), [this] { NextFault(); }, "nemesis");
      return;
    }
    f.set_kind(k == 0 ? ScriptedFault::BUS_DUPLICATES
                      : k == 1 ? ScriptedFault::BUS_STORM : ScriptedFault::BUS_OUTAGE);
  } else {
    f.set_kind(ScriptedFault::CLOCK_SKEW);
    f.set_target(servers[nemesis_rng_.Uniform(servers.size())]);
    f.set_amount_ms((nemesis_rng_.UniformDouble() * 2 - 1) * mix_.skew_ms);
    f.set_drift_ppm((nemesis_rng_.UniformDouble() * 2 - 1) * 1000);
  }
  ScriptedFaultAt(f);
  const double gap_s = -std::log(1.0 - nemesis_rng_.UniformDouble()) / total;
  world_.After(Seconds(gap_s), [this] { NextFault(); }, "nemesis");
}

void Simulation::ScriptedFaultAt(const ScriptedFault& f) {
  if (world_.Now() >= chaos_end_) return;
  ScriptedFault applied = f;
  applied.set_at_s(absl::ToDoubleSeconds(world_.Now() - chaos_start_));
  applied_faults_.push_back(applied);
  const absl::Duration d = Seconds(f.duration_s());
  const std::string target = f.target();
  RecordFault(absl::StrCat(ScriptedFault::Kind_Name(f.kind()), " ", target, " for ",
                           absl::FormatDuration(d)));
  switch (f.kind()) {
    case ScriptedFault::PARTITION_NODE:
      world_.Isolate(target);
      world_.After(d, [this] { world_.HealPartitions(); }, "heal-partition");
      break;
    case ScriptedFault::PARTITION_HALVES: {
      std::vector<std::string> servers = ServerAddresses();
      std::vector<std::string> a, b;
      for (const std::string& s : servers) (nemesis_rng_.Bernoulli(0.5) ? a : b).push_back(s);
      for (const std::string& x : a) {
        for (const std::string& y : b) {
          world_.Block(x, y);
          world_.Block(y, x);
        }
      }
      world_.After(d, [this] { world_.HealPartitions(); }, "heal-partition");
      break;
    }
    case ScriptedFault::PARTITION_ONE_WAY:
      for (const std::string& other : ServerAddresses()) {
        if (other != target) world_.Block(target, other);
      }
      for (const ClientInfo& c : clients_) world_.Block(target, c.address);
      world_.After(d, [this] { world_.HealPartitions(); }, "heal-partition");
      break;
    case ScriptedFault::CRASH:
      world_.Crash(target);
      world_.After(d, [this, target] { world_.Restart(target); }, "restart");
      break;
    case ScriptedFault::BUS_DUPLICATES:
      world_.SetBusDedup(false);
      world_.BusStorm(20);
      world_.After(d, [this] { world_.SetBusDedup(true); }, "bus-dedup-on");
      break;
    case ScriptedFault::BUS_STORM:
      world_.BusStorm(200);
      break;
    case ScriptedFault::BUS_OUTAGE:
      world_.SetBusOutage(true);
      world_.After(d, [this] { world_.SetBusOutage(false); }, "bus-back");
      break;
    case ScriptedFault::CLOCK_SKEW:
      world_.SetSkew(target, absl::Microseconds(static_cast<int64_t>(f.amount_ms() * 1000)),
                     f.drift_ppm());
      break;
    case ScriptedFault::KV_EVICT:
      if (auto* kv = world_.NodeAs<KvService>(kKvAddress)) {
        kv->Evict("friends/", nemesis_rng_, f.amount_ms() / 100.0);
      }
      break;
    case ScriptedFault::CLIENT_OFFLINE: {
      Client* c = world_.NodeAs<Client>(target);
      if (c == nullptr) break;
      c->Disconnect();
      world_.After(d, [this, target] {
        if (Client* c = world_.NodeAs<Client>(target)) c->Connect();
      }, "client-back");
      break;
    }
    default:
      break;
  }
}

void Simulation::Heal() {
  RecordFault("heal");
  world_.HealPartitions();
  world_.ClearSkews();
  world_.SetBusDedup(true);
  world_.SetBusOutage(false);
  NetworkConfig net = world_.network();
  net.loss = 0;
  net.duplicate = 0;
  net.reorder_jitter = absl::ZeroDuration();
  world_.set_network(net);
  for (const std::string& address : world_.Addresses()) {
    if (retired_.count(address) == 0) world_.Restart(address);
  }
  for (const ClientInfo& c : clients_) {
    if (Client* client = world_.NodeAs<Client>(c.address)) client->Connect();
  }
}

// ---- the end ----------------------------------------------------------------------------------

void Simulation::CollectProbes(const std::string& address, Node* node) {
  if (auto* s = dynamic_cast<ServiceNode*>(node)) {
    probes_["outbox_replay"] += s->outbox_stats().replayed_after_restart;
    probes_["retry_on_other_instance"] += s->rpc_stats().retried_on_other_instance;
    probes_["rpc_timeout"] += s->rpc_stats().timeouts;
  }
  if (auto* m = dynamic_cast<MessageShard*>(node)) {
    probes_["dedup_hit"] += m->stats().idempotent_replays;
    probes_["dispatch_replay"] += m->stats().dispatch_replayed;
  }
  if (auto* g = dynamic_cast<GroupService*>(node)) {
    for (double ms : g->stats().profile_apply_ms) profile_apply_ms_.push_back(ms);
  }
  if (auto* c = dynamic_cast<Client*>(node)) {
    for (uint32_t n : c->stats().sync_sizes) sync_sizes_.push_back(n);
    probes_["gap_sync"] += c->stats().gap_syncs;
    probes_["client_duplicate_dropped"] += c->stats().duplicates_dropped;
    probes_["client_reconnect"] += c->stats().reconnects;
    probes_["send_retry"] += c->stats().send_retries;
  }
  if (auto* k = dynamic_cast<KvService*>(node)) {
    probes_["lease_expiry"] += k->stats().expired_seen;
    probes_["stale_set_refused"] += k->stats().stale_sets_refused;
    probes_["kv_evicted"] += k->stats().evicted;
    probes_["older_set_refused"] += k->stats().older_sets_refused;
    probes_["older_overwrite"] += k->stats().older_overwrites;
  }
  if (auto* f = dynamic_cast<FriendService*>(node)) {
    probes_["stale_fill_refused"] += f->stats().stale_fills_refused;
    probes_["redelivered_event_ignored"] += f->stats().profile_events_ignored;
  }
  if (auto* g = dynamic_cast<GroupService*>(node)) {
    probes_["redelivered_event_ignored"] += g->stats().profile_events_ignored;
  }
  if (auto* gw = dynamic_cast<Gateway*>(node)) {
    probes_["push_skipped"] += gw->stats().push_targets_skipped;
  }
}

FinalState Simulation::ReadFinalState() {
  FinalState f;
  const int64_t now_us = absl::ToUnixMicros(world_.Now());
  std::vector<KeyValue> rows;
  for (const std::string& shard : shards_) {
    rows.clear();
    world_.store(shard)->Scan("msg/", "", SIZE_MAX, &rows).IgnoreError();
    for (const KeyValue& row : rows) {
      Message m;
      if (!m.ParseFromString(row.second)) continue;
      m.clear_body();
      f.messages[m.conversation()][m.seq()] = m;
    }
    rows.clear();
    world_.store(shard)->Scan("read/", "", SIZE_MAX, &rows).IgnoreError();
    for (const KeyValue& row : rows) {
      const std::string rest = row.first.substr(5);  // "<conv>/<user:20>"
      const size_t slash = rest.rfind('/');
      uint64_t read = 0;
      absl::SimpleAtoi(row.second, &read);
      f.read_cursors[{rest.substr(0, slash), LastIdOf(rest)}] = read;
    }
  }
  rows.clear();
  group_store_.Scan("mhist/", "", SIZE_MAX, &rows).IgnoreError();
  for (const KeyValue& row : rows) {
    // mhist/<user:20>/<group:20>/<version:20>
    uint64_t user = 0, group = 0;
    absl::SimpleAtoi(row.first.substr(6, 20), &user);
    absl::SimpleAtoi(row.first.substr(27, 20), &group);
    std::vector<MembershipInterval>& intervals = f.intervals[{user, group}];
    if (row.second == "1") {
      intervals.emplace_back().set_join_version(LastIdOf(row.first));
    } else if (!intervals.empty()) {
      intervals.back().set_leave_version(LastIdOf(row.first));
    }
  }
  rows.clear();
  group_store_.Scan("member/", "", SIZE_MAX, &rows).IgnoreError();
  for (const KeyValue& row : rows) {
    Member m;
    uint64_t group = 0;
    absl::SimpleAtoi(row.first.substr(7, 20), &group);
    if (m.ParseFromString(row.second)) f.members[group][m.user_id()] = m;
  }
  rows.clear();
  user_store_.Scan("user/", "", SIZE_MAX, &rows).IgnoreError();
  for (const KeyValue& row : rows) {
    UserRecord r;
    if (r.ParseFromString(row.second)) f.profiles[r.profile().user_id()] = r.profile();
  }
  FriendService* friends = nullptr;
  for (const std::string& s : services_) {
    if (!friends) friends = world_.NodeAs<FriendService>(s);
  }
  if (friends != nullptr) {
    for (const auto& [user, profile] : f.profiles) f.friend_lists[user] = friends->Render(user);
  }
  MemStore* kv = world_.store(kKvAddress);
  for (const char* prefix : {"kv/friends/", "kv/presence/"}) {
    rows.clear();
    kv->Scan(prefix, "", SIZE_MAX, &rows).IgnoreError();
    for (const KeyValue& row : rows) {
      KvRecord r;
      if (!r.ParseFromString(row.second)) continue;
      if (r.expires_us() != 0 && r.expires_us() <= now_us) continue;
      if (std::string(prefix) == "kv/friends/") {
        FriendList list;
        if (list.ParseFromString(r.value())) f.friend_cache[list.owner_id()] = list;
      } else {
        PresenceRecord p;
        if (p.ParseFromString(r.value())) f.presence.push_back(p);
      }
    }
  }
  for (const std::string& g : gateways_) {
    if (Gateway* gw = world_.NodeAs<Gateway>(g)) {
      for (const PresenceRecord& p : gw->SessionSnapshot()) {
        f.sessions.insert({p.user_id(), p.device_id(), p.gateway_id(), p.epoch()});
      }
    }
  }
  if (auto* registry = world_.NodeAs<RegistryService>(kRegistryAddress)) {
    for (const char* service : {kUserService, kFriendService, kGroupService, kMessageService,
                                kGatewayService}) {
      const DiscoverReply healthy = registry->Healthy(service);
      for (const Instance& i : healthy.instances()) f.registry[service].insert(i.address());
    }
  }
  for (const std::string& a : services_) {
    const std::string service = a.substr(4, a.rfind('.') - 4);
    if (world_.IsUp(a)) f.live_instances[service].insert(a);
  }
  for (const std::string& a : shards_) {
    if (world_.IsUp(a)) f.live_instances[kMessageService].insert(a);
  }
  for (const std::string& a : gateways_) {
    if (world_.IsUp(a)) f.live_instances[kGatewayService].insert(a);
  }
  for (const ClientInfo& c : clients_) {
    if (Client* client = world_.NodeAs<Client>(c.address)) {
      if (client->user_id() != 0) f.clients[c.address] = client->user_id();
    }
  }
  f.body_served_us = body_served_us_;
  f.quiet_since_us = quiet_since_us_;
  f.recall_window_us = s_.topology().recall_window_ms() > 0
                           ? int64_t{s_.topology().recall_window_ms()} * 1000
                           : absl::ToInt64Microseconds(MessageOptions().recall_window);
  // A skew of up to clock_skew_max_ms either way at either end, drift of up to
  // 1000 ppm over the run, and a second to spare.
  double skew_max_ms = s_.faults().clock_skew_max_ms();
  for (const ScriptedFault& sf : s_.faults().script()) {
    if (sf.kind() == ScriptedFault::CLOCK_SKEW) skew_max_ms = std::max(skew_max_ms, std::abs(sf.amount_ms()));
  }
  f.clock_slack_us = static_cast<int64_t>(2 * skew_max_ms * 1000) +
                     static_cast<int64_t>(1e-3 * 1e6 * absl::ToDoubleSeconds(world_.Now() - world_.Start())) +
                     1000000;
  // Every server store's values (not the clients': a device keeps its own
  // unsent messages), for "no recalled body anywhere".
  std::set<const MemStore*> stores = {&user_store_, &friend_store_, &group_store_};
  for (const std::string& a : shards_) stores.insert(world_.store(a));
  stores.insert(world_.store(kKvAddress));
  stores.insert(world_.store(kRegistryAddress));
  for (const std::string& a : gateways_) stores.insert(world_.store(a));
  for (const MemStore* store : stores) {
    if (store == nullptr) continue;
    rows.clear();
    const_cast<MemStore*>(store)->Scan("", "", SIZE_MAX, &rows).IgnoreError();
    for (const KeyValue& row : rows) f.store_blob.append(row.second);
  }
  return f;
}

std::string Describe(const Scenario& s, uint64_t seed, const FaultMix& m) {
  return absl::StrFormat(
      "scenario=%s seed=%u gateways=%u shards=%u replicas=%u/%u/%u users=%u groups=%u "
      "duration=%.0fs settle=%.0fs send_rate=%.1f/s | faults: loss=%.3f dup=%.3f "
      "reorder=%.0fms partitions=%.3f/s crashes=%.3f/s bus=%.3f/s skew=%.0fms scripted=%d "
      "lose_unsynced=%d%s",
      s.name(), seed, s.topology().gateways(), s.topology().shards(), s.topology().user_replicas(),
      s.topology().friend_replicas(), s.topology().group_replicas(), s.workload().users(),
      s.workload().groups(), s.workload().duration_s(), s.settle_s(),
      s.workload().send_rate_per_s(), m.loss, m.duplicate, m.reorder_ms, m.partition_rate,
      m.crash_rate, m.bus_rate, m.skew_ms, s.faults().script_size(),
      s.faults().lose_unsynced_batch(), s.bug().empty() ? "" : " bug=" + s.bug());
}

RunResult Simulation::Run() {
  RunResult result;
  absl::StatusOr<Bug> bug = s_.bug().empty() ? Bug::kNone : ParseBug(s_.bug());
  if (!bug.ok()) {
    result.seed = seed_;
    result.error = std::string(bug.status().message());
    return result;
  }
  ScopedBug planted(*bug);
  result.seed = seed_;
  world_.set_trace(options_.trace);
  DrawFaults();
  config_ = Describe(s_, seed_, mix_);
  result.config = config_;
  Build();
  world_.OnSend([this](const std::string& from, const std::string&, const Envelope& envelope) {
    OnServed(from, envelope);
  });
  chaos_start_ = world_.Start() + absl::Seconds(8);
  chaos_end_ = chaos_start_ + Seconds(s_.workload().duration_s());
  ScheduleSetup();
  ScheduleChaos();
  ScheduleFaults();
  world_.RunUntil(chaos_end_);
  Heal();
  world_.RunUntil(chaos_end_ + Seconds(std::max(5.0, s_.settle_s())));
  // Settled: every user lists its conversations once more, judged exactly.
  quiet_since_us_ = absl::ToUnixMicros(world_.Now());
  std::set<size_t> listed_users;
  for (size_t i = 0; i < clients_.size(); ++i) {
    Client* c = world_.NodeAs<Client>(clients_[i].address);
    if (c == nullptr || c->state() != Client::State::kOnline || c->user_id() == 0) continue;
    if (!listed_users.insert(clients_[i].user_index).second) continue;
    Request r;
    r.mutable_list_conversations();
    Issue(i, r, nullptr);
  }
  world_.RunUntil(world_.Now() + absl::Seconds(5));
  FinishUnanswered();

  FinalState final_state = ReadFinalState();
  std::vector<std::string> names(s_.checkers().begin(), s_.checkers().end());
  result.violations = RunCheckers(names, recorder_.history(), final_state, &result.error);
  if (*bug == Bug::kCanary && seed_ % 100 == 0) {
    result.violations.push_back({"canary", -1, "the planted canary fails every 100th seed"});
  }
  result.passed = result.error.empty() && result.violations.empty();
  result.events = world_.stats().events;
  result.sim_seconds = absl::ToDoubleSeconds(world_.Now() - world_.Start());
  result.hash = world_.hash();
  for (const std::string& address : world_.Addresses()) {
    if (Node* n = world_.node(address)) CollectProbes(address, n);
  }
  world_.OnNodeGone(nullptr);
  world_.OnSend(nullptr);
  for (const std::string& p : ProbeNames()) result.probes[p] += probes_[p];
  result.profile_apply_ms = profile_apply_ms_;
  result.sync_sizes = sync_sizes_;
  result.faults = applied_faults_;
  result.chaos_start_s = absl::ToDoubleSeconds(chaos_start_ - world_.Start());
  for (const HistoryEntry& e : recorder_.history().entries()) {
    result.sends_acked += e.kind() == HistoryEntry::SEND_ACKED;
    result.sends_failed += e.kind() == HistoryEntry::SEND_FAILED;
    result.deliveries += e.kind() == HistoryEntry::DELIVERED;
  }
  if (options_.keep_history) result.history = recorder_.history();
  // The run's faults as a fixed, scripted schedule: what the shrinker cuts.
  Faults* fixed = result.fixed_faults.mutable_faults();
  *fixed = s_.faults();
  fixed->set_random(false);
  fixed->set_loss_max(mix_.loss);
  fixed->set_duplicate_max(mix_.duplicate);
  fixed->set_reorder_jitter_ms(mix_.reorder_ms);
  fixed->set_partition_rate_per_s(0);
  fixed->set_crash_rate_per_s(0);
  fixed->set_bus_fault_rate_per_s(0);
  fixed->set_clock_skew_max_ms(0);
  fixed->clear_script();
  for (const ScriptedFault& f : applied_faults_) *fixed->add_script() = f;
  if (options_.trace) result.trace = world_.trace();
  return result;
}

class ErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, int column, const std::string& message) override {
    if (error.empty()) error = absl::StrCat("line ", line + 1, ", column ", column + 1, ": ", message);
  }
  std::string error;
};

}  // namespace

std::string RunConfig(const Scenario& scenario, uint64_t seed) {
  Simulation simulation(scenario, seed, RunOptions());
  return simulation.Config();
}

RunResult RunScenario(const Scenario& scenario, uint64_t seed, const RunOptions& options) {
  Simulation simulation(scenario, seed, options);
  return simulation.Run();
}

const std::vector<std::string>& ProbeNames() {
  static const auto* const kNames = new std::vector<std::string>{
      "outbox_replay", "dedup_hit", "dispatch_replay", "gap_sync", "client_duplicate_dropped",
      "client_reconnect", "send_retry", "lease_expiry", "stale_set_refused", "stale_fill_refused",
      "retry_on_other_instance", "rpc_timeout", "redelivered_event_ignored", "push_skipped",
      "kv_evicted", "older_set_refused"};
  return *kNames;
}

Scenario DefaultScenario() {
  Scenario s;
  s.set_name("default");
  s.set_description("a few hundred users, tens of groups, every fault kind, a minute of chaos");
  Topology* t = s.mutable_topology();
  t->set_gateways(3);
  t->set_shards(4);
  t->set_user_replicas(2);
  t->set_friend_replicas(2);
  t->set_group_replicas(2);
  Workload* w = s.mutable_workload();
  w->set_users(200);
  w->set_groups(20);
  w->set_group_size(12);
  w->set_friends_per_user(5);
  w->set_duration_s(60);
  w->set_send_rate_per_s(40);
  w->set_private_fraction(0.6);
  w->set_profile_change_rate_per_s(1);
  w->set_read_rate_per_s(4);
  w->set_recall_rate_per_s(0.5);
  w->set_join_leave_rate_per_s(1);
  w->set_churn_rate_per_s(0.5);
  w->set_offline_s(10);
  w->set_second_device_fraction(0.2);
  w->set_body_bytes(64);
  w->set_list_friends_rate_per_s(3);
  w->set_friend_change_rate_per_s(1);
  w->set_non_member_send_fraction(0.05);
  w->set_retire_rate_per_s(0.05);
  w->set_adversary_fraction(0.05);
  w->set_adversary_rate_per_s(1);
  w->set_moderation_rate_per_s(0.5);
  w->set_open_group_fraction(0.5);
  w->set_fresh_sync_rate_per_s(0.2);
  t->set_friend_cache_ttl_ms(3000);
  s.mutable_network()->set_latency_ms(1);
  s.mutable_network()->set_jitter_ms(2);
  Faults* f = s.mutable_faults();
  f->set_random(true);
  f->set_loss_max(0.02);
  f->set_duplicate_max(0.02);
  f->set_reorder_jitter_ms(30);
  f->set_partition_rate_per_s(0.05);
  f->set_crash_rate_per_s(0.05);
  f->set_bus_fault_rate_per_s(0.05);
  f->set_clock_skew_max_ms(500);
  f->set_fault_duration_max_s(8);
  s.set_settle_s(30);
  s.set_seeds(3);
  return s;
}

absl::StatusOr<Scenario> ParseScenario(const std::string& text, const std::string& name) {
  Scenario scenario;
  google::protobuf::TextFormat::Parser parser;
  ErrorCollector errors;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(text, &scenario)) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": ", errors.error));
  }
  if (scenario.workload().users() == 0) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": workload.users must be positive"));
  }
  if (scenario.workload().duration_s() <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": workload.duration_s must be positive"));
  }
  if (scenario.name().empty()) scenario.set_name(name);
  return scenario;
}

absl::StatusOr<Scenario> LoadScenario(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read scenario file ", path));
  std::stringstream text;
  text << in.rdbuf();
  return ParseScenario(text.str(), path);
}

}  // namespace sim
}  // namespace parley
