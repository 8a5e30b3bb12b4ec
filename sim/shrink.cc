#include "sim/shrink.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
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
    size += static_cast<uint64_t>(std::ceil(std::max(0.0, a.rate(w))));
  }
  for (double p : {s.faults().loss_max(), s.faults().duplicate_max()}) size += p > 0 ? 5 : 0;
  size += s.faults().reorder_jitter_ms() > 0 ? 5 : 0;
  return size;
}

namespace {

// The candidate edits of one pass, each a function that returns false when
// it does not apply.
using Edit = std::function<bool(Scenario*)>;

std::vector<Edit> Edits(const Scenario& s) {
  std::vector<Edit> edits;
  // Faults: halves of the schedule first, then single ones.
  const int n = s.faults().script_size();
  for (int chunk = n / 2; chunk >= 1; chunk /= 2) {
    for (int start = 0; start + chunk <= n; start += chunk) {
      edits.push_back([start, chunk](Scenario* c) {
        auto* script = c->mutable_faults()->mutable_script();
        if (start + chunk > script->size()) return false;
        script->erase(script->begin() + start, script->begin() + start + chunk);
        return true;
      });
    }
  }
  auto zero = [&](auto getter, auto setter) {
    edits.push_back([getter, setter](Scenario* c) {
      if (getter(*c) == 0) return false;
      setter(c);
      return true;
    });
  };
  zero([](const Scenario& c) { return c.faults().loss_max(); },
       [](Scenario* c) { c->mutable_faults()->set_loss_max(0); });
  zero([](const Scenario& c) { return c.faults().duplicate_max(); },
       [](Scenario* c) { c->mutable_faults()->set_duplicate_max(0); });
  zero([](const Scenario& c) { return c.faults().reorder_jitter_ms(); },
       [](Scenario* c) { c->mutable_faults()->set_reorder_jitter_ms(0); });
  // Every workload action but sends (halved below) may go: its knob in the
  // action table set to 0.
  for (const WorkloadAction& a : WorkloadActions()) {
    const google::protobuf::FieldDescriptor* field = Workload::descriptor()->FindFieldByName(a.knob);
    if (field == nullptr || field->cpp_type() != google::protobuf::FieldDescriptor::CPPTYPE_DOUBLE ||
        field->name() == "send_rate_per_s") {
      continue;
    }
    edits.push_back([field](Scenario* c) {
      const google::protobuf::Reflection* r = c->workload().GetReflection();
      if (r->GetDouble(c->workload(), field) == 0) return false;
      r->SetDouble(c->mutable_workload(), field, 0);
      return true;
    });
  }
  zero([](const Scenario& c) { return c.workload().second_device_fraction(); },
       [](Scenario* c) { c->mutable_workload()->set_second_device_fraction(0); });
  // Halve the workload and the topology.
  auto halve = [&](auto getter, auto setter, double floor) {
    edits.push_back([getter, setter, floor](Scenario* c) {
      const double v = getter(*c);
      if (v <= floor) return false;
      setter(c, std::max(floor, std::floor(v / 2)));
      return true;
    });
  };
  halve([](const Scenario& c) { return c.workload().users(); },
        [](Scenario* c, double v) { c->mutable_workload()->set_users(v); }, 2);
  halve([](const Scenario& c) { return c.workload().groups(); },
        [](Scenario* c, double v) { c->mutable_workload()->set_groups(v); }, 0);
  halve([](const Scenario& c) { return c.workload().group_size(); },
        [](Scenario* c, double v) { c->mutable_workload()->set_group_size(v); }, 2);
  halve([](const Scenario& c) { return c.workload().friends_per_user(); },
        [](Scenario* c, double v) { c->mutable_workload()->set_friends_per_user(v); }, 1);
  halve([](const Scenario& c) { return c.workload().send_rate_per_s(); },
        [](Scenario* c, double v) { c->mutable_workload()->set_send_rate_per_s(v); }, 1);
  halve([](const Scenario& c) { return c.workload().duration_s(); },
        [](Scenario* c, double v) {
          // Faults after the new end would never happen: drop them too.
          c->mutable_workload()->set_duration_s(v);
          auto* script = c->mutable_faults()->mutable_script();
          for (int i = script->size() - 1; i >= 0; --i) {
            if (script->Get(i).at_s() >= v) script->DeleteSubrange(i, 1);
          }
        }, 2);
  halve([](const Scenario& c) { return c.topology().gateways(); },
        [](Scenario* c, double v) { c->mutable_topology()->set_gateways(v); }, 1);
  halve([](const Scenario& c) { return c.topology().shards(); },
        [](Scenario* c, double v) { c->mutable_topology()->set_shards(v); }, 1);
  halve([](const Scenario& c) { return c.topology().user_replicas(); },
        [](Scenario* c, double v) { c->mutable_topology()->set_user_replicas(v); }, 1);
  halve([](const Scenario& c) { return c.topology().friend_replicas(); },
        [](Scenario* c, double v) { c->mutable_topology()->set_friend_replicas(v); }, 1);
  halve([](const Scenario& c) { return c.topology().group_replicas(); },
        [](Scenario* c, double v) { c->mutable_topology()->set_group_replicas(v); }, 1);
  return edits;
}

}  // namespace

ShrinkResult Shrink(const Scenario& scenario, uint64_t seed, int max_runs,
                    const std::function<void(const std::string&)>& progress) {
  ShrinkResult result;
  RunOptions options;
  options.keep_history = false;
  RunResult first = RunScenario(scenario, seed, options);
  ++result.runs;
  if (first.passed || first.violations.empty()) return result;
  result.reproduced = true;
  result.checker = first.violations[0].checker;

  // The seed's own faults, written out: from here on nothing is drawn.
  Scenario current = scenario;
  *current.mutable_faults() = first.fixed_faults.faults();
  current.set_name(scenario.name() + "_shrunk");
  auto fails = [&](const Scenario& candidate) {
    // A cut that leaves a fault naming a node the smaller topology no longer
    // has (or any value out of range) is not a scenario: not tried, so what
    // the shrinker writes always loads again.
    if (!ValidateScenario(candidate, candidate.name()).ok()) return false;
    ++result.runs;
    RunResult r = RunScenario(candidate, seed, options);
    for (const Violation& v : r.violations) {
      if (v.checker == result.checker) return true;
    }
    return false;
  };
  result.original = current;
  result.original_size = ScenarioSize(current);
  if (!fails(current)) {
    // Writing the faults out changed the run (e.g. new random halves): shrink
    // from the scenario as given instead, still with the same checker.
    current = scenario;
    result.original = current;
    result.original_size = ScenarioSize(current);
  }
  bool changed = true;
  while (changed && result.runs < max_runs) {
    changed = false;
    for (const Edit& edit : Edits(current)) {
      if (result.runs >= max_runs) break;
      Scenario candidate = current;
      if (!edit(&candidate) || ScenarioSize(candidate) >= ScenarioSize(current)) continue;
      if (fails(candidate)) {
        current = candidate;
        changed = true;
        progress(absl::StrCat("shrink: size ", ScenarioSize(current), " after ", result.runs,
                              " runs"));
      }
    }
  }
  result.shrunk = current;
  result.shrunk_size = ScenarioSize(current);
  return result;
}

}  // namespace sim
}  // namespace parley
