// Topology: the registry, kv, service replicas, message shards, gateways and
// clients of one run, built through the node factory.
#include "sim/topology.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/nodes.h"
#include "sim/ratio.h"

namespace parley {
namespace sim {

std::vector<std::string> ServerAddresses(const Topology& t) {
  std::vector<std::string> out;
  auto replicas = [&](NodeRole role, uint32_t n) {
    for (uint32_t i = 0; i < std::max<uint32_t>(1, n); ++i) {
      out.push_back(NodeAddress(role, absl::StrCat(i + 1)));
    }
  };
  replicas(NodeRole::kUser, t.user_replicas());
  replicas(NodeRole::kFriend, t.friend_replicas());
  replicas(NodeRole::kGroup, t.group_replicas());
  for (uint32_t k = 0; k < std::max<uint32_t>(1, t.shards()); ++k) {
    out.push_back(NodeAddress(NodeRole::kMessageShard, absl::StrCat(k)));
  }
  replicas(NodeRole::kGateway, t.gateways());
  out.push_back(kKvAddress);
  out.push_back(kRegistryAddress);
  return out;
}

void BuildTopology(RunState& r) {
  const Topology& t = r.s.topology();
  NetworkConfig net;
  net.latency = absl::Microseconds(static_cast<int64_t>(r.s.network().latency_ms() * 1000));
  net.jitter = absl::Microseconds(static_cast<int64_t>(r.s.network().jitter_ms() * 1000));
  r.world.set_network(net);

  NodeOptions options;
  if (t.friend_cache_ttl_ms() > 0) options.friends.cache_ttl = absl::Milliseconds(t.friend_cache_ttl_ms());
  options.friends.fill_delay = absl::Milliseconds(t.friend_fill_delay_ms());
  if (t.group_max_members() > 0) options.group.max_members = t.group_max_members();
  const uint32_t shards = std::max<uint32_t>(1, t.shards());
  options.message.num_shards = shards;
  if (t.recall_window_ms() > 0) options.message.recall_window = absl::Milliseconds(t.recall_window_ms());
  options.gateway.num_shards = shards;

  auto add = [&](NodeRole role, const std::string& id, MemStore* store = nullptr) {
    const std::string address = NodeAddress(role, id);
    r.world.AddNode(address, NodeFactoryFor(role, id, options), store);
    return address;
  };
  add(NodeRole::kRegistry, "");
  add(NodeRole::kKv, "");
  auto replicas = [&](NodeRole role, uint32_t n, MemStore* store) {
    for (uint32_t i = 0; i < std::max<uint32_t>(1, n); ++i) {
      r.services.push_back(add(role, absl::StrCat(i + 1), store));
    }
  };
  replicas(NodeRole::kUser, t.user_replicas(), &r.user_store);
  replicas(NodeRole::kFriend, t.friend_replicas(), &r.friend_store);
  replicas(NodeRole::kGroup, t.group_replicas(), &r.group_store);
  for (uint32_t k = 0; k < shards; ++k) r.shards.push_back(add(NodeRole::kMessageShard, absl::StrCat(k)));
  for (uint32_t g = 0; g < std::max<uint32_t>(1, t.gateways()); ++g) {
    r.gateways.push_back(add(NodeRole::kGateway, absl::StrCat(g + 1)));
  }
  const Workload& w = r.s.workload();
  std::vector<std::pair<std::string, NodeFactory>> clients;
  for (uint32_t u = 0; u < w.users(); ++u) {
    r.user_names.push_back(absl::StrCat("user", u));
    const int devices = Chance(r.rng, Ppm(w.second_device_fraction())) ? 2 : 1;
    for (int d = 1; d <= devices; ++d) {
      NodeOptions o;
      o.client.name = r.user_names.back();
      o.client.password = "password-" + o.client.name;
      o.client.device_id = absl::StrCat("d", d);
      o.client.observer = &r.recorder;
      if (t.client_discover_interval_ms() > 0) {
        o.client.discover_interval = absl::Milliseconds(t.client_discover_interval_ms());
      }
      if (t.client_ping_interval_ms() > 0) {
        o.client.ping_interval = absl::Milliseconds(t.client_ping_interval_ms());
      }
      if (t.client_sync_interval_ms() > 0) {
        o.client.sync_interval = absl::Milliseconds(t.client_sync_interval_ms());
      }
      if (t.client_ack_delay_ms() > 0) o.client.ack_delay = absl::Milliseconds(t.client_ack_delay_ms());
      const std::string address = absl::StrCat("client.", o.client.name, ".", o.client.device_id);
      r.clients.push_back({address, u});
      clients.emplace_back(address, NodeFactoryFor(NodeRole::kClient, "", std::move(o)));
    }
  }
  // Clients either start with the servers or, with a start delay, once the
  // gateways have registered: then a client's first discovery finds them,
  // however seldom it discovers again.
  auto start_clients = [&world = r.world, clients = std::move(clients)] {
    for (const auto& [address, factory] : clients) world.AddNode(address, factory);
  };
  if (t.client_start_delay_ms() == 0) {
    start_clients();
  } else {
    r.world.After(absl::Milliseconds(t.client_start_delay_ms()), start_clients, "clients-start");
  }
}

}  // namespace sim
}  // namespace parley
