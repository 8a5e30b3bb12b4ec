#include "sim/shrink.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <tuple>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "sim/kernel.h"
#include "sim/scenario_io.h"
#include "sim/simulation.h"
#include "sim/workload.h"

namespace parley {
namespace sim {

uint64_t ScenarioSize(const Scenario& s) {
  const Workload& w = s.workload();
  const Topology& t = s.topology();
  uint64_t size = 10 * s.faults().script_size();
  size += w.users() + 2 * w.groups() + w.group_size() + w.friends_per_user();
  size += static_cast<uint64_t>(std::ceil(w.duration_s()));
  size += t.gateways() + t.shards() + t.user_replicas() + t.friend_replicas() + t.group_replicas();
  for (const WorkloadAction& a : WorkloadActions()) {
    uint64_t n = static_cast<uint64_t>(std::ceil(std::max(0.0, a.rate(w))));
    if (a.run == &WorkloadDriver::DoSend && w.has_send_filter()) {
      n = std::min<uint64_t>(n, w.send_filter().keep_size());
    }
    size += n;
  }
  for (double p : {s.faults().loss_max(), s.faults().duplicate_max()}) size += p > 0 ? 5 : 0;
  size += s.faults().reorder_jitter_ms() > 0 ? 5 : 0;
  return size;
}

bool ShrinkDetail::operator<(const ShrinkDetail& o) const {
  return std::tie(sends, fault_ms, window_ms) < std::tie(o.sends, o.fault_ms, o.window_ms);
}

ShrinkDetail DetailOf(const Scenario& s) {
  ShrinkDetail d;
  d.sends = s.workload().has_send_filter() ? s.workload().send_filter().keep_size()
                                           : std::numeric_limits<uint64_t>::max();
  for (const ScriptedFault& f : s.faults().script()) {
    d.fault_ms += std::llround(1000 * f.duration_s()) + std::llround(std::fabs(f.amount_ms())) +
                  std::llround(std::fabs(f.drift_ppm()));
  }
  d.window_ms = std::llround(1000 * s.settle_s()) + std::llround(1000 * s.workload().offline_s());
  return d;
}

std::string DescribeStep(const ShrinkStep& step) {
  return absl::StrCat("step ", step.number, ": removed ", step.removed, ": size ", step.size_before,
                      " -> ", step.size_after, " (", step.runs, step.runs == 1 ? " run, " : " runs, ",
                      step.total_runs, " so far)");
}

namespace {

bool Smaller(const Scenario& a, const Scenario& b) {
  const uint64_t sa = ScenarioSize(a), sb = ScenarioSize(b);
  if (sa != sb) return sa < sb;
  return DetailOf(a) < DetailOf(b);
}

std::string Num(double v) { return absl::StrFormat("%g", v); }

std::string FaultName(const ScriptedFault& f) {
  std::string out = ScriptedFault::Kind_Name(f.kind());
  if (!f.target().empty()) absl::StrAppend(&out, " ", f.target());
  absl::StrAppend(&out, " at ", Num(f.at_s()), "s");
  if (f.duration_s() > 0) absl::StrAppend(&out, " for ", Num(f.duration_s()), "s");
  return out;
}

// The number N of a send's body "<b<user>.<N>>...", or 0.
uint32_t SendNumber(const std::string& body) {
  if (body.rfind("<b", 0) != 0) return 0;
  const size_t dot = body.find('.'), end = body.find('>');
  if (dot == std::string::npos || end == std::string::npos || end < dot) return 0;
  uint32_t n = 0;
  if (!absl::SimpleAtoi(body.substr(dot + 1, end - dot - 1), &n)) return 0;
  return n;
}

// "3 sends (#17, #40, #41)" or "1200 sends (#1201..#2400)".
std::string SendsName(const std::vector<uint32_t>& sends) {
  if (sends.size() == 1) return absl::StrCat("send #", sends[0]);
  std::string which;
  if (sends.size() <= 4) {
    which = absl::StrCat("#", absl::StrJoin(sends, ", #"));
  } else {
    which = absl::StrCat("#", sends.front(), "..#", sends.back());
  }
  return absl::StrCat(sends.size(), " sends (", which, ")");
}

// Drops the scripted faults that name a node (or a side) the scenario no
// longer has, e.g. after fewer users or shards; returns how many.
int DropFaultsOnMissingNodes(Scenario* c) {
  int dropped = 0;
  auto* script = c->mutable_faults()->mutable_script();
  for (int i = script->size() - 1; i >= 0; --i) {
    Scenario one = *c;
    one.mutable_faults()->clear_script();
    *one.mutable_faults()->add_script() = script->Get(i);
    if (!ValidateScenario(one, "").ok()) {
      script->DeleteSubrange(i, 1);
      ++dropped;
    }
  }
  return dropped;
}

// A whole-number knob of the scenario: the shrinker cuts it by halves, then
// quarters, then ones, down to its floor.
struct Knob {
  std::string name;   // "users", "shards", ...
  std::string field;  // "workload.users", "topology.shards", ...
  uint32_t floor;
  uint32_t (*get)(const Scenario&);
  void (*set)(Scenario*, uint32_t);
  // What the workload draws depends on it (who does what): a cut draws the
  // run anew, so the first tries go straight for small values.
  bool redraws;
  int level = 0;  // 0: small values first, 1: halve, 2: cut a quarter, 3: cut one, 4: done
  int done_at = -1;  // the steps taken when it was done (after more, it tries ones again)
  // The last value that did not fail, and the steps taken then: the same
  // try on the same scenario is not run twice.
  uint32_t failed_value = 0;
  int failed_at = -1;
};

std::vector<Knob> Knobs() {
  std::vector<Knob> knobs;
#define PARLEY_KNOB(name, floor, msg, field, redraws)                                          \
  knobs.push_back({name, #msg "." #field, floor, [](const Scenario& s) { return s.msg().field(); }, \
                   [](Scenario* s, uint32_t v) { s->mutable_##msg()->set_##field(v); }, redraws})
  PARLEY_KNOB("users", 1, workload, users, true);
  PARLEY_KNOB("groups", 0, workload, groups, true);
  PARLEY_KNOB("group_size", 0, workload, group_size, true);
  PARLEY_KNOB("friends_per_user", 0, workload, friends_per_user, true);
  PARLEY_KNOB("gateways", 1, topology, gateways, false);
  PARLEY_KNOB("shards", 1, topology, shards, false);
  PARLEY_KNOB("user_replicas", 1, topology, user_replicas, false);
  PARLEY_KNOB("friend_replicas", 1, topology, friend_replicas, false);
  PARLEY_KNOB("group_replicas", 1, topology, group_replicas, false);
#undef PARLEY_KNOB
  return knobs;
}

class Shrinker {
 public:
  Shrinker(uint64_t seed, int max_runs, const std::function<void(const ShrinkStep&)>& on_step,
           ShrinkResult* result)
      : seed_(seed), max_runs_(max_runs), on_step_(on_step), result_(result) {}

  // Whether `candidate` fails the checker (one run); remembers what the
  // failing run drew (its sends, when it failed).
  bool Fails(const Scenario& candidate) {
    ++result_->runs;
    RunResult r = RunScenario(candidate, seed_);
    for (const Violation& v : r.violations) {
      if (v.checker != result_->checker) continue;
      sends_.clear();
      for (const HistoryEntry& e : r.history.entries()) {
        if (e.kind() == HistoryEntry::SEND_INVOKED && !e.adversary()) {
          if (uint32_t n = SendNumber(e.body()); n > 0) sends_.push_back(n);
        }
      }
      std::sort(sends_.begin(), sends_.end());
      sends_.erase(std::unique(sends_.begin(), sends_.end()), sends_.end());
      fail_at_s_ = -1;
      if (v.entry >= 0 && v.entry < r.history.entries_size()) {
        const int64_t start_us = absl::ToUnixMicros(Kernel::Options().start);
        fail_at_s_ = (r.history.entries(v.entry).time_us() - start_us) / 1e6 - r.chaos_start_s;
      }
      return true;
    }
    return false;
  }

  // Shrinks from `start`, which fails.
  Scenario Run(const Scenario& start) {
    current_ = start;
    std::vector<Knob> knobs = Knobs();
    // Each pass runs again only when some step was taken since it last found
    // nothing (its tries would be the same runs as before).
    int faults_clean = -1, mix_clean = -1, actions_clean = -1, sends_clean = -1, details_clean = -1;
    auto dirty = [&](int clean) { return clean != steps(); };
    while (Budget()) {
      const int before = steps();
      // First the chaos phase up to a little after the failure (the same
      // run, cut short: every later run is that much shorter, and the
      // workload still rich for the cuts that draw it anew).
      TrimToFailure(2, 10);
      if (dirty(faults_clean)) {
        FaultsPass();
        faults_clean = steps();
      }
      // Users, groups and friends draw the workload anew: cut while it is
      // still rich enough to fail again.
      for (Knob& k : knobs) KnobPass(k);
      DurationPass();
      if (dirty(mix_clean)) {
        MixPass();
        mix_clean = steps();
      }
      if (dirty(actions_clean)) {
        ActionsPass();
        actions_clean = steps();
      }
      if (dirty(sends_clean)) {
        SendsPass();
        sends_clean = steps();
      }
      if (dirty(details_clean)) {
        DetailsPass();
        details_clean = steps();
      }
      const bool knobs_left = duration_level_ < 3 || std::any_of(knobs.begin(), knobs.end(),
                                                                 [](const Knob& k) { return k.level < 4; });
      if (steps() == before && !knobs_left) break;
    }
    return current_;
  }

 private:
  int steps() const { return static_cast<int>(result_->steps.size()); }
  bool Budget() const { return result_->runs < max_runs_; }

  // Runs `candidate` if it is smaller and a valid scenario (a cut leaving a
  // value out of range is not tried, so what the shrinker writes always
  // loads again); takes it when the checker still fails.
  bool Try(const Scenario& candidate, const std::string& removed) {
    if (!Budget() || !Smaller(candidate, current_)) return false;
    if (!ValidateScenario(candidate, candidate.name()).ok()) return false;
    if (!Fails(candidate)) return false;
    ShrinkStep step;
    step.number = steps() + 1;
    step.removed = removed;
    step.size_before = ScenarioSize(current_);
    step.size_after = ScenarioSize(candidate);
    step.runs = result_->runs - runs_at_last_step_;
    step.total_runs = result_->runs;
    runs_at_last_step_ = result_->runs;
    current_ = candidate;
    result_->steps.push_back(step);
    if (on_step_) on_step_(step);
    return true;
  }

  // The fault schedule, delta-debugging style: halves, quarters, ... then
  // single faults.
  void FaultsPass() {
    for (int chunk = current_.faults().script_size() / 2; chunk >= 1; chunk /= 2) {
      for (int start = 0; start < current_.faults().script_size() && Budget();) {
        const auto& script = current_.faults().script();
        const int end = std::min(script.size(), start + chunk);
        Scenario c = current_;
        c.mutable_faults()->mutable_script()->DeleteSubrange(start, end - start);
        std::string what = end - start == 1
                               ? absl::StrCat("fault ", FaultName(script.Get(start)))
                               : absl::StrCat(end - start, " faults (", Num(script.Get(start).at_s()),
                                              "s..", Num(script.Get(end - 1).at_s()), "s)");
        if (!Try(c, what)) start = end;
      }
      chunk = std::min(chunk, current_.faults().script_size());
    }
  }

  // The message-level faults of the mix.
  void MixPass() {
    struct Mix {
      const char* name;
      double (Faults::*get)() const;
      void (Faults::*set)(double);
    };
    for (const Mix& m : {Mix{"message loss (faults.loss_max)", &Faults::loss_max, &Faults::set_loss_max},
                         Mix{"duplicates (faults.duplicate_max)", &Faults::duplicate_max,
                             &Faults::set_duplicate_max},
                         Mix{"reordering (faults.reorder_jitter_ms)", &Faults::reorder_jitter_ms,
                             &Faults::set_reorder_jitter_ms}}) {
      const double v = (current_.faults().*m.get)();
      if (v == 0) continue;
      Scenario c = current_;
      (c.mutable_faults()->*m.set)(0);
      Try(c, absl::StrCat(m.name, " ", Num(v), " -> 0"));
    }
  }

  // The chaos phase's seconds: first to just after the failure, then halves,
  // quarters and ones. Faults after the new end would never happen: they go
  // too.
  bool CutDuration(double v) {
    const double d = current_.workload().duration_s();
    Scenario c = current_;
    c.mutable_workload()->set_duration_s(v);
    auto* script = c.mutable_faults()->mutable_script();
    int dropped = 0;
    for (int i = script->size() - 1; i >= 0; --i) {
      if (script->Get(i).at_s() >= v) {
        script->DeleteSubrange(i, 1);
        ++dropped;
      }
    }
    std::string what =
        absl::StrCat(Num(d - v), " s of chaos (workload.duration_s ", Num(d), " -> ", Num(v), ")");
    if (dropped > 0) absl::StrAppend(&what, " and the ", dropped, " faults after its end");
    return Try(c, what);
  }

  // To `factor` times the failure's time into chaos plus `margin` seconds
  // (when that is shorter).
  void TrimToFailure(double factor, double margin) {
    if (fail_at_s_ < 0 || !Budget()) return;
    const double to = std::max(1.0, std::ceil(factor * fail_at_s_ + margin));
    if (to < current_.workload().duration_s()) CutDuration(to);
  }

  void DurationPass() {
    if (duration_level_ == 3 && duration_done_at_ != steps()) duration_level_ = 2;
    while (duration_level_ < 3 && Budget()) {
      const double d = current_.workload().duration_s();
      std::vector<double> to;
      if (fail_at_s_ >= 0 && std::ceil(fail_at_s_) + 1 < d) {
        to.push_back(std::max(1.0, std::ceil(fail_at_s_) + 1));
      }
      const double cut = duration_level_ == 0 ? std::floor(d / 2)
                         : duration_level_ == 1 ? std::floor(d / 4)
                                                : 1;
      if (cut >= 1 && d - cut >= 1) to.push_back(d - cut);
      bool taken = false;
      for (double v : to) {
        if (CutDuration(v)) {
          taken = true;
          break;
        }
      }
      if (!taken && ++duration_level_ == 3) duration_done_at_ = steps();
      if (!taken || duration_level_ > 0) return;  // one success per round below halves
    }
  }

  // Workload actions (one row of the action table at a time, sends aside),
  // second devices and attackers.
  void ActionsPass() {
    const int before = steps();
    std::vector<std::pair<const WorkloadAction*, const google::protobuf::FieldDescriptor*>> left;
    const google::protobuf::Reflection* r = current_.workload().GetReflection();
    for (const WorkloadAction& a : WorkloadActions()) {
      if (a.run == &WorkloadDriver::DoSend || !Budget()) continue;
      const google::protobuf::FieldDescriptor* field =
          Workload::descriptor()->FindFieldByName(a.knob);
      if (field == nullptr || field->cpp_type() != google::protobuf::FieldDescriptor::CPPTYPE_DOUBLE) {
        continue;
      }
      const double v = r->GetDouble(current_.workload(), field);
      if (v == 0) continue;
      Scenario c = current_;
      r->SetDouble(c.mutable_workload(), field, 0);
      if (!Try(c, absl::StrCat("action ", a.name, " (workload.", a.knob, " ", Num(v), " -> 0)"))) {
        left.emplace_back(&a, field);
      }
    }
    // Needed, but perhaps not so often (fewer entries in the replay): half
    // each rate that could not go, while that makes the scenario smaller (a
    // rate counts rounded up, so down to 1 per second). Only once no action
    // could go at all: a halving changes the draws, and an action that
    // might still go after the other passes' cuts is left for them.
    if (steps() != before) left.clear();
    for (const auto& [a, field] : left) {
      for (double rate = r->GetDouble(current_.workload(), field);
           Budget() && std::ceil(rate / 2) < std::ceil(rate); rate /= 2) {
        Scenario half = current_;
        r->SetDouble(half.mutable_workload(), field, rate / 2);
        if (!Try(half, absl::StrCat("half the action ", a->name, " (workload.", a->knob, " ",
                                    Num(rate), " -> ", Num(rate / 2), ")"))) {
          break;
        }
      }
    }
    for (auto [name, get, set] :
         {std::tuple{"second devices (workload.second_device_fraction", &Workload::second_device_fraction,
                     &Workload::set_second_device_fraction},
          std::tuple{"attackers (workload.adversary_fraction", &Workload::adversary_fraction,
                     &Workload::set_adversary_fraction},
          std::tuple{"second profile edits (workload.profile_second_edit_fraction",
                     &Workload::profile_second_edit_fraction,
                     &Workload::set_profile_second_edit_fraction}}) {
      const double v = (current_.workload().*get)();
      if (v == 0 || !Budget()) continue;
      Scenario c = current_;
      (c.mutable_workload()->*set)(0);
      const int dropped = DropFaultsOnMissingNodes(&c);
      std::string what = absl::StrCat(name, " ", Num(v), " -> 0)");
      if (dropped > 0) absl::StrAppend(&what, " and ", dropped, " faults on them");
      Try(c, what);
    }
    // Without a send filter, fewer sends per second (with one, the filter
    // cuts sends without changing the rest of the run).
    const double rate = current_.workload().send_rate_per_s();
    if (!current_.workload().has_send_filter() && rate > 1 && Budget()) {
      Scenario c = current_;
      c.mutable_workload()->set_send_rate_per_s(std::floor(rate / 2));
      Try(c, absl::StrCat("half the sends (workload.send_rate_per_s ", Num(rate), " -> ",
                          Num(std::floor(rate / 2)), ")"));
    }
  }

  // Users, groups and nodes. First small values (for what the workload's
  // draws depend on: the floor, a sixteenth, an eighth, a quarter; for nodes
  // the floor), then halves while they keep failing, then a quarter, then
  // one at a time.
  void KnobPass(Knob& k) {
    if (k.level == 4 && k.done_at != steps()) k.level = 3;  // other cuts since: one at a time again
    while (k.level < 4 && Budget()) {
      const uint32_t v = k.get(current_);
      if (v <= k.floor) {
        k.level = 4;
        k.done_at = steps();
        return;
      }
      std::vector<uint32_t> to;
      if (k.level == 0) {
        to.push_back(k.floor);
        if (k.redraws) {
          for (uint32_t part : {16, 8, 4}) {
            if (v / part > to.back() && v / part < v / 2) to.push_back(v / part);
          }
        }
      } else {
        const uint32_t cut = k.level == 1 ? v / 2 : k.level == 2 ? v / 4 : 1;
        to.push_back(std::max(k.floor, v - std::max<uint32_t>(cut, 1)));
      }
      bool taken = false;
      for (uint32_t t : to) {
        if (t == k.failed_value && k.failed_at == steps()) continue;
        Scenario c = current_;
        k.set(&c, t);
        const int dropped = DropFaultsOnMissingNodes(&c);
        std::string what =
            absl::StrCat(v - t, " of ", v, " ", k.name, " (", k.field, " ", v, " -> ", t, ")");
        if (dropped > 0) absl::StrAppend(&what, " and ", dropped, " faults on nodes gone");
        if (Try(c, what)) {
          taken = true;
          break;
        }
        k.failed_value = t;
        k.failed_at = steps();
      }
      if (!taken || k.level == 0) ++k.level;
      if (k.level == 4) k.done_at = steps();
      if (taken && k.level > 1) return;  // below halves, one cut per round: the other passes go first
    }
  }

  // The sends, delta-debugging style over a send filter: none at all, then
  // halves, quarters, ... then single sends. Every other draw of the run
  // stays as it was (sim/scenario.proto SendFilter).
  void SendsPass() {
    if (current_.workload().send_rate_per_s() == 0 || !Budget()) return;
    std::vector<uint32_t> keep;
    if (current_.workload().has_send_filter()) {
      keep.assign(current_.workload().send_filter().keep().begin(),
                  current_.workload().send_filter().keep().end());
    } else {
      keep = sends_;  // what the last failing run (the current scenario's) drew
    }
    auto with = [&](const std::vector<uint32_t>& kept) {
      Scenario c = current_;
      auto* f = c.mutable_workload()->mutable_send_filter();
      f->clear_keep();
      for (uint32_t n : kept) f->add_keep(n);
      return c;
    };
    if (!keep.empty() && Try(with({}), absl::StrCat("all ", keep.size(), " sends"))) return;

    size_t chunks = 2;
    while (!keep.empty() && Budget()) {
      const size_t chunk = (keep.size() + chunks - 1) / chunks;
      bool cut = false;
      for (size_t start = 0; start < keep.size() && Budget(); start += chunk) {
        const size_t end = std::min(keep.size(), start + chunk);
        std::vector<uint32_t> rest(keep.begin(), keep.begin() + start);
        rest.insert(rest.end(), keep.begin() + end, keep.end());
        if (Try(with(rest), SendsName({keep.begin() + start, keep.begin() + end}))) {
          keep = rest;
          chunks = std::max<size_t>(chunks - 1, 2);
          cut = true;
          break;
        }
      }
      if (cut) continue;
      if (chunk == 1) break;
      chunks = std::min(keep.size(), chunks * 2);
    }
  }

  // Each fault's duration and amount, by halves; the settle and offline
  // windows.
  void DetailsPass() {
    for (int i = 0; i < current_.faults().script_size() && Budget(); ++i) {
      const ScriptedFault f = current_.faults().script(i);
      if (f.duration_s() >= 0.02) {
        Scenario c = current_;
        const double to = std::floor(f.duration_s() * 500) / 1000;
        c.mutable_faults()->mutable_script(i)->set_duration_s(to);
        Try(c, absl::StrCat(Num(f.duration_s() - to), " s of fault ", FaultName(f), " (duration_s ",
                            Num(f.duration_s()), " -> ", Num(to), ")"));
      }
      if (std::fabs(f.amount_ms()) >= 2 && Budget()) {
        Scenario c = current_;
        const double to = std::trunc(f.amount_ms() / 2);
        c.mutable_faults()->mutable_script(i)->set_amount_ms(to);
        Try(c, absl::StrCat("half the amount of fault ", FaultName(f), " (amount_ms ",
                            Num(f.amount_ms()), " -> ", Num(to), ")"));
      }
    }
    // Settling is never shorter than 5 s (sim/simulation.cc), so 0 is the
    // shortest there is.
    const double settle = current_.settle_s();
    if (settle > 0 && Budget()) {
      Scenario c = current_;
      c.set_settle_s(0);
      if (!Try(c, absl::StrCat("settling time (settle_s ", Num(settle), " -> 0, i.e. 5 s)")) &&
          settle > 10) {
        c.set_settle_s(std::floor(settle / 2));
        Try(c, absl::StrCat("half the settling time (settle_s ", Num(settle), " -> ",
                            Num(std::floor(settle / 2)), ")"));
      }
    }
    const double offline = current_.workload().offline_s();
    if (offline >= 1 && Budget()) {
      Scenario c = current_;
      c.mutable_workload()->set_offline_s(std::floor(offline / 2));
      Try(c, absl::StrCat("half the time offline (workload.offline_s ", Num(offline), " -> ",
                          Num(std::floor(offline / 2)), ")"));
    }
  }

  const uint64_t seed_;
  const int max_runs_;
  const std::function<void(const ShrinkStep&)>& on_step_;
  ShrinkResult* result_;
  Scenario current_;
  int runs_at_last_step_ = 0;
  int duration_level_ = 0;     // as Knob::level: 0 halves, 1 quarters, 2 ones, 3 done
  int duration_done_at_ = -1;  // as Knob::done_at
  std::vector<uint32_t> sends_;  // the last failing run's sends, by number
  double fail_at_s_ = -1;        // its offending entry, from the start of chaos
};

}  // namespace

ShrinkResult Shrink(const Scenario& scenario, uint64_t seed, int max_runs,
                    const std::function<void(const ShrinkStep&)>& on_step) {
  ShrinkResult result;
  RunResult first = RunScenario(scenario, seed, RunOptions());
  ++result.runs;
  if (first.passed || first.violations.empty()) return result;
  result.reproduced = true;
  result.checker = first.violations[0].checker;

  Shrinker shrinker(seed, max_runs, on_step, &result);
  // The seed's own faults, written out: from here on nothing is drawn.
  Scenario current = scenario;
  *current.mutable_faults() = first.fixed_faults.faults();
  current.set_name(scenario.name() + "_shrunk");
  if (!ValidateScenario(current, current.name()).ok() || !shrinker.Fails(current)) {
    // Writing the faults out changed the run (e.g. new random halves): shrink
    // from the scenario as given instead, still with the same checker.
    current = scenario;
    shrinker.Fails(current);  // for its sends and the failure's time
  }
  result.original = current;
  result.original_size = ScenarioSize(current);
  result.shrunk = shrinker.Run(current);
  result.shrunk_size = ScenarioSize(result.shrunk);
  return result;
}

ShrinkResult Shrink(const Scenario& scenario, uint64_t seed, int max_runs,
                    const std::function<void(const std::string&)>& progress) {
  return Shrink(scenario, seed, max_runs, [&progress](const ShrinkStep& step) {
    if (progress) progress(DescribeStep(step));
  });
}

}  // namespace sim
}  // namespace parley
