// parley_sim: the chaos CLI. `run` one seed, `swarm` many seeds on all cores,
// `replay` what a failure printed.
#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <chrono>
#include <functional>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/testing/bugs.h"
#include "sim/history.h"
#include "sim/history_filter.h"
#include "reports/report.h"
#include "sim/scenario_io.h"
#include "sim/shrink.h"
#include "sim/simulation.h"
#include "google/protobuf/text_format.h"

ABSL_FLAG(std::string, scenario, "", "scenario textproto file (default: the built-in scenario)");
ABSL_FLAG(uint64_t, seed, 1, "run/replay: the seed");
ABSL_FLAG(uint64_t, seeds, 100, "swarm: how many seeds");
ABSL_FLAG(uint64_t, first_seed, 1, "swarm: the first seed");
ABSL_FLAG(int, jobs, 0, "swarm: parallel seeds (0: one per core)");
ABSL_FLAG(bool, check_determinism, false, "run each seed twice and compare event hashes");
ABSL_FLAG(bool, event_kinds, false,
          "run/replay: print the run's events by kind (where a seed's events go; the run is the same)");
ABSL_FLAG(bool, verbose, false, "run: print the history of a failing run");
ABSL_FLAG(std::string, bug, "",
          "plant a bug to see a checker catch it: publish_without_outbox, ack_before_commit, "
          "no_client_dedup, no_sync_on_reconnect, lease_never_expires, unversioned_cache_fill, "
          "seq_in_memory, skip_membership_check, ignore_gap, apply_events_unversioned, "
          "dispatch_without_outbox, join_ignores_policy, kick_without_ban, info_for_anyone, "
          "cursor_for_anyone, recall_keeps_body, unread_counts_own, ignore_read_error, canary");
ABSL_FLAG(std::string, report_dir, "parley-reports",
          "where reports go (relative paths are taken from where you ran the command)");
ABSL_FLAG(int, max_runs, 200, "shrink: most simulation runs to spend");
ABSL_FLAG(std::string, out, "", "shrink: where to write the smallest scenario (default: in the report directory)");
ABSL_FLAG(uint32_t, recheck_every, 20,
          "swarm: also re-run every Nth seed to check determinism (0: never)");
ABSL_FLAG(std::string, junit, "", "run/swarm: also write a JUnit XML file, one testcase per seed");
ABSL_FLAG(std::string, seeds_file, "",
          "swarm: run exactly the seeds listed in FILE, one per line, in that order "
          "('#' comments and blank lines allowed)");
ABSL_FLAG(bool, fail_fast, false, "swarm: start no new seed after the first failure");
ABSL_FLAG(std::string, client, "",
          "replay: only this client's entries: an address (client.user6.d1), a prefix "
          "(client.user6) or a user id (168)");
ABSL_FLAG(std::string, conversation, "", "replay: only this conversation's entries (p:2:3, g:4)");
ABSL_FLAG(std::string, from_ms, "",
          "replay: only entries at or after t=MS (as the history prints t=)");
ABSL_FLAG(std::string, to_ms, "", "replay: only entries at or before t=MS");
ABSL_FLAG(uint64_t, max_memory_mb, 4096,
          "refuse a scenario whose runs (times the parallel jobs of a swarm) would need more "
          "memory than this, by the estimate printed");
ABSL_FLAG(double, progress_every_s, 2,
          "run/replay/swarm: a progress line on stderr at most this often, in wall seconds "
          "(0: none)");
ABSL_FLAG(std::string, around, "", "replay: N[:K], entry #N and K entries either side (K 20)");

namespace parley {
namespace sim {
namespace {

constexpr const char* kUsage =
    "parley_sim <command> [flags]\n"
    "  run    --seed=N [--scenario=FILE] [--check_determinism] [--event_kinds]\n"
    "         one run, with its verdict (--event_kinds: its events by kind)\n"
    "  swarm  --seeds=N [--first_seed=S] [--jobs=J] [--scenario=FILE] [--check_determinism]\n"
    "         [--seeds_file=FILE] [--fail_fast]\n"
    "         (every 20th seed is run twice to check determinism; --recheck_every=0 turns it off)\n"
    "  replay --seed=N [--scenario=FILE]                          same as run, verbose\n"
    "         [--client=ADDR|PREFIX|USER] [--conversation=ID] [--from_ms=T] [--to_ms=T]\n"
    "         [--around=N[:K]]  print only the entries passing all (FAULT: time only);\n"
    "         entries a violation points to are marked '>>'; '~' lines: the network's fates\n"
    "  shrink --seed=N [--scenario=FILE] [--bug=B] [--max_runs=R] [--out=FILE]\n"
    "         reduce a failing run to the smallest scenario that still fails the same way\n"
    "common: --bug=NAME plants a bug; --report_dir=DIR (default parley-reports);\n"
    "        run/swarm: --junit=FILE writes JUnit XML (one testcase per seed)\n"
    "        --progress_every_s=S progress on stderr (0: none); --max_memory_mb=M refuses a\n"
    "        scenario estimated above M (default 4096)\n"
    "exit status: 0 passed, 1 a seed failed, 2 usage or scenario error\n";

// absl's flag parsing ends the process with status 1 on a bad flag and on
// --help. While it parses, this turns that into ours: 2 for a usage error,
// 0 for help.
int exit_status_while_parsing = -1;

void ExitStatusWhileParsing() {
  if (exit_status_while_parsing < 0) return;
  std::cout.flush();
  std::fflush(nullptr);
  std::_Exit(exit_status_while_parsing);
}

int UsageError(const std::string& message) {
  std::cerr << "parley_sim: " << message << "\n" << kUsage;
  return 2;
}

// A path given on the command line: relative paths are taken from the
// directory `bazel run` was started from (BUILD_WORKING_DIRECTORY; read only
// here, never by the simulation).
std::filesystem::path FromWorkingDirectory(const std::string& path) {
  std::filesystem::path p = path;
  if (p.is_relative()) {
    if (const char* cwd = std::getenv("BUILD_WORKING_DIRECTORY")) p = std::filesystem::path(cwd) / p;
  }
  return p;
}

// The report directory of one command, created new: `<name>` with the
// planted bug's name appended, and -2, -3, ... when that exists already, so
// no report overwrites another.
std::string ReportDir(std::string name, const std::string& bug) {
  if (!bug.empty()) absl::StrAppend(&name, "-", bug);
  std::replace(name.begin(), name.end(), '/', '_');  // a scenario named by its path
  const std::filesystem::path parent = FromWorkingDirectory(absl::GetFlag(FLAGS_report_dir));
  std::error_code ec;
  std::filesystem::create_directories(parent, ec);
  std::filesystem::path dir = parent / name;
  for (int n = 2; !std::filesystem::create_directory(dir, ec) && n < 10000; ++n) {
    if (ec) break;  // not "exists": WriteReport says what is wrong
    dir = parent / absl::StrCat(name, "-", n);
  }
  return dir.string();
}

std::string ReplayCommand(uint64_t seed) {
  std::string cmd = absl::StrCat("bazel run //sim:parley_sim -- replay --seed=", seed);
  if (!absl::GetFlag(FLAGS_bug).empty()) absl::StrAppend(&cmd, " --bug=", absl::GetFlag(FLAGS_bug));
  if (!absl::GetFlag(FLAGS_scenario).empty()) {
    absl::StrAppend(&cmd, " --scenario=", absl::GetFlag(FLAGS_scenario));
  }
  return cmd;
}

void PrintReportPath(const Report& report, const std::string& dir) {
  absl::Status s = WriteReport(report, dir);
  if (!s.ok()) {
    std::cerr << "parley_sim: " << s.message() << "\n";
    return;
  }
  std::cout << "report: " << dir << "/report.html\n";
}

std::string ShrinkCommand(uint64_t seed) {
  std::string cmd = ReplayCommand(seed);
  cmd.replace(cmd.find(" replay "), 8, " shrink ");
  return cmd;
}

// Runs `seed`; with determinism checking, runs it again and compares. A
// difference is a violation of the checker `determinism`, naming the first
// event that differs.
RunResult RunOne(const Scenario& scenario, uint64_t seed, bool check_determinism,
                 bool explain = false,
                 std::function<void(const RunProgress&)> progress = nullptr,
                 bool count_kinds = false) {
  RunOptions options;
  options.trace = check_determinism;
  options.explain = explain;
  options.count_kinds = count_kinds;
  options.progress = std::move(progress);
  RunResult first = RunScenario(scenario, seed, options);
  if (!check_determinism) return first;
  RunResult second = RunScenario(scenario, seed, options);
  if (first.hash != second.hash) {
    const size_t n = std::min(first.trace.size(), second.trace.size());
    size_t i = 0;
    while (i < n && first.trace[i].first == second.trace[i].first) ++i;
    Violation v;
    v.checker = "determinism";
    v.explanation = absl::StrCat(
        "seed ", seed, " is not deterministic: hashes ", absl::Hex(first.hash), " vs ",
        absl::Hex(second.hash), "; first differing event: ",
        i < n ? first.trace[i].second + " vs " + second.trace[i].second : "(one run is longer)");
    first.violations.push_back(std::move(v));
    first.passed = false;
  }
  first.trace.clear();
  return first;
}

bool DiffersWhenRunTwice(const RunResult& r) {
  for (const Violation& v : r.violations) {
    if (v.checker == "determinism") return true;
  }
  return false;
}

// The line that says what the determinism check did.
std::string DeterminismLine(uint64_t rechecked, const std::vector<uint64_t>& differing) {
  if (differing.empty()) {
    return absl::StrCat("determinism: ", rechecked, " seed", rechecked == 1 ? "" : "s",
                        " run twice, hashes equal");
  }
  return absl::StrCat("determinism: ", rechecked, " seed", rechecked == 1 ? "" : "s",
                      " run twice, ", differing.size(), " differ (seed ",
                      absl::StrJoin(differing, ", "), ")");
}

void PrintVerdict(const RunResult& r, bool verbose, const HistoryFilter& filter = {}) {
  if (!r.error.empty()) std::cout << "error: " << r.error << "\n";
  for (const Violation& v : r.violations) {
    std::cout << "FAIL checker=" << v.checker << " seed=" << r.seed;
    if (v.entry >= 0 && v.entry < r.history.entries_size()) {
      std::cout << " entry=" << Describe(r.history.entries(v.entry));
    }
    std::cout << "\n  " << v.explanation << "\n";
  }
  if (!verbose) return;
  // replay: the history, passing or not; the entries violations point to marked.
  std::map<int64_t, std::vector<std::string>> marks;  // entry -> checkers
  for (const Violation& v : r.violations) {
    if (v.entry >= 0 && v.entry < r.history.entries_size()) marks[v.entry].push_back(v.checker);
    for (int64_t further : v.further_entries) {  // the same cause's further findings
      if (further < 0 || further >= r.history.entries_size()) continue;
      marks[further].push_back(absl::StrCat(v.checker, " (same cause as #", v.entry, ")"));
    }
  }
  int shown = 0, network_shown = 0;
  int next_network = 0;  // network steps print before the entry that followed them
  auto print_network_until = [&](uint64_t index) {
    for (; next_network < r.history.network_size() &&
           r.history.network(next_network).index() <= index;
         ++next_network) {
      const HistoryEntry& n = r.history.network(next_network);
      if (!Passes(filter, n)) continue;
      ++network_shown;
      std::cout << "  " << Describe(n) << "\n";
    }
  };
  for (const HistoryEntry& e : r.history.entries()) {
    print_network_until(e.index());
    if (!Passes(filter, e)) continue;
    ++shown;
    auto it = marks.find(static_cast<int64_t>(e.index()));
    if (it == marks.end()) {
      std::cout << "  " << Describe(e) << "\n";
    } else {
      std::cout << ">> " << Describe(e) << "  <<< " << absl::StrJoin(it->second, ", ") << "\n";
    }
  }
  print_network_until(~uint64_t{0});
  std::cout << "shown: " << shown << " of " << r.history.entries_size() << " entries and "
            << network_shown << " of " << r.history.network_size()
            << " network steps (filters: " << filter.ToString() << ")\n";
  for (const Violation& v : r.violations) {
    std::cout << "violation: checker=" << v.checker << " entry="
              << (v.entry >= 0 ? absl::StrCat("#", v.entry) : std::string("none")) << "\n";
  }
}

// One seed as a JUnit testcase.
JunitCase JunitFor(const RunResult& r, double wall_seconds) {
  JunitCase c;
  c.name = absl::StrCat("seed ", r.seed);
  c.seconds = wall_seconds;
  if (!r.error.empty()) c.failures.emplace_back("scenario", r.error);
  for (const Violation& v : r.violations) c.failures.emplace_back(v.checker, v.explanation);
  if (!c.failures.empty()) c.replay = ReplayCommand(r.seed);
  return c;
}

// Writes --junit's file, if asked for; false (said on stderr) if it cannot.
bool WriteJunit(const std::string& suite, const std::vector<JunitCase>& cases) {
  const std::string flag = absl::GetFlag(FLAGS_junit);
  if (flag.empty()) return true;
  const std::string path = FromWorkingDirectory(flag).string();
  std::ofstream out(path);
  out << JunitXml(suite, cases);
  out.close();
  if (!out) {
    std::cerr << "parley_sim: cannot write the JUnit file " << path << "\n";
    return false;
  }
  std::cout << "junit: " << path << "\n";
  return true;
}

// "1m 05s", "12s", "1h 02m": an ETA as a person reads it.
std::string Eta(double seconds) {
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  if (s >= 3600) return absl::StrFormat("%dh %02dm", s / 3600, s / 60 % 60);
  if (s >= 60) return absl::StrFormat("%dm %02ds", s / 60, s % 60);
  return absl::StrCat(s, "s");
}

// A run's progress on stderr (stdout stays what it is): where it is in
// simulated time, its events and an ETA from the wall time so far, at most
// every --progress_every_s wall seconds. The wall clock is read here only;
// the run is told nothing back.
std::function<void(const RunProgress&)> RunProgressLine(uint64_t seed) {
  const double every = absl::GetFlag(FLAGS_progress_every_s);
  if (every <= 0) return nullptr;
  const auto start = std::chrono::steady_clock::now();
  auto last = std::make_shared<double>(0);
  return [=](const RunProgress& p) {
    const double wall =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (wall - *last < every || p.sim_s >= p.total_s) return;
    *last = wall;
    const double left =
        p.total_s > p.sim_s && p.sim_s > 0 ? wall * (p.total_s - p.sim_s) / p.sim_s : 0;
    std::fprintf(stderr, "progress: seed %llu at t=%.1fs of %.0fs simulated (%.0f%%), %llu events, "
                 "%.0fs wall, ETA %s\n",
                 static_cast<unsigned long long>(seed), p.sim_s, p.total_s,
                 100 * p.sim_s / std::max(p.total_s, 1e-9),
                 static_cast<unsigned long long>(p.events), wall, Eta(left).c_str());
  };
}

int Run(const Scenario& scenario, bool verbose, const HistoryFilter& filter = {}) {
  const uint64_t seed = absl::GetFlag(FLAGS_seed);
  const bool check = absl::GetFlag(FLAGS_check_determinism);
  const auto start = std::chrono::steady_clock::now();
  std::cout << "config: " << RunConfig(scenario, seed) << std::endl;
  RunResult r = RunOne(scenario, seed, check, /*explain=*/true, RunProgressLine(seed),
                       absl::GetFlag(FLAGS_event_kinds));
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (filter.around >= r.history.entries_size()) {
    return UsageError(absl::StrCat("--around=", filter.around, ": the history has entries #0 to #",
                                   r.history.entries_size() - 1));
  }
  PrintVerdict(r, verbose, filter);
  if (check) {
    std::vector<uint64_t> differing;
    if (DiffersWhenRunTwice(r)) differing.push_back(seed);
    std::cout << DeterminismLine(1, differing) << "\n";
  }
  std::cout << "probes:";
  for (const auto& [name, n] : r.probes) std::cout << " " << name << "=" << n;
  std::cout << "\n";
  if (!r.event_kinds.empty()) {
    // Most first; ties by name, so the listing is the same every time.
    std::vector<std::pair<uint64_t, std::string>> kinds;
    for (const auto& [kind, n] : r.event_kinds) kinds.emplace_back(n, kind);
    std::sort(kinds.begin(), kinds.end(), [](const auto& a, const auto& b) {
      return a.first != b.first ? a.first > b.first : a.second < b.second;
    });
    std::cout << "events by kind (" << kinds.size() << " kinds, " << r.events << " events):\n";
    for (const auto& [n, kind] : kinds) {
      std::cout << absl::StrFormat("  %8u %5.1f%%  %s\n", n, 100.0 * n / std::max<uint64_t>(r.events, 1),
                                   kind);
    }
  }
  std::cout << absl::StrFormat("history: sends_acked=%u sends_failed=%u deliveries=%u entries=%d\n",
                               r.sends_acked, r.sends_failed, r.deliveries,
                               r.history.entries_size());
  std::cout << absl::StrFormat("RUN seed=%u %s events=%u sim_s=%.1f wall_s=%.2f hash=%016x\n", seed,
                               r.passed ? "passed" : "FAILED", r.events, r.sim_seconds, wall,
                               r.hash);
  if (!r.passed) {
    std::cout << "replay: " << ReplayCommand(seed) << "\n";
    std::cout << "shrink: " << ShrinkCommand(seed) << "\n";
  }
  ReportBuilder report("run", scenario);
  report.AddRun(r, ReplayCommand(seed), ShrinkCommand(seed));
  report.AddSeedRecord(MakeSeedRecord(r, check, 0, wall));
  std::vector<uint64_t> differing;
  if (DiffersWhenRunTwice(r)) differing.push_back(seed);
  report.SetDeterminism(check ? 1 : 0, differing);
  report.SetWall(wall);
  PrintReportPath(report.Finish(), ReportDir(absl::StrCat("run-", scenario.name(), "-", seed), scenario.bug()));
  if (!WriteJunit(absl::StrCat("parley_sim run ", scenario.name()), {JunitFor(r, wall)})) return 2;
  return r.passed ? 0 : 1;
}

int ShrinkCmd(const Scenario& scenario) {
  const uint64_t seed = absl::GetFlag(FLAGS_seed);
  std::cout << "shrink: scenario=" << scenario.name() << " seed=" << seed << std::endl;
  // The shrinker reads no clock: each step's wall time is taken here.
  const auto start = std::chrono::steady_clock::now();
  auto last = start;
  ShrinkResult s = Shrink(scenario, seed, absl::GetFlag(FLAGS_max_runs), [&last](const ShrinkStep& step) {
    const auto now = std::chrono::steady_clock::now();
    std::cout << absl::StrFormat("step %d: removed %s: size %u -> %u (%d %s, %.2f s)\n", step.number,
                                 step.removed, step.size_before, step.size_after, step.runs,
                                 step.runs == 1 ? "run" : "runs",
                                 std::chrono::duration<double>(now - last).count())
              << std::flush;
    last = now;
  });
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!s.reproduced) {
    std::cout << "seed " << seed << " passes: nothing to shrink\n";
    return 2;
  }
  std::string text;
  google::protobuf::TextFormat::PrintToString(s.shrunk, &text);
  const std::string dir = ReportDir(absl::StrCat("shrink-", scenario.name(), "-", seed), scenario.bug());
  std::string path = absl::GetFlag(FLAGS_out);
  if (!path.empty()) path = FromWorkingDirectory(path).string();
  if (path.empty()) path = dir + "/shrunk.textproto";
  std::ofstream out(path);
  out << "# Shrunk by parley_sim shrink from " << scenario.name() << " seed " << seed
      << ": fails " << s.checker << "\n" << text;
  out.close();
  if (!out) {
    std::cerr << "parley_sim: cannot write " << path << "\n";
    return 2;
  }
  const Workload& w = s.shrunk.workload();
  std::cout << absl::StrFormat(
      "left: users=%u groups=%u faults=%d sends=%s duration=%gs nodes=%u/%u/%u/%u/%u "
      "(gateways/shards/user/friend/group replicas)\n",
      w.users(), w.groups(), s.shrunk.faults().script_size(),
      w.has_send_filter() ? absl::StrCat(w.send_filter().keep_size())
                          : absl::StrFormat("all (%g/s)", w.send_rate_per_s()),
      w.duration_s(), s.shrunk.topology().gateways(), s.shrunk.topology().shards(),
      s.shrunk.topology().user_replicas(), s.shrunk.topology().friend_replicas(),
      s.shrunk.topology().group_replicas());
  std::cout << absl::StrFormat("SHRINK checker=%s size=%u->%u (%.1f%%) steps=%d runs=%d wall_s=%.1f\n",
                               s.checker, s.original_size, s.shrunk_size,
                               100.0 * s.shrunk_size / std::max<uint64_t>(1, s.original_size),
                               static_cast<int>(s.steps.size()), s.runs, wall);
  std::cout << "wrote " << path << "\n";
  // The shrinker halves the topology and the users under a fixed fault
  // script; a fault left naming a node that is gone would make the file
  // refused when it is loaded again. Said here rather than found later.
  if (absl::Status valid = ValidateScenario(s.shrunk, path); !valid.ok()) {
    std::cerr << "parley_sim: warning: the shrunk scenario will be refused when loaded: "
              << valid.message() << "\n";
  }
  const std::string replay = absl::StrCat("bazel run //sim:parley_sim -- replay --seed=", seed,
                                          " --scenario=", path);
  std::cout << "replay: " << replay << "\n";
  ReportBuilder report("shrink", s.shrunk);
  // The report's run is this re-run of the shrunk scenario, timed on its own.
  const auto rerun_start = std::chrono::steady_clock::now();
  RunResult shrunk_run = RunScenario(s.shrunk, seed);
  report.SetWall(std::chrono::duration<double>(std::chrono::steady_clock::now() - rerun_start).count());
  report.AddRun(shrunk_run, replay, "");
  ShrinkSummary summary;
  summary.set_checker(s.checker);
  summary.set_size_before(s.original_size);
  summary.set_size_after(s.shrunk_size);
  summary.set_runs(s.runs);
  summary.set_scenario_path(path);
  summary.set_replay_command(replay);
  report.SetShrink(summary);
  PrintReportPath(report.Finish(), dir);
  return 1;
}

// One checker's failures across a swarm: the seeds, in seed order, and the
// first one's explanation and offending entry.
struct FailureGroup {
  std::string checker;
  std::vector<uint64_t> seeds;
  std::string explanation;
  std::string entry;  // Describe() of the offending entry, or empty
};

// Adds `r`'s violations to `groups` (kept in the order checkers first fail),
// one seed per checker however often it failed there.
void AddToGroups(const RunResult& r, std::vector<FailureGroup>* groups) {
  for (const Violation& v : r.violations) {
    auto g = std::find_if(groups->begin(), groups->end(),
                          [&](const FailureGroup& x) { return x.checker == v.checker; });
    if (g == groups->end()) {
      FailureGroup fresh;
      fresh.checker = v.checker;
      fresh.explanation = v.explanation;
      if (v.entry >= 0 && v.entry < r.history.entries_size()) {
        fresh.entry = Describe(r.history.entries(v.entry));
      }
      groups->push_back(std::move(fresh));
      g = groups->end() - 1;
    }
    if (g->seeds.empty() || g->seeds.back() != r.seed) g->seeds.push_back(r.seed);
  }
}

// Per checker: how many seeds failed it, which (the first 10), the first
// failure's explanation and entry, and one replay and one shrink command.
void PrintGroups(const std::vector<FailureGroup>& groups, uint64_t count) {
  for (const FailureGroup& g : groups) {
    std::vector<uint64_t> shown(g.seeds.begin(),
                                g.seeds.begin() + std::min<size_t>(g.seeds.size(), 10));
    std::cout << "\n" << g.checker << ": " << g.seeds.size() << " of " << count << " seed"
              << (count == 1 ? "" : "s") << " failed (seed" << (g.seeds.size() == 1 ? " " : "s ")
              << absl::StrJoin(shown, " ") << (g.seeds.size() > 10 ? " …" : "") << ")\n";
    std::cout << "  first, seed " << g.seeds.front() << ": " << g.explanation << "\n";
    if (!g.entry.empty()) std::cout << "  entry: " << g.entry << "\n";
    std::cout << "  replay: " << ReplayCommand(g.seeds.front()) << "\n";
    std::cout << "  shrink: " << ShrinkCommand(g.seeds.front()) << "\n";
  }
  if (!groups.empty()) std::cout << "\n";
}

// The swarm's running totals, folded in seed order.
struct SwarmTotals {
  uint64_t failed = 0, events = 0, rechecked = 0;
  double sim_s = 0;
  std::vector<RunResult> failures;  // in seed order, without history
  std::vector<FailureGroup> groups;
  std::vector<uint64_t> not_deterministic;
  std::map<std::string, uint64_t> probes;
};

// One seed's result with its wall times (seconds from the swarm's start).
struct Finished {
  RunResult result;
  bool rechecked = false;
  double started_s = 0, wall_s = 0;
};

// Seeds finish in whatever order the threads reach them; each result waits
// until every earlier seed (in `seeds`' order) is folded, so the text,
// report.json and report.html are the same whatever the threads did. A thread
// starts a seed only within `window` seeds of the next one to fold, which
// bounds the results waiting. With --fail_fast no seed starts after a
// failure is seen; those seeds are reported as skipped.
int Swarm(const Scenario& scenario, const std::vector<uint64_t>& seeds) {
  const uint64_t count = seeds.size();
  int jobs = absl::GetFlag(FLAGS_jobs);
  if (jobs <= 0) jobs = std::max(1u, std::thread::hardware_concurrency());
  const bool check = absl::GetFlag(FLAGS_check_determinism);
  const uint32_t every = absl::GetFlag(FLAGS_recheck_every);
  const bool fail_fast = absl::GetFlag(FLAGS_fail_fast);
  const bool tty = isatty(STDERR_FILENO);
  const std::string seeds_file = absl::GetFlag(FLAGS_seeds_file);
  std::cout << "swarm: scenario=" << scenario.name();
  if (seeds_file.empty()) {
    std::cout << " seeds=" << seeds.front() << ".." << seeds.back();
  } else {
    std::cout << " seeds_file=" << seeds_file << " (" << count << " seed" << (count == 1 ? "" : "s")
              << ")";
  }
  std::cout << " jobs=" << jobs << (check ? " check_determinism" : "")
            << (fail_fast ? " fail_fast" : "") << "\n";

  const uint64_t window = 4 * static_cast<uint64_t>(jobs);
  std::atomic<uint64_t> next{0};
  std::atomic<bool> stop{false};                     // --fail_fast saw a failure
  std::mutex mu;
  std::condition_variable folded;
  uint64_t next_to_fold = 0;                         // guarded by mu
  std::map<uint64_t, Finished> finished;             // guarded by mu; by index in `seeds`
  uint64_t done = 0, done_failed = 0;                // guarded by mu; progress only
  const double progress_every = absl::GetFlag(FLAGS_progress_every_s);
  double last_progress = 0;                          // guarded by mu; progress only
  SwarmTotals totals;                                // guarded by mu
  ReportBuilder report("swarm", scenario);           // guarded by mu
  std::vector<JunitCase> junit(count);               // guarded by mu; by index
  std::vector<bool> ran(count, false);               // guarded by mu
  auto fold = [&](Finished& f) {
    RunResult& r = f.result;
    totals.events += r.events;
    totals.sim_s += r.sim_seconds;
    for (const auto& [name, n] : r.probes) totals.probes[name] += n;
    if (f.rechecked) ++totals.rechecked;
    if (DiffersWhenRunTwice(r)) totals.not_deterministic.push_back(r.seed);
    report.AddRun(r, ReplayCommand(r.seed), ShrinkCommand(r.seed));
    report.AddSeedRecord(MakeSeedRecord(r, f.rechecked, f.started_s, f.wall_s));
    if (!r.passed) {
      ++totals.failed;
      AddToGroups(r, &totals.groups);
      r.history.Clear();
      totals.failures.push_back(std::move(r));
    }
  };
  const auto start = std::chrono::steady_clock::now();
  auto since_start = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  auto worker = [&] {
    for (;;) {
      const uint64_t i = next.fetch_add(1);
      if (i >= count) return;
      {
        std::unique_lock<std::mutex> lock(mu);
        folded.wait(lock, [&] { return i < next_to_fold + window || stop; });
      }
      if (stop) return;
      const uint64_t seed = seeds[i];
      const bool recheck = check || (every > 0 && seed % every == 0);
      Finished f;
      f.started_s = since_start();
      f.result = RunOne(scenario, seed, recheck);
      f.wall_s = since_start() - f.started_s;
      f.rechecked = recheck;
      std::lock_guard<std::mutex> lock(mu);
      ++done;
      if (!f.result.passed) {
        ++done_failed;
        if (fail_fast) stop = true;
      }
      junit[i] = JunitFor(f.result, f.wall_s);
      ran[i] = true;
      finished.emplace(i, std::move(f));
      while (!finished.empty() && finished.begin()->first == next_to_fold) {
        fold(finished.begin()->second);
        finished.erase(finished.begin());
        ++next_to_fold;
      }
      folded.notify_all();
      // Wall time goes to the progress line only: seeds done of all, the
      // rate, and an ETA for the seeds left at that rate.
      const double wall = since_start();
      const double rate = done / std::max(wall, 1e-9);
      const std::string eta = Eta((count - done) / std::max(rate, 1e-9));
      if (tty) {
        std::fprintf(stderr, "\r%llu/%llu seeds, %llu failed, %.1f seeds/s, ETA %s   ",
                     static_cast<unsigned long long>(done), static_cast<unsigned long long>(count),
                     static_cast<unsigned long long>(done_failed), rate, eta.c_str());
      } else if (done % 10 == 0 || done == count ||
                 (progress_every > 0 && wall - last_progress >= progress_every)) {
        last_progress = wall;
        std::fprintf(stderr, "progress: %llu/%llu seeds, %llu failed, %.2f seeds/s, ETA %s\n",
                     static_cast<unsigned long long>(done), static_cast<unsigned long long>(count),
                     static_cast<unsigned long long>(done_failed), rate, eta.c_str());
      }
    }
  };
  std::vector<std::thread> threads;
  for (int j = 0; j < jobs; ++j) threads.emplace_back(worker);
  for (std::thread& t : threads) t.join();
  if (tty) std::fprintf(stderr, "\n");
  // Seeds --fail_fast skipped leave gaps: what ran after them, in order.
  for (auto& [i, f] : finished) fold(f);
  finished.clear();
  const double wall = since_start();
  const uint64_t ran_count = done;
  const uint64_t skipped = count - ran_count;
  for (uint64_t i = 0; i < count; ++i) {
    if (ran[i]) continue;
    junit[i].name = absl::StrCat("seed ", seeds[i]);
    junit[i].skipped = true;
  }

  const uint64_t failed = totals.failed;
  // One machine-readable line per (checker, seed), in seed order, then the
  // failures grouped by checker.
  for (const RunResult& r : totals.failures) {
    if (!r.error.empty()) std::cout << "error: seed " << r.seed << ": " << r.error << "\n";
    std::vector<std::string> printed;
    for (const Violation& v : r.violations) {
      if (std::find(printed.begin(), printed.end(), v.checker) != printed.end()) continue;
      printed.push_back(v.checker);
      std::cout << "FAIL checker=" << v.checker << " seed=" << r.seed << "\n";
    }
  }
  PrintGroups(totals.groups, ran_count);
  if (totals.rechecked > 0) {
    std::cout << DeterminismLine(totals.rechecked, totals.not_deterministic) << "\n";
  }
  if (skipped > 0) {
    std::cout << "fail_fast: " << skipped << " of " << count << " seed" << (count == 1 ? "" : "s")
              << " skipped after the first failure\n";
  }
  const double per_seed = std::max<uint64_t>(ran_count, 1);
  std::cout << "\n  seeds  passed  failed  events/seed  sim_s/seed  seeds/s\n";
  std::cout << absl::StrFormat("  %5u  %6u  %6u  %11.0f  %10.1f  %7.2f\n", ran_count,
                               ran_count - failed, failed, totals.events / per_seed,
                               totals.sim_s / per_seed, ran_count / std::max(wall, 1e-9));
  std::cout << "probes:";
  std::vector<std::string> never;
  for (const auto& [name, n] : totals.probes) {
    std::cout << " " << name << "=" << n;
    if (n == 0) never.push_back(name);
  }
  std::cout << "\nprobes that never fired: " << (never.empty() ? "none" : absl::StrJoin(never, ", "))
            << "\n";
  std::cout << absl::StrFormat("SWARM seeds=%u passed=%u failed=%u", ran_count, ran_count - failed,
                               failed);
  if (skipped > 0) std::cout << " skipped=" << skipped;
  std::cout << absl::StrFormat(" events=%u sim_s=%.0f wall_s=%.1f\n", totals.events, totals.sim_s,
                               wall);
  report.SetDeterminism(totals.rechecked, totals.not_deterministic);
  report.SetSkipped(skipped);
  report.SetWall(wall);
  PrintReportPath(report.Finish(), ReportDir(absl::StrCat("swarm-", scenario.name(), "-",
                                                          seeds.front(), "-", count),
                                             scenario.bug()));
  if (!WriteJunit(absl::StrCat("parley_sim swarm ", scenario.name()), junit)) return 2;
  return failed == 0 ? 0 : 1;
}

// The seeds of --seeds_file, in order: one per line, '#' starts a comment,
// blank lines are skipped. A line that is not a seed is a usage error.
absl::StatusOr<std::vector<uint64_t>> ReadSeedsFile(const std::string& flag) {
  const std::string path = FromWorkingDirectory(flag).string();
  std::ifstream in(path);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("cannot read --seeds_file ", path));
  std::vector<uint64_t> seeds;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    const std::string text(absl::StripAsciiWhitespace(line.substr(0, line.find('#'))));
    if (text.empty()) continue;
    uint64_t seed;
    if (!absl::SimpleAtoi(text, &seed) || text[0] == '-' || text[0] == '+') {
      return absl::InvalidArgumentError(absl::StrCat(
          "--seeds_file ", path, " line ", n, ": '", text, "' is not a seed (one number per line)"));
    }
    seeds.push_back(seed);
  }
  if (seeds.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("--seeds_file ", path, " lists no seeds"));
  }
  return seeds;
}

}  // namespace
}  // namespace sim
}  // namespace parley

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(parley::sim::kUsage);
  bool help = false, seed_given = false;  // IsSpecifiedOnCommandLine is private here
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--") break;
    help = help || absl::StartsWith(a, "--help") || absl::StartsWith(a, "-help") ||
           a == "--version" || a == "-version";
    seed_given = seed_given || a == "--seed" || a == "-seed" || absl::StartsWith(a, "--seed=") ||
                 absl::StartsWith(a, "-seed=");
  }
  parley::sim::exit_status_while_parsing = help ? 0 : 2;
  std::atexit(parley::sim::ExitStatusWhileParsing);
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  parley::sim::exit_status_while_parsing = -1;
  if (args.size() == 2 && std::string(args[1]) == "help") {
    std::cout << parley::sim::kUsage;
    return 0;
  }
  if (args.size() != 2) {
    return parley::sim::UsageError(args.size() < 2 ? "no command" : "one command only");
  }
  const std::string command = args[1];
  if (command != "run" && command != "replay" && command != "swarm" && command != "shrink") {
    return parley::sim::UsageError(absl::StrCat("unknown command '", command, "'"));
  }
  if (command == "swarm" && absl::GetFlag(FLAGS_seeds) == 0) {
    return parley::sim::UsageError("--seeds is 0, must be at least 1");
  }
  if (command != "swarm" && !absl::GetFlag(FLAGS_seeds_file).empty()) {
    return parley::sim::UsageError("--seeds_file is for swarm");
  }
  if (command != "swarm" && absl::GetFlag(FLAGS_fail_fast)) {
    return parley::sim::UsageError("--fail_fast is for swarm");
  }
  if (command == "shrink" && !absl::GetFlag(FLAGS_junit).empty()) {
    return parley::sim::UsageError("--junit is for run and swarm");
  }
  absl::StatusOr<parley::sim::HistoryFilter> parsed = parley::sim::ParseHistoryFilter(
      absl::GetFlag(FLAGS_client), absl::GetFlag(FLAGS_conversation), absl::GetFlag(FLAGS_from_ms),
      absl::GetFlag(FLAGS_to_ms), absl::GetFlag(FLAGS_around));
  if (!parsed.ok()) return parley::sim::UsageError(std::string(parsed.status().message()));
  const parley::sim::HistoryFilter filter = *parsed;
  if (command != "replay" && !filter.empty()) {
    return parley::sim::UsageError(
        "--client, --conversation, --from_ms, --to_ms and --around are for replay");
  }
  std::vector<uint64_t> seeds;
  if (command == "swarm") {
    if (!absl::GetFlag(FLAGS_seeds_file).empty()) {
      absl::StatusOr<std::vector<uint64_t>> listed =
          parley::sim::ReadSeedsFile(absl::GetFlag(FLAGS_seeds_file));
      if (!listed.ok()) return parley::sim::UsageError(std::string(listed.status().message()));
      seeds = *std::move(listed);
    } else {
      for (uint64_t i = 0; i < absl::GetFlag(FLAGS_seeds); ++i) {
        seeds.push_back(absl::GetFlag(FLAGS_first_seed) + i);
      }
    }
  }
  if (command == "shrink" && !seed_given) {
    return parley::sim::UsageError("shrink needs --seed=N: the seed of the failure to shrink");
  }
  parley::sim::Scenario scenario = parley::sim::DefaultScenario();
  const std::string path = absl::GetFlag(FLAGS_scenario);
  if (!path.empty()) {
    absl::StatusOr<parley::sim::Scenario> loaded =
        parley::sim::LoadScenario(parley::sim::FromWorkingDirectory(path).string());
    if (!loaded.ok()) {
      std::cerr << "parley_sim: " << loaded.status().message() << "\n";
      return 2;
    }
    scenario = *loaded;
  }
  if (!absl::GetFlag(FLAGS_bug).empty()) {
    absl::StatusOr<parley::Bug> bug = parley::ParseBug(absl::GetFlag(FLAGS_bug));
    if (!bug.ok()) {
      std::cerr << "parley_sim: " << bug.status().message() << "\n";
      return 2;
    }
    scenario.set_bug(absl::GetFlag(FLAGS_bug));
  }
  // A huge topology: the estimate first, and a refusal above --max_memory_mb
  // (a swarm's jobs run at once, so it needs the estimate times its jobs).
  const parley::sim::MemoryEstimate memory = parley::sim::EstimateMemory(scenario);
  uint64_t parallel = 1;
  if (command == "swarm") {
    const int jobs = absl::GetFlag(FLAGS_jobs);
    parallel = std::min<uint64_t>(
        seeds.size(), jobs > 0 ? jobs : std::max(1u, std::thread::hardware_concurrency()));
  }
  const uint64_t max_mb = absl::GetFlag(FLAGS_max_memory_mb);
  if (memory.mb * parallel > max_mb) {
    std::cerr << "parley_sim: scenario " << scenario.name() << " needs about " << memory.mb
              << " MB per run (" << memory.driver << ")"
              << (parallel > 1
                      ? absl::StrCat(", ", memory.mb * parallel, " MB for ", parallel, " jobs")
                      : std::string())
              << ", above --max_memory_mb=" << max_mb << ": lower "
              << memory.driver.substr(0, memory.driver.find('='))
              << (parallel > 1 ? " or --jobs" : "")
              << ", or raise --max_memory_mb\n";
    return 2;
  }
  if (memory.mb >= 256) {
    std::cerr << "memory: about " << memory.mb << " MB per run estimated (" << memory.driver
              << "), limit --max_memory_mb=" << max_mb << "\n";
  }
  if (command == "run") return parley::sim::Run(scenario, absl::GetFlag(FLAGS_verbose));
  if (command == "replay") return parley::sim::Run(scenario, true, filter);
  if (command == "swarm") return parley::sim::Swarm(scenario, seeds);
  return parley::sim::ShrinkCmd(scenario);
}
