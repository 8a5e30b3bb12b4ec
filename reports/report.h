// Reports people can read: report.json (the Report proto as JSON) and one
// self-contained report.html (inline SVG, no scripts, no network).
#ifndef PARLEY_REPORTS_REPORT_H_
#define PARLEY_REPORTS_REPORT_H_

#include <string>
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

  // Adds one seed's result; a failing one keeps its window of history.
  // `replay` and `shrink` are the commands that reproduce and shrink it.
  void AddRun(const RunResult& result, const std::string& replay, const std::string& shrink);
  void SetWall(double wall_seconds);
  void SetShrink(const ShrinkSummary& shrink) { *report_.mutable_shrink() = shrink; }

  // Finishes the distributions and per-checker counts.
  Report Finish();

 private:
  Report report_;
  std::vector<double> latency_ms_, profile_ms_, sync_sizes_;
  std::map<std::string, uint64_t> probes_;
  std::map<std::string, uint64_t> checker_failures_;
};

Distribution MakeDistribution(const std::string& name, const std::string& unit,
                              std::vector<double> samples);

std::string ReportJson(const Report& report);
absl::Status ParseReportJson(const std::string& json, Report* report);
std::string ReportHtml(const Report& report);

// Writes report.json and report.html into `dir` (created if missing).
absl::Status WriteReport(const Report& report, const std::string& dir);

}  // namespace sim
}  // namespace parley

#endif  // PARLEY_REPORTS_REPORT_H_
