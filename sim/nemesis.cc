// Nemesis: the fault mix, the fault schedule and the fault-kind table.
#include "sim/nemesis.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "core/client/client.h"
#include "core/kv/kv_service.h"
#include "core/service_node.h"
#include "sim/topology.h"

namespace parley {
namespace sim {
namespace {

void HealPartitions(RunState& r, const ScriptedFault&) { r.world.HealPartitions(); }

bool PartitionNode(RunState& r, const ScriptedFault& f) {
  r.world.Isolate(f.target());
  return true;
}

bool PartitionHalves(RunState& r, const ScriptedFault&) {
  std::vector<std::string> a, b;
  for (const std::string& s : ServerAddresses(r)) (r.nemesis_rng.Bernoulli(0.5) ? a : b).push_back(s);
  for (const std::string& x : a) {
    for (const std::string& y : b) {
      r.world.Block(x, y);
      r.world.Block(y, x);
    }
  }
  return true;
}

bool PartitionOneWay(RunState& r, const ScriptedFault& f) {
  for (const std::string& other : ServerAddresses(r)) {
    if (other != f.target()) r.world.Block(f.target(), other);
  }
  for (const ClientInfo& c : r.clients) r.world.Block(f.target(), c.address);
  return true;
}

bool Crash(RunState& r, const ScriptedFault& f) {
  r.world.Crash(f.target());
  return true;
}
void Restart(RunState& r, const ScriptedFault& f) { r.world.Restart(f.target()); }

bool BusDuplicates(RunState& r, const ScriptedFault&) {
  r.world.SetBusDedup(false);
  r.world.BusStorm(20);
  return true;
}
void BusDedupOn(RunState& r, const ScriptedFault&) { r.world.SetBusDedup(true); }

bool BusStorm(RunState& r, const ScriptedFault&) {
  r.world.BusStorm(200);
  return false;
}

bool BusOutage(RunState& r, const ScriptedFault&) {
  r.world.SetBusOutage(true);
  return true;
}
void BusBack(RunState& r, const ScriptedFault&) { r.world.SetBusOutage(false); }

bool ClockSkew(RunState& r, const ScriptedFault& f) {
  r.world.SetSkew(f.target(), absl::Microseconds(static_cast<int64_t>(f.amount_ms() * 1000)),
                  f.drift_ppm());
  return false;  // Heal clears skews
}

bool KvEvict(RunState& r, const ScriptedFault& f) {
  if (auto* kv = r.world.NodeAs<KvService>(kKvAddress)) {
    kv->Evict("friends/", r.nemesis_rng, f.amount_ms() / 100.0);
  }
  return false;
}

bool ClientOffline(RunState& r, const ScriptedFault& f) {
  Client* c = r.world.NodeAs<Client>(f.target());
  if (c == nullptr) return false;
  c->Disconnect();
  return true;
}
void ClientBack(RunState& r, const ScriptedFault& f) {
  if (Client* c = r.world.NodeAs<Client>(f.target())) c->Connect();
}

}  // namespace

const std::vector<FaultKind>& FaultKinds() {
  static const auto* const kKinds = new std::vector<FaultKind>{
      {ScriptedFault::PARTITION_NODE, PartitionNode, HealPartitions, "heal-partition", nullptr},
      {ScriptedFault::PARTITION_HALVES, PartitionHalves, HealPartitions, "heal-partition", nullptr},
      {ScriptedFault::CRASH, Crash, Restart, "restart", nullptr},
      {ScriptedFault::BUS_DUPLICATES, BusDuplicates, BusDedupOn, "bus-dedup-on", nullptr},
      {ScriptedFault::BUS_STORM, BusStorm, nullptr, nullptr, nullptr},
      {ScriptedFault::BUS_OUTAGE, BusOutage, BusBack, "bus-back", nullptr},
      {ScriptedFault::CLOCK_SKEW, ClockSkew, nullptr, nullptr, nullptr},
      {ScriptedFault::CLIENT_OFFLINE, ClientOffline, ClientBack, "client-back", nullptr},
      {ScriptedFault::PARTITION_ONE_WAY, PartitionOneWay, HealPartitions, "heal-partition", nullptr},
      {ScriptedFault::KV_EVICT, KvEvict, nullptr, nullptr, nullptr},
  };
  return *kKinds;
}

const FaultKind* FindFaultKind(ScriptedFault::Kind kind) {
  for (const FaultKind& k : FaultKinds()) {
    if (k.kind == kind) return &k;
  }
  return nullptr;
}

std::string DescribeFault(const ScriptedFault& f) {
  std::string out = absl::StrCat(ScriptedFault::Kind_Name(f.kind()), " ", f.target(), " for ",
                                 absl::FormatDuration(Seconds(f.duration_s())));
  const FaultKind* k = FindFaultKind(f.kind());
  if (k != nullptr && k->describe != nullptr) absl::StrAppend(&out, k->describe(f));
  return out;
}

void Nemesis::DrawMix() {
  const Faults& f = r_.s.faults();
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
  SeededRng& rng = r_.nemesis_rng;
  auto maybe = [&](double max) { return rng.Bernoulli(0.5) ? rng.UniformDouble() * max : 0.0; };
  mix_.loss = maybe(f.loss_max());
  mix_.duplicate = maybe(f.duplicate_max());
  mix_.reorder_ms = maybe(f.reorder_jitter_ms());
  mix_.partition_rate = maybe(f.partition_rate_per_s());
  mix_.crash_rate = maybe(f.crash_rate_per_s());
  mix_.bus_rate = maybe(f.bus_fault_rate_per_s());
  mix_.skew_ms = maybe(f.clock_skew_max_ms());
}

void Nemesis::Schedule() {
  r_.world.At(r_.chaos_start, [this] {
    NetworkConfig net = r_.world.network();
    net.loss = mix_.loss;
    net.duplicate = mix_.duplicate;
    net.reorder_jitter = absl::Microseconds(static_cast<int64_t>(mix_.reorder_ms * 1000));
    r_.world.set_network(net);
    NextFault();
  }, "faults-on");
  for (const ScriptedFault& f : r_.s.faults().script()) {
    r_.world.At(r_.chaos_start + Seconds(f.at_s()), [this, f] { Apply(f); }, "scripted-fault");
  }
}

void Nemesis::NextFault() {
  const double total = mix_.partition_rate + mix_.crash_rate + mix_.bus_rate +
                       (mix_.skew_ms > 0 ? 0.05 : 0);
  if (total <= 0 || r_.world.Now() >= r_.chaos_end) return;
  SeededRng& rng = r_.nemesis_rng;
  const std::vector<std::string> servers = ServerAddresses(r_);
  const double duration_s = 0.5 + rng.UniformDouble() * mix_.duration_max_s;
  double pick = rng.UniformDouble() * total;
  ScriptedFault f;
  f.set_duration_s(duration_s);
  if ((pick -= mix_.partition_rate) < 0) {
    const uint64_t k = rng.Uniform(10);
    f.set_kind(k < 5 ? ScriptedFault::PARTITION_NODE
                     : k < 8 ? ScriptedFault::PARTITION_HALVES : ScriptedFault::PARTITION_ONE_WAY);
    f.set_target(servers[rng.Uniform(servers.size())]);
  } else if ((pick -= mix_.crash_rate) < 0) {
    f.set_kind(ScriptedFault::CRASH);
    f.set_target(servers[rng.Uniform(servers.size())]);
  } else if ((pick -= mix_.bus_rate) < 0) {
    const uint64_t k = rng.Uniform(4);
    if (k == 3) {
      f.set_kind(ScriptedFault::KV_EVICT);
      f.set_amount_ms(50);
      Apply(f);
      const double gap_s = -std::log(1.0 - rng.UniformDouble()) / total;
      r_.world.After(Seconds(gap_s), [this] { NextFault(); }, "nemesis");
      return;
    }
    f.set_kind(k == 0 ? ScriptedFault::BUS_DUPLICATES
                      : k == 1 ? ScriptedFault::BUS_STORM : ScriptedFault::BUS_OUTAGE);
  } else {
    f.set_kind(ScriptedFault::CLOCK_SKEW);
    f.set_target(servers[rng.Uniform(servers.size())]);
    f.set_amount_ms((rng.UniformDouble() * 2 - 1) * mix_.skew_ms);
    f.set_drift_ppm((rng.UniformDouble() * 2 - 1) * 1000);
  }
  Apply(f);
  const double gap_s = -std::log(1.0 - rng.UniformDouble()) / total;
  r_.world.After(Seconds(gap_s), [this] { NextFault(); }, "nemesis");
}

void Nemesis::Apply(const ScriptedFault& f) {
  if (r_.world.Now() >= r_.chaos_end) return;
  ScriptedFault applied = f;
  applied.set_at_s(absl::ToDoubleSeconds(r_.world.Now() - r_.chaos_start));
  r_.applied_faults.push_back(applied);
  r_.recorder.Add(HistoryEntry::FAULT, "nemesis")->set_detail(DescribeFault(f));
  const FaultKind* k = FindFaultKind(f.kind());
  if (k == nullptr || !k->apply(r_, f) || k->heal == nullptr) return;
  auto heal = k->heal;
  r_.world.After(Seconds(f.duration_s()), [this, heal, f] { heal(r_, f); }, k->heal_label);
}

void Nemesis::Heal() {
  r_.recorder.Add(HistoryEntry::FAULT, "nemesis")->set_detail("heal");
  r_.world.HealPartitions();
  r_.world.ClearSkews();
  r_.world.SetBusDedup(true);
  r_.world.SetBusOutage(false);
  NetworkConfig net = r_.world.network();
  net.loss = 0;
  net.duplicate = 0;
  net.reorder_jitter = absl::ZeroDuration();
  r_.world.set_network(net);
  for (const std::string& address : r_.world.Addresses()) {
    if (r_.retired.count(address) == 0) r_.world.Restart(address);
  }
  for (const ClientInfo& c : r_.clients) {
    if (Client* client = r_.world.NodeAs<Client>(c.address)) client->Connect();
  }
}

Faults Nemesis::FixedFaults() const {
  Faults fixed = r_.s.faults();
  fixed.set_random(false);
  fixed.set_loss_max(mix_.loss);
  fixed.set_duplicate_max(mix_.duplicate);
  fixed.set_reorder_jitter_ms(mix_.reorder_ms);
  fixed.set_partition_rate_per_s(0);
  fixed.set_crash_rate_per_s(0);
  fixed.set_bus_fault_rate_per_s(0);
  fixed.set_clock_skew_max_ms(0);
  fixed.clear_script();
  for (const ScriptedFault& f : r_.applied_faults) *fixed.add_script() = f;
  return fixed;
}

}  // namespace sim
}  // namespace parley
