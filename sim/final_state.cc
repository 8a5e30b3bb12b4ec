// Final state: messages, read cursors, memberships, profiles, friend lists,
// kv's caches and presence, sessions, the registry's view, live instances,
// and every server store's values, after the run settled.
#include "sim/final_state.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "absl/strings/numbers.h"
#include "core/friend/friend_keys.h"
#include "core/friend/friend_service.h"
#include "core/gateway/gateway.h"
#include "core/group/group_keys.h"
#include "core/kv/kv_keys.h"
#include "core/message/message_keys.h"
#include "core/message/message_shard.h"
#include "core/proto/records.pb.h"
#include "core/registry/registry_service.h"
#include "core/services.h"
#include "core/user/user_keys.h"

namespace parley {
namespace sim {

FinalState ReadFinalState(RunState& r) {
  World& world = r.world;
  FinalState f;
  const int64_t now_us = absl::ToUnixMicros(world.Now());
  std::vector<KeyValue> rows;
  for (const std::string& shard : r.shards) {
    rows.clear();
    world.store(shard)->Scan(message_keys::kAllMessagesPrefix, "", SIZE_MAX, &rows).IgnoreError();
    for (const KeyValue& row : rows) {
      Message m;
      if (!m.ParseFromString(row.second)) continue;
      m.clear_body();
      f.messages[m.conversation()][m.seq()] = m;
    }
    rows.clear();
    world.store(shard)->Scan(message_keys::kReadPrefix, "", SIZE_MAX, &rows).IgnoreError();
    for (const KeyValue& row : rows) {
      std::string conv;
      uint64_t user = 0, read = 0;
      if (!message_keys::ParseRead(row.first, &conv, &user)) continue;
      absl::SimpleAtoi(row.second, &read);
      f.read_cursors[{conv, user}] = read;
    }
  }
  rows.clear();
  r.group_store.Scan(group_keys::kAllHistoryPrefix, "", SIZE_MAX, &rows).IgnoreError();
  for (const KeyValue& row : rows) {
    uint64_t user = 0, group = 0, version = 0;
    if (!group_keys::ParseHistory(row.first, &user, &group, &version)) continue;
    std::vector<MembershipInterval>& intervals = f.intervals[{user, group}];
    if (row.second == "1") {
      intervals.emplace_back().set_join_version(version);
    } else if (!intervals.empty()) {
      intervals.back().set_leave_version(version);
    }
  }
  rows.clear();
  r.group_store.Scan(group_keys::kAllMembersPrefix, "", SIZE_MAX, &rows).IgnoreError();
  for (const KeyValue& row : rows) {
    Member m;
    const uint64_t group = group_keys::MemberGroupOf(row.first);
    if (m.ParseFromString(row.second)) f.members[group][m.user_id()] = m;
  }
  rows.clear();
  r.user_store.Scan(user_keys::kAllUsersPrefix, "", SIZE_MAX, &rows).IgnoreError();
  for (const KeyValue& row : rows) {
    UserRecord u;
    if (u.ParseFromString(row.second)) f.profiles[u.profile().user_id()] = u.profile();
  }
  FriendService* friends = nullptr;
  for (const std::string& s : r.services) {
    if (!friends) friends = world.NodeAs<FriendService>(s);
  }
  if (friends != nullptr) {
    for (const auto& [user, profile] : f.profiles) f.friend_lists[user] = friends->Render(user);
  }
  MemStore* kv = world.store(kKvAddress);
  for (const char* prefix : {friend_keys::kCachePrefix, message_keys::kAllPresencePrefix}) {
    rows.clear();
    kv->Scan(kv_keys::Entry(prefix), "", SIZE_MAX, &rows).IgnoreError();
    for (const KeyValue& row : rows) {
      KvRecord k;
      if (!k.ParseFromString(row.second)) continue;
      if (k.expires_us() != 0 && k.expires_us() <= now_us) continue;
      if (prefix == friend_keys::kCachePrefix) {
        FriendList list;
        if (list.ParseFromString(k.value())) f.friend_cache[list.owner_id()] = list;
      } else {
        PresenceRecord p;
        if (p.ParseFromString(k.value())) f.presence.push_back(p);
      }
    }
  }
  for (const std::string& g : r.gateways) {
    if (Gateway* gw = world.NodeAs<Gateway>(g)) {
      for (const PresenceRecord& p : gw->SessionSnapshot()) {
        f.sessions.insert({p.user_id(), p.device_id(), p.gateway_id(), p.epoch()});
      }
    }
  }
  if (auto* registry = world.NodeAs<RegistryService>(kRegistryAddress)) {
    for (const char* service : {kUserService, kFriendService, kGroupService, kMessageService,
                                kGatewayService}) {
      const DiscoverReply healthy = registry->Healthy(service);
      for (const Instance& i : healthy.instances()) f.registry[service].insert(i.address());
    }
  }
  for (const std::string& a : r.services) {
    const std::string service = a.substr(4, a.rfind('.') - 4);
    if (world.IsUp(a)) f.live_instances[service].insert(a);
  }
  for (const std::string& a : r.shards) {
    if (world.IsUp(a)) f.live_instances[kMessageService].insert(a);
  }
  for (const std::string& a : r.gateways) {
    if (world.IsUp(a)) f.live_instances[kGatewayService].insert(a);
  }
  for (const ClientInfo& c : r.clients) {
    if (Client* client = world.NodeAs<Client>(c.address)) {
      if (client->user_id() != 0) f.clients[c.address] = client->user_id();
    }
  }
  f.body_served_us = r.body_served_us;
  f.quiet_since_us = r.quiet_since_us;
  f.recall_window_us = r.s.topology().recall_window_ms() > 0
                           ? int64_t{r.s.topology().recall_window_ms()} * 1000
                           : absl::ToInt64Microseconds(MessageOptions().recall_window);
  // A skew of up to clock_skew_max_ms either way at either end, drift of up to
  // 1000 ppm over the run, and a second to spare.
  double skew_max_ms = r.s.faults().clock_skew_max_ms();
  for (const ScriptedFault& sf : r.s.faults().script()) {
    if (sf.kind() == ScriptedFault::CLOCK_SKEW) skew_max_ms = std::max(skew_max_ms, std::abs(sf.amount_ms()));
  }
  // 1000 ppm of the run's length is a thousandth of its microseconds.
  f.clock_slack_us = static_cast<int64_t>(2 * skew_max_ms * 1000) +
                     absl::ToInt64Microseconds(world.Now() - world.Start()) / 1000 + 1000000;
  // Every server store's values (not the clients': a device keeps its own
  // unsent messages), for "no recalled body anywhere".
  std::set<const MemStore*> stores = {&r.user_store, &r.friend_store, &r.group_store};
  for (const std::string& a : r.shards) stores.insert(world.store(a));
  stores.insert(world.store(kKvAddress));
  stores.insert(world.store(kRegistryAddress));
  for (const std::string& a : r.gateways) stores.insert(world.store(a));
  for (const MemStore* store : stores) {
    if (store == nullptr) continue;
    rows.clear();
    const_cast<MemStore*>(store)->Scan("", "", SIZE_MAX, &rows).IgnoreError();
    for (const KeyValue& row : rows) f.store_blob.append(row.second);
  }
  return f;
}

}  // namespace sim
}  // namespace parley
