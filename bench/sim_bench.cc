// The simulator on the default scenario: processed events per core-second,
// simulated seconds per wall second (time compression), and seeds per minute
// with one seed per core. Prints its figures; run with -c opt.
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "sim/simulation.h"

ABSL_FLAG(int, seeds, 4, "seeds run one after another (events per core-second)");
ABSL_FLAG(int, parallel_seeds, 8, "seeds run one per core (seeds per minute)");

namespace {

double CpuSeconds() {
  rusage u;
  getrusage(RUSAGE_THREAD, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const parley::sim::Scenario scenario = parley::sim::DefaultScenario();
  parley::sim::RunOptions options;
  options.keep_history = false;

  std::vector<double> rates, compressions;
  for (int seed = 1; seed <= absl::GetFlag(FLAGS_seeds); ++seed) {
    const double cpu0 = CpuSeconds(), wall0 = Now();
    parley::sim::RunResult r = parley::sim::RunScenario(scenario, seed, options);
    const double cpu = CpuSeconds() - cpu0, wall = Now() - wall0;
    rates.push_back(r.events / cpu);
    compressions.push_back(r.sim_seconds / wall);
    std::printf("seed %d: %s events=%llu cpu_s=%.2f sim_s=%.0f events_per_core_s=%.0f compression=%.0fx\n",
                seed, r.passed ? "passed" : "FAILED", static_cast<unsigned long long>(r.events), cpu,
                r.sim_seconds, rates.back(), compressions.back());
  }
  std::sort(rates.begin(), rates.end());
  std::sort(compressions.begin(), compressions.end());

  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  const int parallel = absl::GetFlag(FLAGS_parallel_seeds);
  std::atomic<int> next{0};
  const double wall0 = Now();
  std::vector<std::thread> threads;
  for (unsigned c = 0; c < cores; ++c) {
    threads.emplace_back([&] {
      for (int i; (i = next.fetch_add(1)) < parallel;) {
        parley::sim::RunScenario(scenario, 100 + i, options);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  const double wall = Now() - wall0;

  std::printf("BENCH sim default: events_per_core_s_median=%.0f time_compression_median=%.0fx "
              "seeds_per_min=%.1f (%d seeds on %u cores in %.1fs)\n",
              rates[rates.size() / 2], compressions[compressions.size() / 2],
              parallel / wall * 60, parallel, cores, wall);
  return 0;
}
