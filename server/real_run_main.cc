// parley_real: runs a scenario file (the format parley_sim reads) against
// real processes — nats-server, parleyd per role group and per gateway — with
// real faults, and judges it with the simulator's delivery checkers.
//
//   bazel run //server:parley_real -- --scenario=scenarios/real_crashes.textproto --seed=1
//
// Exit status: 0 the checkers passed, 1 a checker failed, 2 the scenario was
// refused (or a usage error, or --out not empty), 3 the processes could not be run.
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "server/real_run.h"
#include "sim/simulation.h"

ABSL_FLAG(std::string, scenario, "", "the scenario file (required)");
ABSL_FLAG(uint64_t, seed, 1, "draws the schedule of sends, churn and faults");
ABSL_FLAG(std::string, out, "real-run", "work dir: data dirs, logs, plan.txt, history.pb, report.json");
ABSL_FLAG(std::string, parleyd, "", "the parleyd binary (default: the one beside this binary)");
ABSL_FLAG(std::string, nats_server, "/usr/sbin/nats-server", "the nats-server binary");
ABSL_FLAG(bool, drop_unsupported, false,
          "run without the parts a real run cannot honour (listed in report.json) instead of refusing");
ABSL_FLAG(std::string, crash_as, "kill",
          "kill: a CRASH is kill -9 and a restart on the same data dir; pause: SIGSTOP, then SIGCONT");
ABSL_FLAG(double, duration_s, 0, "override workload.duration_s (0: the scenario's)");
ABSL_FLAG(double, settle_s, 0, "override settle_s, the most time to settle (0: the scenario's)");
ABSL_FLAG(uint32_t, users, 0, "override workload.users (0: the scenario's)");
ABSL_FLAG(std::string, bug, "",
          "plant a bug (core/testing/bugs.h) in the runner's clients and every parleyd (--planted_bug)");

namespace {
std::string Under(const std::string& path) {
  const char* cwd = std::getenv("BUILD_WORKING_DIRECTORY");
  if (cwd == nullptr || path.empty() || path[0] == '/') return path;
  return std::string(cwd) + "/" + path;
}
}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("parley_real --scenario=FILE [--seed=N] [--out=DIR] [--drop_unsupported]");
  absl::ParseCommandLine(argc, argv);
  const std::string path = Under(absl::GetFlag(FLAGS_scenario));
  if (absl::GetFlag(FLAGS_scenario).empty()) {
    std::cerr << "parley_real: --scenario is required\n";
    return 2;
  }
  absl::StatusOr<parley::sim::Scenario> s = parley::sim::LoadScenario(path);
  if (!s.ok()) {
    std::cerr << "parley_real: " << s.status().message() << "\n";
    return 2;
  }
  parley::RealRunOptions o;
  o.scenario = *s;
  if (!absl::GetFlag(FLAGS_bug).empty()) o.scenario.set_bug(absl::GetFlag(FLAGS_bug));
  o.scenario_path = path;
  o.seed = absl::GetFlag(FLAGS_seed);
  o.parleyd = absl::GetFlag(FLAGS_parleyd);
  if (o.parleyd.empty()) {
    std::string self = argv[0];
    char buf[4096];
    const ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
    if (n > 0) self.assign(buf, static_cast<size_t>(n));
    o.parleyd = self.substr(0, self.rfind('/') + 1) + "parleyd";
  } else {
    o.parleyd = Under(o.parleyd);
  }
  if (access(o.parleyd.c_str(), X_OK) != 0) {
    std::cerr << "parley_real: no parleyd at " << o.parleyd << " (give --parleyd)\n";
    return 2;
  }
  o.nats_server = absl::GetFlag(FLAGS_nats_server);
  o.work_dir = Under(absl::GetFlag(FLAGS_out));
  o.drop_unsupported = absl::GetFlag(FLAGS_drop_unsupported);
  if (absl::GetFlag(FLAGS_crash_as) != "kill" && absl::GetFlag(FLAGS_crash_as) != "pause") {
    std::cerr << "parley_real: --crash_as must be kill or pause\n";
    return 2;
  }
  o.crash_as_pause = absl::GetFlag(FLAGS_crash_as) == "pause";
  o.duration_s = absl::GetFlag(FLAGS_duration_s);
  o.settle_s = absl::GetFlag(FLAGS_settle_s);
  o.users = absl::GetFlag(FLAGS_users);
  o.progress = [](const std::string& line) { std::cerr << "parley_real: " << line << std::endl; };
  absl::StatusOr<parley::RealRunResult> r = parley::RunReal(o);
  if (!r.ok()) {
    std::cerr << "parley_real: " << r.status().message() << "\n";
    return absl::IsInvalidArgument(r.status()) || absl::IsFailedPrecondition(r.status()) ? 2 : 3;
  }
  for (const std::string& n : r->not_applied) std::cout << "not applied: " << n << "\n";
  for (const auto& v : r->violations) {
    std::cout << "VIOLATION " << v.checker << " (entry " << v.entry << "): " << v.explanation << "\n";
  }
  std::cout << r->Summary() << "\n" << "report: " << r->report_path << "\n";
  return r->passed ? 0 : 1;
}
