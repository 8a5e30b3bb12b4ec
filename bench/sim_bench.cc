// The simulator on the default scenario, as a user feels it. Run with -c opt:
//
//   bazel run -c opt //bench:sim_bench
//
// One `BENCH` line per figure:
//   - events per core-second and time compression (simulated seconds per
//     wall second on one core): medians over --seeds seeds run one after
//     another; also the median events per seed;
//   - a swarm of --swarm_seeds seeds (default 500) with one seed per core:
//     its wall time and seeds per minute on all cores;
//   - per planted bug: a swarm over the default scenario with the bug
//     planted (all cores, seeds in order from 1) until a seed fails, at most
//     --bug_max_seeds seeds: the first failing seed and the wall seconds
//     until its run finished, or "not found within N".
// Wall times depend on the machine and its load; the seed counts do not.
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_split.h"
#include "core/testing/bugs.h"
#include "sim/simulation.h"

ABSL_FLAG(int, seeds, 4, "seeds run one after another (events per core-second, compression)");
ABSL_FLAG(int, swarm_seeds, 500, "seeds of the timed swarm, one per core (0: skip)");
// Bounded so the whole bench takes minutes: a bug the default scenario does
// not catch (its own scenario in planted_bugs_test does) costs this many
// seeds. The canary fails on every 100th seed only, so it shows as not found
// below 100.
ABSL_FLAG(int, bug_max_seeds, 40, "seeds a planted bug's search runs at most");
ABSL_FLAG(std::string, bugs, "all",
          "planted bugs to search for, comma-separated; 'all' or 'none'");
ABSL_FLAG(int, jobs, 0, "threads (0: one per core)");

namespace {

using parley::sim::RunResult;
using parley::sim::RunScenario;
using parley::sim::Scenario;

double CpuSeconds() {
  rusage u;
  getrusage(RUSAGE_THREAD, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

struct SwarmResult {
  uint64_t first_failed = 0;  // 0: none
  double wall_to_first = 0;   // from the start until the first failing seed's run finished
  uint64_t seeds_run = 0;
  uint64_t events = 0;
  double wall = 0;
};

// Seeds 1..max_seeds in order, one per thread at a time. With
// stop_at_failure, no seed above a failed one is started, so the lowest
// failing seed is exact: every seed below it ran.
SwarmResult Swarm(const Scenario& scenario, uint64_t max_seeds, bool stop_at_failure, int jobs) {
  parley::sim::RunOptions options;
  options.keep_history = false;
  std::atomic<uint64_t> next{1};
  std::mutex mu;
  SwarmResult out;
  const double start = Now();
  std::vector<std::thread> threads;
  for (int t = 0; t < jobs; ++t) {
    threads.emplace_back([&] {
      for (;;) {
        const uint64_t seed = next.fetch_add(1);
        if (seed > max_seeds) return;
        {
          std::lock_guard<std::mutex> lock(mu);
          if (stop_at_failure && out.first_failed != 0 && seed > out.first_failed) return;
        }
        const RunResult r = RunScenario(scenario, seed, options);
        std::lock_guard<std::mutex> lock(mu);
        ++out.seeds_run;
        out.events += r.events;
        if (!r.passed && (out.first_failed == 0 || seed < out.first_failed)) {
          out.first_failed = seed;
          out.wall_to_first = Now() - start;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  out.wall = Now() - start;
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const Scenario scenario = parley::sim::DefaultScenario();
  const int jobs = absl::GetFlag(FLAGS_jobs) > 0
                       ? absl::GetFlag(FLAGS_jobs)
                       : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  parley::sim::RunOptions options;
  options.keep_history = false;

  // One core: events per core-second and time compression.
  std::vector<double> rates, compressions, events;
  for (int seed = 1; seed <= absl::GetFlag(FLAGS_seeds); ++seed) {
    const double cpu0 = CpuSeconds(), wall0 = Now();
    const RunResult r = RunScenario(scenario, seed, options);
    const double cpu = CpuSeconds() - cpu0, wall = Now() - wall0;
    rates.push_back(r.events / cpu);
    compressions.push_back(r.sim_seconds / wall);
    events.push_back(static_cast<double>(r.events));
    std::printf("seed %d: %s events=%llu cpu_s=%.2f sim_s=%.0f events_per_core_s=%.0f "
                "compression=%.0fx\n",
                seed, r.passed ? "passed" : "FAILED", static_cast<unsigned long long>(r.events),
                cpu, r.sim_seconds, rates.back(), compressions.back());
  }
  if (!rates.empty()) {
    std::printf("BENCH sim_default events_per_seed_median=%.0f (%zu seeds)\n", Median(events),
                events.size());
    std::printf("BENCH sim_default events_per_core_s_median=%.0f\n", Median(rates));
    std::printf("BENCH sim_default time_compression_median=%.1fx (per core)\n",
                Median(compressions));
  }
  std::fflush(stdout);

  // All cores: a swarm's wall time and seeds per minute.
  const int swarm_seeds = absl::GetFlag(FLAGS_swarm_seeds);
  if (swarm_seeds > 0) {
    const SwarmResult s = Swarm(scenario, swarm_seeds, /*stop_at_failure=*/false, jobs);
    std::printf("BENCH sim_default swarm_wall_s=%.1f (%d seeds on %d cores, %s)\n", s.wall,
                swarm_seeds, jobs,
                s.first_failed == 0 ? "all passed"
                                    : ("seed " + std::to_string(s.first_failed) + " FAILED").c_str());
    std::printf("BENCH sim_default seeds_per_min=%.1f (on %d cores)\n", swarm_seeds / s.wall * 60,
                jobs);
    std::fflush(stdout);
  }

  // Per planted bug: seeds and wall seconds until a swarm first catches it.
  std::vector<parley::Bug> bugs;
  const std::string which = absl::GetFlag(FLAGS_bugs);
  if (which == "all") {
    bugs = parley::AllBugs();
  } else if (which != "none") {
    for (absl::string_view name : absl::StrSplit(which, ',', absl::SkipEmpty())) {
      absl::StatusOr<parley::Bug> bug = parley::ParseBug(name);
      if (!bug.ok()) {
        std::fprintf(stderr, "unknown bug '%s'\n", std::string(name).c_str());
        return 2;
      }
      bugs.push_back(*bug);
    }
  }
  const int max_seeds = absl::GetFlag(FLAGS_bug_max_seeds);
  for (parley::Bug bug : bugs) {
    Scenario buggy = scenario;
    buggy.set_bug(parley::BugName(bug));
    const SwarmResult s = Swarm(buggy, max_seeds, /*stop_at_failure=*/true, jobs);
    if (s.first_failed != 0) {
      std::printf("BENCH sim_default bug=%s first_caught_seed=%llu wall_s=%.1f (%d cores)\n",
                  buggy.bug().c_str(), static_cast<unsigned long long>(s.first_failed),
                  s.wall_to_first, jobs);
    } else {
      std::printf("BENCH sim_default bug=%s not found within %d seeds wall_s=%.1f (%d cores)\n",
                  buggy.bug().c_str(), max_seeds, s.wall, jobs);
    }
    std::fflush(stdout);
  }
  return 0;
}
