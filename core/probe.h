// Probes: named counters (and samples) of interesting paths, declared at the
// code site that counts them and collected by one registry:
//
//   // in kv_service.cc, at namespace scope:
//   const DeclaredProbe kOlderOverwrite("older_overwrite",
//                                       "an ALWAYS write replaced a newer version");
//   ...
//   probes().Count(kOlderOverwrite);
//
// Every Node carries its own ProbeCounters (see core/env.h), so runs in
// parallel threads never share a counter; the simulator adds up every node's
// counters without knowing the node's type. The registry holds declarations
// only (written during static initialization, read-only after), never counts.
#ifndef PARLEY_CORE_PROBE_H_
#define PARLEY_CORE_PROBE_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace parley {

class DeclaredProbe {
 public:
  enum class Kind {
    kCounter,  // a count, reported by the simulator (ProbeNames)
    kSamples,  // a distribution, for the report's histograms
  };
  // Registers the probe. Declare probes at namespace scope only, so they are
  // all registered before main. The same name may be declared at several
  // sites (one path in several services): they count into one probe.
  DeclaredProbe(const char* name, const char* description, Kind kind = Kind::kCounter);
  DeclaredProbe(const DeclaredProbe&) = delete;
  DeclaredProbe& operator=(const DeclaredProbe&) = delete;

  const char* name() const { return name_; }
  const char* description() const { return description_; }
  Kind kind() const { return kind_; }

 private:
  const char* name_;
  const char* description_;
  Kind kind_;
};

// Every probe linked into the binary, one per name, sorted by name (of
// probes declared at several sites, the declaration with the smallest
// description, so the answer does not depend on link order).
std::vector<const DeclaredProbe*> DeclaredProbes();

// One node's counters and samples.
class ProbeCounters {
 public:
  // The first kMaxSamples samples of each probe are kept (per node).
  static constexpr size_t kMaxSamples = 4096;

  void Count(const DeclaredProbe& probe, uint64_t n = 1) { counts_[probe.name()] += n; }
  void Sample(const DeclaredProbe& probe, double value) {
    std::vector<double>& v = samples_[probe.name()];
    if (v.size() < kMaxSamples) v.push_back(value);
  }

  // Ordered maps: what reaches output is in name order.
  const std::map<std::string, uint64_t>& counts() const { return counts_; }
  const std::map<std::string, std::vector<double>>& samples() const { return samples_; }

 private:
  std::map<std::string, uint64_t> counts_;
  std::map<std::string, std::vector<double>> samples_;
};

}  // namespace parley

#endif  // PARLEY_CORE_PROBE_H_
