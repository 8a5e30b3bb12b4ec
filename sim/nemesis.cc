// Nemesis: the fault mix, the fault schedule and the fault-kind table.
#include "sim/nemesis.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/client/client.h"
#include "core/kv/kv_service.h"
#include "core/service_node.h"
#include "sim/ratio.h"
#include "sim/topology.h"

namespace parley {
namespace sim {
namespace {

// ---- draws (schedule time) ---------------------------------------------------------------------

void DrawServer(const FaultPlan& plan, SeededRng& rng, ScriptedFault* f) {
  f->set_target(plan.servers[rng.Uniform(plan.servers.size())]);
}

void DrawSkew(const FaultPlan& plan, SeededRng& rng, ScriptedFault* f) {
  DrawServer(plan, rng, f);
  const int64_t skew_us = plan.mix.skew_us;
  f->set_amount_ms((static_cast<int64_t>(rng.Uniform(2 * skew_us + 1)) - skew_us) / 1000.0);
  f->set_drift_ppm(static_cast<int64_t>(rng.Uniform(2001)) - 1000);
}

void DrawEvictShare(const FaultPlan&, SeededRng&, ScriptedFault* f) { f->set_amount_ms(50); }

// A disk fault: a server, and how often its reads or writes fail (10% to 100%).
void DrawDiskFailures(const FaultPlan& plan, SeededRng& rng, ScriptedFault* f) {
  DrawServer(plan, rng, f);
  f->set_amount_ms(10 + static_cast<int64_t>(rng.Uniform(91)));
}

// A slow disk: a server, and 1 to 50 ms per write.
void DrawDiskStall(const FaultPlan& plan, SeededRng& rng, ScriptedFault* f) {
  DrawServer(plan, rng, f);
  f->set_amount_ms(1 + static_cast<int64_t>(rng.Uniform(50)));
}

void FixHalves(const FaultPlan& plan, SeededRng& rng, ScriptedFault* f) {
  if (f->side_size() > 0) return;
  for (const std::string& s : plan.servers) {
    if (rng.Uniform(2) == 0) f->add_side(s);
  }
}

void FixVictims(const FaultPlan&, SeededRng& rng, ScriptedFault* f) {
  // Never 0: 0 means "not drawn yet".
  while (f->victims_seed() == 0) f->set_victims_seed(rng.Next());
}

// ---- apply and heal (play time: no randomness) -------------------------------------------------

// A partition's filters are kept in r.fault_filters by its apply; the
// nemesis removes exactly those when the fault heals (Nemesis::Apply), so the
// end of one partition heals no other.
void HealOwnFilters(RunState&, const ScriptedFault&) {}

bool PartitionNode(RunState& r, const ScriptedFault& f) {
  r.fault_filters.push_back(r.world.Isolate(f.target()));
  return true;
}

bool PartitionHalves(RunState& r, const ScriptedFault& f) {
  const std::set<std::string> side(f.side().begin(), f.side().end());
  std::vector<std::string> a, b;
  for (const std::string& s : ServerAddresses(r.s.topology())) {
    (side.count(s) > 0 ? a : b).push_back(s);
  }
  for (const std::string& x : a) {
    for (const std::string& y : b) {
      r.fault_filters.push_back(r.world.Block(x, y));
      r.fault_filters.push_back(r.world.Block(y, x));
    }
  }
  return true;
}

bool PartitionOneWay(RunState& r, const ScriptedFault& f) {
  for (const std::string& other : ServerAddresses(r.s.topology())) {
    if (other != f.target()) r.fault_filters.push_back(r.world.Block(f.target(), other));
  }
  for (const ClientInfo& c : r.clients) {
    r.fault_filters.push_back(r.world.Block(f.target(), c.address));
  }
  return true;
}

bool Crash(RunState& r, const ScriptedFault& f) {
  r.world.Crash(f.target());
  return true;
}
// Only a node still down: a fail-stop may have restarted it meanwhile, and
// Restart of a live node crashes it first.
void Restart(RunState& r, const ScriptedFault& f) {
  if (!r.world.IsUp(f.target())) r.world.Restart(f.target());
}

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
    SeededRng victims(f.victims_seed());
    kv->Evict("friends/", victims, f.amount_ms() / 100.0);
  }
  return false;
}

// Percent -> parts per million.
uint32_t PercentPpm(double percent) { return static_cast<uint32_t>(Ppm(percent / 100)); }

bool DiskWriteFail(RunState& r, const ScriptedFault& f) {
  FaultyStore* disk = r.world.disk(f.target());
  if (disk == nullptr) return false;
  disk->FailWrites(PercentPpm(f.amount_ms()));
  return true;
}
void DiskWritesBack(RunState& r, const ScriptedFault& f) {
  if (FaultyStore* disk = r.world.disk(f.target())) disk->FailWrites(0);
}

bool DiskReadFail(RunState& r, const ScriptedFault& f) {
  FaultyStore* disk = r.world.disk(f.target());
  if (disk == nullptr) return false;
  disk->FailReads(PercentPpm(f.amount_ms()));
  return true;
}
void DiskReadsBack(RunState& r, const ScriptedFault& f) {
  if (FaultyStore* disk = r.world.disk(f.target())) disk->FailReads(0);
}

bool DiskSlow(RunState& r, const ScriptedFault& f) {
  FaultyStore* disk = r.world.disk(f.target());
  if (disk == nullptr) return false;
  disk->SlowWrites(absl::Microseconds(Micros(f.amount_ms() / 1000)));
  return true;
}
void DiskFast(RunState& r, const ScriptedFault& f) {
  if (FaultyStore* disk = r.world.disk(f.target())) disk->SlowWrites(absl::ZeroDuration());
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

// ---- descriptions ------------------------------------------------------------------------------

std::string DescribeHalves(const ScriptedFault& f) {
  return absl::StrCat(" side=[", absl::StrJoin(f.side(), ","), "]");
}
std::string DescribeSkew(const ScriptedFault& f) {
  return absl::StrCat(" by ", f.amount_ms(), "ms drift ", f.drift_ppm(), "ppm");
}
std::string DescribeEvict(const ScriptedFault& f) {
  return absl::StrCat(" ", f.amount_ms(), "% victims_seed=", f.victims_seed());
}
std::string DescribePercent(const ScriptedFault& f) {
  return absl::StrCat(" at ", f.amount_ms(), "%");
}
std::string DescribeStall(const ScriptedFault& f) {
  return absl::StrCat(" at ", f.amount_ms(), "ms per write");
}

}  // namespace

const std::vector<FaultKind>& FaultKinds() {
  // Rates: a partition is of one node half the time, halves 3 in 10, one-way
  // 2 in 10; bus faults split four ways (kv eviction among them); a skew
  // every 20 s when the mix skews clocks at all.
  static const auto* const kKinds = new std::vector<FaultKind>{
      {ScriptedFault::PARTITION_NODE, [](const FaultMix& m) { return m.partition_uhz * 5 / 10; },
       DrawServer, nullptr, PartitionNode, HealOwnFilters, "heal-partition", nullptr},
      {ScriptedFault::PARTITION_HALVES, [](const FaultMix& m) { return m.partition_uhz * 3 / 10; },
       nullptr, FixHalves, PartitionHalves, HealOwnFilters, "heal-partition", DescribeHalves},
      {ScriptedFault::PARTITION_ONE_WAY, [](const FaultMix& m) { return m.partition_uhz * 2 / 10; },
       DrawServer, nullptr, PartitionOneWay, HealOwnFilters, "heal-partition", nullptr},
      {ScriptedFault::CRASH, [](const FaultMix& m) { return m.crash_uhz; }, DrawServer, nullptr,
       Crash, Restart, "restart", nullptr},
      {ScriptedFault::BUS_DUPLICATES, [](const FaultMix& m) { return m.bus_uhz / 4; }, nullptr,
       nullptr, BusDuplicates, BusDedupOn, "bus-dedup-on", nullptr},
      {ScriptedFault::BUS_STORM, [](const FaultMix& m) { return m.bus_uhz / 4; }, nullptr,
       nullptr, BusStorm, nullptr, nullptr, nullptr},
      {ScriptedFault::BUS_OUTAGE, [](const FaultMix& m) { return m.bus_uhz / 4; }, nullptr,
       nullptr, BusOutage, BusBack, "bus-back", nullptr},
      {ScriptedFault::KV_EVICT, [](const FaultMix& m) { return m.bus_uhz / 4; },
       DrawEvictShare, FixVictims, KvEvict, nullptr, nullptr, DescribeEvict},
      {ScriptedFault::CLOCK_SKEW, [](const FaultMix& m) -> uint64_t { return m.skew_us > 0 ? 50000 : 0; },
       DrawSkew, nullptr, ClockSkew, nullptr, nullptr, DescribeSkew},
      {ScriptedFault::CLIENT_OFFLINE, nullptr, nullptr, nullptr, ClientOffline, ClientBack,
       "client-back", nullptr},
      // Storage faults: failed writes and failed reads 4 in 10 each, slow disks 2 in 10.
      {ScriptedFault::DISK_WRITE_FAIL, [](const FaultMix& m) { return m.storage_uhz * 4 / 10; },
       DrawDiskFailures, nullptr, DiskWriteFail, DiskWritesBack, "disk-writes-back",
       DescribePercent},
      {ScriptedFault::DISK_READ_FAIL, [](const FaultMix& m) { return m.storage_uhz * 4 / 10; },
       DrawDiskFailures, nullptr, DiskReadFail, DiskReadsBack, "disk-reads-back",
       DescribePercent},
      {ScriptedFault::DISK_SLOW, [](const FaultMix& m) { return m.storage_uhz * 2 / 10; },
       DrawDiskStall, nullptr, DiskSlow, DiskFast, "disk-fast", DescribeStall},
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
  mix_.duration_max_us = f.fault_duration_max_s() > 0 ? Micros(f.fault_duration_max_s()) : 5000000;
  const uint64_t loss = Ppm(f.loss_max()), duplicate = Ppm(f.duplicate_max());
  const int64_t reorder = Micros(f.reorder_jitter_ms() / 1000);
  const uint64_t partition = MicroHz(f.partition_rate_per_s()), crash = MicroHz(f.crash_rate_per_s()),
                 bus = MicroHz(f.bus_fault_rate_per_s());
  const int64_t skew = Micros(f.clock_skew_max_ms() / 1000);
  const uint64_t storage = MicroHz(f.storage_fault_rate_per_s());
  if (!f.random()) {
    mix_.storage_uhz = storage;
    mix_.loss_ppm = loss;
    mix_.duplicate_ppm = duplicate;
    mix_.reorder_us = reorder;
    mix_.partition_uhz = partition;
    mix_.crash_uhz = crash;
    mix_.bus_uhz = bus;
    mix_.skew_us = skew;
    return;
  }
  // Swarm testing: each kind on or off, and when on, up to its maximum.
  SeededRng& rng = r_.nemesis_rng;
  auto maybe = [&](uint64_t max) -> uint64_t {
    return rng.Uniform(2) == 0 ? rng.Uniform(max + 1) : 0;
  };
  mix_.loss_ppm = maybe(loss);
  mix_.duplicate_ppm = maybe(duplicate);
  mix_.reorder_us = maybe(reorder);
  mix_.partition_uhz = maybe(partition);
  mix_.crash_uhz = maybe(crash);
  mix_.bus_uhz = maybe(bus);
  mix_.skew_us = maybe(skew);
  // Drawn only where the scenario asks for storage faults, so that scenarios
  // without them keep the stream (and the runs) they had.
  if (storage > 0) mix_.storage_uhz = maybe(storage);
}

void Nemesis::Plan() {
  if (planned_) return;
  planned_ = true;
  DrawMix();
  const FaultPlan plan{r_.s, mix_, ServerAddresses(r_.s.topology())};
  const double duration_s = r_.s.workload().duration_s();
  // Drawn faults: a Poisson process over the kinds' rates, from the start of
  // chaos. The nemesis stream picks when and which; each fault's own stream
  // ("fault#<index>") draws its duration, target and amounts, so cutting a
  // fault from the schedule changes no other fault.
  const std::vector<FaultKind>& kinds = FaultKinds();
  std::vector<uint64_t> rates;
  uint64_t total = 0;
  for (const FaultKind& k : kinds) {
    rates.push_back(k.rate != nullptr ? k.rate(mix_) : 0);
    total += rates.back();
  }
  SeededRng& rng = r_.nemesis_rng;
  const int64_t mean_gap_us = MeanIntervalMicros(total);
  const int64_t duration_us = Micros(duration_s);
  int64_t t_us = 0;
  for (int index = 0; total > 0 && t_us < duration_us && index < kMaxDrawnFaults; ++index) {
    uint64_t pick = rng.Uniform(total);
    size_t which = 0;
    while (pick >= rates[which]) pick -= rates[which++];
    const FaultKind& k = kinds[which];
    SeededRng own(SeededRng::Derive(r_.seed, absl::StrCat("fault#", index)));
    ScriptedFault f;
    // Whole microseconds, written as seconds: Seconds() gives them back exactly.
    f.set_at_s(t_us / 1e6);
    f.set_kind(k.kind);
    f.set_duration_s((500000 + static_cast<int64_t>(own.Uniform(mix_.duration_max_us + 1))) / 1e6);
    if (k.draw != nullptr) k.draw(plan, own, &f);
    if (k.fix != nullptr) k.fix(plan, own, &f);
    schedule_.push_back(f);
    t_us += ExponentialMicros(rng, mean_gap_us);
  }
  // The script: as written, but whatever it leaves to chance is drawn now,
  // from the script entry's own stream.
  for (int i = 0; i < r_.s.faults().script_size(); ++i) {
    ScriptedFault f = r_.s.faults().script(i);
    if (!(f.at_s() < duration_s)) continue;  // would never happen
    const FaultKind* k = FindFaultKind(f.kind());
    if (k != nullptr && k->fix != nullptr) {
      SeededRng own(SeededRng::Derive(r_.seed, absl::StrCat("script#", i)));
      k->fix(plan, own, &f);
    }
    schedule_.push_back(f);
  }
  std::stable_sort(schedule_.begin(), schedule_.end(),
                   [](const ScriptedFault& a, const ScriptedFault& b) { return a.at_s() < b.at_s(); });
}

void Nemesis::Schedule() {
  Plan();
  r_.world.At(r_.chaos_start, [this] {
    NetworkConfig net = r_.world.network();
    // The world takes probabilities as doubles: converted here, at its door.
    net.loss = mix_.loss_ppm / 1e6;
    net.duplicate = mix_.duplicate_ppm / 1e6;
    net.reorder_jitter = absl::Microseconds(mix_.reorder_us);
    r_.world.set_network(net);
  }, "faults-on");
  for (const ScriptedFault& f : schedule_) {
    r_.world.At(r_.chaos_start + Seconds(f.at_s()), [this, f] { Apply(f); }, "fault");
  }
}

void Nemesis::Apply(const ScriptedFault& f) {
  if (r_.world.Now() >= r_.chaos_end) return;
  // Recorded as scheduled (at_s included), so the fixed schedule replays it
  // at the very same microsecond.
  r_.applied_faults.push_back(f);
  r_.recorder.Add(HistoryEntry::FAULT, "nemesis")->set_detail(DescribeFault(f));
  const FaultKind* k = FindFaultKind(f.kind());
  r_.fault_filters.clear();
  const bool to_heal = k != nullptr && k->apply(r_, f) && k->heal != nullptr;
  std::vector<uint64_t> filters = std::move(r_.fault_filters);
  r_.fault_filters.clear();
  if (!to_heal) return;
  auto heal = k->heal;
  r_.world.After(Seconds(f.duration_s()), [this, heal, f, filters] {
    for (uint64_t id : filters) r_.world.Heal(id);
    heal(r_, f);
  }, k->heal_label);
}

void Nemesis::Heal() {
  r_.recorder.Add(HistoryEntry::FAULT, "nemesis")->set_detail("heal");
  r_.world.HealPartitions();
  r_.world.ClearSkews();
  r_.world.SetBusDedup(true);
  r_.world.SetBusOutage(false);
  for (const std::string& address : r_.world.Addresses()) {
    if (FaultyStore* disk = r_.world.disk(address)) disk->Heal();
  }
  NetworkConfig net = r_.world.network();
  net.loss = 0;
  net.duplicate = 0;
  net.reorder_jitter = absl::ZeroDuration();
  r_.world.set_network(net);
  for (const std::string& address : r_.world.Addresses()) {
    if (r_.retired.count(address) == 0 && !r_.world.IsUp(address)) r_.world.Restart(address);
  }
  for (const ClientInfo& c : r_.clients) {
    if (Client* client = r_.world.NodeAs<Client>(c.address)) client->Connect();
  }
}

Faults Nemesis::FixedFaults() const {
  Faults fixed = r_.s.faults();
  fixed.set_random(false);
  fixed.set_loss_max(mix_.loss_ppm / 1e6);
  fixed.set_duplicate_max(mix_.duplicate_ppm / 1e6);
  fixed.set_reorder_jitter_ms(mix_.reorder_us / 1000.0);
  fixed.set_partition_rate_per_s(0);
  fixed.set_crash_rate_per_s(0);
  fixed.set_bus_fault_rate_per_s(0);
  fixed.set_clock_skew_max_ms(0);
  fixed.set_storage_fault_rate_per_s(0);
  fixed.clear_script();
  for (const ScriptedFault& f : r_.applied_faults) *fixed.add_script() = f;
  return fixed;
}

}  // namespace sim
}  // namespace parley
