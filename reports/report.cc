#include "reports/report.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/util/json_util.h"
#include "absl/strings/match.h"
#include "core/message/conversation.h"
#include "core/service_node.h"
#include "core/services.h"
#include "sim/history.h"
#include "sim/nemesis.h"

namespace parley {
namespace sim {
namespace {

constexpr int64_t kEpochUs = 1700000000000000LL;  // the world's start
// Failures that keep their history window: per run, and in the whole report
// (the page shows 20; a 500-seed swarm of failing seeds stays small).
constexpr int kWindows = 20;
constexpr int kReportWindows = 50;

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


// The servers a conversation involves: its message shard and the replicas of
// the service that owns it (group for a group, friend for a private one).
std::vector<std::string> ConversationNodes(const std::string& conversation, const Topology& t) {
  std::vector<std::string> out;
  absl::StatusOr<Conversation> c = ParseConversation(conversation);
  if (!c.ok()) return out;
  out.push_back(ShardAddress(ShardOf(conversation, std::max<uint32_t>(1, t.shards()))));
  const bool group = c->is_group;
  const uint32_t replicas = std::max<uint32_t>(1, group ? t.group_replicas() : t.friend_replicas());
  for (uint32_t i = 1; i <= replicas; ++i) {
    out.push_back(InstanceAddress(group ? kGroupService : kFriendService, absl::StrCat(i)));
  }
  return out;
}

// What every conversation shares: the gateways (which one a member's client
// uses is not in the history), the kv, the registry, the bus and the network.
bool Shared(const ScriptedFault& f) {
  switch (f.kind()) {
    case ScriptedFault::PARTITION_HALVES:
    case ScriptedFault::BUS_DUPLICATES:
    case ScriptedFault::BUS_STORM:
    case ScriptedFault::BUS_OUTAGE:
      return true;
    default:
      break;
  }
  const std::string& t = f.target();
  return t.empty() || absl::StartsWith(t, "gw.") || t == kKvAddress || t == kRegistryAddress;
}

FaultRelevance Relevance(const ScriptedFault& f, double chaos_start_s, bool has_entry,
                         const std::string& conversation,
                         const std::set<std::string>& involved, double from_s, double to_s,
                         double window_from_s, double window_to_s) {
  const double a = chaos_start_s + f.at_s();
  const double b = a + std::max(0.05, f.duration_s());
  FaultRelevance out;
  const std::string what = f.target().empty() ? ScriptedFault::Kind_Name(f.kind()) : f.target();
  if (!has_entry) {
    out.set_reason("the failure names no history entry (a check of the final state or the run)");
    return out;
  }
  if (conversation.empty()) {
    out.set_banded(b >= window_from_s && a <= window_to_s);
    out.set_reason(out.banded() ? "no offending conversation: every fault in the window is banded"
                                : "outside the window");
    return out;
  }
  if (involved.count(f.target()) > 0) {
    out.set_banded(true);
    out.set_reason(absl::StrCat("targets ", f.target(), absl::StartsWith(f.target(), "client.")
                                                            ? ", a member's client"
                                                            : ", a server of the conversation"));
    return out;
  }
  if (Shared(f)) {
    out.set_banded(b >= from_s && a <= to_s);
    out.set_reason(absl::StrCat(what, " is shared; ",
                                out.banded() ? "active during the violation"
                                             : "not active during the violation"));
    return out;
  }
  out.set_reason(absl::StrCat("targets ", f.target(), ", which ", conversation, " does not involve"));
  return out;
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
  topology_ = scenario.topology();
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
  if (r.violations.empty()) return;
  const auto& entries = r.history.entries();
  // Once per failing run that keeps windows: which copy of its message each
  // delivery was, at its client (a duplicate is a second copy of a seq).
  std::vector<uint32_t> copies(entries.size(), 0);
  if (windows_kept_ < kReportWindows) {
    std::map<std::tuple<std::string, std::string, uint64_t, std::string>, uint32_t> seen;
    for (int i = 0; i < entries.size(); ++i) {
      const HistoryEntry& e = entries[i];
      if (e.kind() != HistoryEntry::DELIVERED) continue;
      copies[i] = ++seen[{e.client(), e.conversation(), e.seq(),
                          e.seq() == 0 ? e.client_msg_id() : std::string()}];
    }
  }
  std::map<std::string, std::set<std::string>> members;  // conversation -> clients, lazily
  int windows = 0;
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
    int center = static_cast<int>(entries.size()) - 1;
    std::string conversation;
    if (v.entry >= 0 && v.entry < entries.size()) {
      *f->mutable_entry() = FromRunStart(entries[v.entry]);
      center = v.entry;
      conversation = entries[v.entry].conversation();
    }
    // A run can fail thousands of times; the first kWindows failures of a
    // run keep their history (the page shows 20 failures in all).
    if (center < 0 || windows >= kWindows || windows_kept_ >= kReportWindows) continue;
    ++windows;
    ++windows_kept_;
    // The steps of the offending entry's conversation within two simulated
    // seconds of it (all steps when there is none), at most 150 either side,
    // and every step of the offending message (its send and each copy
    // delivered) however far.
    const HistoryEntry& offending = entries[center];
    const int64_t t = offending.time_us();
    auto related = [&](const HistoryEntry& e) {
      return std::llabs(e.time_us() - t) <= 2000000 &&
             (conversation.empty() || e.conversation() == conversation);
    };
    std::set<int> shown = {center};
    for (int i = center - 1, taken = 0; i >= 0 && taken < 150 && entries[i].time_us() >= t - 2000000; --i) {
      if (related(entries[i])) {
        shown.insert(i);
        ++taken;
      }
    }
    for (int i = center + 1, taken = 0;
         i < entries.size() && taken < 150 && entries[i].time_us() <= t + 2000000; ++i) {
      if (related(entries[i])) {
        shown.insert(i);
        ++taken;
      }
    }
    int64_t send_us = t;
    if (!conversation.empty()) {
      const bool delivered = offending.kind() == HistoryEntry::DELIVERED;
      const uint64_t sender = delivered ? offending.sender_id() : offending.user_id();
      const std::string& id = offending.client_msg_id();
      std::set<std::string>& clients = members[conversation];
      const bool fill = clients.empty();
      int pinned = 0;
      for (int i = 0; i < entries.size(); ++i) {
        const HistoryEntry& e = entries[i];
        if (e.conversation() != conversation) continue;
        if (fill && !e.client().empty()) clients.insert(e.client());
        if (id.empty() || e.client_msg_id() != id || pinned >= 100) continue;
        const bool same =
            (e.kind() == HistoryEntry::DELIVERED && e.sender_id() == sender) ||
            ((e.kind() == HistoryEntry::SEND_INVOKED || e.kind() == HistoryEntry::SEND_ACKED) &&
             e.user_id() == sender);
        if (!same) continue;
        shown.insert(i);
        ++pinned;
        if (e.kind() == HistoryEntry::SEND_INVOKED) send_us = std::min(send_us, e.time_us());
      }
      for (const std::string& c : clients) f->add_involved(c);
      for (const std::string& node : ConversationNodes(conversation, topology_)) f->add_involved(node);
    }
    for (int i : shown) {
      *f->add_window() = FromRunStart(entries[i]);
      f->add_window_copies(copies[i]);
    }
    f->set_violation_from_s(Seconds(send_us - kEpochUs));
    f->set_violation_to_s(Seconds(t - kEpochUs));
    const double w0 = Seconds(entries[*shown.begin()].time_us() - kEpochUs);
    const double w1 = Seconds(entries[*shown.rbegin()].time_us() - kEpochUs);
    const std::set<std::string> involved(f->involved().begin(), f->involved().end());
    for (const ScriptedFault& fault : r.faults) {
      *f->add_fault_relevance() = Relevance(fault, r.chaos_start_s, f->has_entry(), conversation, involved,
                                            f->violation_from_s(), f->violation_to_s(), w0, w1);
    }
  }
}

void AddFaultKindStats(Report* report) {
  std::set<std::string> failing_checkers;
  for (const SeedRecord& s : report->seed_records()) {
    failing_checkers.insert(s.checkers().begin(), s.checkers().end());
  }
  struct Counts {
    uint64_t passing = 0, failing = 0;
    std::map<std::string, uint64_t> by_checker;
  };
  std::map<std::string, Counts> kinds;
  for (const SeedRecord& s : report->seed_records()) {
    const bool failed = s.verdict() != "passed";
    for (const std::string& k : s.fault_kinds()) {
      Counts& c = kinds[k];
      ++(failed ? c.failing : c.passing);
      for (const std::string& checker : s.checkers()) ++c.by_checker[checker];
    }
  }
  for (const auto& [kind, c] : kinds) {
    FaultKindStats* k = report->add_fault_kinds();
    k->set_kind(kind);
    k->set_passing_seeds(c.passing);
    k->set_failing_seeds(c.failing);
    for (const std::string& checker : failing_checkers) {
      CheckerSeeds* n = k->add_by_checker();
      n->set_checker(checker);
      auto it = c.by_checker.find(checker);
      n->set_seeds(it == c.by_checker.end() ? 0 : it->second);
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
  AddFaultKindStats(&out);
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
  std::set<std::string> kinds;
  for (const ScriptedFault& f : r.faults) kinds.insert(ScriptedFault::Kind_Name(f.kind()));
  auto rate = [&](const char* name) {
    auto it = r.fault_mix.find(name);
    return it != r.fault_mix.end() && it->second > 0;
  };
  if (rate("loss_ppm")) kinds.insert("NETWORK_LOSS");
  if (rate("duplicate_ppm")) kinds.insert("NETWORK_DUPLICATE");
  if (rate("reorder_us")) kinds.insert("NETWORK_REORDER");
  for (const std::string& k : kinds) s.add_fault_kinds(k);
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
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.failed td { background: #fbe3e0; }
code, pre { background: #eef0f5; padding: 0.1em 0.4em; border-radius: 0.3em; font-size: 0.9em; }
pre { padding: 0.6em; overflow-x: auto; white-space: pre-wrap; }
.failure { border-left: 4px solid #c0392b; padding-left: 1em; margin: 1.5em 0; }
.muted { color: #778; } .never { color: #c0392b; font-weight: bold; }
.scroll { max-height: 560px; overflow-y: auto; border: 1px solid #dde; }
.scroll th { position: sticky; top: 0; }
.mix { font-size: 0.8em; color: #445; }
svg text { font-size: 11px; fill: #333; }
svg text.axis { font-size: 12px; fill: #111; }
)";

std::string Svg(int width, int height, const std::string& body, const std::string& cls = "") {
  return absl::StrFormat(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"%s\" width=\"%d\" height=\"%d\" "
      "viewBox=\"0 0 %d %d\"><rect width=\"%d\" height=\"%d\" fill=\"white\" stroke=\"#ccd\"/>%s</svg>",
      cls, width, height, width, height, width, height, body);
}

// Entries in a report hold times from the run's start; Describe() takes the world's.
std::string DescribeRel(HistoryEntry e) {
  e.set_time_us(e.time_us() + kEpochUs);
  return Describe(e);
}

// 1, 2, 5, 10, ..., 1k, 2k, 5k, 10k, ..., 1M.
std::string Short(double v) {
  if (v >= 1e6) return absl::StrFormat("%gM", v / 1e6);
  if (v >= 1e3) return absl::StrFormat("%gk", v / 1e3);
  return absl::StrFormat("%g", v);
}

// A percentile as the page prints it: 3 significant digits, no exponent.
std::string Number(double v) {
  if (v >= 100) return absl::StrFormat("%.0f", v);
  if (v >= 10) return absl::StrFormat("%.1f", v);
  return absl::StrFormat("%.2f", v);
}

// Bars per log-spaced bucket on a log count axis (1, 10, 100, ...), so a
// bucket of one sample in the tail stays visible beside one of thousands;
// dashed lines mark p50, p90, p99 and max.
std::string Histogram(const Distribution& d) {
  const int width = 1000, left = 70, right = 20, bottom = 62, plot_h = 190;
  const int n = std::max(1, d.counts_size());
  const double bar = static_cast<double>(width - left - right) / n;
  // Where a value falls: its bucket, and its place in it on a log scale.
  auto x_of = [&](double v) {
    for (int i = 0; i < d.bounds_size(); ++i) {
      if (v <= d.bounds(i)) {
        const double lo = i == 0 ? d.bounds(0) / 10 : d.bounds(i - 1);
        const double f = v <= lo ? 0 : std::log(v / lo) / std::log(d.bounds(i) / lo);
        return left + bar * (i + std::clamp(f, 0.0, 1.0));
      }
    }
    return static_cast<double>(width - right);
  };
  // The percentile marks' labels go in rows above the plot, each in the first
  // row where it clears the labels already there.
  struct Mark {
    const char* label;
    double v, x, x0, x1;  // the line, and the label's extent
    bool flip;            // the label on the line's left (near the right edge)
    int row;
  };
  std::vector<Mark> marks;
  if (d.count() > 0) {
    for (const auto& [label, v] :
         std::vector<std::pair<const char*, double>>{{"p50", d.p50()}, {"p90", d.p90()}, {"p99", d.p99()}, {"max", d.max()}}) {
      Mark m{label, v, x_of(v), 0, 0, false, 0};
      const double w = 7.0 * (std::strlen(label) + 1 + Number(v).size());
      m.flip = m.x + 3 + w > width - right;
      m.x0 = m.flip ? m.x - 3 - w : m.x + 3;
      m.x1 = m.x0 + w;
      marks.push_back(m);
    }
  }
  int rows = 0;
  for (size_t i = 0; i < marks.size(); ++i) {
    for (int row = 0;; ++row) {
      bool clear = true;
      for (size_t j = 0; j < i; ++j) {
        clear = clear && !(marks[j].row == row && marks[j].x0 < marks[i].x1 + 6 && marks[i].x0 < marks[j].x1 + 6);
      }
      if (clear) {
        marks[i].row = row;
        rows = std::max(rows, row + 1);
        break;
      }
    }
  }
  const int top = 14 + 13 * rows;
  const int height = top + plot_h + bottom;
  uint64_t peak = 1;
  for (uint64_t c : d.counts()) peak = std::max(peak, c);
  int decades = 1;  // the axis runs from 1 to 10^decades
  while (std::pow(10.0, decades) < static_cast<double>(peak)) ++decades;
  // A count of 1 is a bar a fifth of a decade high, so it is never zero.
  auto y_of = [&](double c) {
    const double f = (std::log10(c) + 0.2) / (decades + 0.2);
    return top + plot_h * (1 - f);
  };
  std::string body;
  for (int k = 0; k <= decades; ++k) {
    const double y = y_of(std::pow(10.0, k));
    absl::StrAppendFormat(&body,
                          "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#e4e6ee\"/>"
                          "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%s</text>",
                          left, y, width - right, y, left - 6, y + 4, Short(std::pow(10.0, k)));
  }
  for (int i = 0; i < d.counts_size(); ++i) {
    const double x0 = left + i * bar;
    if (d.counts(i) > 0) {
      const double y = y_of(static_cast<double>(d.counts(i)));
      absl::StrAppendFormat(&body,
                            "<rect class=\"bar\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                            "fill=\"#4a7bd0\"><title>%s to %s %s: %u</title></rect>"
                            "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%u</text>",
                            x0 + 1, y, bar - 2, top + plot_h - y,
                            i == 0 ? "0" : Short(d.bounds(i - 1)), Short(d.bounds(i)),
                            Escape(d.unit()), d.counts(i), x0 + bar / 2, y - 3, d.counts(i));
    }
    absl::StrAppendFormat(&body, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>",
                          x0 + bar, top + plot_h + 14, Short(d.bounds(i)));
  }
  absl::StrAppendFormat(&body, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">0</text>", left,
                        top + plot_h + 14);
  for (const Mark& m : marks) {
    absl::StrAppendFormat(&body,
                          "<line class=\"mark\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" "
                          "stroke=\"#c0392b\" stroke-dasharray=\"4 3\"/>"
                          "<text x=\"%.1f\" y=\"%d\" fill=\"#c0392b\">%s %s</text>",
                          m.x, 14 + 13 * m.row - 9, m.x, top + plot_h, m.x0, 14 + 13 * m.row, m.label,
                          Number(m.v));
  }
  absl::StrAppendFormat(&body,
                        "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#333\"/>"
                        "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#333\"/>"
                        "<text class=\"axis\" x=\"%d\" y=\"%d\" text-anchor=\"middle\">%s, "
                        "%s (log-spaced buckets: each bar counts the samples above the label on "
                        "its left, up to the one on its right)</text>"
                        "<text class=\"axis\" transform=\"translate(16 %d) rotate(-90)\" "
                        "text-anchor=\"middle\">samples (log scale)</text>",
                        left, top + plot_h, width - right, top + plot_h, left, top, left, top + plot_h,
                        (left + width - right) / 2, height - 24, Escape(d.name()), Escape(d.unit()),
                        top + plot_h / 2);
  return Svg(width, height, body, "histogram");
}

double FaultStart(const Failure& f, const ScriptedFault& fault) { return f.chaos_start_s() + fault.at_s(); }
double FaultEnd(const Failure& f, const ScriptedFault& fault) {
  return FaultStart(f, fault) + std::max(0.05, fault.duration_s());
}
bool Banded(const Failure& f, int i) {
  return i < f.fault_relevance_size() ? f.fault_relevance(i).banded() : true;
}

// One lane per client in the window; bands for the faults that touch the
// failure; send-to-deliver lines; a duplicate delivery as a purple square
// with its copy number; the offending entry ringed in red.
std::string TimelineSvg(const Failure& f, double t0, double t1, bool zoom, int* duplicates_out) {
  std::vector<std::string> lanes;
  bool lanes_cut = false;
  auto add_lane = [&](const std::string& c) {
    if (c.empty() || std::find(lanes.begin(), lanes.end(), c) != lanes.end()) return;
    if (lanes.size() < 16) {
      lanes.push_back(c);
    } else {
      lanes_cut = true;
    }
  };
  add_lane(f.entry().client());
  std::map<std::pair<uint64_t, std::string>, const HistoryEntry*> sends;
  for (const HistoryEntry& e : f.window()) {
    if (e.kind() == HistoryEntry::SEND_INVOKED) {
      sends.emplace(std::make_pair(e.user_id(), e.client_msg_id()), &e);
      if (e.client_msg_id() == f.entry().client_msg_id()) add_lane(e.client());
    }
  }
  for (const HistoryEntry& e : f.window()) {
    if (e.kind() == HistoryEntry::DELIVERED && e.conversation() == f.entry().conversation()) {
      add_lane(e.client());
    }
  }
  for (const HistoryEntry& e : f.window()) {
    if (e.kind() != HistoryEntry::FAULT) add_lane(e.client());
  }
  const double span = std::max(0.001, t1 - t0);
  std::vector<int> bands;
  for (int i = 0; i < f.faults_size(); ++i) {
    if (!Banded(f, i) || FaultEnd(f, f.faults(i)) < t0 || FaultStart(f, f.faults(i)) > t1) continue;
    bands.push_back(i);
  }
  const int label_rows = std::min<int>(4, bands.size());
  const int left = 150, width = 1040, lane_h = 24, top = 14 + 13 * label_rows;
  const int lanes_h = lane_h * static_cast<int>(lanes.size());
  const int height = top + lanes_h + (zoom ? 30 : 62);  // the zoom has no legend
  auto x = [&](double t) { return left + (width - left - 20) * (t - t0) / span; };
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
  for (size_t k = 0; k < bands.size(); ++k) {
    const ScriptedFault& fault = f.faults(bands[k]);
    const double a = FaultStart(f, fault), b = FaultEnd(f, fault);
    const double xa = x(std::max(a, t0)), xb = x(std::min(b, t1));
    const std::string label = absl::StrCat("#", bands[k], " ", ScriptedFault::Kind_Name(fault.kind()),
                                           fault.target().empty() ? "" : " ", fault.target());
    absl::StrAppendFormat(&body,
                          "<rect class=\"band\" x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" "
                          "fill=\"#f5b041\" fill-opacity=\"0.22\" stroke=\"#e59866\">"
                          "<title>%s</title></rect><text x=\"%.1f\" y=\"%d\">%s</text>",
                          xa, top - 4, std::max(2.0, xb - xa), lanes_h + 8,
                          Escape(DescribeFault(fault)), xa + 2, 11 + 13 * (k % 4), Escape(label));
  }
  // The violation's span on the offending lane.
  if (f.has_entry() && f.violation_to_s() > f.violation_from_s() && lane_y(f.entry().client()) >= 0) {
    const int y = lane_y(f.entry().client());
    absl::StrAppendFormat(&body,
                          "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#c0392b\" "
                          "stroke-opacity=\"0.35\" stroke-width=\"6\"><title>the violation: from the "
                          "send to the offending entry</title></line>",
                          x(std::max(t0, f.violation_from_s())), y, x(f.violation_to_s()), y);
  }
  int duplicates = 0;
  for (int i = 0; i < f.window_size(); ++i) {
    const HistoryEntry& e = f.window(i);
    const int y = lane_y(e.client());
    if (y < 0 || Seconds(e.time_us()) < t0 || Seconds(e.time_us()) > t1) continue;
    const double ex = x(Seconds(e.time_us()));
    const uint32_t copy = i < f.window_copies_size() ? f.window_copies(i) : 0;
    if (e.kind() == HistoryEntry::DELIVERED) {
      auto s = sends.find({e.sender_id(), e.client_msg_id()});
      if (s != sends.end() && lane_y(s->second->client()) >= 0) {
        absl::StrAppendFormat(&body,
                              "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"%s\" "
                              "stroke-width=\"1\"%s/>",
                              x(std::max(t0, Seconds(s->second->time_us()))), lane_y(s->second->client()), ex, y,
                              copy > 1 ? "#8e44ad" : "#9bb3e0",
                              copy > 1 ? " stroke-dasharray=\"5 3\"" : "");
      }
    }
    if (copy > 1) {
      ++duplicates;
      absl::StrAppendFormat(&body,
                            "<rect class=\"dup\" x=\"%.1f\" y=\"%d\" width=\"10\" height=\"10\" "
                            "fill=\"#8e44ad\"><title>copy %u: %s</title></rect>"
                            "<text x=\"%.1f\" y=\"%d\" fill=\"#8e44ad\" font-weight=\"bold\">×%u</text>",
                            ex - 5, y - 5, copy, Escape(DescribeRel(e)), ex + 7, y - 6, copy);
      continue;
    }
    const char* color = e.kind() == HistoryEntry::DELIVERED     ? "#4a7bd0"
                        : e.kind() == HistoryEntry::SEND_ACKED  ? "#2e8b57"
                        : e.kind() == HistoryEntry::SEND_FAILED ? "#c0392b"
                                                                : "#888";
    absl::StrAppendFormat(&body, "<circle cx=\"%.1f\" cy=\"%d\" r=\"3.5\" fill=\"%s\"><title>%s</title></circle>",
                          ex, y, color, Escape(DescribeRel(e)));
  }
  if (f.has_entry() && lane_y(f.entry().client()) >= 0) {
    absl::StrAppendFormat(&body,
                          "<circle class=\"offending\" cx=\"%.1f\" cy=\"%d\" r=\"9\" fill=\"none\" "
                          "stroke=\"#c0392b\" stroke-width=\"3\"><title>%s</title></circle>",
                          x(Seconds(f.entry().time_us())), lane_y(f.entry().client()),
                          Escape(DescribeRel(f.entry())));
  }
  const int axis_y = top + lanes_h + 16;
  absl::StrAppendFormat(&body,
                        "<text x=\"%d\" y=\"%d\">t=%.3fs</text><text x=\"%d\" y=\"%d\" "
                        "text-anchor=\"end\">t=%.3fs</text>",
                        left, axis_y, t0, width - 20, axis_y, t1);
  // The legend.
  const int ly = height - 18;
  if (!zoom) absl::StrAppendFormat(
      &body,
      "<circle cx=\"12\" cy=\"%d\" r=\"3.5\" fill=\"#4a7bd0\"/><text x=\"20\" y=\"%d\">delivered</text>"
      "<circle cx=\"92\" cy=\"%d\" r=\"3.5\" fill=\"#2e8b57\"/><text x=\"100\" y=\"%d\">acked</text>"
      "<circle cx=\"152\" cy=\"%d\" r=\"3.5\" fill=\"#c0392b\"/><text x=\"160\" y=\"%d\">failed</text>"
      "<circle cx=\"212\" cy=\"%d\" r=\"3.5\" fill=\"#888\"/><text x=\"220\" y=\"%d\">other step</text>"
      "<rect x=\"297\" y=\"%d\" width=\"10\" height=\"10\" fill=\"#8e44ad\"/>"
      "<text x=\"312\" y=\"%d\">duplicate delivery (×N: its copy number)</text>"
      "<circle cx=\"562\" cy=\"%d\" r=\"7\" fill=\"none\" stroke=\"#c0392b\" stroke-width=\"3\"/>"
      "<text x=\"574\" y=\"%d\">offending entry</text>"
      "<rect x=\"670\" y=\"%d\" width=\"16\" height=\"10\" fill=\"#f5b041\" fill-opacity=\"0.4\"/>"
      "<text x=\"691\" y=\"%d\">fault touching the failure</text>",
      ly, ly + 4, ly, ly + 4, ly, ly + 4, ly, ly + 4, ly - 5, ly + 4, ly, ly + 4, ly - 5, ly + 4);
  if (duplicates_out != nullptr) *duplicates_out = duplicates;
  std::string out = Svg(width, height, body, zoom ? "timeline zoom" : "timeline");
  if (lanes_cut) out += "<p class=\"muted\">(the first 16 clients)</p>";
  return out;
}

// The window's timeline, and when the violation (send to offending entry)
// is a small part of it, a second one zoomed on the violation.
std::string Timeline(const Failure& f) {
  if (f.window_size() == 0) return "<p class=\"muted\">No history around this failure.</p>";
  double t0 = Seconds(f.window(0).time_us()), t1 = Seconds(f.window(f.window_size() - 1).time_us());
  // A window of a moment (one entry, a burst) shows the second before it too,
  // so a fault that ended just before the violation is in sight.
  if (t1 - t0 < 1.0) {
    const double e = Seconds(f.entry().time_us());
    t0 = std::max(0.0, std::min(t0, e - 0.8));
    t1 = std::max(t1, std::min(e + 0.2, t0 + 1.0));
  }
  int duplicates = 0;
  std::string out = TimelineSvg(f, t0, t1, false, &duplicates);
  absl::StrAppend(&out, "<p class=\"muted\">Lanes are clients; lines join a send to its deliveries "
                  "(dashed purple: a duplicate). ", duplicates, " duplicate deliver",
                  duplicates == 1 ? "y" : "ies", " in this window.</p>");
  const double v0 = f.violation_from_s(), v1 = f.violation_to_s();
  if (f.has_entry() && v1 >= v0 && (v1 - v0) < 0.25 * (t1 - t0)) {
    const double pad = std::max(0.02, 0.15 * (v1 - v0));
    const double z0 = std::max(t0, v0 - pad), z1 = std::min(t1, v1 + pad);
    absl::StrAppendFormat(&out, "<p>Zoomed on the violation (t=%.3fs to t=%.3fs):</p>", z0, z1);
    out += TimelineSvg(f, z0, z1, true, nullptr);
  }
  return out;
}

// The run's faults: which are banded on the timeline and why.
std::string FaultList(const Failure& f) {
  if (f.faults_size() == 0) return "<p class=\"muted\">The run had no faults.</p>";
  int banded = 0;
  for (int i = 0; i < f.faults_size(); ++i) banded += Banded(f, i) ? 1 : 0;
  const bool why = f.has_entry();  // without an entry no fault is banded, for one reason
  std::string h = why ? absl::StrCat("<p>Faults of the run: ", f.faults_size(), ", ", banded,
                                     " touching this failure (banded above)")
                      : absl::StrCat("<p>Faults of the run: ", f.faults_size());
  if (f.involved_size() > 0) {
    std::vector<std::string> shown(f.involved().begin(),
                                   f.involved().begin() + std::min(f.involved_size(), 12));
    absl::StrAppend(&h, "; the conversation involves <code>", Escape(absl::StrJoin(shown, ", ")),
                    f.involved_size() > 12 ? ", …" : "", "</code>");
  }
  h += ".</p><table class=\"faults\"><tr><th class=\"num\">#</th><th>fault</th><th class=\"num\">"
       "from (s)</th><th class=\"num\">to (s)</th>";
  h += why ? "<th>banded</th><th>why</th></tr>" : "</tr>";
  constexpr int kRows = 40;
  int rows = 0;
  for (int pass = 0; pass < 2; ++pass) {  // banded first
    for (int i = 0; i < f.faults_size(); ++i) {
      const bool b = Banded(f, i);
      if (b != (pass == 0)) continue;
      if (rows++ >= kRows) continue;
      const ScriptedFault& fault = f.faults(i);
      absl::StrAppendFormat(
          &h, "<tr><td class=\"num\">%d</td><td>%s</td><td class=\"num\">%.3f</td><td class=\"num\">%.3f</td>",
          i, Escape(DescribeFault(fault)), FaultStart(f, fault), FaultEnd(f, fault));
      if (why) {
        absl::StrAppend(&h, "<td>", b ? "yes" : "no", "</td><td>",
                        Escape(i < f.fault_relevance_size() ? f.fault_relevance(i).reason() : ""), "</td>");
      }
      h += "</tr>";
    }
  }
  h += "</table>";
  if (rows > kRows) absl::StrAppend(&h, "<p class=\"muted\">… and ", rows - kRows, " more (in report.json).</p>");
  return h;
}

// "loss_ppm=1200 dup..." : the mix's values above zero (duration_max_us only when others are).
std::string MixText(const SeedRecord& s) {
  std::vector<std::string> parts;
  for (const FaultMixValue& v : s.fault_mix()) {
    if (v.value() != 0 && v.name() != "duration_max_us") parts.push_back(absl::StrCat(v.name(), "=", v.value()));
  }
  return parts.empty() ? "none" : absl::StrJoin(parts, " ");
}

std::string SeedTable(const Report& r) {
  std::string h = absl::StrCat(
      "<h2>Seeds (", r.seed_records_size(), ")</h2><div class=\"scroll\"><table class=\"seeds\">"
      "<tr><th class=\"num\">seed</th><th>verdict</th><th>fault kinds active</th><th>drawn fault mix</th>"
      "<th class=\"num\">events</th><th>hash</th><th class=\"num\">wall (s)</th></tr>");
  for (const SeedRecord& s : r.seed_records()) {
    const bool failed = s.verdict() != "passed";
    std::vector<std::string> kinds(s.fault_kinds().begin(), s.fault_kinds().end());
    absl::StrAppendFormat(
        &h,
        "<tr%s><td class=\"num\">%u</td><td>%s</td><td class=\"mix\">%s</td><td class=\"mix\">%s</td>"
        "<td class=\"num\">%u</td><td><code>%s</code></td><td class=\"num\">%.2f%s</td></tr>",
        failed ? " class=\"failed\"" : "", s.seed(),
        failed ? absl::StrCat("<b>failed</b> ", Escape(absl::StrJoin(s.checkers(), ", ")))
               : std::string("passed"),
        Escape(kinds.empty() ? "none" : absl::StrJoin(kinds, " ")), Escape(MixText(s)), s.events(),
        Escape(s.hash()), s.wall_seconds(), s.run_twice() ? " ×2" : "");
  }
  h += "</table></div><p class=\"muted\">Failed seeds are shaded; ×2: run twice to check determinism "
       "(wall time is the pair's).</p>";
  return h;
}

// Per fault kind: the share of passing seeds and of each checker's failing
// seeds it was active in, the cell shaded by that share.
std::string FaultKindTable(const Report& r) {
  uint64_t passing = 0;
  std::map<std::string, uint64_t> failing;
  for (const SeedRecord& s : r.seed_records()) {
    if (s.verdict() == "passed") ++passing;
    for (const std::string& c : s.checkers()) ++failing[c];
  }
  std::string h =
      "<h2>Fault kinds by checker</h2><p>For each fault kind, in how many seeds it was active: of the "
      "passing seeds, and of the seeds failing each checker. A kind far more common among a "
      "checker's failures than among passing seeds is a suspect.</p>";
  if (r.fault_kinds_size() == 0) return h + "<p class=\"muted\">No fault was active in any seed.</p>";
  h += "<table class=\"kinds\"><tr><th>fault kind</th>";
  absl::StrAppend(&h, "<th class=\"num\">passing seeds (", passing, ")</th>");
  for (const auto& [checker, n] : failing) {
    absl::StrAppend(&h, "<th class=\"num\">", Escape(checker), " (", n, ")</th>");
  }
  h += "</tr>";
  auto cell = [](uint64_t k, uint64_t of, const char* rgb) {
    const double share = of == 0 ? 0 : static_cast<double>(k) / of;
    return absl::StrFormat(
        "<td class=\"num\" style=\"background: rgba(%s, %.2f)\">%u <span class=\"muted\">(%.0f%%)</span></td>",
        rgb, 0.08 + 0.6 * share, k, 100 * share);
  };
  for (const FaultKindStats& k : r.fault_kinds()) {
    absl::StrAppend(&h, "<tr><td>", Escape(k.kind()), "</td>", cell(k.passing_seeds(), passing, "46, 139, 87"));
    for (const CheckerSeeds& c : k.by_checker()) {
      absl::StrAppend(&h, cell(c.seeds(), failing[c.checker()], "192, 57, 43"));
    }
    h += "</tr>";
  }
  return h + "</table>";
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
  if (r.skipped() > 0) row("skipped (--fail_fast)", absl::StrCat(r.skipped()));
  row("events", absl::StrCat(r.events()));
  row("simulated time", absl::StrFormat("%.0f s", r.sim_seconds()));
  if (r.wall_seconds() > 0) {
    row("wall time", absl::StrFormat("%.2f s", r.wall_seconds()));
    row("time compression", absl::StrFormat("%.0fx", r.time_compression()));
    row("events per second", absl::StrFormat("%.0f", r.events_per_second()));
  } else {
    row("wall time", "not measured");  // rather than a speed of zero
  }
  if (r.has_determinism()) {
    const DeterminismCheck& d = r.determinism();
    row("determinism", d.seeds_run_twice() == 0
                           ? "not checked"
                           : absl::StrCat(d.seeds_run_twice(), " seed", d.seeds_run_twice() == 1 ? "" : "s",
                                          " run twice: ", d.result(),
                                          d.differing() > 0 ? absl::StrCat(" (seeds ", absl::StrJoin(d.differing_seeds(), " "), ")") : ""));
  }
  h += "</table><h2>Checkers</h2><table><tr><th>checker</th><th>failures</th><th>verdict</th></tr>";
  for (const CheckerResult& c : r.checkers()) {
    absl::StrAppend(&h, "<tr><td>", Escape(c.name()), "</td><td>", c.failures(), "</td><td>",
                    c.failures() == 0 ? "<span class=\"verdict pass\">pass</span>"
                                      : "<span class=\"verdict fail\">FAIL</span>",
                    "</td></tr>");
  }
  h += "</table>";
  if (r.kind() == "swarm" || r.seed_records_size() > 1) {
    h += FaultKindTable(r);
    h += SeedTable(r);
  }
  if (r.has_shrink() && r.shrink().size_before() > 0) {
    const ShrinkSummary& s = r.shrink();
    absl::StrAppend(&h, "<h2>Shrink</h2><p>Checker <b>", Escape(s.checker()), "</b> still fails at size ",
                    s.size_after(), " (from ", s.size_before(), ") after ", s.runs(), " runs.</p>",
                    "<p>Smallest scenario: <code>", Escape(s.scenario_path()), "</code></p><pre>",
                    Escape(s.replay_command()), "</pre>");
  }
  if (r.failures_size() > 0) {
    absl::StrAppend(&h, "<h2>Failures (", r.failures_size(), ")</h2>");
    if (r.failures_size() > 20) h += "<p class=\"muted\">The first 20; report.json has them all.</p>";
    for (int i = 0; i < r.failures_size() && i < 20; ++i) {
      const Failure& f = r.failures(i);
      absl::StrAppend(&h, "<div class=\"failure\"><h3>", Escape(f.checker()), " — seed ", f.seed(),
                      "</h3><p>", Escape(f.explanation()), "</p>");
      if (f.has_entry()) absl::StrAppend(&h, "<p>First offending entry: <code>", Escape(DescribeRel(f.entry())), "</code></p>");
      if (!f.replay_command().empty()) absl::StrAppend(&h, "<p>Replay:</p><pre>", Escape(f.replay_command()), "</pre>");
      if (!f.shrink_command().empty()) absl::StrAppend(&h, "<p>Shrink:</p><pre>", Escape(f.shrink_command()), "</pre>");
      if (!f.config().empty()) absl::StrAppend(&h, "<details><summary>configuration</summary><p class=\"muted\">", Escape(f.config()), "</p></details>");
      if (!f.has_entry()) {
        h += "<p class=\"muted\">This failure names no history entry (a check of the final state "
             "or of the whole run), so there is no timeline; report.json keeps the run's last steps.</p>";
      } else if (f.window_size() > 0) {
        h += Timeline(f);
      }
      if (f.window_size() > 0 || !f.has_entry()) h += FaultList(f);
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
