// Reports of a planted-bug failure name the checker and the replay command,
// the JSON round-trips, and the HTML is well-formed (checked by xmllint).
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "core/message/conversation.h"
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

// How often `needle` occurs in `text`.
int Count(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t i = text.find(needle); i != std::string::npos; i = text.find(needle, i + 1)) ++n;
  return n;
}

TEST(ReportsTest, ADuplicateIsDrawnApartFromTheFirstCopyWithItsCount) {
  const Report report = FailingReport();
  ASSERT_GT(report.failures_size(), 0);
  const Failure& f = report.failures(0);
  ASSERT_EQ(f.checker(), "no_duplicates");
  ASSERT_EQ(f.window_copies_size(), f.window_size());
  // The offending entry is the second copy, and the first copy is in the window too.
  int first = -1, second = -1;
  for (int i = 0; i < f.window_size(); ++i) {
    const HistoryEntry& e = f.window(i);
    if (e.kind() != HistoryEntry::DELIVERED || e.client() != f.entry().client() ||
        e.conversation() != f.entry().conversation() || e.seq() != f.entry().seq()) {
      continue;
    }
    if (f.window_copies(i) == 1) first = i;
    if (f.window_copies(i) == 2) second = i;
  }
  ASSERT_GE(first, 0);
  ASSERT_GE(second, 0);
  EXPECT_EQ(f.window(second).index(), f.entry().index());
  const std::string html = ReportHtml(report);
  EXPECT_GE(Count(html, "class=\"dup\""), 1) << "a duplicate drawn as a square of its own";
  EXPECT_NE(html.find("×2</text>"), std::string::npos) << "with its copy number";
  EXPECT_NE(html.find("duplicate delivery in this window"), std::string::npos);
  // The first offending entry's time is from the run's start, not the epoch.
  EXPECT_EQ(html.find("t=-"), std::string::npos);
}

// The heights of the histogram's bars, in order.
std::vector<double> BarHeights(const std::string& svg) {
  std::vector<double> out;
  const std::regex bar("class=\"bar\" x=\"[0-9.]+\" y=\"[0-9.]+\" width=\"[0-9.]+\" height=\"([0-9.]+)\"");
  for (std::sregex_iterator it(svg.begin(), svg.end(), bar), end; it != end; ++it) {
    out.push_back(std::stod((*it)[1]));
  }
  return out;
}

TEST(ReportsTest, HistogramCountsAreOnALogAxisSoTheTailShows) {
  std::vector<double> samples(10000, 15.0);  // 10,000 at 15 ms
  samples.push_back(4000);                   // and one at 4 s
  Report report;
  *report.add_distributions() = MakeDistribution("send to deliver", "ms", samples);
  const std::string html = ReportHtml(report);
  const std::vector<double> bars = BarHeights(html);
  ASSERT_EQ(bars.size(), 2u) << html;
  // Linear, the tail would be 1/10,000 of the peak (0.02 px); on the log axis
  // one sample is a fifth of a decade, 1/21 of four decades and a fifth.
  EXPECT_GT(bars[1], bars[0] / 25);
  EXPECT_LT(bars[1], bars[0] / 15);
  EXPECT_NE(html.find("samples (log scale)"), std::string::npos);
  EXPECT_NE(html.find(">10k</text>"), std::string::npos);  // the axis' top decade
  EXPECT_EQ(Count(html, "class=\"mark\""), 4);               // p50, p90, p99, max
}

// A run failing in p:1:2 with faults near and far, in and out of the
// conversation.
RunResult SyntheticFailure(const Topology& t) {
  RunResult r;
  r.seed = 5;
  r.chaos_start_s = 1;
  const int64_t epoch = 1700000000000000LL;
  auto add = [&](HistoryEntry::Kind kind, int64_t ms, const std::string& client, uint64_t user) {
    HistoryEntry* e = r.history.add_entries();
    e->set_index(r.history.entries_size() - 1);
    e->set_time_us(epoch + ms * 1000);
    e->set_kind(kind);
    e->set_client(client);
    e->set_user_id(user);
    e->set_conversation("p:1:2");
    e->set_client_msg_id("m1");
    e->set_seq(1);
    if (kind == HistoryEntry::DELIVERED) e->set_sender_id(1);
    return e;
  };
  add(HistoryEntry::SEND_INVOKED, 3000, "client.user0.d1", 1);
  add(HistoryEntry::DELIVERED, 3050, "client.user1.d1", 2);
  add(HistoryEntry::DELIVERED, 3400, "client.user1.d1", 2);  // the duplicate
  r.violations.push_back({"no_duplicates", 2, "client.user1.d1 (user 2) was given p:1:2#1 twice"});
  auto fault = [&](ScriptedFault::Kind kind, const std::string& target, double at, double duration) {
    ScriptedFault f;
    f.set_kind(kind);
    f.set_target(target);
    f.set_at_s(at);  // from the start of chaos, 1 s into the run
    f.set_duration_s(duration);
    r.faults.push_back(f);
  };
  const std::string shard = ShardAddress(ShardOf("p:1:2", t.shards()));
  const std::string other_shard = ShardAddress((ShardOf("p:1:2", t.shards()) + 1) % t.shards());
  fault(ScriptedFault::CRASH, shard, 0.1, 0.5);               // 0: the conversation's shard
  fault(ScriptedFault::CRASH, other_shard, 2.1, 0.5);         // 1: another shard, overlapping
  fault(ScriptedFault::CLIENT_OFFLINE, "client.user1.d1", 2.2, 1);  // 2: a member's client
  fault(ScriptedFault::CLIENT_OFFLINE, "client.user7.d1", 2.2, 1);  // 3: not a member
  fault(ScriptedFault::BUS_OUTAGE, "", 2.1, 0.2);             // 4: shared, during the violation
  fault(ScriptedFault::BUS_OUTAGE, "", 0.5, 0.2);             // 5: shared, long before
  fault(ScriptedFault::CRASH, "gw.1", 2.3, 0.5);              // 6: a gateway, during
  fault(ScriptedFault::CRASH, "svc.group.1", 2.1, 1);         // 7: a private talk needs no group service
  fault(ScriptedFault::PARTITION_NODE, "svc.friend.1", 2.1, 1);  // 8: the friend service
  return r;
}

TEST(ReportsTest, OnlyFaultsTouchingTheConversationAreBanded) {
  Scenario s;
  s.set_name("synthetic");
  s.mutable_topology()->set_shards(4);
  s.mutable_topology()->set_gateways(2);
  s.mutable_topology()->set_friend_replicas(1);
  s.mutable_topology()->set_group_replicas(1);
  ReportBuilder builder("run", s);
  builder.AddRun(SyntheticFailure(s.topology()), "replay", "shrink");
  const Report report = builder.Finish();
  ASSERT_EQ(report.failures_size(), 1);
  const Failure& f = report.failures(0);
  ASSERT_EQ(f.fault_relevance_size(), 9);
  const bool expected[] = {true, false, true, false, true, false, true, false, true};
  for (int i = 0; i < 9; ++i) {
    EXPECT_EQ(f.fault_relevance(i).banded(), expected[i])
        << "fault #" << i << ": " << f.fault_relevance(i).reason();
  }
  EXPECT_DOUBLE_EQ(f.violation_from_s(), 3.0);  // the send
  EXPECT_DOUBLE_EQ(f.violation_to_s(), 3.4);    // the duplicate
  // Banded faults within the window's time (3.0 s to 3.4 s: #2, #4, #6, #8;
  // #0 is banded but long over) are drawn in the timeline (no zoom: the
  // violation is the whole window);
  // every fault is listed.
  const std::string html = ReportHtml(report);
  EXPECT_EQ(Count(html, "class=\"band\""), 4) << html;
  EXPECT_EQ(Count(html, "<td>yes</td>"), 5);
  EXPECT_EQ(Count(html, "<td>no</td>"), 4);
  EXPECT_NE(html.find("which p:1:2 does not involve"), std::string::npos);
  EXPECT_NE(Count(html, "class=\"dup\""), 0);
}

TEST(ReportsTest, SeedRecordsNameTheActiveFaultKinds) {
  RunResult r;
  r.seed = 3;
  r.fault_mix = {{"loss_ppm", 10}, {"duplicate_ppm", 0}, {"reorder_us", 5}};
  ScriptedFault crash;
  crash.set_kind(ScriptedFault::CRASH);
  r.faults = {crash, crash};
  const SeedRecord s = MakeSeedRecord(r, false, 0, 0);
  EXPECT_EQ(std::vector<std::string>(s.fault_kinds().begin(), s.fault_kinds().end()),
            (std::vector<std::string>{"CRASH", "NETWORK_LOSS", "NETWORK_REORDER"}));
}

SeedRecord Record(uint64_t seed, std::vector<std::string> kinds, std::vector<std::string> checkers) {
  SeedRecord s;
  s.set_seed(seed);
  s.set_verdict(checkers.empty() ? "passed" : "failed");
  s.set_hash("00000000000000aa");
  for (const std::string& k : kinds) s.add_fault_kinds(k);
  for (const std::string& c : checkers) s.add_checkers(c);
  return s;
}

TEST(ReportsTest, SwarmPageHasASeedTableAndFaultKindsByChecker) {
  Scenario scenario;
  scenario.set_name("synthetic");
  ReportBuilder builder("swarm", scenario);
  builder.AddSeedRecord(Record(1, {"CRASH"}, {}));
  builder.AddSeedRecord(Record(2, {"CRASH", "NETWORK_LOSS"}, {}));
  builder.AddSeedRecord(Record(3, {}, {}));
  builder.AddSeedRecord(Record(4, {"CRASH", "BUS_OUTAGE"}, {"no_duplicates"}));
  builder.AddSeedRecord(Record(5, {"BUS_OUTAGE"}, {"no_duplicates", "order"}));
  builder.AddSeedRecord(Record(6, {"NETWORK_LOSS"}, {"order"}));
  const Report report = builder.Finish();
  std::map<std::string, std::vector<uint64_t>> got;  // kind -> passing, no_duplicates, order
  for (const FaultKindStats& k : report.fault_kinds()) {
    std::vector<uint64_t>& v = got[k.kind()];
    v.push_back(k.passing_seeds());
    ASSERT_EQ(k.by_checker_size(), 2);
    EXPECT_EQ(k.by_checker(0).checker(), "no_duplicates");
    EXPECT_EQ(k.by_checker(1).checker(), "order");
    for (const CheckerSeeds& c : k.by_checker()) v.push_back(c.seeds());
  }
  EXPECT_EQ(got, (std::map<std::string, std::vector<uint64_t>>{
                     {"BUS_OUTAGE", {0, 2, 1}}, {"CRASH", {2, 1, 0}}, {"NETWORK_LOSS", {1, 0, 1}}}));
  EXPECT_EQ(report.fault_kinds(0).failing_seeds(), 2u);  // BUS_OUTAGE
  const std::string html = ReportHtml(report);
  EXPECT_NE(html.find("<th class=\"num\">passing seeds (3)</th><th class=\"num\">no_duplicates (2)"
                      "</th><th class=\"num\">order (2)</th>"),
            std::string::npos)
      << html;
  EXPECT_NE(html.find("<td>BUS_OUTAGE</td><td class=\"num\" style=\"background: rgba(46, 139, 87, 0.08)\">0 "),
            std::string::npos);
  EXPECT_EQ(Count(html, "<tr class=\"failed\">"), 3);  // the seed table's failed rows
  EXPECT_NE(html.find("<h2>Seeds (6)</h2>"), std::string::npos);
  // The JSON carries the table too.
  EXPECT_NE(ReportJson(report).find("\"faultKinds\""), std::string::npos);
}

// A 500-seed swarm whose every seed fails many times: the report keeps 50
// history windows, and its page stays small.
TEST(ReportsTest, AFailingFiveHundredSeedSwarmStaysSmall) {
  Scenario s;
  s.set_name("synthetic");
  s.mutable_topology()->set_shards(4);
  ReportBuilder builder("swarm", s);
  RunResult r = SyntheticFailure(s.topology());
  for (int i = 0; i < 2000; ++i) {  // a longer history, other conversations
    HistoryEntry* e = r.history.add_entries();
    *e = r.history.entries(1);
    e->set_index(r.history.entries_size() - 1);
    e->set_conversation(absl::StrCat("p:1:", 10 + i % 50));
    e->set_time_us(e->time_us() + 1000 + i * 1000);
  }
  for (int i = 0; i < 30; ++i) r.violations.push_back(r.violations.front());
  for (uint64_t seed = 1; seed <= 500; ++seed) {
    r.seed = seed;
    builder.AddRun(r, "replay", "shrink");
    builder.AddSeedRecord(MakeSeedRecord(r, false, 0, 0));
  }
  const Report report = builder.Finish();
  EXPECT_EQ(report.failures_size(), 500 * 31);
  int windows = 0;
  for (const Failure& f : report.failures()) windows += f.window_size() > 0 ? 1 : 0;
  EXPECT_EQ(windows, 50);
  EXPECT_EQ(report.failures(0).window_size(), 3);
  EXPECT_EQ(report.failures(20).window_size(), 0);  // a run keeps 20
  const std::string html = ReportHtml(report);
  EXPECT_LT(html.size(), 3u << 20) << html.size();
  EXPECT_EQ(Count(html, "<tr class=\"failed\">"), 500);
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
