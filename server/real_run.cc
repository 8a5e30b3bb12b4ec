#include "server/real_run.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "core/client/client.h"
#include "core/group/group_keys.h"
#include "core/message/conversation.h"
#include "core/message/message_keys.h"
#include "core/rng.h"
#include "core/status.h"
#include "core/testing/bugs.h"
#include "fakes/mem_store.h"
#include "reports/report.h"
#include "server/client_driver.h"
#include "server/fault_proxy.h"
#include "server/loopback.h"
#include "server/leveldb_store.h"
#include "server/nats_server_process.h"
#include "server/tcp_client_host.h"

namespace parley {

using sim::HistoryEntry;
using sim::Scenario;
using sim::ScriptedFault;

const std::vector<std::string>& RealRunCheckers() {
  static const std::vector<std::string> kNames = {"no_lost_ack",      "no_duplicates",
                                                  "order",            "sender_fifo",
                                                  "membership_safety", "idempotent_send"};
  return kNames;
}

const std::vector<std::string>& RealRunBugs() {
  static const std::vector<std::string> kNames = {"no_client_dedup", "no_sync_on_reconnect",
                                                  "ignore_gap"};
  return kNames;
}

namespace {

bool IsClientTarget(const std::string& t) { return absl::StartsWith(t, "client."); }

// The process that hosts `target` (a node address of the scenario's topology).
std::string ProcessOf(const std::string& target) {
  if (absl::StartsWith(target, "gw.")) return target;
  if (absl::StartsWith(target, "svc.message.")) return "message";
  return "services";
}

bool KindSupported(ScriptedFault::Kind k, const std::string& target, std::string* why) {
  switch (k) {
    case ScriptedFault::CRASH:
      if (IsClientTarget(target)) {
        *why = "a client crash (the runner's clients live in its own process); use CLIENT_OFFLINE";
        return false;
      }
      return true;
    case ScriptedFault::PARTITION_NODE:
    case ScriptedFault::PARTITION_ONE_WAY:
      if (IsClientTarget(target)) {
        *why = "a client shares its gateway's proxy with the others: it cannot be cut off alone (use CLIENT_OFFLINE)";
        return false;
      }
      return true;
    case ScriptedFault::CLIENT_OFFLINE:
    case ScriptedFault::BUS_OUTAGE:
      return true;
    case ScriptedFault::PARTITION_HALVES:
      *why = "every process talks through the one nats-server (a hub): halves cannot be cut apart";
      return false;
    case ScriptedFault::BUS_DUPLICATES:
    case ScriptedFault::BUS_STORM:
      *why = "nats-server's JetStream dedup and redelivery cannot be switched from outside";
      return false;
    case ScriptedFault::CLOCK_SKEW:
      *why = "a process's wall clock cannot be skewed honestly without a clock shim";
      return false;
    case ScriptedFault::KV_EVICT:
      *why = "kv's cache has no eviction hook reachable from outside the process";
      return false;
    case ScriptedFault::DISK_WRITE_FAIL:
    case ScriptedFault::DISK_READ_FAIL:
    case ScriptedFault::DISK_SLOW:
      *why = "LevelDB's disk cannot be made to fail or stall from outside the process";
      return false;
    default:
      *why = "unknown kind";
      return false;
  }
}

double Exp(SeededRng& rng, double mean) {
  return -mean * std::log(1 - std::min(rng.UniformDouble(), 0.999999));
}

}  // namespace

std::vector<std::string> Unsupported(const Scenario& s) {
  std::vector<std::string> out;
  const sim::Topology& t = s.topology();
  for (const auto& [name, v] : std::vector<std::pair<std::string, uint32_t>>{
           {"user_replicas", t.user_replicas()},
           {"friend_replicas", t.friend_replicas()},
           {"group_replicas", t.group_replicas()}}) {
    if (v > 1) {
      out.push_back(absl::StrCat("topology.", name, " = ", v,
                                 ": parleyd hosts one replica of each service (instance 1)"));
    }
  }
  for (const auto& [name, v] : std::vector<std::pair<std::string, uint32_t>>{
           {"friend_cache_ttl_ms", t.friend_cache_ttl_ms()},
           {"friend_fill_delay_ms", t.friend_fill_delay_ms()},
           {"group_max_members", t.group_max_members()},
           {"recall_window_ms", t.recall_window_ms()}}) {
    if (v != 0) out.push_back(absl::StrCat("topology.", name, " = ", v, ": parleyd has no such setting"));
  }
  const sim::Workload& w = s.workload();
  for (const auto& [name, v] : std::vector<std::pair<std::string, double>>{
           {"profile_change_rate_per_s", w.profile_change_rate_per_s()},
           {"read_rate_per_s", w.read_rate_per_s()},
           {"recall_rate_per_s", w.recall_rate_per_s()},
           {"join_leave_rate_per_s", w.join_leave_rate_per_s()},
           {"list_friends_rate_per_s", w.list_friends_rate_per_s()},
           {"friend_change_rate_per_s", w.friend_change_rate_per_s()},
           {"non_member_send_fraction", w.non_member_send_fraction()},
           {"retire_rate_per_s", w.retire_rate_per_s()},
           {"adversary_fraction", w.adversary_fraction()},
           {"moderation_rate_per_s", w.moderation_rate_per_s()},
           {"open_group_fraction", w.open_group_fraction()},
           {"fresh_sync_rate_per_s", w.fresh_sync_rate_per_s()}}) {
    if (v != 0) {
      out.push_back(absl::StrCat("workload.", name, " = ", v,
                                 ": the real runner drives sends and churn only"));
    }
  }
  const sim::Faults& f = s.faults();
  for (const auto& [name, v] : std::vector<std::pair<std::string, double>>{
           {"loss_max", f.loss_max()},
           {"duplicate_max", f.duplicate_max()},
           {"reorder_jitter_ms", f.reorder_jitter_ms()},
           {"bus_fault_rate_per_s", f.bus_fault_rate_per_s()},
           {"clock_skew_max_ms", f.clock_skew_max_ms()},
           {"storage_fault_rate_per_s", f.storage_fault_rate_per_s()}}) {
    if (v != 0) {
      out.push_back(absl::StrCat(
          "faults.", name, " = ", v, ": ",
          name == "clock_skew_max_ms"
              ? "a process's wall clock cannot be skewed honestly without a clock shim"
          : name == "storage_fault_rate_per_s"
              ? "LevelDB's disk cannot be made to fail from outside the process"
          : name == "bus_fault_rate_per_s"
              ? "JetStream's dedup and redelivery cannot be switched from outside"
          : name == "loss_max"
              ? "TCP does not lose a message and carry on: the proxy could drop a frame, but a "
                "live connection that loses one is no failure TCP has; TCP turns loss into delay "
                "(network.latency_ms/jitter_ms, applied) or a cut connection (PARTITION_NODE)"
          : name == "duplicate_max"
              ? "TCP does not duplicate; an app-level retransmit is safe by docs/protocol.md only "
                "for sends (client_msg_id) and changes that carry a request_id, not for register, "
                "login, gateway_login or reads, and a second reply to one correlation id is not in "
                "the protocol, so the proxy does not duplicate frames"
              : "TCP delivers a connection's bytes in order; network.jitter_ms (applied) already "
                "reorders messages on different connections"));
    }
  }
  if (f.lose_unsynced_batch()) {
    out.push_back("faults.lose_unsynced_batch: LevelDB's unsynced writes cannot be dropped by kill -9");
  }
  for (int i = 0; i < f.script_size(); ++i) {
    std::string why;
    const ScriptedFault& sf = f.script(i);
    if (!KindSupported(sf.kind(), sf.target(), &why)) {
      out.push_back(absl::StrCat("faults.script[", i, "] ", ScriptedFault::Kind_Name(sf.kind()),
                                 sf.target().empty() ? "" : " " + sf.target(), ": ", why));
    }
  }
  std::set<std::string> runnable(RealRunCheckers().begin(), RealRunCheckers().end());
  for (const std::string& c : s.checkers()) {
    if (runnable.count(c) == 0) {
      out.push_back(absl::StrCat("checkers: ", c,
                                 ": needs state only the simulator sees or steps the runner does "
                                 "not drive; a real run has ",
                                 absl::StrJoin(RealRunCheckers(), ", ")));
    }
  }
  return out;
}

std::string PlannedStep::Describe() const {
  switch (kind) {
    case kSend:
      return absl::StrFormat("%.3f send client=%d %s pick=%u", at_s, client,
                             group ? "group" : "private", pick);
    case kOffline:
      return absl::StrFormat("%.3f offline client=%d", at_s, client);
    case kOnline:
      return absl::StrFormat("%.3f online client=%d", at_s, client);
    case kFault:
      return absl::StrFormat("%.3f fault#%d %s %s for %.3f s", at_s, fault_id,
                             ScriptedFault::Kind_Name(fault.kind()), fault.target(),
                             fault.duration_s());
    case kFaultEnd:
      return absl::StrFormat("%.3f end fault#%d %s %s", at_s, fault_id,
                             ScriptedFault::Kind_Name(fault.kind()), fault.target());
  }
  return "";
}

Plan MakePlan(const Scenario& s, uint64_t seed) {
  Plan p;
  const sim::Workload& w = s.workload();
  const uint32_t users = std::max<uint32_t>(2, w.users());
  const double duration = w.duration_s();
  SeededRng rng(SeededRng::Derive(seed, "real-plan"));
  for (uint32_t u = 0; u < users; ++u) {
    p.clients.push_back({absl::StrCat("client.user", u, ".d1"), u, "d1"});
    if (w.second_device_fraction() > 0 && rng.Bernoulli(w.second_device_fraction())) {
      p.clients.push_back({absl::StrCat("client.user", u, ".d2"), u, "d2"});
    }
  }
  p.friends.resize(users);
  const uint32_t per_user = std::min<uint32_t>(w.friends_per_user(), users - 1);
  for (uint32_t u = 0; u < users; ++u) {
    std::set<uint32_t> chosen;
    for (uint32_t tries = 0; chosen.size() < per_user && tries < 100 * per_user + 10; ++tries) {
      const uint32_t v = static_cast<uint32_t>(rng.Uniform(users));
      if (v != u) chosen.insert(v);
    }
    p.friends[u].assign(chosen.begin(), chosen.end());
  }
  const uint32_t size = std::min<uint32_t>(std::max<uint32_t>(2, w.group_size()), users);
  for (uint32_t g = 0; g < w.groups(); ++g) {
    std::vector<uint32_t> members = {static_cast<uint32_t>(rng.Uniform(users))};
    for (uint32_t tries = 0; members.size() < size && tries < 100 * size; ++tries) {
      const uint32_t v = static_cast<uint32_t>(rng.Uniform(users));
      if (std::find(members.begin(), members.end(), v) == members.end()) members.push_back(v);
    }
    p.groups.push_back(members);
  }
  // Sends: a Poisson process at send_rate_per_s.
  SeededRng sends(SeededRng::Derive(seed, "real-sends"));
  if (w.send_rate_per_s() > 0) {
    for (double t = Exp(sends, 1 / w.send_rate_per_s()); t < duration;
         t += Exp(sends, 1 / w.send_rate_per_s())) {
      PlannedStep st;
      st.at_s = t;
      st.kind = PlannedStep::kSend;
      st.client = static_cast<int>(sends.Uniform(p.clients.size()));
      st.group = !sends.Bernoulli(w.private_fraction());
      st.pick = static_cast<uint32_t>(sends.Next() >> 32);
      p.steps.push_back(st);
    }
  }
  // Churn: a device goes offline for offline_s on average (one at a time each).
  SeededRng churn(SeededRng::Derive(seed, "real-churn"));
  std::vector<double> offline_until(p.clients.size(), -1);
  if (w.churn_rate_per_s() > 0) {
    for (double t = Exp(churn, 1 / w.churn_rate_per_s()); t < duration;
         t += Exp(churn, 1 / w.churn_rate_per_s())) {
      const int c = static_cast<int>(churn.Uniform(p.clients.size()));
      const double d = std::max(0.1, Exp(churn, std::max(0.1, w.offline_s())));
      if (offline_until[c] >= t) continue;
      offline_until[c] = t + d;
      PlannedStep off;
      off.at_s = t;
      off.kind = PlannedStep::kOffline;
      off.client = c;
      p.steps.push_back(off);
      if (t + d < duration) {
        PlannedStep on = off;
        on.at_s = t + d;
        on.kind = PlannedStep::kOnline;
        p.steps.push_back(on);
      }
    }
  }
  // Faults: the script as written, then the random ones the runner can apply.
  int next_id = 0;
  auto add_fault = [&](const ScriptedFault& f) {
    PlannedStep st;
    st.at_s = f.at_s();
    st.kind = PlannedStep::kFault;
    st.fault = f;
    st.fault_id = next_id++;
    p.steps.push_back(st);
    if (f.kind() != ScriptedFault::CLOCK_SKEW) {
      PlannedStep end = st;
      end.at_s = f.at_s() + f.duration_s();
      end.kind = PlannedStep::kFaultEnd;
      p.steps.push_back(end);  // at or after the end: done at the heal
    }
  };
  for (const ScriptedFault& f : s.faults().script()) {
    std::string why;
    if (f.at_s() < duration && KindSupported(f.kind(), f.target(), &why)) add_fault(f);
  }
  if (s.faults().random()) {
    // Like the simulator's swarm mode: each seed draws its own rate for each
    // kind, up to the scenario's maximum.
    SeededRng nem(SeededRng::Derive(seed, "real-nemesis"));
    std::vector<std::string> servers;
    for (uint32_t g = 1; g <= std::max<uint32_t>(1, s.topology().gateways()); ++g) {
      servers.push_back(absl::StrCat("gw.", g));
    }
    for (uint32_t k = 0; k < std::max<uint32_t>(1, s.topology().shards()); ++k) {
      servers.push_back(absl::StrCat("svc.message.", k));
    }
    servers.push_back("svc.user.1");
    const double max_d = std::max(0.1, s.faults().fault_duration_max_s());
    for (const auto& [kind, max_rate] : std::vector<std::pair<ScriptedFault::Kind, double>>{
             {ScriptedFault::CRASH, s.faults().crash_rate_per_s()},
             {ScriptedFault::PARTITION_NODE, s.faults().partition_rate_per_s()}}) {
      const double rate = max_rate * nem.UniformDouble();
      if (!(rate > 0)) continue;
      for (double t = Exp(nem, 1 / rate); t < duration; t += Exp(nem, 1 / rate)) {
        ScriptedFault f;
        f.set_at_s(t);
        f.set_kind(kind);
        f.set_target(servers[nem.Uniform(servers.size())]);
        f.set_duration_s(0.1 + (max_d - 0.1) * nem.UniformDouble());
        add_fault(f);
      }
    }
  }
  std::stable_sort(p.steps.begin(), p.steps.end(),
                   [](const PlannedStep& a, const PlannedStep& b) { return a.at_s < b.at_s; });
  return p;
}

std::string RealRunResult::Summary() const {
  uint64_t faults = 0;
  for (const auto& [k, n] : faults_applied) faults += n;
  return absl::StrFormat(
      "REAL %s processes=%u starts=%u history=%d sent=%u acked=%u failed=%u delivered=%u "
      "stored=%u faults=%u wall_s=%.1f",
      passed ? "PASS" : "FAIL", processes.size(), process_starts, history.entries_size(), sent,
      acked, failed, delivered, stored_messages, faults, wall_s);
}

namespace {

constexpr int64_t kHistoryEpochUs = 1700000000000000LL;

// A thread-safe history: the clients' loops report into it concurrently.
class Recorder : public ClientObserver {
 public:
  explicit Recorder(absl::Time start) : start_(start) {}
  HistoryEntry* Add(HistoryEntry::Kind kind, const std::string& client) {  // REQUIRES: mu
    HistoryEntry* e = history.add_entries();
    e->set_index(history.entries_size() - 1);
    // The history format's clock: the simulator's world starts at Unix time
    // 1,700,000,000 s (sim/kernel.h), and its readers (sim/history.cc,
    // reports/) count from there; a real run's t=0 is its start.
    e->set_time_us(kHistoryEpochUs + absl::ToInt64Microseconds(absl::Now() - start_));
    e->set_kind(kind);
    e->set_client(client);
    auto it = users.find(client);
    e->set_user_id(it == users.end() ? 0 : it->second);
    return e;
  }
  void OnOnline(const std::string& client, uint64_t user_id) override {
    std::lock_guard<std::mutex> lock(mu);
    users[client] = user_id;
  }
  void OnDelivered(const std::string& client, const Message& m) override {
    std::lock_guard<std::mutex> lock(mu);
    HistoryEntry* e = Add(HistoryEntry::DELIVERED, client);
    e->set_conversation(m.conversation());
    e->set_seq(m.seq());
    e->set_sender_id(m.sender_id());
    e->set_client_msg_id(m.client_msg_id());
    *e->mutable_message() = m;
    e->mutable_message()->clear_body();
  }
  void OnSendAcked(const std::string& client, const std::string& id, const SendReply& ack) override {
    std::lock_guard<std::mutex> lock(mu);
    HistoryEntry* e = Add(HistoryEntry::SEND_ACKED, client);
    e->set_client_msg_id(id);
    e->set_conversation(ack.conversation());
    e->set_seq(ack.seq());
    e->set_sender_id(e->user_id());
  }
  void OnSendFailed(const std::string& client, const std::string& id, const absl::Status& s) override {
    std::lock_guard<std::mutex> lock(mu);
    HistoryEntry* e = Add(HistoryEntry::SEND_FAILED, client);
    e->set_client_msg_id(id);
    e->set_code(static_cast<int32_t>(ToProto(s).code()));
  }
  std::mutex mu;
  std::map<std::string, uint64_t> users;
  sim::History history;

 private:
  const absl::Time start_;
};

struct Proc {
  RealProcess info;
  std::vector<std::string> args;  // argv without the log
  std::string data_dir;
  pid_t pid = -1;
  int listen_port = 0;  // gateways
  std::unique_ptr<FaultProxy> proxy;         // between it and nats-server
  std::unique_ptr<FaultProxy> client_proxy;  // gateways: between its clients and it
  int down_by = -1;   // the fault that crashed it (-1: up)
  int cut_by = -1;    // the fault that holds its proxy
  int paused_by = -1; // the fault that stopped it (crash_as_pause)
};

pid_t SpawnLogged(const std::vector<std::string>& args, const std::string& log) {
  const pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the runner
    const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    std::vector<char*> argv;
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

// Waits for `pid` to exit, at most `grace`; then SIGKILL. Bounded.
void Reap(pid_t pid, absl::Duration grace) {
  const absl::Time deadline = absl::Now() + grace;
  while (absl::Now() < deadline) {
    if (waitpid(pid, nullptr, WNOHANG) == pid) return;
    absl::SleepFor(absl::Milliseconds(20));
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
}

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      out += absl::StrFormat("\\u%04x", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

struct Device {
  PlannedClient plan;
  std::unique_ptr<TcpClientHost> host;
  uint64_t user_id = 0;
  bool offline = false;  // by the plan (churn, CLIENT_OFFLINE)
};

class Runner {
 public:
  Runner(const RealRunOptions& o, Scenario s, std::vector<std::string> not_applied)
      : o_(o), s_(std::move(s)), not_applied_(std::move(not_applied)) {}
  ~Runner() {  // whatever is still running when a run ends early
    for (auto& [name, p] : procs_) {
      if (p->pid > 0) {
        kill(p->pid, SIGCONT);
        kill(p->pid, SIGKILL);
        waitpid(p->pid, nullptr, 0);
      }
    }
  }
  absl::StatusOr<RealRunResult> Run();

 private:
  void Note(const std::string& line) {
    if (o_.progress) o_.progress(line);
  }
  absl::Status StartNats();   // the one node, or every node of the cluster
  void KillNats();            // kill -9 of every node
  std::string NatsDir(int node) const;
  absl::Status StartProc(Proc& p);
  void Crash(Proc& p) {
    if (p.pid > 0) {
      kill(p.pid, SIGKILL);
      waitpid(p.pid, nullptr, 0);
    }
    p.pid = -1;
  }
  // A parleyd that exited without the runner killing it (an abort on a
  // broken invariant, a crash): a violation of its own, "process_exit".
  void CheckExits();
  void SleepWatching(absl::Duration d) {
    const absl::Time until = absl::Now() + d;
    for (absl::Duration left = d; left > absl::ZeroDuration(); left = until - absl::Now()) {
      absl::SleepFor(std::min(left, absl::Milliseconds(100)));
      CheckExits();
    }
  }
  void Fault(const PlannedStep& st);
  void FaultEnd(const PlannedStep& st);
  void Heal();
  void RecordFault(const std::string& detail) {
    std::lock_guard<std::mutex> lock(rec_->mu);
    rec_->Add(HistoryEntry::FAULT, "nemesis")->set_detail(detail);
  }
  Proc* ProcFor(const std::string& target) {
    auto it = procs_.find(ProcessOf(target));
    return it == procs_.end() ? nullptr : it->second.get();
  }
  Client* ClientOf(Device& d) { return dynamic_cast<Client*>(d.host->node()); }
  void SetOffline(Device& d, bool offline, const std::string& why);
  // network.latency_ms and jitter_ms, applied by every proxy to both directions.
  void Delay(FaultProxy& proxy, const std::string& which) {
    const int latency = static_cast<int>(std::llround(s_.network().latency_ms()));
    const int jitter = static_cast<int>(std::llround(s_.network().jitter_ms()));
    if (latency > 0 || jitter > 0) proxy.SetDelay(latency, jitter, SeededRng::Derive(o_.seed, "delay/" + which));
  }
  // report.html: the simulator's page (reports/report.h) of this run, marked
  // as a real one, with its processes' logs linked relative to dir_.
  absl::Status WriteHtmlReport(const Plan& plan, double chaos_start_s, uint64_t skipped);

  const RealRunOptions& o_;
  Scenario s_;
  const std::vector<std::string> not_applied_;
  RealRunResult result_;
  std::string dir_;
  int nats_port_ = 0;
  std::unique_ptr<NatsServerProcess> nats_;
  int nats_down_by_ = -1;
  int nats_starts_ = 0;
  std::vector<int> nats_ports_, route_ports_;  // per node
  std::vector<std::unique_ptr<NatsServerProcess>> peers_;  // cluster nodes 1..
  std::map<std::string, std::unique_ptr<Proc>> procs_;
  std::vector<std::string> order_;  // start order
  std::unique_ptr<Recorder> rec_;
  std::vector<Device> devices_;
  std::vector<sim::Violation> exits_;
};

void Runner::CheckExits() {
  for (const std::string& name : order_) {
    Proc& p = *procs_[name];
    if (p.pid <= 0) continue;
    int status = 0;
    if (waitpid(p.pid, &status, WNOHANG) != p.pid) continue;
    const std::string how = WIFSIGNALED(status) ? absl::StrCat("was killed by signal ", WTERMSIG(status))
                                                : absl::StrCat("exited with status ", WEXITSTATUS(status));
    const std::string what = absl::StrCat(name, " (pid ", p.pid, ") ", how,
                                          " without the runner killing it; its log: ", p.info.logs.back());
    Note(what);
    RecordFault(absl::StrCat("unexpected exit: ", what));
    int64_t index = 0;
    {
      std::lock_guard<std::mutex> lock(rec_->mu);
      index = rec_->history.entries_size() - 1;
    }
    exits_.push_back({"process_exit", index, what});
    p.pid = -1;
    p.down_by = -2;  // restarted at the heal
  }
}

std::string Runner::NatsDir(int node) const {
  return o_.nats_nodes == 1 ? dir_ + "/nats" : absl::StrCat(dir_, "/nats/n", node);
}

absl::Status Runner::StartNats() {
  if (o_.nats_nodes == 1) {
    const std::string dir = NatsDir(0);
    const std::string log = dir + "/nats-server.log";
    if (nats_starts_ > 0) {  // keep the previous start's log
      std::error_code ec;
      std::filesystem::rename(log, absl::StrCat(log, ".", nats_starts_), ec);
    }
    absl::StatusOr<std::unique_ptr<NatsServerProcess>> n;
    for (int attempt = 0; attempt < 20; ++attempt) {  // the killed one may hold the port a moment
      n = NatsServerProcess::Start(dir, absl::Seconds(10), o_.nats_server, nats_port_ > 0 ? nats_port_ : -1);
      if (n.ok() || nats_port_ == 0) break;
      absl::SleepFor(absl::Milliseconds(250));
    }
    if (!n.ok()) return n.status();
    nats_ = std::move(*n);
    ++nats_starts_;
    ++result_.process_starts;
    const std::string url = nats_->url();
    absl::SimpleAtoi(url.substr(url.rfind(':') + 1), &nats_port_);
    nats_ports_ = {nats_port_};
    return absl::OkStatus();
  }
  // A cluster: each node on its own client and route port (the same on every
  // start), routes to the other two, its own JetStream store. JetStream's
  // meta leader is elected once two of them see each other; parleyd retries
  // creating the replicated stream until there is one.
  if (nats_ports_.empty()) {
    for (int i = 0; i < o_.nats_nodes; ++i) {
      nats_ports_.push_back(FreePort());
      route_ports_.push_back(FreePort());
    }
    nats_port_ = nats_ports_[0];
  }
  peers_.clear();
  for (int i = 0; i < o_.nats_nodes; ++i) {
    const std::string dir = NatsDir(i);
    const std::string log = dir + "/nats-server.log";
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (nats_starts_ > 0) std::filesystem::rename(log, absl::StrCat(log, ".", nats_starts_), ec);
    std::vector<std::string> routes;
    for (int j = 0; j < o_.nats_nodes; ++j) {
      if (j != i) routes.push_back(absl::StrCat("nats://127.0.0.1:", route_ports_[j]));
    }
    const std::vector<std::string> extra = {
        "--server_name", absl::StrCat("n", i), "--cluster_name", "parley", "--cluster",
        absl::StrCat("nats://127.0.0.1:", route_ports_[i]), "--routes", absl::StrJoin(routes, ",")};
    absl::StatusOr<std::unique_ptr<NatsServerProcess>> n;
    for (int attempt = 0; attempt < 20; ++attempt) {  // a killed one may hold its port a moment
      n = NatsServerProcess::Start(dir, absl::Seconds(10), o_.nats_server, nats_ports_[i], extra);
      if (n.ok()) break;
      absl::SleepFor(absl::Milliseconds(250));
    }
    if (!n.ok()) return n.status();
    ++result_.process_starts;
    if (i == 0) {
      nats_ = std::move(*n);
    } else {
      peers_.push_back(std::move(*n));
    }
  }
  ++nats_starts_;
  return absl::OkStatus();
}

void Runner::KillNats() {
  std::vector<std::unique_ptr<NatsServerProcess>> all;
  all.push_back(std::move(nats_));
  for (auto& p : peers_) all.push_back(std::move(p));
  peers_.clear();
  for (auto& n : all) {
    if (n == nullptr) continue;
    kill(n->pid(), SIGKILL);
    n->Stop(absl::Seconds(2)).IgnoreError();  // reaps it
  }
}

absl::Status Runner::StartProc(Proc& p) {
  const std::string log = absl::StrCat(dir_, "/logs/", p.info.name, ".", p.info.starts, ".log");
  p.pid = SpawnLogged(p.args, log);
  if (p.pid <= 0) return absl::InternalError(absl::StrCat("cannot start ", p.info.name));
  p.info.logs.push_back(log);
  if (o_.started) o_.started(p.info.name, p.pid);
  ++p.info.starts;
  ++result_.process_starts;
  p.down_by = -1;
  return absl::OkStatus();
}

void Runner::SetOffline(Device& d, bool offline, const std::string& why) {
  if (d.offline == offline) return;
  d.offline = offline;
  d.host->RunOnLoop([offline](Node* n) {
    auto* c = dynamic_cast<Client*>(n);
    if (offline) {
      c->Disconnect();
    } else {
      c->Connect();
    }
  });
  std::lock_guard<std::mutex> lock(rec_->mu);
  HistoryEntry* e = rec_->Add(offline ? HistoryEntry::CLIENT_OFFLINE : HistoryEntry::CLIENT_ONLINE,
                              d.plan.address);
  e->set_detail(why);
}

void Runner::Fault(const PlannedStep& st) {
  const ScriptedFault& f = st.fault;
  const std::string kind = ScriptedFault::Kind_Name(f.kind());
  switch (f.kind()) {
    case ScriptedFault::CRASH: {
      Proc* p = ProcFor(f.target());
      if (p == nullptr || p->pid <= 0) {
        RecordFault(absl::StrCat(kind, " ", f.target(), ": skipped, its process is already down"));
        return;
      }
      if (p->paused_by >= 0) {
        RecordFault(absl::StrCat(kind, " ", f.target(), ": skipped, its process is paused"));
        return;
      }
      const pid_t pid = p->pid;
      if (o_.crash_as_pause) {
        kill(pid, SIGSTOP);
        p->paused_by = st.fault_id;
        RecordFault(absl::StrFormat("CRASH %s as a pause: SIGSTOP %s (pid %d), SIGCONT in %.2f s",
                                    f.target(), p->info.name, pid, f.duration_s()));
        ++result_.faults_applied["CRASH as SIGSTOP"];
        return;
      }
      Crash(*p);
      p->down_by = st.fault_id;
      RecordFault(absl::StrFormat("CRASH %s: kill -9 %s (pid %d), restart in %.2f s", f.target(),
                                  p->info.name, pid, f.duration_s()));
      break;
    }
    case ScriptedFault::PARTITION_NODE:
    case ScriptedFault::PARTITION_ONE_WAY: {
      Proc* p = ProcFor(f.target());
      if (p == nullptr || p->cut_by >= 0) {
        RecordFault(absl::StrCat(kind, " ", f.target(), ": skipped, already partitioned"));
        return;
      }
      const bool full = f.kind() == ScriptedFault::PARTITION_NODE;
      p->proxy->SetMode(full ? FaultProxy::Mode::kDrop : FaultProxy::Mode::kOneWay);
      // A gateway cut off is cut off from its clients too (they fail over).
      if (full && p->client_proxy) p->client_proxy->SetMode(FaultProxy::Mode::kDrop);
      p->cut_by = st.fault_id;
      RecordFault(absl::StrFormat("%s %s: %s's NATS proxy %s%s for %.2f s", kind, f.target(),
                                  p->info.name,
                                  full ? "drops every connection"
                                       : "discards what the process sends",
                                  full && p->client_proxy ? ", and so does its client proxy" : "",
                                  f.duration_s()));
      break;
    }
    case ScriptedFault::BUS_OUTAGE: {
      if (nats_ == nullptr) {
        RecordFault("BUS_OUTAGE: skipped, nats-server is already down");
        return;
      }
      const pid_t pid = nats_->pid();
      KillNats();
      nats_down_by_ = st.fault_id;
      RecordFault(absl::StrFormat("BUS_OUTAGE: kill -9 nats-server (%s), restart on its store in %.2f s",
                                  o_.nats_nodes == 1 ? absl::StrCat("pid ", pid)
                                                     : absl::StrCat("all ", o_.nats_nodes, " nodes"),
                                  f.duration_s()));
      break;
    }
    case ScriptedFault::CLIENT_OFFLINE: {
      Device* found = nullptr;
      for (Device& d : devices_) {
        if (d.plan.address == f.target()) found = &d;
      }
      if (found == nullptr || found->offline) {
        RecordFault(absl::StrCat("CLIENT_OFFLINE ", f.target(), ": skipped, ",
                                 found == nullptr ? "no such device in this run" : "already offline"));
        return;
      }
      RecordFault(absl::StrFormat("CLIENT_OFFLINE %s for %.2f s", f.target(), f.duration_s()));
      SetOffline(*found, true, absl::StrCat("fault#", st.fault_id));
      break;
    }
    default:
      return;  // refused up front
  }
  ++result_.faults_applied[kind];
}

void Runner::FaultEnd(const PlannedStep& st) {
  const ScriptedFault& f = st.fault;
  switch (f.kind()) {
    case ScriptedFault::CRASH: {
      Proc* p = ProcFor(f.target());
      if (p != nullptr && p->paused_by == st.fault_id) {
        kill(p->pid, SIGCONT);
        p->paused_by = -1;
        RecordFault(absl::StrCat("SIGCONT ", p->info.name, " (pid ", p->pid, ")"));
        return;
      }
      if (p == nullptr || p->down_by != st.fault_id) return;
      absl::Status s = StartProc(*p);
      RecordFault(absl::StrCat("restart ", p->info.name, " on its data dir (pid ", p->pid, ")",
                               s.ok() ? "" : ": " + std::string(s.message())));
      break;
    }
    case ScriptedFault::PARTITION_NODE:
    case ScriptedFault::PARTITION_ONE_WAY: {
      Proc* p = ProcFor(f.target());
      if (p == nullptr || p->cut_by != st.fault_id) return;
      p->proxy->SetMode(FaultProxy::Mode::kPass);
      if (p->client_proxy) p->client_proxy->SetMode(FaultProxy::Mode::kPass);
      p->cut_by = -1;
      RecordFault(absl::StrCat("heal the proxies of ", p->info.name));
      break;
    }
    case ScriptedFault::BUS_OUTAGE: {
      if (nats_down_by_ != st.fault_id) return;
      absl::Status s = StartNats();
      nats_down_by_ = -1;
      RecordFault(absl::StrCat("restart nats-server on port ", nats_port_,
                               s.ok() ? "" : ": " + std::string(s.message())));
      break;
    }
    case ScriptedFault::CLIENT_OFFLINE: {
      for (Device& d : devices_) {
        if (d.plan.address == f.target() && d.offline) {
          SetOffline(d, false, absl::StrCat("end of fault#", st.fault_id));
        }
      }
      break;
    }
    default:
      break;
  }
}

void Runner::Heal() {
  RecordFault("heal");
  if (nats_ == nullptr) {
    absl::Status s = StartNats();
    if (!s.ok()) Note(absl::StrCat("heal: nats-server: ", s.message()));
    nats_down_by_ = -1;
  }
  for (const std::string& name : order_) {
    Proc& p = *procs_[name];
    p.proxy->SetMode(FaultProxy::Mode::kPass);
    if (p.client_proxy) p.client_proxy->SetMode(FaultProxy::Mode::kPass);
    p.cut_by = -1;
    if (p.paused_by >= 0 && p.pid > 0) kill(p.pid, SIGCONT);
    p.paused_by = -1;
    if (p.pid <= 0) StartProc(p).IgnoreError();
  }
  for (Device& d : devices_) SetOffline(d, false, "heal");
}

absl::Status Runner::WriteHtmlReport(const Plan& plan, double chaos_start_s, uint64_t skipped) {
  sim::RunResult rr;
  rr.seed = o_.seed;
  rr.passed = result_.passed;
  rr.violations = result_.violations;
  rr.sends_acked = result_.acked;
  rr.sends_failed = result_.failed;
  rr.deliveries = result_.delivered;
  rr.chaos_start_s = chaos_start_s;
  rr.history = result_.history;
  for (const PlannedStep& st : plan.steps) {
    if (st.kind == PlannedStep::kFault && st.at_s < s_.workload().duration_s()) rr.faults.push_back(st.fault);
  }
  rr.config = absl::StrCat("real run; ", o_.crash_as_pause ? "crash as pause (SIGSTOP)" : "crash as kill -9",
                           "; plan: ", dir_, "/plan.txt");
  std::string replay = absl::StrCat("bazel run //server:parley_real -- --scenario=", o_.scenario_path,
                                    " --seed=", o_.seed, " --out=NEW_DIR");
  if (!s_.bug().empty()) absl::StrAppend(&replay, " --bug=", s_.bug());
  if (o_.crash_as_pause) absl::StrAppend(&replay, " --crash_as=pause");
  if (o_.drop_unsupported) absl::StrAppend(&replay, " --drop_unsupported");
  if (o_.duration_s > 0) absl::StrAppend(&replay, " --duration_s=", o_.duration_s);
  if (o_.settle_s > 0) absl::StrAppend(&replay, " --settle_s=", o_.settle_s);
  if (o_.users > 0) absl::StrAppend(&replay, " --users=", o_.users);
  absl::StrAppend(&replay, "   # the same schedule; the threads' timing differs");
  sim::ReportBuilder builder("real", s_);
  builder.AddRun(rr, replay, "");
  builder.SetWall(result_.wall_s);
  sim::Report report = builder.Finish();
  sim::RealRun* real = report.mutable_real_run();
  real->set_summary(result_.Summary());
  for (const std::string& c : result_.checkers) real->add_checkers_run(c);
  for (const std::string& n : not_applied_) real->add_not_applied(n);
  const std::string prefix = dir_ + "/";
  for (const RealProcess& p : result_.processes) {
    sim::RealProcessLogs* pl = real->add_processes();
    pl->set_name(p.name);
    pl->set_roles(p.roles);
    pl->set_starts(p.starts);
    for (const std::string& log : p.logs) {
      pl->add_logs(absl::StartsWith(log, prefix) ? log.substr(prefix.size()) : log);
    }
  }
  auto figure = [&](const std::string& name, const std::string& value) {
    sim::RealFigure* f = real->add_figures();
    f->set_name(name);
    f->set_text(value);
  };
  std::vector<std::string> faults;
  for (const auto& [kind, n] : result_.faults_applied) faults.push_back(absl::StrCat(n, " ", kind));
  figure("target", "real processes");
  figure("nats-server", o_.nats_nodes == 1 ? "one node"
                                           : absl::StrCat("a ", o_.nats_nodes, "-node JetStream cluster, events stream R",
                                                          o_.nats_nodes));
  figure("processes (starts)", absl::StrCat(result_.processes.size(), " (", result_.process_starts, ")"));
  figure("history entries", absl::StrCat(result_.history.entries_size()));
  figure("sent / acked / failed / delivered",
         absl::StrCat(result_.sent, " / ", result_.acked, " / ", result_.failed, " / ", result_.delivered));
  figure("sends skipped", absl::StrCat(skipped));
  figure("messages stored in LevelDB", absl::StrCat(result_.stored_messages));
  figure("faults applied", faults.empty() ? "none" : absl::StrJoin(faults, ", "));
  figure("proxy connections cut / refused", absl::StrCat(result_.proxy_cut, " / ", result_.proxy_refused));
  figure("proxy delay", absl::StrCat(std::llround(s_.network().latency_ms()), " ms + [0, ",
                                     std::llround(s_.network().jitter_ms()), "] ms per hop and direction; ",
                                     result_.proxy_delayed, " chunks held"));
  figure("crash as", o_.crash_as_pause ? "pause (SIGSTOP / SIGCONT)" : "kill -9 and restart");
  std::ofstream out(dir_ + "/report.html");
  out << sim::ReportHtml(report);
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", dir_, "/report.html"));
  return absl::OkStatus();
}

absl::StatusOr<RealRunResult> Runner::Run() {
  const absl::Time run_start = absl::Now();
  absl::Time phase_start = run_start;
  auto phase_done = [&](const std::string& name) {
    const absl::Time now = absl::Now();
    result_.phases.push_back({name, absl::ToDoubleSeconds(now - phase_start)});
    phase_start = now;
  };
  dir_ = o_.work_dir;
  std::error_code ec;
  if (std::filesystem::exists(dir_, ec) && !std::filesystem::is_empty(dir_, ec)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the work dir ", dir_, " is not empty (a real run starts on fresh data dirs): remove it or "
        "give another"));
  }
  std::filesystem::create_directories(dir_ + "/logs", ec);
  if (ec) return absl::InvalidArgumentError(absl::StrCat("cannot create ", dir_));
  dir_ = std::filesystem::absolute(dir_).string();
  const Plan plan = MakePlan(s_, o_.seed);
  {
    std::ofstream out(dir_ + "/plan.txt");
    for (const PlannedStep& st : plan.steps) out << st.Describe() << "\n";
  }
  const uint32_t gateways = std::max<uint32_t>(1, s_.topology().gateways());
  const uint32_t shards = std::max<uint32_t>(1, s_.topology().shards());

  // ---- processes: nats-server, then the services, the shards, the gateways.
  Note("starting nats-server");
  if (absl::Status s = StartNats(); !s.ok()) return s;
  const std::string key_file = dir_ + "/token.key";
  {
    std::string key = SeededRng(SeededRng::Derive(o_.seed, "token-key")).Bytes(32);
    // A test key: drawn from the seed (the run is loopback only and throwaway).
    const int fd = open(key_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, key.data(), key.size()) != static_cast<ssize_t>(key.size())) {
      if (fd >= 0) close(fd);
      return absl::InternalError("cannot write the token key file");
    }
    close(fd);
  }
  auto add_proc = [&](const std::string& name, const std::string& roles,
                      const std::vector<std::string>& extra) -> absl::Status {
    auto p = std::make_unique<Proc>();
    p->info.name = name;
    p->info.roles = roles;
    p->data_dir = dir_ + "/" + name;
    // On a cluster the processes spread over its nodes.
    auto proxy = FaultProxy::Start("127.0.0.1", nats_ports_[procs_.size() % nats_ports_.size()]);
    if (!proxy.ok()) return proxy.status();
    p->proxy = std::move(*proxy);
    Delay(*p->proxy, name + "/nats");
    p->args = {o_.parleyd,
               "--roles=" + roles,
               absl::StrCat("--nats=nats://127.0.0.1:", p->proxy->port()),
               "--data_dir=" + p->data_dir,
               absl::StrCat("--shards=", shards),
               "--token_key_file=" + key_file,
               "--minimal_password_cost"};
    // A planted bug is planted everywhere, as in the simulator: in every
    // parleyd (its server-side switches) and in the runner's clients.
    if (!s_.bug().empty()) p->args.push_back("--planted_bug=" + s_.bug());
    if (o_.nats_nodes > 1) p->args.push_back(absl::StrCat("--stream_replicas=", o_.nats_nodes));
    p->args.insert(p->args.end(), extra.begin(), extra.end());
    order_.push_back(name);
    Proc& ref = *p;
    procs_[name] = std::move(p);
    return StartProc(ref);
  };
  Note("starting parleyd processes");
  if (absl::Status s = add_proc("services", "registry,kv,user,friend,group", {}); !s.ok()) return s;
  if (absl::Status s = add_proc("message", "message", {}); !s.ok()) return s;
  std::vector<std::string> servers;
  for (uint32_t g = 1; g <= gateways; ++g) {
    const int port = FreePort();
    const std::string name = absl::StrCat("gw.", g);
    if (absl::Status s = add_proc(name, "gateway",
                                  {absl::StrCat("--gateway_id=", g),
                                   absl::StrCat("--listen=127.0.0.1:", port)});
        !s.ok()) {
      return s;
    }
    procs_[name]->listen_port = port;
    // The clients dial the gateway through its client proxy.
    auto cp = FaultProxy::Start("127.0.0.1", port);
    if (!cp.ok()) return cp.status();
    procs_[name]->client_proxy = std::move(*cp);
    Delay(*procs_[name]->client_proxy, name + "/clients");
    servers.push_back(absl::StrCat("127.0.0.1:", procs_[name]->client_proxy->port()));
  }
  auto stop_all = [&] {
    for (auto it = order_.rbegin(); it != order_.rend(); ++it) {
      Proc& p = *procs_[*it];
      if (p.pid > 0) kill(p.pid, SIGCONT);  // a paused one must run to drain
      if (p.pid > 0) kill(p.pid, SIGINT);
    }
    for (auto it = order_.rbegin(); it != order_.rend(); ++it) {
      Proc& p = *procs_[*it];
      if (p.pid > 0) Reap(p.pid, absl::Seconds(10));
      p.pid = -1;
      p.proxy->Stop();
      if (p.client_proxy) p.client_proxy->Stop();
    }
    for (auto& n : peers_) n->Stop().IgnoreError();
    peers_.clear();
    if (nats_) nats_->Stop().IgnoreError();
    nats_.reset();
  };
  {
    bool up = false;
    for (int i = 0; i < 300 && !up; ++i) {  // at most 15 s
      up = true;
      for (uint32_t g = 1; g <= gateways; ++g) up = up && Listening(procs_[absl::StrCat("gw.", g)]->listen_port);
      if (!up) absl::SleepFor(absl::Milliseconds(50));
    }
    if (!up) {
      stop_all();
      return absl::UnavailableError(absl::StrCat("the gateways did not start listening in 15 s; logs in ",
                                                 dir_, "/logs"));
    }
  }
  absl::SleepFor(absl::Seconds(1));  // gateways registered, services discovered
  phase_done("start");

  // ---- clients: log in, befriend, make groups.
  rec_ = std::make_unique<Recorder>(run_start);
  std::vector<std::unique_ptr<ClientRuntime>> runtimes;
  for (int t = 0; t < 2; ++t) runtimes.push_back(std::make_unique<ClientRuntime>(absl::StrCat("real-", t)));
  // The planted bug on the clients' loop threads too (its client-side switches).
  // (ScopedBug sets a thread_local: each loop thread gets its own guard,
  // made and deleted on that thread.)
  std::vector<ScopedBug*> planted(runtimes.size(), nullptr);
  if (!s_.bug().empty()) {
    absl::StatusOr<Bug> bug = ParseBug(s_.bug());
    for (size_t i = 0; i < runtimes.size(); ++i) {
      runtimes[i]->loop().RunSync([&] { planted[i] = new ScopedBug(*bug); });
    }
  }
  devices_.resize(plan.clients.size());
  for (size_t i = 0; i < plan.clients.size(); ++i) {
    Device& d = devices_[i];
    d.plan = plan.clients[i];
    ClientOptions co;
    co.name = absl::StrCat("user", d.plan.user);
    co.password = "password-" + co.name;
    co.device_id = d.plan.device;
    co.fixed_gateway = "gw";
    co.observer = rec_.get();
    co.keep_delivered = false;
    // Each device starts at its own gateway and fails over to the next ones.
    std::vector<std::string> order;
    for (size_t k = 0; k < servers.size(); ++k) order.push_back(servers[(i + k) % servers.size()]);
    d.host = std::make_unique<TcpClientHost>(d.plan.address, order, std::make_unique<MemStore>(),
                                             SeededRng::Derive(o_.seed, d.plan.address),
                                             runtimes[i % runtimes.size()].get());
    d.host->Start([co](Env* e) { return std::make_unique<Client>(e, co); });
  }
  auto online = [&](Device& d) {
    bool on = false;
    d.host->RunOnLoop([&](Node* n) { on = dynamic_cast<Client*>(n)->state() == Client::State::kOnline; });
    return on;
  };
  auto unplant = [&] {
    for (size_t i = 0; i < runtimes.size(); ++i) {
      if (planted[i] != nullptr) runtimes[i]->loop().RunSync([&] { delete planted[i]; });
      planted[i] = nullptr;
    }
  };
  auto cleanup = [&] {
    for (Device& d : devices_) d.host->Stop();
    unplant();
  };
  {
    bool all = false;
    for (int i = 0; i < 600 && !all; ++i) {  // at most 30 s
      all = true;
      for (Device& d : devices_) all = all && online(d);
      if (!all) absl::SleepFor(absl::Milliseconds(50));
    }
    if (!all) {
      cleanup();
      stop_all();
      return absl::UnavailableError(absl::StrCat("not every client logged in within 30 s; logs in ",
                                                 dir_, "/logs"));
    }
  }
  std::vector<uint64_t> user_ids(plan.friends.size(), 0);
  std::vector<int> first_device(plan.friends.size(), -1);
  for (size_t i = 0; i < devices_.size(); ++i) {
    Device& d = devices_[i];
    d.host->RunOnLoop([&](Node* n) { d.user_id = dynamic_cast<Client*>(n)->user_id(); });
    user_ids[d.plan.user] = d.user_id;
    if (first_device[d.plan.user] < 0) first_device[d.plan.user] = static_cast<int>(i);
  }
  // user -> its friends (user ids) and groups, from acknowledged replies.
  std::vector<std::vector<uint64_t>> friends(plan.friends.size()), groups(plan.friends.size());
  std::map<uint64_t, std::vector<uint32_t>> group_members;
  auto befriend = [&](uint32_t a, uint32_t b) {
    Request r;
    r.mutable_add_friend()->set_friend_id(user_ids[b]);
    const ErrorCode code = CallClient(*devices_[first_device[a]].host, r).status().code();
    if (code != CODE_OK && code != CODE_ALREADY_EXISTS) return false;
    if (std::find(friends[a].begin(), friends[a].end(), user_ids[b]) == friends[a].end()) {
      friends[a].push_back(user_ids[b]);
      friends[b].push_back(user_ids[a]);
    }
    return true;
  };
  for (uint32_t u = 0; u < plan.friends.size(); ++u) {
    for (uint32_t v : plan.friends[u]) befriend(u, v);
  }
  for (size_t g = 0; g < plan.groups.size(); ++g) {
    const std::vector<uint32_t>& members = plan.groups[g];
    for (size_t k = 1; k < members.size(); ++k) befriend(members[0], members[k]);
    Request create;
    create.mutable_create_group()->set_name(absl::StrCat("group", g));
    for (size_t k = 1; k < members.size(); ++k) {
      create.mutable_create_group()->add_member_ids(user_ids[members[k]]);
    }
    const Reply reply = CallClient(*devices_[first_device[members[0]]].host, create);
    if (reply.status().code() != CODE_OK) {
      Note(absl::StrCat("group ", g, " not created: ", reply.status().message()));
      continue;
    }
    const uint64_t id = reply.create_group().group().group_id();
    group_members[id] = members;
    for (uint32_t m : members) groups[m].push_back(id);
  }
  phase_done("setup");

  // ---- the workload and the faults, on the plan's schedule.
  const double duration = s_.workload().duration_s();
  Note(absl::StrFormat("running the plan: %u steps over %.1f s", plan.steps.size(), duration));
  const absl::Time t0 = absl::Now();
  uint64_t sent = 0, skipped = 0;
  const uint32_t body_bytes = s_.workload().body_bytes();
  for (const PlannedStep& st : plan.steps) {
    if (st.at_s >= duration) break;  // fault ends past the end: at the heal
    const absl::Time at = t0 + absl::Seconds(st.at_s);
    const absl::Duration wait = at - absl::Now();
    if (wait > absl::ZeroDuration()) SleepWatching(wait);
    switch (st.kind) {
      case PlannedStep::kSend: {
        Device& d = devices_[st.client];
        const uint32_t u = d.plan.user;
        const bool group = st.group && !groups[u].empty();
        if (d.offline || (!group && friends[u].empty())) {
          ++skipped;
          break;
        }
        const uint64_t target = group ? groups[u][st.pick % groups[u].size()]
                                      : friends[u][st.pick % friends[u].size()];
        std::string body = absl::StrCat("m", sent, "-", d.plan.address);
        if (body.size() < body_bytes) body.resize(body_bytes, '.');
        ++sent;
        Recorder* rec = rec_.get();
        const std::string address = d.plan.address;
        const uint64_t me = d.user_id;
        d.host->PostToLoop([rec, group, target, body, address, me](Node* n) {
          auto* c = dynamic_cast<Client*>(n);
          const std::string id = group ? c->SendGroup(target, body) : c->SendPrivate(target, body);
          std::lock_guard<std::mutex> lock(rec->mu);
          HistoryEntry* e = rec->Add(HistoryEntry::SEND_INVOKED, address);
          e->set_conversation(group ? GroupConversationId(target) : PrivateConversationId(me, target));
          e->set_client_msg_id(id);
          e->set_sender_id(me);
          e->set_body(body);
        });
        break;
      }
      case PlannedStep::kOffline:
        SetOffline(devices_[st.client], true, "churn");
        break;
      case PlannedStep::kOnline:
        SetOffline(devices_[st.client], false, "churn");
        break;
      case PlannedStep::kFault:
        Note(absl::StrCat("fault: ", st.Describe()));
        Fault(st);
        break;
      case PlannedStep::kFaultEnd:
        FaultEnd(st);
        break;
    }
  }
  {
    const absl::Duration rest = t0 + absl::Seconds(duration) - absl::Now();
    if (rest > absl::ZeroDuration()) SleepWatching(rest);
  }
  phase_done("workload");

  // ---- heal, then settle: everyone online, every send answered, and no
  // news for 8 s (past the clients' periodic sync), within settle_s.
  Heal();
  Note("healed; settling");
  const double settle = std::max(10.0, s_.settle_s());
  {
    const absl::Time deadline = absl::Now() + absl::Seconds(settle);
    int last_size = -1;
    absl::Time quiet_from = absl::Now();
    while (absl::Now() < deadline) {
      SleepWatching(absl::Milliseconds(200));
      int size = 0;
      {
        std::lock_guard<std::mutex> lock(rec_->mu);
        size = rec_->history.entries_size();
      }
      if (size != last_size) {
        last_size = size;
        quiet_from = absl::Now();
      }
      bool all = true;
      size_t pending = 0;
      for (Device& d : devices_) {
        d.host->RunOnLoop([&](Node* n) {
          auto* c = dynamic_cast<Client*>(n);
          all = all && c->state() == Client::State::kOnline;
          pending += c->pending_sends();
        });
      }
      if (all && pending == 0 && absl::Now() - quiet_from >= absl::Seconds(8)) break;
    }
  }
  phase_done("settle");

  // ---- stop everything, then read the final state from LevelDB.
  cleanup();
  runtimes.clear();
  stop_all();
  phase_done("stop");

  sim::FinalState f;
  for (const Device& d : devices_) f.clients[d.plan.address] = d.user_id;
  std::vector<KeyValue> rows;
  for (uint32_t k = 0; k < shards; ++k) {
    const std::string path = absl::StrCat(dir_, "/message/svc.message.", k);
    auto store = LevelDbStore::Open(path);
    if (!store.ok()) return absl::InternalError(absl::StrCat("final state: ", path, ": ", store.status().message()));
    rows.clear();
    (*store)->Scan(message_keys::kAllMessagesPrefix, "", SIZE_MAX, &rows).IgnoreError();
    for (const KeyValue& row : rows) {
      Message m;
      if (!m.ParseFromString(row.second)) continue;
      m.clear_body();
      f.messages[m.conversation()][m.seq()] = m;
      ++result_.stored_messages;
    }
  }
  {
    const std::string path = dir_ + "/services/svc.group.1";
    auto store = LevelDbStore::Open(path);
    if (!store.ok()) return absl::InternalError(absl::StrCat("final state: ", path, ": ", store.status().message()));
    rows.clear();
    (*store)->Scan(group_keys::kAllHistoryPrefix, "", SIZE_MAX, &rows).IgnoreError();
    for (const KeyValue& row : rows) {
      uint64_t user = 0, group = 0, version = 0;
      if (!group_keys::ParseHistory(row.first, &user, &group, &version)) continue;
      std::vector<MembershipInterval>& intervals = f.intervals[{user, group}];
      if (row.second == "1") {
        intervals.emplace_back().set_join_version(version);
      } else if (!intervals.empty()) {
        intervals.back().set_leave_version(version);
      }
    }
  }
  phase_done("final_state");

  // ---- the checkers.
  std::vector<std::string> names;
  for (const std::string& c : s_.checkers()) {
    if (std::find(RealRunCheckers().begin(), RealRunCheckers().end(), c) != RealRunCheckers().end()) {
      names.push_back(c);
    }
  }
  if (names.empty()) names = RealRunCheckers();
  result_.checkers = names;
  std::string error;
  result_.history = rec_->history;
  result_.violations = exits_;
  for (sim::Violation& v : sim::RunCheckers(names, result_.history, f, &error)) {
    result_.violations.push_back(std::move(v));
  }
  if (!error.empty()) return absl::InternalError(error);
  result_.passed = result_.violations.empty();
  for (const HistoryEntry& e : result_.history.entries()) {
    if (e.kind() == HistoryEntry::SEND_INVOKED) ++result_.sent;
    if (e.kind() == HistoryEntry::SEND_ACKED) ++result_.acked;
    if (e.kind() == HistoryEntry::SEND_FAILED) ++result_.failed;
    if (e.kind() == HistoryEntry::DELIVERED) ++result_.delivered;
  }
  for (const std::string& name : order_) {
    for (FaultProxy* fp : {procs_[name]->proxy.get(), procs_[name]->client_proxy.get()}) {
      if (fp == nullptr) continue;
      result_.proxy_cut += fp->cut();
      result_.proxy_refused += fp->refused();
      result_.proxy_delayed += fp->delayed_chunks();
    }
    result_.processes.push_back(procs_[name]->info);
  }
  for (int node = o_.nats_nodes - 1; node >= 0; --node) {
    RealProcess n;
    n.name = o_.nats_nodes == 1 ? "nats" : absl::StrCat("nats.", node);
    n.roles = o_.nats_nodes == 1 ? "nats-server -js"
                                 : absl::StrCat("nats-server -js, cluster node n", node, " of ", o_.nats_nodes);
    n.starts = nats_starts_;
    n.logs.push_back(NatsDir(node) + "/nats-server.log");
    for (int i = 1; i < nats_starts_; ++i) n.logs.push_back(absl::StrCat(NatsDir(node), "/nats-server.log.", i));
    result_.processes.insert(result_.processes.begin(), n);
  }
  result_.wall_s = absl::ToDoubleSeconds(absl::Now() - run_start);
  (void)skipped;

  // ---- report.json (and the history, for a closer look).
  {
    std::ofstream h(dir_ + "/history.pb", std::ios::binary);
    result_.history.SerializeToOstream(&h);
  }
  std::string j = "{\n  \"real\": true,\n";
  absl::StrAppend(&j, "  \"scenario\": ", JsonString(s_.name()), ",\n");
  absl::StrAppend(&j, "  \"scenario_path\": ", JsonString(o_.scenario_path), ",\n");
  absl::StrAppend(&j, "  \"seed\": ", o_.seed, ",\n");
  absl::StrAppend(&j, "  \"bug\": ", JsonString(s_.bug()), ",\n");
  absl::StrAppend(&j, "  \"crash_as\": ", o_.crash_as_pause ? "\"pause\"" : "\"kill\"", ",\n");
  absl::StrAppend(&j, "  \"nats_nodes\": ", o_.nats_nodes, ", \"stream_replicas\": ", o_.nats_nodes, ",\n");
  absl::StrAppend(&j, "  \"verdict\": ", result_.passed ? "\"PASS\"" : "\"FAIL\"", ",\n");
  absl::StrAppend(&j, "  \"summary\": ", JsonString(result_.Summary()), ",\n");
  absl::StrAppend(&j, "  \"checkers\": [");
  for (size_t i = 0; i < names.size(); ++i) absl::StrAppend(&j, i ? ", " : "", JsonString(names[i]));
  absl::StrAppend(&j, "],\n  \"violations\": [");
  for (size_t i = 0; i < result_.violations.size(); ++i) {
    const sim::Violation& v = result_.violations[i];
    absl::StrAppend(&j, i ? "," : "", "\n    {\"checker\": ", JsonString(v.checker), ", \"entry\": ", v.entry,
                    ", \"explanation\": ", JsonString(v.explanation), "}");
  }
  absl::StrAppend(&j, "],\n  \"not_applied\": [");
  for (size_t i = 0; i < not_applied_.size(); ++i) {
    absl::StrAppend(&j, i ? "," : "", "\n    ", JsonString(not_applied_[i]));
  }
  absl::StrAppend(&j, "],\n  \"processes\": [");
  for (size_t i = 0; i < result_.processes.size(); ++i) {
    const RealProcess& p = result_.processes[i];
    absl::StrAppend(&j, i ? "," : "", "\n    {\"name\": ", JsonString(p.name), ", \"roles\": ", JsonString(p.roles),
                    ", \"starts\": ", p.starts, ", \"logs\": [");
    for (size_t k = 0; k < p.logs.size(); ++k) absl::StrAppend(&j, k ? ", " : "", JsonString(p.logs[k]));
    absl::StrAppend(&j, "]}");
  }
  absl::StrAppend(&j, "],\n  \"faults_applied\": {");
  bool first = true;
  for (const auto& [k, n] : result_.faults_applied) {
    absl::StrAppend(&j, first ? "" : ", ", JsonString(k), ": ", n);
    first = false;
  }
  absl::StrAppend(&j, "},\n");
  absl::StrAppend(&j, "  \"process_starts\": ", result_.process_starts, ",\n");
  absl::StrAppend(&j, "  \"plan_steps\": ", plan.steps.size(), ",\n");
  absl::StrAppend(&j, "  \"sends_skipped\": ", skipped, ",\n");
  absl::StrAppend(&j, "  \"history_entries\": ", result_.history.entries_size(), ",\n");
  absl::StrAppend(&j, "  \"sent\": ", result_.sent, ", \"acked\": ", result_.acked, ", \"failed\": ", result_.failed,
                  ", \"delivered\": ", result_.delivered, ", \"stored_messages\": ", result_.stored_messages, ",\n");
  absl::StrAppend(&j, "  \"proxy_connections_cut\": ", result_.proxy_cut, ", \"proxy_connections_refused\": ",
                  result_.proxy_refused, ", \"proxy_chunks_delayed\": ", result_.proxy_delayed, ",\n");
  absl::StrAppend(&j, "  \"proxy_delay_ms\": ", std::llround(s_.network().latency_ms()),
                  ", \"proxy_jitter_ms\": ", std::llround(s_.network().jitter_ms()), ",\n");
  absl::StrAppend(&j, "  \"phases\": {");
  for (size_t i = 0; i < result_.phases.size(); ++i) {
    absl::StrAppend(&j, i ? ", " : "", JsonString(result_.phases[i].first), ": ",
                    absl::StrFormat("%.2f", result_.phases[i].second));
  }
  absl::StrAppend(&j, "},\n  \"wall_seconds\": ", absl::StrFormat("%.2f", result_.wall_s), ",\n");
  absl::StrAppend(&j, "  \"plan\": ", JsonString(dir_ + "/plan.txt"), ",\n");
  absl::StrAppend(&j, "  \"history\": ", JsonString(dir_ + "/history.pb"), "\n}\n");
  result_.report_path = dir_ + "/report.json";
  std::ofstream(result_.report_path) << j;
  if (absl::Status h = WriteHtmlReport(plan, absl::ToDoubleSeconds(t0 - run_start), skipped); !h.ok()) {
    return h;
  }
  return result_;
}

}  // namespace

absl::StatusOr<RealRunResult> RunReal(const RealRunOptions& options) {
  Scenario s = options.scenario;
  if (!s.bug().empty()) {
    absl::StatusOr<Bug> bug = ParseBug(s.bug());
    if (!bug.ok()) return bug.status();
    if (*bug == Bug::kCanary) {
      return absl::InvalidArgumentError(
          "bug 'canary' is the simulator's own (it fails every 100th seed there): a real run "
          "cannot plant it");
    }
  }
  if (options.nats_nodes != 1 && options.nats_nodes != 3) {
    return absl::InvalidArgumentError(absl::StrCat("nats_nodes must be 1 or 3, not ", options.nats_nodes));
  }
  std::vector<std::string> refused = Unsupported(s);
  if (!refused.empty() && !options.drop_unsupported) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a real run cannot honour ", refused.size(), " part(s) of scenario '", s.name(), "':\n  ",
        absl::StrJoin(refused, "\n  "), "\n(--drop_unsupported runs without them and lists them in report.json)"));
  }
  if (options.duration_s > 0) {
    s.mutable_workload()->set_duration_s(options.duration_s);
    for (const ScriptedFault& f : s.faults().script()) {
      if (f.at_s() >= options.duration_s) {
        refused.push_back(absl::StrFormat("faults: %s %s at %.1f s, past the shortened duration %.1f s",
                                          ScriptedFault::Kind_Name(f.kind()), f.target(), f.at_s(),
                                          options.duration_s));
      }
    }
  }
  if (options.settle_s > 0) s.set_settle_s(options.settle_s);
  if (options.users > 0) s.mutable_workload()->set_users(options.users);
  Runner runner(options, std::move(s), refused);
  absl::StatusOr<RealRunResult> r = runner.Run();
  if (r.ok()) r->not_applied = refused;
  return r;
}

}  // namespace parley
