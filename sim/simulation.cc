// The orchestrator of one run: builds the topology, schedules the workload
// and the nemesis, runs chaos, heals, settles, reads the final state, runs the
// checkers and gathers the probes. Each idea lives in its own part:
// topology.cc, workload.cc (+ workload_policy.cc), nemesis.cc,
// final_state.cc, probes.cc, run_config.cc and scenario_io.cc.
#include "sim/simulation.h"

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/check.h"

#include "core/testing/bugs.h"
#include "sim/final_state.h"
#include "sim/nemesis.h"
#include "sim/probes.h"
#include "sim/ratio.h"
#include "sim/run_config.h"
#include "sim/run_state.h"
#include "sim/topology.h"
#include "sim/workload.h"

namespace parley {
namespace sim {

// Rounded to the microsecond, so a time written as seconds in a schedule
// comes back as the microsecond it was drawn at.
absl::Duration Seconds(double s) { return absl::Microseconds(Micros(s)); }

namespace {

// A broken invariant (PARLEY_CHECK in the core or the simulator): thrown by
// the run's check handler out of whatever callback broke it, caught by Run,
// which ends the run there with a failure named "invariant". Nothing after a
// broken invariant is trusted, so the checkers do not run.
struct InvariantBroken {
  std::string what;
};

void ThrowInvariantBroken(const char* file, int line, const char* condition,
                          const std::string& message) {
  throw InvariantBroken{absl::StrCat(file, ":", line, ": PARLEY_CHECK(", condition, ") failed",
                                     message.empty() ? "" : ": ", message)};
}

// The network steps that explain client-visible entries, written into the
// history (see RunOptions::explain). It only watches.
class NetworkNotes : public NetworkObserver {
 public:
  explicit NetworkNotes(RunState& r) : r_(r) {}

  void OnLost(const std::string& from, const std::string& to, const Envelope& envelope,
              bool blocked) override {
    Note(blocked ? HistoryEntry::BLOCKED : HistoryEntry::LOST, from, to, envelope, 0);
  }
  void OnSent(const std::string& from, const std::string& to, const Envelope& envelope,
              absl::Duration delay, bool duplicate) override {
    const NetworkConfig& net = r_.world.network();
    if (duplicate) {
      Note(HistoryEntry::DUPLICATED, from, to, envelope, absl::ToInt64Microseconds(delay));
    } else if (delay > net.latency + net.jitter) {
      const int64_t usual_us = absl::ToInt64Microseconds(net.latency + net.jitter);
      Note(HistoryEntry::DELAYED, from, to, envelope, absl::ToInt64Microseconds(delay), usual_us);
    }
  }
  void OnArrival(const std::string& to, const Envelope& envelope, bool up) override {
    if (!up) return Note(HistoryEntry::RECEIVER_DOWN, envelope.from(), to, envelope, 0);
    if (to.rfind("client.", 0) != 0) return;
    HistoryRecorder& h = r_.recorder;
    if (envelope.has_client_push()) {
      const Message& m = envelope.client_push().message();
      h.NoteArrival(to, m.conversation(), m.seq(), "push", envelope.from());
    } else if (envelope.has_reply() && envelope.reply().has_send()) {
      const SendReply& ack = envelope.reply().send();
      h.NoteArrival(to, ack.conversation(), ack.seq(), "ack", envelope.from());
      // Messages the reply carries below its own seq (SendReply.unseen).
      for (const Message& m : ack.unseen()) {
        h.NoteArrival(to, m.conversation(), m.seq(), "ack", envelope.from());
      }
    } else if (envelope.has_reply() && envelope.reply().has_sync()) {
      for (const ConversationPage& page : envelope.reply().sync().conversations()) {
        for (const Message& m : page.messages()) {
          h.NoteArrival(to, m.conversation(), m.seq(), "sync", envelope.from());
        }
      }
    }
  }

 private:
  // One step per conversation the envelope carries a message of (none: not noted).
  void Note(HistoryEntry::Fate fate, const std::string& from, const std::string& to,
            const Envelope& envelope, int64_t delay_us, int64_t usual_us = 0) {
    auto add = [&](const std::string& what, const std::string& conversation, uint64_t seq) {
      HistoryEntry* e = r_.recorder.AddNetwork(fate, from, to);
      e->set_detail(what);
      e->set_conversation(conversation);
      e->set_seq(seq);
      e->set_delay_us(delay_us);
      e->set_usual_delay_us(usual_us);
      if (e->user_id() == 0) e->set_user_id(envelope.auth_user_id());
      return e;
    };
    if (envelope.has_push()) {
      add("push", envelope.push().message().conversation(), envelope.push().message().seq());
    } else if (envelope.has_client_push()) {
      const Message& m = envelope.client_push().message();
      add("client_push", m.conversation(), m.seq());
    } else if (envelope.has_reply() && envelope.reply().has_send()) {
      add("send_reply", envelope.reply().send().conversation(), envelope.reply().send().seq());
    } else if (envelope.has_reply() && envelope.reply().has_sync()) {
      for (const ConversationPage& page : envelope.reply().sync().conversations()) {
        if (page.messages().empty()) continue;
        const uint64_t first = page.messages(0).seq();
        const uint64_t last = page.messages(page.messages_size() - 1).seq();
        const std::string what =
            first == last ? "sync_reply" : absl::StrCat("sync_reply(#", first, "-#", last, ")");
        add(what, page.conversation(), first);
      }
    } else if (envelope.has_request() && envelope.request().has_send_private()) {
      add("send", "", 0)->set_client_msg_id(envelope.request().send_private().client_msg_id());
    } else if (envelope.has_request() && envelope.request().has_send_group()) {
      add("send", "", 0)->set_client_msg_id(envelope.request().send_group().client_msg_id());
    }
  }

  RunState& r_;
};

class Simulation {
 public:
  Simulation(const Scenario& scenario, uint64_t seed, const RunOptions& options)
      : r_(scenario, seed, options), workload_(r_), nemesis_(r_), notes_(r_) {}

  std::string Config() {
    nemesis_.Plan();
    return DescribeRun(r_.s, r_.seed, nemesis_.mix(), nemesis_.schedule());
  }
  RunResult Run();

 private:
  // From the topology to the final state: the part a broken invariant cuts short.
  FinalState Play();
  // world.RunUntil(until), telling options.progress every 100 simulated ms.
  void RunTo(absl::Time until);

  RunState r_;
  WorkloadDriver workload_;
  Nemesis nemesis_;
  NetworkNotes notes_;
  absl::Time end_;  // where Play will end
};

void Simulation::RunTo(absl::Time until) {
  World& world = r_.world;
  if (!r_.options.progress) return world.RunUntil(until);
  // A tenth of a simulated second at a time (a huge topology takes long
  // over one): running to t1 then to t2 runs exactly what running to t2 does
  // (nothing is scheduled in between), so the run is the same.
  while (world.Now() < until) {
    world.RunUntil(std::min(until, world.Now() + absl::Milliseconds(100)));
    RunProgress p;
    p.sim_s = absl::ToDoubleSeconds(world.Now() - world.Start());
    p.total_s = absl::ToDoubleSeconds(end_ - world.Start());
    p.events = world.stats().events;
    r_.options.progress(p);
  }
}

FinalState Simulation::Play() {
  World& world = r_.world;
  BuildTopology(r_);
  world.OnSend([this](const std::string& from, const std::string&, const Envelope& envelope) {
    workload_.OnServed(from, envelope);
  });
  r_.chaos_start = world.Start() + absl::Seconds(8);
  r_.chaos_end = r_.chaos_start + Seconds(r_.s.workload().duration_s());
  const absl::Time settled = r_.chaos_end + Seconds(std::max(5.0, r_.s.settle_s()));
  end_ = settled + absl::Seconds(5);
  workload_.ScheduleSetup();
  workload_.ScheduleChaos();
  nemesis_.Schedule();
  RunTo(r_.chaos_end);
  nemesis_.Heal();
  RunTo(settled);
  // Settled: every user lists its conversations once more, judged exactly.
  r_.quiet_since_us = absl::ToUnixMicros(world.Now());
  workload_.ListEverything();
  RunTo(world.Now() + absl::Seconds(5));
  workload_.FinishUnanswered();
  return ReadFinalState(r_);
}

RunResult Simulation::Run() {
  RunResult result;
  result.seed = r_.seed;
  absl::StatusOr<Bug> bug = r_.s.bug().empty() ? Bug::kNone : ParseBug(r_.s.bug());
  if (!bug.ok()) {
    result.error = std::string(bug.status().message());
    return result;
  }
  ScopedBug planted(*bug);
  World& world = r_.world;
  world.set_trace(r_.options.trace);
  world.set_count_kinds(r_.options.count_kinds);
  result.config = Config();
  const FaultMix& m = nemesis_.mix();
  result.fault_mix = {{"loss_ppm", m.loss_ppm},           {"duplicate_ppm", m.duplicate_ppm},
                      {"reorder_us", m.reorder_us},       {"partition_uhz", m.partition_uhz},
                      {"crash_uhz", m.crash_uhz},         {"bus_uhz", m.bus_uhz},
                      {"skew_us", m.skew_us},             {"storage_uhz", m.storage_uhz},
                      {"duration_max_us", m.duration_max_us}};
  world.set_lose_unsynced_batch(r_.s.faults().lose_unsynced_batch());
  world.OnNodeGone([this](const std::string&, Node* n) { CollectProbes(r_, n); });
  const bool explain = r_.options.explain && r_.options.keep_history;
  r_.recorder.set_explain(explain);
  if (explain) world.set_network_observer(&notes_);
  {
    ScopedCheckFailureHandler on_broken_invariant(ThrowInvariantBroken);
    try {
      FinalState final_state = Play();
      std::vector<std::string> names(r_.s.checkers().begin(), r_.s.checkers().end());
      result.violations = RunCheckers(names, r_.recorder.history(), final_state, &result.error);
    } catch (const InvariantBroken& broken) {
      const int entries = r_.recorder.history().entries_size();
      result.violations.push_back(
          {"invariant", entries - 1,
           absl::StrCat("seed ", r_.seed, " broke an invariant at t=",
                        absl::ToInt64Milliseconds(world.Now() - world.Start()), "ms, after history entry #",
                        entries - 1, ": ", broken.what)});
    }
  }
  if (*bug == Bug::kCanary && r_.seed % 100 == 0) {
    result.violations.push_back({"canary", -1, "the planted canary fails every 100th seed"});
  }
  result.passed = result.error.empty() && result.violations.empty();
  result.events = world.stats().events;
  result.sim_seconds = absl::ToDoubleSeconds(world.Now() - world.Start());
  result.hash = world.hash();
  for (const std::string& address : world.Addresses()) {
    if (Node* n = world.node(address)) CollectProbes(r_, n);
  }
  world.OnNodeGone(nullptr);
  world.OnSend(nullptr);
  world.set_network_observer(nullptr);
  if (explain) r_.recorder.ResolveSendConversations();
  for (const std::string& p : ProbeNames()) result.probes[p] += r_.probes[p];
  result.profile_apply_ms = r_.profile_apply_ms;
  result.sync_sizes = r_.sync_sizes;
  result.faults = r_.applied_faults;
  result.chaos_start_s = absl::ToDoubleSeconds(r_.chaos_start - world.Start());
  for (const HistoryEntry& e : r_.recorder.history().entries()) {
    result.sends_acked += e.kind() == HistoryEntry::SEND_ACKED;
    result.sends_failed += e.kind() == HistoryEntry::SEND_FAILED;
    result.deliveries += e.kind() == HistoryEntry::DELIVERED;
  }
  if (r_.options.keep_history) result.history = r_.recorder.TakeHistory();
  *result.fixed_faults.mutable_faults() = nemesis_.FixedFaults();
  if (r_.options.trace) result.trace = world.trace();
  if (r_.options.count_kinds) result.event_kinds = world.kind_counts();
  return result;
}

}  // namespace

std::string RunConfig(const Scenario& scenario, uint64_t seed) {
  Simulation simulation(scenario, seed, RunOptions());
  return simulation.Config();
}

MemoryEstimate EstimateMemory(const Scenario& s) {
  // Measured with the opt build (peak RSS of `run`): 2,000 users 109 MB,
  // 8,000 users 399 MB, 20% of them with a second device, i.e. about 40 KB
  // per device over some 12 MB; servers and groups add little.
  const Topology& t = s.topology();
  const Workload& w = s.workload();
  const uint64_t users = w.users();
  const uint64_t devices = users + users * Ppm(w.second_device_fraction()) / 1000000;
  const uint64_t servers = uint64_t{t.gateways()} + 2 * uint64_t{t.shards()} + t.user_replicas() +
                           t.friend_replicas() + t.group_replicas() + 4;
  const uint64_t kb = 12 * 1024 + 40 * devices + 512 * servers + 8 * uint64_t{w.groups()};
  MemoryEstimate e;
  e.mb = (kb + 1023) / 1024;
  e.driver = absl::StrCat("workload.users=", w.users());
  return e;
}

RunResult RunScenario(const Scenario& scenario, uint64_t seed, const RunOptions& options) {
  Simulation simulation(scenario, seed, options);
  return simulation.Run();
}

}  // namespace sim
}  // namespace parley
