// Probes: every node's counters and samples (core/probe.h) added into the
// run's, whatever the node's type.
#include "sim/probes.h"

#include <algorithm>

#include "core/probe.h"

namespace parley {
namespace sim {

void CollectProbes(RunState& r, Node* node) {
  const ProbeCounters& p = node->probes();
  for (const auto& [name, n] : p.counts()) r.probes[name] += n;
  for (const auto& [name, values] : p.samples()) {
    std::vector<double>& into = name == "profile_apply_ms" ? r.profile_apply_ms
                                : name == "sync_size"      ? r.sync_sizes
                                                           : r.samples[name];
    into.insert(into.end(), values.begin(), values.end());
  }
}

const std::vector<std::string>& ProbeNames() {
  // Built once, after static initialization registered every probe.
  static const auto* const kNames = [] {
    auto* names = new std::vector<std::string>();
    for (const DeclaredProbe* p : DeclaredProbes()) {
      if (p->kind() == DeclaredProbe::Kind::kCounter) names->push_back(p->name());
    }
    return names;
  }();
  return *kNames;
}

}  // namespace sim
}  // namespace parley
