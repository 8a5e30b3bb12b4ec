#include "reports/report.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/util/json_util.h"
#include "sim/history.h"

namespace parley {
namespace sim {
namespace {

constexpr int64_t kEpochUs = 1700000000000000LL;  // the world's start

// Entries in a report keep their time from the run's start.
double Seconds(int64_t time_us) { return time_us / 1e6; }

HistoryEntry FromRunStart(HistoryEntry e) {
  e.set_time_us(e.time_us() - kEpochUs);
  return e;
}

std::string Escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const size_t i = std::min(sorted.size() - 1, static_cast<size_t>(p * sorted.size()));
  return sorted[i];
}

// Milliseconds from each send to each delivery of it.
void SendToDeliver(const History& h, std::vector<double>* out) {
  std::map<std::pair<uint64_t, std::string>, int64_t> invoked;  // (sender, id) -> time
  for (const HistoryEntry& e : h.entries()) {
    if (e.kind() == HistoryEntry::SEND_INVOKED) {
      invoked.emplace(std::make_pair(e.user_id(), e.client_msg_id()), e.time_us());
    } else if (e.kind() == HistoryEntry::DELIVERED) {
      auto it = invoked.find({e.sender_id(), e.client_msg_id()});
      if (it != invoked.end()) out->push_back((e.time_us() - it->second) / 1000.0);
    }
  }
}

}  // namespace

Distribution MakeDistribution(const std::string& name, const std::string& unit,
                              std::vector<double> samples) {
  Distribution d;
  d.set_name(name);
  d.set_unit(unit);
  std::sort(samples.begin(), samples.end());
  d.set_count(samples.size());
  d.set_p50(Percentile(samples, 0.5));
  d.set_p90(Percentile(samples, 0.9));
  d.set_p99(Percentile(samples, 0.99));
  d.set_max(samples.empty() ? 0 : samples.back());
  // Log-spaced buckets: 1, 2, 5, 10, 20, 50, ...
  double bound = 1;
  int step = 0;
  size_t i = 0;
  while (i < samples.size() || d.bounds_size() < 4) {
    uint64_t count = 0;
    while (i < samples.size() && samples[i] <= bound) {
      ++count;
      ++i;
    }
    d.add_bounds(bound);
    d.add_counts(count);
    bound *= (step++ % 3 == 1) ? 2.5 : 2;
    if (d.bounds_size() > 30) break;
  }
  return d;
}

ReportBuilder::ReportBuilder(const std::string& kind, const Scenario& scenario) {
  report_.set_kind(kind);
  report_.set_scenario(scenario.name());
  report_.set_description(scenario.description());
  report_.set_bug(scenario.bug());
}

void ReportBuilder::AddRun(const RunResult& r, const std::string& replay,
                           const std::string& shrink) {
  if (report_.seeds() == 0 || r.seed < report_.first_seed()) report_.set_first_seed(r.seed);
  report_.set_seeds(report_.seeds() + 1);
  if (r.passed) {
    report_.set_passed(report_.passed() + 1);
  } else {
    report_.set_failed(report_.failed() + 1);
  }
  report_.set_events(report_.events() + r.events);
  report_.set_sim_seconds(report_.sim_seconds() + r.sim_seconds);
  for (const auto& [name, n] : r.probes) probes_[name] += n;
  SendToDeliver(r.history, &latency_ms_);
  profile_ms_.insert(profile_ms_.end(), r.profile_apply_ms.begin(), r.profile_apply_ms.end());
  sync_sizes_.insert(sync_sizes_.end(), r.sync_sizes.begin(), r.sync_sizes.end());
  if (!r.error.empty()) {
    Failure* f = report_.add_failures();
    f->set_seed(r.seed);
    f->set_checker("scenario");
    f->set_explanation(r.error);
  }
  for (const Violation& v : r.violations) {
    ++checker_failures_[v.checker];
    Failure* f = report_.add_failures();
    f->set_seed(r.seed);
    f->set_checker(v.checker);
    f->set_explanation(v.explanation);
    f->set_replay_command(replay);
    f->set_shrink_command(shrink);
    f->set_config(r.config);
    f->set_chaos_start_s(r.chaos_start_s);
    for (const ScriptedFault& fault : r.faults) *f->add_faults() = fault;
    const auto& entries = r.history.entries();
    int center = entries.size() - 1;
    std::string conversation;
    if (v.entry >= 0 && v.entry < entries.size()) {
      *f->mutable_entry() = FromRunStart(entries[v.entry]);
      center = v.entry;
      conversation = entries[v.entry].conversation();
    }
    // The steps of the offending entry's conversation within two simulated
    // seconds of it (all steps when there is none), at most 150 either side.
    if (center >= 0) {
      const int64_t t = entries[center].time_us();
      auto related = [&](const HistoryEntry& e) {
        return std::llabs(e.time_us() - t) <= 2000000 &&
               (conversation.empty() || e.conversation() == conversation);
      };
      int lo = center, hi = center, taken = 0;
      for (int i = center - 1; i >= 0 && taken < 150 && entries[i].time_us() >= t - 2000000; --i) {
        if (related(entries[i])) {
          lo = i;
          ++taken;
        }
      }
      taken = 0;
      for (int i = center + 1; i < entries.size() && taken < 150 && entries[i].time_us() <= t + 2000000; ++i) {
        if (related(entries[i])) {
          hi = i;
          ++taken;
        }
      }
      for (int i = lo; i <= hi; ++i) {
        if (i == center || related(entries[i])) *f->add_window() = FromRunStart(entries[i]);
      }
    }
  }
}

void ReportBuilder::SetWall(double wall_seconds) { report_.set_wall_seconds(wall_seconds); }

Report ReportBuilder::Finish() {
  Report out = report_;
  if (out.wall_seconds() > 0) {
    out.set_time_compression(out.sim_seconds() / out.wall_seconds());
    out.set_events_per_second(out.events() / out.wall_seconds());
  }
  for (const auto& [name, checker] : AllCheckers()) {
    CheckerResult* c = out.add_checkers();
    c->set_name(name);
    c->set_failures(checker_failures_[name]);
  }
  for (const auto& [name, n] : checker_failures_) {
    bool known = false;
    for (const auto& [k, c] : AllCheckers()) known = known || k == name;
    if (!known) {
      CheckerResult* c = out.add_checkers();
      c->set_name(name);
      c->set_failures(n);
    }
  }
  for (const std::string& name : ProbeNames()) {
    Probe* p = out.add_probes();
    p->set_name(name);
    p->set_count(probes_[name]);
  }
  *out.add_distributions() = MakeDistribution("send to deliver", "ms", latency_ms_);
  *out.add_distributions() = MakeDistribution("profile update to group member entry", "ms", profile_ms_);
  *out.add_distributions() = MakeDistribution("messages per sync reply", "messages", sync_sizes_);
  return out;
}

void ReportBuilder::SetDeterminism(uint64_t run_twice, const std::vector<uint64_t>& differing) {
  DeterminismCheck* d = report_.mutable_determinism();
  d->set_seeds_run_twice(run_twice);
  d->set_differing(differing.size());
  d->clear_differing_seeds();
  for (uint64_t seed : differing) d->add_differing_seeds(seed);
  d->set_result(run_twice == 0 ? "not checked" : differing.empty() ? "hashes equal" : "hashes differ");
}

SeedRecord MakeSeedRecord(const RunResult& r, bool run_twice, double started_s,
                          double wall_seconds) {
  SeedRecord s;
  s.set_seed(r.seed);
  for (const auto& [name, value] : r.fault_mix) {
    FaultMixValue* v = s.add_fault_mix();
    v->set_name(name);
    v->set_value(value);
  }
  s.set_events(r.events);
  s.set_hash(absl::StrFormat("%016x", r.hash));
  s.set_verdict(r.passed ? "passed" : "failed");
  if (!r.error.empty()) s.add_checkers("scenario");
  for (const Violation& v : r.violations) {
    if (std::find(s.checkers().begin(), s.checkers().end(), v.checker) == s.checkers().end()) {
      s.add_checkers(v.checker);
    }
  }
  s.set_started_s(started_s);
  s.set_wall_seconds(wall_seconds);
  s.set_run_twice(run_twice);
  return s;
}

namespace {

// The JSON names of the 64-bit integer fields of `d` and the messages it
// holds, and the names of its other fields (a name in both is left alone).
void CollectFieldNames(const google::protobuf::Descriptor* d, std::set<std::string>* seen,
                       std::set<std::string>* int64s, std::set<std::string>* others) {
  if (!seen->insert(d->full_name()).second) return;
  for (int i = 0; i < d->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* f = d->field(i);
    switch (f->cpp_type()) {
      case google::protobuf::FieldDescriptor::CPPTYPE_INT64:
      case google::protobuf::FieldDescriptor::CPPTYPE_UINT64:
        int64s->insert(f->json_name());
        break;
      case google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE:
        others->insert(f->json_name());
        CollectFieldNames(f->message_type(), seen, int64s, others);
        break;
      default:
        others->insert(f->json_name());
    }
  }
}

// The index just past the JSON string starting at `json[i]` (a quote).
size_t StringEnd(const std::string& json, size_t i) {
  for (++i; i < json.size(); ++i) {
    if (json[i] == '\\') {
      ++i;
    } else if (json[i] == '"') {
      return i + 1;
    }
  }
  return json.size();
}

bool IsInteger(const std::string& s) {
  size_t i = s.size() > 1 && s[0] == '-' ? 1 : 0;
  if (i == s.size()) return false;
  for (; i < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
  }
  return true;
}

// Rewrites `"name": "123"` (and arrays of such) as `"name": 123` for the
// 64-bit integer fields of a Report.
std::string UnquoteIntegers(const std::string& json) {
  static const std::set<std::string>* const names = [] {
    std::set<std::string> seen, int64s, others;
    CollectFieldNames(Report::descriptor(), &seen, &int64s, &others);
    auto* out = new std::set<std::string>;
    for (const std::string& n : int64s) {
      if (others.count(n) == 0) out->insert(n);
    }
    return out;
  }();
  auto skip_space = [&](size_t i) {
    while (i < json.size() && std::isspace(static_cast<unsigned char>(json[i]))) ++i;
    return i;
  };
  // Appends the value at `i` unquoted if it is a quoted integer; returns its end.
  std::string out;
  auto value = [&](size_t i) {
    if (i < json.size() && json[i] == '"') {
      const size_t end = StringEnd(json, i);
      const std::string inner = json.substr(i + 1, end - i - 2);
      out += IsInteger(inner) ? inner : json.substr(i, end - i);
      return end;
    }
    return i;
  };
  size_t i = 0;
  while (i < json.size()) {
    if (json[i] != '"') {
      out += json[i++];
      continue;
    }
    const size_t end = StringEnd(json, i);
    const std::string key = json.substr(i + 1, end - i - 2);
    out.append(json, i, end - i);
    i = end;
    const size_t colon = skip_space(i);
    if (colon >= json.size() || json[colon] != ':' || names->count(key) == 0) continue;
    size_t v = skip_space(colon + 1);
    out.append(json, i, v - i);
    i = v;
    if (i < json.size() && json[i] == '[') {
      out += json[i++];
      while (i < json.size() && json[i] != ']') {
        const size_t next = value(i);
        if (next == i) {
          out += json[i++];
        } else {
          i = next;
        }
      }
    } else {
      i = value(i);
    }
  }
  return out;
}

}  // namespace

std::string ReportJson(const Report& report) {
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;
  google::protobuf::util::MessageToJsonString(report, &json, options);
  return UnquoteIntegers(json);
}

absl::Status ParseReportJson(const std::string& json, Report* report) {
  auto status = google::protobuf::util::JsonStringToMessage(json, report);
  if (!status.ok()) return absl::InvalidArgumentError(status.ToString());
  return absl::OkStatus();
}

// ---- HTML ------------------------------------------------------------------------------------

namespace {

const char* kStyle = R"(
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; color: #1d2330; background: #fbfbfd; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #dde; }
.verdict { display: inline-block; padding: 0.2em 0.7em; border-radius: 0.4em; color: white; font-weight: bold; }
.pass { background: #2e8b57; } .fail { background: #c0392b; }
table { border-collapse: collapse; margin: 0.6em 0; } td, th { padding: 0.25em 0.8em; text-align: left; }
tr:nth-child(even) { background: #eef0f5; } th { background: #dfe3ee; }
code, pre { background: #eef0f5; padding: 0.1em 0.4em; border-radius: 0.3em; font-size: 0.9em; }
pre { padding: 0.6em; overflow-x: auto; white-space: pre-wrap; }
.failure { border-left: 4px solid #c0392b; padding-left: 1em; margin: 1.5em 0; }
.muted { color: #778; } .never { color: #c0392b; font-weight: bold; }
svg text { font-size: 11px; fill: #333; }
)";

std::string Svg(int width, int height, const std::string& body) {
  return absl::StrFormat(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\">"
      "<rect width=\"%d\" height=\"%d\" fill=\"white\" stroke=\"#ccd\"/>%s</svg>",
      width, height, width, height, width, height, body);
}

std::string Histogram(const Distribution& d) {
  const int width = 520, height = 140, left = 40, bottom = 30;
  uint64_t peak = 1;
  for (uint64_t c : d.counts()) peak = std::max(peak, c);
  const int n = std::max(1, d.counts_size());
  const double bar = static_cast<double>(width - left - 10) / n;
  std::string body;
  for (int i = 0; i < d.counts_size(); ++i) {
    const double h = (height - bottom - 10) * static_cast<double>(d.counts(i)) / peak;
    absl::StrAppendFormat(&body,
                          "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#4a7bd0\">"
                          "<title>&lt;= %g %s: %u</title></rect>",
                          left + i * bar + 1, height - bottom - h, bar - 2, h, d.bounds(i),
                          Escape(d.unit()), d.counts(i));
    if (i % 3 == 0) {
      absl::StrAppendFormat(&body, "<text x=\"%.1f\" y=\"%d\">%g</text>", left + i * bar,
                            height - bottom + 14, d.bounds(i));
    }
  }
  absl::StrAppendFormat(&body, "<text x=\"4\" y=\"14\">%u</text><text x=\"%d\" y=\"%d\">%s</text>",
                        peak, width - 60, height - 4, Escape(d.unit()));
  return Svg(width, height, body);
}

// One lane per client in the window, fault bands, send-to-deliver lines, and
// the offending entry in red.
std::string Timeline(const Failure& f) {
  if (f.window_size() == 0) return "<p class=\"muted\">No history around this failure.</p>";
  std::vector<std::string> lanes;
  auto add_lane = [&](const std::string& c) {
    if (!c.empty() && std::find(lanes.begin(), lanes.end(), c) == lanes.end() && lanes.size() < 16) {
      lanes.push_back(c);
    }
  };
  add_lane(f.entry().client());
  std::map<std::pair<uint64_t, std::string>, const HistoryEntry*> sends;
  for (const HistoryEntry& e : f.window()) {
    if (e.kind() == HistoryEntry::SEND_INVOKED) sends[{e.user_id(), e.client_msg_id()}] = &e;
  }
  for (const HistoryEntry& e : f.window()) {
    if (e.kind() == HistoryEntry::DELIVERED && e.conversation() == f.entry().conversation()) {
      add_lane(e.client());
    }
  }
  for (const HistoryEntry& e : f.window()) {
    if (e.kind() != HistoryEntry::FAULT) add_lane(e.client());
  }
  const double t0 = Seconds(f.window(0).time_us()), t1 = Seconds(f.window(f.window_size() - 1).time_us());
  const double span = std::max(0.001, t1 - t0);
  const int left = 150, width = 1040, lane_h = 22, top = 30;
  const int height = top + lane_h * static_cast<int>(lanes.size()) + 30;
  auto x = [&](double t) { return left + (width - left - 10) * (t - t0) / span; };
  auto lane_y = [&](const std::string& c) -> int {
    auto it = std::find(lanes.begin(), lanes.end(), c);
    return it == lanes.end() ? -1 : top + lane_h * static_cast<int>(it - lanes.begin()) + lane_h / 2;
  };
  std::string body;
  for (size_t i = 0; i < lanes.size(); ++i) {
    const int y = top + lane_h * static_cast<int>(i) + lane_h / 2;
    absl::StrAppendFormat(&body, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#e4e6ee\"/>"
                          "<text x=\"4\" y=\"%d\">%s</text>", left, y, width - 10, y, y + 4,
                          Escape(lanes[i]));
  }
  for (const ScriptedFault& fault : f.faults()) {
    const double a = f.chaos_start_s() + fault.at_s();
    const double b = a + std::max(0.05, fault.duration_s());
    if (b < t0 || a > t1) continue;
    const double xa = x(std::max(a, t0)), xb = x(std::min(b, t1));
    absl::StrAppendFormat(&body,
                          "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"#f5b041\" "
                          "fill-opacity=\"0.25\"><title>%s %s</title></rect>"
                          "<text x=\"%.1f\" y=\"%d\">%s %s</text>",
                          xa, top - 12, std::max(2.0, xb - xa), height - top - 8,
                          ScriptedFault::Kind_Name(fault.kind()), Escape(fault.target()), xa + 2,
                          top - 2, ScriptedFault::Kind_Name(fault.kind()), Escape(fault.target()));
  }
  for (const HistoryEntry& e : f.window()) {
    const int y = lane_y(e.client());
    if (y < 0) continue;
    const double ex = x(Seconds(e.time_us()));
    if (e.kind() == HistoryEntry::DELIVERED) {
      auto s = sends.find({e.sender_id(), e.client_msg_id()});
      if (s != sends.end() && lane_y(s->second->client()) >= 0) {
        absl::StrAppendFormat(&body,
                              "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#9bb3e0\" "
                              "stroke-width=\"1\"/>",
                              x(Seconds(s->second->time_us())), lane_y(s->second->client()), ex, y);
      }
    }
    const char* color = e.kind() == HistoryEntry::DELIVERED     ? "#4a7bd0"
                        : e.kind() == HistoryEntry::SEND_ACKED  ? "#2e8b57"
                        : e.kind() == HistoryEntry::SEND_FAILED ? "#c0392b"
                                                                : "#888";
    absl::StrAppendFormat(&body, "<circle cx=\"%.1f\" cy=\"%d\" r=\"3\" fill=\"%s\"><title>%s</title></circle>",
                          ex, y, color, Escape(Describe(e)));
  }
  if (f.has_entry() && lane_y(f.entry().client()) >= 0) {
    absl::StrAppendFormat(&body,
                          "<circle cx=\"%.1f\" cy=\"%d\" r=\"8\" fill=\"none\" stroke=\"#c0392b\" "
                          "stroke-width=\"3\"><title>%s</title></circle>",
                          x(Seconds(f.entry().time_us())), lane_y(f.entry().client()),
                          Escape(Describe(f.entry())));
  }
  absl::StrAppendFormat(&body, "<text x=\"%d\" y=\"%d\">t=%.3fs</text><text x=\"%d\" y=\"%d\">t=%.3fs</text>",
                        left, height - 8, t0, width - 80, height - 8, t1);
  return Svg(width, height, body) +
         "<p class=\"muted\">Lanes are clients; dots are history steps (blue delivered, green "
         "acked, red failed), lines join a send to its deliveries, orange bands are faults, the "
         "red ring is the offending entry.</p>";
}

}  // namespace

std::string ReportHtml(const Report& r) {
  std::string h =
      "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\"><head>"
      "<meta charset=\"utf-8\"/><title>Parley " + Escape(r.kind()) + " report: " +
      Escape(r.scenario()) + "</title><style>" + kStyle + "</style></head><body>";
  const bool ok = r.failed() == 0 && r.failures_size() == 0;
  absl::StrAppend(&h, "<h1>Parley ", Escape(r.kind()), " — ", Escape(r.scenario()), "</h1>",
                  "<p><span class=\"verdict ", ok ? "pass\">PASSED" : "fail\">FAILED",
                  "</span> <span class=\"muted\">", Escape(r.description()), "</span></p>");
  h += "<h2>Summary</h2><table>";
  auto row = [&](const std::string& k, const std::string& v) {
    absl::StrAppend(&h, "<tr><th>", Escape(k), "</th><td>", Escape(v), "</td></tr>");
  };
  row("scenario", r.scenario());
  if (!r.bug().empty()) row("planted bug", r.bug());
  row("seeds", absl::StrCat(r.seeds(), " (from ", r.first_seed(), ")"));
  row("passed / failed", absl::StrCat(r.passed(), " / ", r.failed()));
  row("events", absl::StrCat(r.events()));
  row("simulated time", absl::StrFormat("%.0f s", r.sim_seconds()));
  row("wall time", absl::StrFormat("%.2f s", r.wall_seconds()));
  row("time compression", absl::StrFormat("%.0fx", r.time_compression()));
  row("events per second", absl::StrFormat("%.0f", r.events_per_second()));
  h += "</table><h2>Checkers</h2><table><tr><th>checker</th><th>failures</th><th>verdict</th></tr>";
  for (const CheckerResult& c : r.checkers()) {
    absl::StrAppend(&h, "<tr><td>", Escape(c.name()), "</td><td>", c.failures(), "</td><td>",
                    c.failures() == 0 ? "<span class=\"verdict pass\">pass</span>"
                                      : "<span class=\"verdict fail\">FAIL</span>",
                    "</td></tr>");
  }
  h += "</table>";
  if (r.has_shrink() && r.shrink().size_before() > 0) {
    const ShrinkSummary& s = r.shrink();
    absl::StrAppend(&h, "<h2>Shrink</h2><p>Checker <b>", Escape(s.checker()), "</b> still fails at size ",
                    s.size_after(), " (from ", s.size_before(), ") after ", s.runs(), " runs.</p>",
                    "<p>Smallest scenario: <code>", Escape(s.scenario_path()), "</code></p><pre>",
                    Escape(s.replay_command()), "</pre>");
  }
  if (r.failures_size() > 0) {
    absl::StrAppend(&h, "<h2>Failures (", r.failures_size(), ")</h2>");
    for (int i = 0; i < r.failures_size() && i < 20; ++i) {
      const Failure& f = r.failures(i);
      absl::StrAppend(&h, "<div class=\"failure\"><h3>", Escape(f.checker()), " — seed ", f.seed(),
                      "</h3><p>", Escape(f.explanation()), "</p>");
      if (f.has_entry()) absl::StrAppend(&h, "<p>First offending entry: <code>", Escape(Describe(f.entry())), "</code></p>");
      if (!f.replay_command().empty()) absl::StrAppend(&h, "<p>Replay:</p><pre>", Escape(f.replay_command()), "</pre>");
      if (!f.shrink_command().empty()) absl::StrAppend(&h, "<p>Shrink:</p><pre>", Escape(f.shrink_command()), "</pre>");
      if (!f.config().empty()) absl::StrAppend(&h, "<p class=\"muted\">", Escape(f.config()), "</p>");
      h += Timeline(f);
      h += "</div>";
    }
  }
  h += "<h2>Distributions</h2>";
  for (const Distribution& d : r.distributions()) {
    absl::StrAppendFormat(&h, "<h3>%s</h3><p>%u samples; p50 %.1f, p90 %.1f, p99 %.1f, max %.1f %s</p>",
                          Escape(d.name()), d.count(), d.p50(), d.p90(), d.p99(), d.max(), Escape(d.unit()));
    h += Histogram(d);
  }
  h += "<h2>Coverage probes</h2><table><tr><th>probe</th><th>count</th></tr>";
  for (const Probe& p : r.probes()) {
    absl::StrAppend(&h, "<tr><td>", Escape(p.name()), "</td><td>",
                    p.count() == 0 ? "<span class=\"never\">never fired</span>" : absl::StrCat(p.count()),
                    "</td></tr>");
  }
  h += "</table></body></html>\n";
  return h;
}

absl::Status WriteReport(const Report& report, const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  for (const auto& [name, text] : {std::make_pair("report.json", ReportJson(report)),
                                   std::make_pair("report.html", ReportHtml(report))}) {
    std::ofstream out(std::filesystem::path(dir) / name);
    out << text;
    out.close();
    if (!out) return absl::InternalError(absl::StrCat("cannot write ", dir, "/", name));
  }
  return absl::OkStatus();
}

std::string XmlEscape(const std::string& text) {
  std::string out;
  for (char c : text) {
    const unsigned char u = static_cast<unsigned char>(c);
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out += (u < 0x20 && c != '\n' && c != '\t' && c != '\r') ? '?' : c;
    }
  }
  return out;
}

std::string JunitXml(const std::string& suite, const std::vector<JunitCase>& cases) {
  int failures = 0, skipped = 0;
  double seconds = 0;
  for (const JunitCase& c : cases) {
    failures += c.failures.empty() ? 0 : 1;
    skipped += c.skipped ? 1 : 0;
    seconds += c.seconds;
  }
  std::string xml = absl::StrFormat(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<testsuite name=\"%s\" tests=\"%d\" failures=\"%d\" errors=\"0\" skipped=\"%d\" "
      "time=\"%.3f\">\n",
      XmlEscape(suite), cases.size(), failures, skipped, seconds);
  for (const JunitCase& c : cases) {
    absl::StrAppendFormat(&xml, "  <testcase classname=\"%s\" name=\"%s\" time=\"%.3f\"",
                          XmlEscape(suite), XmlEscape(c.name), c.seconds);
    if (c.failures.empty() && !c.skipped) {
      xml += "/>\n";
      continue;
    }
    xml += ">\n";
    if (c.skipped) xml += "    <skipped message=\"not started: --fail_fast\"/>\n";
    if (!c.failures.empty()) {
      std::vector<std::string> checkers;
      std::string body;
      for (const auto& [checker, explanation] : c.failures) {
        if (std::find(checkers.begin(), checkers.end(), checker) == checkers.end()) {
          checkers.push_back(checker);
        }
        absl::StrAppend(&body, checker, ": ", explanation, "\n");
      }
      absl::StrAppend(&body, "replay: ", c.replay, "\n");
      absl::StrAppendFormat(&xml, "    <failure message=\"%s\" type=\"%s\">%s</failure>\n",
                            XmlEscape(absl::StrJoin(checkers, ", ")),
                            XmlEscape(checkers.front()), XmlEscape(body));
    }
    xml += "  </testcase>\n";
  }
  xml += "</testsuite>\n";
  return xml;
}

}  // namespace sim
}  // namespace parley
