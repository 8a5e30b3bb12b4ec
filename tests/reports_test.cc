// Reports of a planted-bug failure name the checker and the replay command,
// the JSON round-trips, and the HTML is well-formed (checked by xmllint).
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "gtest/gtest.h"
#include "reports/report.h"
#include "sim/shrink.h"
#include "sim/simulation.h"

namespace parley {
namespace sim {
namespace {

Scenario Smoke(const std::string& bug) {
  absl::StatusOr<Scenario> s = LoadScenario("scenarios/smoke.textproto");
  EXPECT_TRUE(s.ok()) << s.status();
  Scenario out = s.value_or(Scenario());
  out.set_bug(bug);
  return out;
}

Report FailingReport() {
  const Scenario s = Smoke("no_client_dedup");
  RunResult r = RunScenario(s, 1);
  EXPECT_FALSE(r.passed);
  ReportBuilder builder("run", s);
  builder.AddRun(r, "bazel run //sim:parley_sim -- replay --seed=1 --bug=no_client_dedup",
                 "bazel run //sim:parley_sim -- shrink --seed=1 --bug=no_client_dedup");
  builder.SetWall(1.0);
  return builder.Finish();
}

TEST(ReportsTest, AFailureNamesItsCheckerAndReplayCommand) {
  const Report report = FailingReport();
  ASSERT_GT(report.failures_size(), 0);
  EXPECT_EQ(report.failures(0).checker(), "no_duplicates");
  EXPECT_GT(report.failures(0).window_size(), 0);
  const std::string html = ReportHtml(report);
  EXPECT_NE(html.find("no_duplicates"), std::string::npos);
  EXPECT_NE(html.find("replay --seed=1 --bug=no_client_dedup"), std::string::npos);
  EXPECT_NE(html.find("<svg"), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);  // readable without JavaScript
  EXPECT_EQ(html.find("http://"), html.find("http://www.w3.org"));  // no network
  bool some_never_fired = false;
  for (const Probe& p : report.probes()) some_never_fired |= p.count() == 0;
  EXPECT_EQ(html.find("never fired") != std::string::npos, some_never_fired);
}

TEST(ReportsTest, JsonRoundTrips) {
  const Report report = FailingReport();
  Report back;
  ASSERT_TRUE(ParseReportJson(ReportJson(report), &back).ok());
  EXPECT_EQ(back.SerializeAsString(), report.SerializeAsString());
  EXPECT_FALSE(ParseReportJson("{ not json", &back).ok());
}

TEST(ReportsTest, HtmlIsWellFormed) {
  const std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/report";
  ASSERT_TRUE(WriteReport(FailingReport(), dir).ok());
  ASSERT_TRUE(std::filesystem::exists(dir + "/report.json"));
  const std::string cmd = "xmllint --noout " + dir + "/report.html";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  // And a broken page is caught by the same check (the check can fail).
  std::ofstream(dir + "/broken.html") << "<html><body><p>unclosed</body></html>";
  EXPECT_NE(std::system(("xmllint --noout " + dir + "/broken.html 2>/dev/null").c_str()), 0);
}

TEST(ReportsTest, JsonIntegersAreNumbers) {
  Report report = FailingReport();
  SeedRecord record;
  record.set_seed(7);
  record.set_events(123456);
  record.set_hash("00000000000000ff");
  FaultMixValue* v = record.add_fault_mix();
  v->set_name("skew_us");
  v->set_value(-250);
  *report.add_seed_records() = record;
  report.mutable_determinism()->add_differing_seeds(7);
  report.mutable_determinism()->add_differing_seeds(9);
  report.set_description("a \"seeds\": \"12\" lookalike");
  const std::string json = ReportJson(report);
  EXPECT_NE(json.find("\"seed\": 7"), std::string::npos) << json;
  EXPECT_NE(json.find("\"events\": 123456"), std::string::npos);
  EXPECT_NE(json.find("\"value\": -250"), std::string::npos);
  EXPECT_NE(json.find("\"hash\": \"00000000000000ff\""), std::string::npos);  // a string stays
  EXPECT_NE(json.find("\"seeds\": 1,"), std::string::npos);
  EXPECT_NE(json.find("a \\\"seeds\\\": \\\"12\\\" lookalike"), std::string::npos);
  EXPECT_EQ(json.find("\"differingSeeds\": [\n   \"7\""), std::string::npos);
  EXPECT_EQ(json.find("\"7\""), std::string::npos);
  Report back;
  ASSERT_TRUE(ParseReportJson(json, &back).ok());
  EXPECT_EQ(back.SerializeAsString(), report.SerializeAsString());
}

TEST(ReportsTest, JunitEscapesAndCounts) {
  JunitCase pass;
  pass.name = "seed 1";
  pass.seconds = 0.5;
  JunitCase fail;
  fail.name = "seed 2";
  fail.failures = {{"no_duplicates", "a <b> & \"c\" 'd'"}, {"order", "x\x01y"}};
  fail.replay = "parley_sim replay --seed=2";
  JunitCase skipped;
  skipped.name = "seed 3";
  skipped.skipped = true;
  const std::string xml = JunitXml("suite & <more>", {pass, fail, skipped});
  EXPECT_NE(xml.find("tests=\"3\" failures=\"1\" errors=\"0\" skipped=\"1\""), std::string::npos)
      << xml;
  EXPECT_NE(xml.find("a &lt;b&gt; &amp; &quot;c&quot; &apos;d&apos;"), std::string::npos);
  EXPECT_NE(xml.find("message=\"no_duplicates, order\""), std::string::npos);
  EXPECT_NE(xml.find("replay: parley_sim replay --seed=2"), std::string::npos);
  EXPECT_EQ(xml.find('\x01'), std::string::npos);
  const std::string path = std::string(std::getenv("TEST_TMPDIR")) + "/junit.xml";
  std::ofstream(path) << xml;
  EXPECT_EQ(std::system(("xmllint --noout " + path).c_str()), 0);
}

class ShrinkTest : public ::testing::TestWithParam<const char*> {};

TEST_P(ShrinkTest, ResultIsSmallerAndFailsTheSameChecker) {
  const Scenario s = Smoke(GetParam());
  // The first seed this bug fails on.
  uint64_t seed = 1;
  RunOptions options;
  options.keep_history = false;
  while (seed < 30 && RunScenario(s, seed, options).passed) ++seed;
  ShrinkResult r = Shrink(s, seed, 60, [](const std::string&) {});
  ASSERT_TRUE(r.reproduced);
  EXPECT_LT(r.shrunk_size, r.original_size);
  RunResult again = RunScenario(r.shrunk, seed, options);
  bool same = false;
  for (const Violation& v : again.violations) same |= v.checker == r.checker;
  EXPECT_TRUE(same) << "the shrunk scenario no longer fails " << r.checker;
  std::printf("SHRINK %s seed %llu: %s %llu -> %llu in %d runs\n", GetParam(),
              static_cast<unsigned long long>(seed), r.checker.c_str(),
              static_cast<unsigned long long>(r.original_size),
              static_cast<unsigned long long>(r.shrunk_size), r.runs);
}

INSTANTIATE_TEST_SUITE_P(ThreeBugs, ShrinkTest,
                         ::testing::Values("no_client_dedup", "skip_membership_check",
                                           "no_sync_on_reconnect"));

}  // namespace
}  // namespace sim
}  // namespace parley
