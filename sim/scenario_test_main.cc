// The body of every scenario test target: runs the scenario's seeds and fails
// on the first seed whose checkers fail, printing its verdict and replay line.
#include <iostream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "sim/history.h"
#include "sim/simulation.h"

ABSL_FLAG(std::string, scenario, "", "scenario textproto");
ABSL_FLAG(uint32_t, seeds, 0, "seeds to run (0: the scenario's own count)");
ABSL_FLAG(uint64_t, first_seed, 1, "first seed");

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  absl::StatusOr<parley::sim::Scenario> scenario =
      parley::sim::LoadScenario(absl::GetFlag(FLAGS_scenario));
  if (!scenario.ok()) {
    std::cerr << scenario.status() << "\n";
    return 2;
  }
  uint32_t seeds = absl::GetFlag(FLAGS_seeds);
  if (seeds == 0) seeds = scenario->seeds() == 0 ? 1 : scenario->seeds();
  int failed = 0;
  for (uint64_t seed = absl::GetFlag(FLAGS_first_seed);
       seed < absl::GetFlag(FLAGS_first_seed) + seeds; ++seed) {
    parley::sim::RunResult r = parley::sim::RunScenario(*scenario, seed);
    std::cout << (r.passed ? "PASS" : "FAIL") << " seed=" << seed << " events=" << r.events
              << " acked=" << r.sends_acked << " delivered=" << r.deliveries << "\n  "
              << r.config << "\n";
    if (!r.error.empty()) std::cout << "  error: " << r.error << "\n";
    for (const parley::sim::Violation& v : r.violations) {
      std::cout << "  checker=" << v.checker;
      if (v.entry >= 0) std::cout << " entry=" << parley::sim::Describe(r.history.entries(v.entry));
      std::cout << "\n    " << v.explanation << "\n";
    }
    if (!r.passed) {
      ++failed;
      std::cout << "  replay: bazel run //sim:parley_sim -- replay --seed=" << seed
                << " --scenario=" << absl::GetFlag(FLAGS_scenario) << "\n";
    }
  }
  std::cout << (seeds - failed) << " passed, " << failed << " failed\n";
  return failed == 0 ? 0 : 1;
}
