// Reports people can read: report.json (the Report proto as JSON) and one
// self-contained report.html (inline SVG, no scripts, no network).
#ifndef PARLEY_REPORTS_REPORT_H_
#define PARLEY_REPORTS_REPORT_H_

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "reports/report.pb.h"
#include "sim/simulation.h"

namespace parley {
namespace sim {

// Accumulates runs into a report.
class ReportBuilder {
 public:
  ReportBuilder(const std::string& kind, const Scenario& scenario);

  // Adds one seed's result. A failure keeps its window of history (and which
  // faults touch it) while the run has kept fewer than 20 and the report
  // fewer than 50; the rest keep their explanation, entry and faults.
  // `replay` and `shrink` are the commands that reproduce and shrink it.
  void AddRun(const RunResult& result, const std::string& replay, const std::string& shrink);
  void SetWall(double wall_seconds);
  void SetShrink(const ShrinkSummary& shrink) { *report_.mutable_shrink() = shrink; }
  void AddSeedRecord(const SeedRecord& record) { *report_.add_seed_records() = record; }
  // `run_twice` seeds were re-checked; `differing` of them (in seed order) differed.
  void SetDeterminism(uint64_t run_twice, const std::vector<uint64_t>& differing);
  void SetSkipped(uint64_t skipped) { report_.set_skipped(skipped); }

  // Finishes the distributions and per-checker counts.
  Report Finish();

 private:
  Report report_;
  Topology topology_;
  int windows_kept_ = 0;  // failures given a history window so far
  std::vector<double> latency_ms_, profile_ms_, sync_sizes_;
  std::map<std::string, uint64_t> probes_;
  std::map<std::string, uint64_t> checker_failures_;
};

Distribution MakeDistribution(const std::string& name, const std::string& unit,
                              std::vector<double> samples);

// Fills `report`'s fault_kinds from its seed records (Finish does this).
void AddFaultKindStats(Report* report);

// One seed's record: `started_s` and `wall_seconds` are wall time from the
// command's start (output only, never fed back into a run).
SeedRecord MakeSeedRecord(const RunResult& result, bool run_twice, double started_s,
                          double wall_seconds);

// report.json: the proto's JSON with every integer a JSON number (protobuf
// prints 64-bit integers as strings); it parses back with ParseReportJson.
std::string ReportJson(const Report& report);
absl::Status ParseReportJson(const std::string& json, Report* report);
std::string ReportHtml(const Report& report);

// One <testcase> of a JUnit file: a failing one carries its checkers'
// explanations and the replay command.
struct JunitCase {
  std::string name;  // "seed N"
  double seconds = 0;
  bool skipped = false;
  std::vector<std::pair<std::string, std::string>> failures;  // (checker, explanation)
  std::string replay;
};

// A JUnit XML document with one testsuite.
std::string JunitXml(const std::string& suite, const std::vector<JunitCase>& cases);
// Text escaped for XML content and attributes (&, <, >, quotes; control
// characters XML cannot hold become '?').
std::string XmlEscape(const std::string& text);

// Writes report.json and report.html into `dir` (created if missing).
absl::Status WriteReport(const Report& report, const std::string& dir);

}  // namespace sim
}  // namespace parley

#endif  // PARLEY_REPORTS_REPORT_H_
