// Scenario I/O: textproto parsing with line and column in errors, loading
// from a file, validation, and the default scenario from its one source,
// scenarios/default.textproto.
#include "sim/scenario_io.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"
#include "sim/simulation.h"

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

}  // namespace

absl::Status ValidateScenario(const Scenario& scenario, const std::string& name) {
  if (scenario.workload().users() == 0) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": workload.users must be positive"));
  }
  if (!(scenario.workload().duration_s() > 0)) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": workload.duration_s must be positive"));
  }
  // The fault schedule is drawn over every server before the run: a
  // topology no simulation could run is refused here instead.
  const Topology& t = scenario.topology();
  for (uint32_t n : {t.gateways(), t.shards(), t.user_replicas(), t.friend_replicas(),
                     t.group_replicas()}) {
    if (n > kMaxReplicas) {
      return absl::InvalidArgumentError(absl::StrCat(
          name, ": topology counts must be at most ", kMaxReplicas, " (not ", n, ")"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Scenario> ParseScenario(const std::string& text, const std::string& name) {
  Scenario scenario;
  google::protobuf::TextFormat::Parser parser;
  ErrorCollector errors;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(text, &scenario)) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": ", errors.error));
  }
  if (absl::Status valid = ValidateScenario(scenario, name); !valid.ok()) return valid;
  if (scenario.name().empty()) scenario.set_name(name);
  return scenario;
}

absl::StatusOr<Scenario> LoadScenario(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read scenario file ", path));
  std::stringstream text;
  text << in.rdbuf();
  return ParseScenario(text.str(), path);
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
