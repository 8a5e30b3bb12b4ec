// Scenario I/O: textproto parsing with line and column in errors, loading
// from a file, bases (a scenario merged over another), validation, and the
// default scenario from its one source, scenarios/default.textproto.
#include "sim/scenario_io.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/testing/bugs.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"
#include "sim/checkers.h"
#include "sim/simulation.h"
#include "sim/topology.h"

namespace parley {
namespace sim {
namespace {

class ErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, int column, const std::string& message) override {
    if (error.empty()) error = absl::StrCat("line ", line + 1, ", column ", column + 1, ": ", message);
  }
  std::string error;
};

constexpr uint32_t kMaxReplicas = 1000;
constexpr uint32_t kMaxUsers = 100000;
constexpr double kMaxSeconds = 86400;     // a simulated day
constexpr double kMaxRatePerS = 1e6;
constexpr double kMaxMillis = 3600000;    // an hour
constexpr int kMaxBaseDepth = 8;
constexpr uint64_t kMaxSendNumber = 1000000000;

// Collects the first error; each check names the field, its value and the
// allowed range.
class FieldChecker {
 public:
  explicit FieldChecker(const std::string& name) : name_(name) {}

  void Fail(absl::string_view message) {
    if (status_.ok()) status_ = absl::InvalidArgumentError(absl::StrCat(name_, ": ", message));
  }
  // lo <= v <= hi; NaN is never in range.
  void Range(absl::string_view field, double v, double lo, double hi) {
    if (!(v >= lo && v <= hi)) {
      Fail(absl::StrCat(field, " is ", v, ", must be in [", lo, ", ", hi, "]"));
    }
  }
  // lo < v <= hi.
  void RangeAbove(absl::string_view field, double v, double lo, double hi) {
    if (!(v > lo && v <= hi)) {
      Fail(absl::StrCat(field, " is ", v, ", must be in (", lo, ", ", hi, "]"));
    }
  }
  void Count(absl::string_view field, uint64_t v, uint64_t lo, uint64_t hi) {
    if (v < lo || v > hi) Fail(absl::StrCat(field, " is ", v, ", must be in [", lo, ", ", hi, "]"));
  }
  const absl::Status& status() const { return status_; }

 private:
  const std::string& name_;
  absl::Status status_;
};

bool IsClientOf(const Scenario& s, const std::string& target) {
  // client.user<N>.d<K>: N a user of the workload, K its device (a second
  // device only where the workload gives some users one).
  if (!absl::StartsWith(target, "client.user")) return false;
  const std::string rest = target.substr(std::string("client.user").size());
  const size_t dot = rest.find(".d");
  if (dot == std::string::npos) return false;
  uint32_t user = 0, device = 0;
  if (!absl::SimpleAtoi(rest.substr(0, dot), &user) ||
      !absl::SimpleAtoi(rest.substr(dot + 2), &device)) {
    return false;
  }
  if (rest.substr(0, dot) != absl::StrCat(user) || rest.substr(dot + 2) != absl::StrCat(device)) {
    return false;  // no leading zeros or signs: the address must be exact
  }
  const uint32_t devices = s.workload().second_device_fraction() > 0 ? 2 : 1;
  return user < s.workload().users() && device >= 1 && device <= devices;
}

// What a fault kind's target must be.
enum class TargetKind { kNone, kServer, kClient, kAnyNode };

TargetKind TargetOf(ScriptedFault::Kind kind) {
  switch (kind) {
    case ScriptedFault::PARTITION_NODE:
    case ScriptedFault::PARTITION_ONE_WAY:
    case ScriptedFault::CRASH:
      return TargetKind::kAnyNode;
    case ScriptedFault::CLOCK_SKEW:
    case ScriptedFault::DISK_WRITE_FAIL:
    case ScriptedFault::DISK_READ_FAIL:
    case ScriptedFault::DISK_SLOW:
      return TargetKind::kServer;
    case ScriptedFault::CLIENT_OFFLINE:
      return TargetKind::kClient;
    default:
      return TargetKind::kNone;
  }
}

void CheckFault(const Scenario& s, int i, const std::set<std::string>& servers, FieldChecker& c) {
  const ScriptedFault& f = s.faults().script(i);
  const std::string field = absl::StrCat("faults.script[", i, "]");
  if (f.kind() == ScriptedFault::KIND_UNSPECIFIED) {
    c.Fail(absl::StrCat(field, ".kind must be set"));
    return;
  }
  const std::string kind = ScriptedFault::Kind_Name(f.kind());
  const double duration = s.workload().duration_s();
  if (!(f.at_s() >= 0 && f.at_s() < duration)) {
    c.Fail(absl::StrCat(field, ".at_s is ", f.at_s(), ", must be in [0, ", duration,
                        ") (workload.duration_s): a fault at or after the end never happens"));
  }
  c.Range(field + ".duration_s", f.duration_s(), 0, kMaxSeconds);
  switch (f.kind()) {
    case ScriptedFault::DISK_WRITE_FAIL:
    case ScriptedFault::DISK_READ_FAIL:
    case ScriptedFault::KV_EVICT:
      c.Range(field + ".amount_ms (a percentage here)", f.amount_ms(), 0, 100);
      break;
    case ScriptedFault::DISK_SLOW:
      c.Range(field + ".amount_ms", f.amount_ms(), 0, 60000);
      break;
    case ScriptedFault::CLOCK_SKEW:
      c.Range(field + ".amount_ms", f.amount_ms(), -kMaxMillis, kMaxMillis);
      c.Range(field + ".drift_ppm", f.drift_ppm(), -1e6, 1e6);
      break;
    default:
      break;
  }
  const TargetKind want = TargetOf(f.kind());
  const std::string& target = f.target();
  if (want == TargetKind::kNone) {
    if (!target.empty()) {
      c.Fail(absl::StrCat(field, ".target is \"", target, "\", but ", kind, " takes no target"));
    }
  } else if (target.empty()) {
    c.Fail(absl::StrCat(field, ": ", kind, " needs a target (",
                        want == TargetKind::kClient ? "a client, client.user<N>.d<K>"
                                                    : "a server, e.g. " + *servers.begin(),
                        ")"));
  } else {
    const bool server = servers.count(target) > 0, client = IsClientOf(s, target);
    const bool ok = (want == TargetKind::kServer && server) ||
                    (want == TargetKind::kClient && client) ||
                    (want == TargetKind::kAnyNode && (server || client));
    if (!ok) {
      std::string allowed;
      if (want != TargetKind::kClient) {
        allowed = absl::StrCat("a server of the topology (", absl::StrJoin(servers, ", "), ")");
      }
      if (want != TargetKind::kServer) {
        absl::StrAppend(&allowed, allowed.empty() ? "" : " or ", "a client client.user<N>.d<K> with N < ",
                        s.workload().users(), " and K ",
                        s.workload().second_device_fraction() > 0 ? "1 or 2" : "1");
      }
      c.Fail(absl::StrCat(field, ".target \"", target, "\" is no node of this scenario: ", kind,
                          " needs ", allowed));
    }
  }
  for (int j = 0; j < f.side_size(); ++j) {
    if (f.kind() != ScriptedFault::PARTITION_HALVES) {
      c.Fail(absl::StrCat(field, ".side is only for PARTITION_HALVES"));
    } else if (servers.count(f.side(j)) == 0) {
      c.Fail(absl::StrCat(field, ".side[", j, "] \"", f.side(j), "\" is no server of the topology (",
                          absl::StrJoin(servers, ", "), ")"));
    }
  }
}

absl::Status ParseText(const std::string& text, const std::string& name, Scenario* out) {
  google::protobuf::TextFormat::Parser parser;
  ErrorCollector errors;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(text, out)) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": ", errors.error));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read scenario file ", path));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Merges `s` over its base (and the base over its own, and so on). `dir` is
// the directory of the file `s` came from ("" for a text not from a file).
absl::StatusOr<Scenario> ResolveBase(Scenario s, const std::string& name, const std::string& dir,
                                     int depth) {
  if (s.base().empty()) return s;
  if (depth >= kMaxBaseDepth) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, ": base \"", s.base(), "\": bases nest more than ", kMaxBaseDepth, " deep (a cycle?)"));
  }
  Scenario base;
  if (s.base() == "default") {
    if (absl::Status p = ParseText(kDefaultScenarioText, "default", &base); !p.ok()) return p;
  } else {
    const bool plain = std::all_of(s.base().begin(), s.base().end(), [](char ch) {
      return absl::ascii_isalnum(ch) || ch == '_' || ch == '-';
    });
    if (dir.empty() || !plain) {
      return absl::InvalidArgumentError(absl::StrCat(
          name, ": base \"", s.base(), "\" is unknown: a base is \"default\"",
          dir.empty() ? "" : " or the name of a scenario file beside this one (letters, digits, _ and -)"));
    }
    const std::string path = absl::StrCat(dir, "/", s.base(), ".textproto");
    absl::StatusOr<std::string> text = ReadFile(path);
    if (!text.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": base \"", s.base(), "\": ",
                                                     text.status().message()));
    }
    if (absl::Status p = ParseText(*text, path, &base); !p.ok()) return p;
    absl::StatusOr<Scenario> resolved = ResolveBase(std::move(base), path, dir, depth + 1);
    if (!resolved.ok()) return resolved.status();
    base = *std::move(resolved);
  }
  // The name, description and seed count are the scenario's own.
  base.clear_name();
  base.clear_description();
  base.clear_base();
  s.clear_base();
  base.MergeFrom(s);
  return base;
}

absl::StatusOr<Scenario> Finish(absl::StatusOr<Scenario> s, const std::string& name) {
  if (!s.ok()) return s;
  if (absl::Status valid = ValidateScenario(*s, name); !valid.ok()) return valid;
  if (s->name().empty()) s->set_name(name);
  return s;
}

}  // namespace

absl::Status ValidateScenario(const Scenario& s, const std::string& name) {
  FieldChecker c(name);
  const Workload& w = s.workload();
  if (w.users() == 0) {  // first: what a partial scenario without a base meets
    c.Fail(absl::StrCat("workload.users is 0, must be in [1, ", kMaxUsers,
                        "] (a partial scenario can start from the built-in one: base: \"default\")"));
  }
  const Topology& t = s.topology();
  c.Count("topology.gateways", t.gateways(), 1, kMaxReplicas);
  c.Count("topology.shards", t.shards(), 1, kMaxReplicas);
  c.Count("topology.user_replicas", t.user_replicas(), 1, kMaxReplicas);
  c.Count("topology.friend_replicas", t.friend_replicas(), 1, kMaxReplicas);
  c.Count("topology.group_replicas", t.group_replicas(), 1, kMaxReplicas);
  c.Count("topology.friend_cache_ttl_ms", t.friend_cache_ttl_ms(), 0, kMaxMillis);
  c.Count("topology.friend_fill_delay_ms", t.friend_fill_delay_ms(), 0, 60000);
  c.Count("topology.group_max_members", t.group_max_members(), 0, 1000000);
  c.Count("topology.recall_window_ms", t.recall_window_ms(), 0, kMaxMillis);
  c.Count("topology.client_discover_interval_ms", t.client_discover_interval_ms(), 0, 60000);
  // Pings keep a session: the gateway drops one not heard from for 6 s.
  c.Count("topology.client_ping_interval_ms", t.client_ping_interval_ms(), 0, 3000);
  c.Count("topology.client_sync_interval_ms", t.client_sync_interval_ms(), 0, 60000);
  c.Count("topology.client_ack_delay_ms", t.client_ack_delay_ms(), 0, 5000);
  // Before the workload's setup (friends at 3 s).
  c.Count("topology.client_start_delay_ms", t.client_start_delay_ms(), 0, 1000);

  c.Count("workload.users", w.users(), 1, kMaxUsers);
  c.Count("workload.groups", w.groups(), 0, kMaxUsers);
  c.Count("workload.group_size", w.group_size(), 0, kMaxUsers);
  c.Count("workload.friends_per_user", w.friends_per_user(), 0, kMaxUsers);
  c.Count("workload.body_bytes", w.body_bytes(), 0, 1 << 20);
  c.RangeAbove("workload.duration_s", w.duration_s(), 0, kMaxSeconds);
  c.Range("workload.offline_s", w.offline_s(), 0, kMaxSeconds);
  for (const auto& [field, v] : std::vector<std::pair<const char*, double>>{
           {"workload.send_rate_per_s", w.send_rate_per_s()},
           {"workload.profile_change_rate_per_s", w.profile_change_rate_per_s()},
           {"workload.read_rate_per_s", w.read_rate_per_s()},
           {"workload.recall_rate_per_s", w.recall_rate_per_s()},
           {"workload.join_leave_rate_per_s", w.join_leave_rate_per_s()},
           {"workload.churn_rate_per_s", w.churn_rate_per_s()},
           {"workload.list_friends_rate_per_s", w.list_friends_rate_per_s()},
           {"workload.friend_change_rate_per_s", w.friend_change_rate_per_s()},
           {"workload.retire_rate_per_s", w.retire_rate_per_s()},
           {"workload.adversary_rate_per_s", w.adversary_rate_per_s()},
           {"workload.moderation_rate_per_s", w.moderation_rate_per_s()},
           {"workload.fresh_sync_rate_per_s", w.fresh_sync_rate_per_s()},
           {"faults.partition_rate_per_s", s.faults().partition_rate_per_s()},
           {"faults.crash_rate_per_s", s.faults().crash_rate_per_s()},
           {"faults.bus_fault_rate_per_s", s.faults().bus_fault_rate_per_s()},
           {"faults.storage_fault_rate_per_s", s.faults().storage_fault_rate_per_s()},
       }) {
    c.Range(field, v, 0, kMaxRatePerS);
  }
  for (const auto& [field, v] : std::vector<std::pair<const char*, double>>{
           {"workload.private_fraction", w.private_fraction()},
           {"workload.second_device_fraction", w.second_device_fraction()},
           {"workload.non_member_send_fraction", w.non_member_send_fraction()},
           {"workload.adversary_fraction", w.adversary_fraction()},
           {"workload.open_group_fraction", w.open_group_fraction()},
           {"workload.profile_second_edit_fraction", w.profile_second_edit_fraction()},
           {"faults.loss_max", s.faults().loss_max()},
           {"faults.duplicate_max", s.faults().duplicate_max()},
       }) {
    c.Range(field, v, 0, 1);
  }
  // The sends a shrunk scenario keeps: numbers, strictly increasing.
  for (int i = 0; i < w.send_filter().keep_size(); ++i) {
    const uint64_t v = w.send_filter().keep(i);
    const uint64_t lo = i == 0 ? 1 : uint64_t{w.send_filter().keep(i - 1)} + 1;
    if (v < lo || v > kMaxSendNumber) {
      c.Fail(absl::StrCat("workload.send_filter.keep[", i, "] is ", v, ", must be in [", lo, ", ",
                          kMaxSendNumber, "] (send numbers, strictly increasing)"));
    }
  }
  c.Range("network.latency_ms", s.network().latency_ms(), 0, 60000);
  c.Range("network.jitter_ms", s.network().jitter_ms(), 0, 60000);
  c.Range("faults.reorder_jitter_ms", s.faults().reorder_jitter_ms(), 0, 60000);
  c.Range("faults.clock_skew_max_ms", s.faults().clock_skew_max_ms(), 0, kMaxMillis);
  c.Range("faults.fault_duration_max_s", s.faults().fault_duration_max_s(), 0, kMaxSeconds);
  c.Range("settle_s", s.settle_s(), 0, kMaxSeconds);
  if (!c.status().ok()) return c.status();  // the targets below need a sound topology

  std::set<std::string> servers;
  for (const std::string& a : ServerAddresses(t)) servers.insert(a);
  for (int i = 0; i < s.faults().script_size(); ++i) CheckFault(s, i, servers, c);

  std::set<std::string> known;
  for (const auto& [checker, fn] : AllCheckers()) known.insert(checker);
  for (int i = 0; i < s.checkers_size(); ++i) {
    if (known.count(s.checkers(i)) == 0) {
      c.Fail(absl::StrCat("checkers[", i, "] \"", s.checkers(i), "\" is no checker (",
                          absl::StrJoin(known, ", "), ")"));
    }
  }
  if (!s.bug().empty()) {
    absl::StatusOr<Bug> bug = ParseBug(s.bug());
    if (!bug.ok()) c.Fail(absl::StrCat("bug: ", bug.status().message()));
  }
  if (!s.base().empty()) c.Fail("base is resolved when the scenario is loaded");
  return c.status();
}

absl::StatusOr<Scenario> ParseScenario(const std::string& text, const std::string& name) {
  Scenario scenario;
  if (absl::Status p = ParseText(text, name, &scenario); !p.ok()) return p;
  return Finish(ResolveBase(std::move(scenario), name, "", 0), name);
}

absl::StatusOr<Scenario> LoadScenario(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) return text.status();
  Scenario scenario;
  if (absl::Status p = ParseText(*text, path, &scenario); !p.ok()) return p;
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "."
                          : slash == 0                ? "/"
                                                      : path.substr(0, slash);
  return Finish(ResolveBase(std::move(scenario), path, dir, 0), path);
}

Scenario DefaultScenario() {
  // Parsed once; the file is checked at build time by a test, so a failure
  // here is a broken build, not a user error.
  static const Scenario* const kDefault = [] {
    absl::StatusOr<Scenario> s = ParseScenario(kDefaultScenarioText, "default");
    if (!s.ok()) std::abort();
    return new Scenario(*std::move(s));
  }();
  return *kDefault;
}

}  // namespace sim
}  // namespace parley
