// Server benchmark: the server shapes in one run. Each shape runs the
// load generator (server/load.h) in this process against parleyd as a
// SEPARATE process (--parleyd, or //server:parleyd from the runfiles), which
// starts its own nats-server child; parleyd runs --minimal_password_cost with
// the per-connection, per-user and per-address limits lifted, on loopback,
// with a fresh data dir per shape (the stability runs share one server on
// purpose). Server CPU is utime+stime of parleyd plus its nats-server child
// (/proc/<pid>/stat) over each measured window; RSS peaks are VmHWM
// (/proc/<pid>/status). Every figure is one `BENCH <name> key=value ...`
// line; a summary compares them with the targets. Every shape has a
// hard time cap (--shape_cap_s): past it the bench kills its servers and
// exits 3. Run with -c opt:
//   bazel build -c opt //bench:server_bench //server:parleyd
//   bazel-bin/bench/server_bench [--window_s=30 --warmup_s=5 --shapes=...]
#include <dirent.h>
#include <nats/nats.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "server/load.h"
#include "server/loopback.h"
#include "server/nats_server_process.h"

ABSL_FLAG(double, window_s, 30, "seconds of each measured window");
ABSL_FLAG(double, warmup_s, 5, "seconds of load before each window (not counted)");
ABSL_FLAG(std::string, shapes, "stability,k1,open,groups,offline,login,overload",
          "comma list of shapes to run: stability (1:1, 16 outstanding, 3 runs on one server), k1 "
          "(1:1, 1 outstanding), open (1:1 open loop at 5k, 10k, 15k msg/s), groups (10x20, 2x100), "
          "offline, login, overload (open loop at 2x the saturated rate), nats (raw NATS and "
          "JetStream rates, not in the default)");
ABSL_FLAG(std::string, parleyd, "", "the parleyd binary (default: //server:parleyd from the runfiles)");
ABSL_FLAG(std::string, dir, "/tmp/parley-server-bench", "scratch directory (wiped)");
ABSL_FLAG(int, clients, 200, "connections of the 1:1 shapes (clients/2 pairs)");
ABSL_FLAG(int, client_threads, 2, "threads of the load generator");
ABSL_FLAG(double, saturated_rate, 0,
          "msg/s taken as saturated for the overload shape when the stability shape does not run "
          "(0: measure it with one closed-loop run)");
ABSL_FLAG(std::vector<std::string>, open_rates, std::vector<std::string>({"5000", "10000", "15000"}),
          "open-loop rates (msg/s in all)");
ABSL_FLAG(int, offline_repeats, 5, "repeats of the offline shape");
ABSL_FLAG(int, logins, 50, "serial logins of the login shape");
ABSL_FLAG(double, shape_cap_s, 0, "hard cap on one shape's wall time (0: 200 s + 4 x (warm-up + window) per run)");
ABSL_FLAG(std::string, nats_server, "/usr/sbin/nats-server", "the nats-server binary (shape nats)");
ABSL_FLAG(int, raw_messages, 300000, "shape nats: messages for the raw NATS rate");
ABSL_FLAG(int, js_messages, 100000, "shape nats: messages for the JetStream async rate");

namespace {

// ---- /proc ----

// utime+stime of `pid` in seconds (all its threads); -1 if gone.
double ProcCpuSeconds(pid_t pid) {
  std::ifstream f(absl::StrCat("/proc/", pid, "/stat"));
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const size_t close = s.rfind(')');
  if (close == std::string::npos) return -1;
  std::vector<std::string> fields = absl::StrSplit(s.substr(close + 2), ' ');
  // After ")": state(3) ppid(4) ... utime(14) stime(15): indices 11 and 12 here.
  if (fields.size() < 13) return -1;
  const double ticks = sysconf(_SC_CLK_TCK);
  return (std::stod(fields[11]) + std::stod(fields[12])) / ticks;
}

// A field of /proc/<pid>/status in kB (VmHWM, VmRSS); -1 if gone.
long ProcStatusKb(pid_t pid, const std::string& field) {
  std::ifstream f(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::atol(line.c_str() + field.size() + 1);
  }
  return -1;
}

// The children of `parent` whose command is `comm`.
std::vector<pid_t> ChildrenNamed(pid_t parent, const std::string& comm) {
  std::vector<pid_t> out;
  std::ifstream tasks(absl::StrCat("/proc/", parent, "/task/", parent, "/children"));
  pid_t pid;
  std::set<pid_t> candidates;
  while (tasks >> pid) candidates.insert(pid);
  if (candidates.empty()) {  // no children file: scan /proc for the parent
    if (DIR* proc = opendir("/proc")) {
      while (dirent* d = readdir(proc)) {
        const pid_t p = std::atoi(d->d_name);
        if (p <= 0) continue;
        std::ifstream st(absl::StrCat("/proc/", p, "/stat"));
        std::string s((std::istreambuf_iterator<char>(st)), std::istreambuf_iterator<char>());
        const size_t close = s.rfind(')');
        if (close == std::string::npos) continue;
        std::vector<std::string> fields = absl::StrSplit(s.substr(close + 2), ' ');
        if (fields.size() > 1 && std::atoi(fields[1].c_str()) == parent) candidates.insert(p);
      }
      closedir(proc);
    }
  }
  for (pid_t p : candidates) {
    std::ifstream c(absl::StrCat("/proc/", p, "/comm"));
    std::string name;
    std::getline(c, name);
    if (name.rfind(comm.substr(0, 15), 0) == 0) out.push_back(p);
  }
  return out;
}

// ---- parleyd as a process ----

std::string FindParleyd(const char* argv0) {
  if (!absl::GetFlag(FLAGS_parleyd).empty()) return absl::GetFlag(FLAGS_parleyd);
  const std::string self = argv0;
  const std::string dir = self.substr(0, self.rfind('/') + 1);
  for (const std::string& p : {self + ".runfiles/parley/server/parleyd", dir + "../server/parleyd",
                               std::string("server/parleyd")}) {
    if (access(p.c_str(), X_OK) == 0) return p;
  }
  return "";
}

class Server {
 public:
  static std::unique_ptr<Server> Start(const std::string& binary, const std::string& dir) {
    auto s = std::unique_ptr<Server>(new Server);
    std::system(("rm -rf '" + dir + "' && mkdir -p '" + dir + "'").c_str());
    s->port_ = parley::FreePort();
    const std::vector<std::string> args = {
        binary, "--data_dir=" + dir + "/data", absl::StrCat("--listen=127.0.0.1:", s->port_),
        "--minimal_password_cost",
        // Lifted: the server, not its abuse limits, is what is measured.
        "--client_requests_per_s=10000000", "--client_burst=10000000",
        "--user_requests_per_s=10000000", "--user_burst=10000000",
        "--address_registrations_per_s=1000000", "--address_registration_burst=1000000",
        "--max_connections_per_address=100000", "--address_login_failures=1000000000",
        "--report_interval=600s"};
    const std::string log = dir + "/parleyd.log";
    s->pid_ = fork();
    if (s->pid_ == 0) {
      FILE* out = freopen(log.c_str(), "w", stderr);
      (void)out;
      std::vector<char*> argv;
      for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (absl::Now() < deadline) {
      int status;
      if (waitpid(s->pid_, &status, WNOHANG) == s->pid_) {
        std::fprintf(stderr, "server_bench: parleyd exited at start; see %s\n", log.c_str());
        s->pid_ = -1;
        return nullptr;
      }
      if (parley::Listening(s->port_)) break;
      absl::SleepFor(absl::Milliseconds(50));
    }
    if (!parley::Listening(s->port_)) {
      std::fprintf(stderr, "server_bench: parleyd did not listen within 60 s; see %s\n", log.c_str());
      return nullptr;
    }
    for (int i = 0; i < 40 && s->nats_pid_ <= 0; ++i) {
      std::vector<pid_t> nats = ChildrenNamed(s->pid_, "nats-server");
      if (!nats.empty()) s->nats_pid_ = nats[0];
      else absl::SleepFor(absl::Milliseconds(50));
    }
    return s;
  }
  ~Server() { Stop(); }
  void Stop() {
    if (pid_ <= 0) return;
    Sample();
    kill(pid_, SIGTERM);
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    int status;
    bool gone = false;
    while (absl::Now() < deadline) {
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        gone = true;
        break;
      }
      absl::SleepFor(absl::Milliseconds(50));
    }
    if (!gone) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
    }
    // Its nats-server child, if parleyd left it behind (by its pid only).
    if (nats_pid_ > 0 && kill(nats_pid_, 0) == 0 && ProcStatusKb(nats_pid_, "VmHWM") >= 0) {
      kill(nats_pid_, SIGKILL);
    }
    pid_ = -1;
  }
  // Emergency stop from the watchdog (async: no waiting, no allocation).
  void Kill() {
    if (pid_ > 0) kill(pid_, SIGKILL);
    if (nats_pid_ > 0) kill(nats_pid_, SIGKILL);
  }
  double CpuSeconds() const {
    double s = std::max(0.0, ProcCpuSeconds(pid_));
    if (nats_pid_ > 0) s += std::max(0.0, ProcCpuSeconds(nats_pid_));
    return s;
  }
  // Records the peaks so far (VmHWM: the process's own high-water mark).
  void Sample() {
    if (pid_ > 0) parleyd_hwm_kb_ = std::max(parleyd_hwm_kb_, ProcStatusKb(pid_, "VmHWM"));
    if (nats_pid_ > 0) nats_hwm_kb_ = std::max(nats_hwm_kb_, ProcStatusKb(nats_pid_, "VmHWM"));
  }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }
  pid_t pid() const { return pid_; }
  pid_t nats_pid() const { return nats_pid_; }
  long parleyd_hwm_kb() const { return parleyd_hwm_kb_; }
  long nats_hwm_kb() const { return nats_hwm_kb_; }

 private:
  Server() = default;
  pid_t pid_ = -1, nats_pid_ = -1;
  int port_ = 0;
  long parleyd_hwm_kb_ = 0, nats_hwm_kb_ = 0;
};

// ---- the hard cap ----

std::atomic<int64_t> g_deadline_us{INT64_MAX};
std::atomic<Server*> g_server{nullptr};
std::string g_shape;  // written before each deadline is armed

void Watchdog() {
  while (true) {
    absl::SleepFor(absl::Milliseconds(500));
    if (absl::ToUnixMicros(absl::Now()) > g_deadline_us.load()) {
      if (Server* s = g_server.load()) s->Kill();
      std::printf("BENCH %s TIMEOUT: past its hard cap; servers killed, bench stopped\n", g_shape.c_str());
      std::fflush(stdout);
      _exit(3);
    }
  }
}

void Arm(const std::string& shape, double seconds) {
  g_shape = shape;
  g_deadline_us = absl::ToUnixMicros(absl::Now() + absl::Seconds(seconds));
}

// ---- one load run ----

struct Figures {
  bool ok = false;
  parley::LoadResult r;
  double server_cpu_s = 0;
  double window_s = 0;
  double per_cpu_s() const { return server_cpu_s > 0 ? r.window_deliveries / server_cpu_s : 0; }
  double cpu_pct() const { return window_s > 0 ? 100 * server_cpu_s / window_s : 0; }
};

std::string Checkers(const parley::LoadResult& r) {
  if (r.violations.empty()) return "checkers=ok";
  std::string s = absl::StrCat("checkers=FAILED(", r.violations.size(), ") CHECKERS FAILED");
  for (size_t i = 0; i < r.violations.size() && i < 3; ++i) {
    std::fprintf(stderr, "server_bench: checker %s: %s\n", r.violations[i].checker.c_str(),
                 r.violations[i].explanation.c_str());
  }
  return s;
}

std::string Codes(const parley::LoadResult& r) {
  std::vector<std::string> parts;
  for (const auto& [code, n] : r.send_replies) {
    std::string c = code;
    if (c.rfind("CODE_", 0) == 0) c = c.substr(5);
    for (char& ch : c) {
      if (ch == ' ') ch = '_';
    }
    parts.push_back(absl::StrCat("replies_", c, "=", n));
  }
  return absl::StrJoin(parts, " ");
}

Figures Load(Server& server, const std::string& run_id, parley::LoadOptions l) {
  Figures f;
  l.servers = {server.address()};
  l.duration_s = absl::GetFlag(FLAGS_window_s);
  l.warmup_s = absl::GetFlag(FLAGS_warmup_s);
  l.client_rate = 0;  // the server's limits are lifted too: measure the server
  l.client_threads = absl::GetFlag(FLAGS_client_threads);
  l.body_bytes = 100;
  l.run_id = run_id;
  // Open loop: at most 32 outstanding per sender, the rest shed (counted),
  // so the backlog past capacity, and the drain, stay bounded.
  if (l.rate_per_s > 0) l.max_backlog = 32;
  l.drain_s = 30;
  l.login_stall_s = 20;
  double cpu0 = 0;
  absl::Time t0;
  l.on_window = [&](bool start) {
    if (start) {
      cpu0 = server.CpuSeconds();
      t0 = absl::Now();
    } else {
      f.server_cpu_s = server.CpuSeconds() - cpu0;
      f.window_s = absl::ToDoubleSeconds(absl::Now() - t0);
      server.Sample();
    }
  };
  l.progress = [run_id](const std::string& line) {
    std::fprintf(stderr, "server_bench %s: %s\n", run_id.c_str(), line.c_str());
  };
  auto r = parley::RunLoad(l);
  server.Sample();
  if (!r.ok()) {
    std::printf("BENCH %s error=\"%s\"\n", run_id.c_str(), std::string(r.status().message()).c_str());
    std::fflush(stdout);
    return f;
  }
  f.ok = true;
  f.r = *r;
  return f;
}

void PrintRun(const std::string& name, const Figures& f, const std::string& extra = "") {
  if (!f.ok) return;
  const parley::LoadResult& r = f.r;
  std::printf(
      "BENCH %s msgs_per_s=%.0f deliveries_per_s=%.0f p50_ms=%.2f p99_ms=%.2f p999_ms=%.2f "
      "server_cpu_s=%.2f server_cpu_pct=%.0f deliveries_per_cpu_s=%.0f load_cpu_s=%.2f "
      "window_s=%.1f sent=%u shed_by_load=%u acked=%u failed=%u gap_syncs=%u send_retries=%u reconnects=%u %s%s%s\n",
      name.c_str(), r.msgs_per_s, r.deliveries_per_s, r.p50_ms, r.p99_ms, r.p999_ms, f.server_cpu_s,
      f.cpu_pct(), f.per_cpu_s(), r.load_cpu_s, f.window_s, static_cast<unsigned>(r.sent),
      static_cast<unsigned>(r.shed),
      static_cast<unsigned>(r.acked), static_cast<unsigned>(r.failed),
      static_cast<unsigned>(r.gap_syncs), static_cast<unsigned>(r.send_retries),
      static_cast<unsigned>(r.reconnects), Checkers(r).c_str(), extra.empty() ? "" : " ",
      extra.c_str());
  std::fflush(stdout);
}

// ---- shape nats (the old raw rates) ----

std::atomic<int> received{0};
void OnMsg(natsConnection*, natsSubscription*, natsMsg* msg, void*) {
  natsMsg_Destroy(msg);
  ++received;
}

double RawRate(const std::string& url, int n) {
  natsConnection* pub = nullptr;
  natsConnection* sub_conn = nullptr;
  natsConnection_ConnectTo(&pub, url.c_str());
  natsConnection_ConnectTo(&sub_conn, url.c_str());
  natsSubscription* sub = nullptr;
  natsConnection_Subscribe(&sub, sub_conn, "bench.raw", OnMsg, nullptr);
  natsSubscription_SetPendingLimits(sub, -1, -1);
  natsConnection_Flush(sub_conn);
  const std::string payload(128, 'x');
  received = 0;
  const absl::Time start = absl::Now();
  for (int i = 0; i < n; ++i) natsConnection_Publish(pub, "bench.raw", payload.data(), payload.size());
  natsConnection_Flush(pub);
  const absl::Time deadline = start + absl::Seconds(30);
  while (received < n && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(1));
  const double s = absl::ToDoubleSeconds(absl::Now() - start);
  natsSubscription_Destroy(sub);
  natsConnection_Destroy(pub);
  natsConnection_Destroy(sub_conn);
  return received / s;
}

double JetStreamAsyncRate(const std::string& url, int n) {
  natsConnection* conn = nullptr;
  natsConnection_ConnectTo(&conn, url.c_str());
  jsOptions o;
  jsOptions_Init(&o);
  o.PublishAsync.MaxPending = 10000;
  jsCtx* js = nullptr;
  natsConnection_JetStream(&js, conn, &o);
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  cfg.Name = "BENCH";
  const char* subjects[] = {"bench.js"};
  cfg.Subjects = subjects;
  cfg.SubjectsLen = 1;
  jsErrCode err;
  js_AddStream(nullptr, js, &cfg, nullptr, &err);
  const std::string payload(128, 'x');
  const absl::Time start = absl::Now();
  for (int i = 0; i < n; ++i) js_PublishAsync(js, "bench.js", payload.data(), payload.size(), nullptr);
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = 30000;
  js_PublishAsyncComplete(js, &po);
  const double s = absl::ToDoubleSeconds(absl::Now() - start);
  jsCtx_Destroy(js);
  natsConnection_Destroy(conn);
  return n / s;
}

void NatsShape(const std::string& dir) {
  const std::string bin = absl::GetFlag(FLAGS_nats_server);
  auto nats = parley::NatsServerProcess::Start(dir + "/nats", absl::Seconds(10), bin, -1, {},
                                               /*sync_always=*/false);
  if (!nats.ok()) {
    std::printf("BENCH nats error=\"%s\"\n", std::string(nats.status().message()).c_str());
    return;
  }
  const double raw = RawRate((*nats)->url(), absl::GetFlag(FLAGS_raw_messages));
  const double js = JetStreamAsyncRate((*nats)->url(), absl::GetFlag(FLAGS_js_messages));
  (*nats)->Stop().IgnoreError();
  std::printf("BENCH nats version=\"%s\" publish_subscribe_msgs_per_s=%.0f js_async_msgs_per_s=%.0f\n",
              parley::NatsServerProcess::Version(bin).c_str(), raw, js);
  std::fflush(stdout);
}

// ---- the summary ----

struct Target {
  std::string name, measured, target;
  int met = -1;  // -1: not measured
};

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const std::string dir = absl::GetFlag(FLAGS_dir);
  std::system(("rm -rf '" + dir + "' && mkdir -p '" + dir + "'").c_str());
  const std::string parleyd = FindParleyd(argv[0]);
  if (parleyd.empty()) {
    std::fprintf(stderr, "server_bench: no parleyd binary (build //server:parleyd or pass --parleyd)\n");
    return 1;
  }
  std::set<std::string> shapes;
  for (absl::string_view s : absl::StrSplit(absl::GetFlag(FLAGS_shapes), ',', absl::SkipEmpty())) {
    shapes.insert(std::string(s));
  }
  for (const std::string& s : shapes) {
    static const std::set<std::string> known = {"stability", "k1", "open", "groups", "offline",
                                                "login", "overload", "nats"};
    if (known.count(s) == 0) {
      std::fprintf(stderr, "server_bench: unknown shape %s\n", s.c_str());
      return 1;
    }
  }
  const double window_s = absl::GetFlag(FLAGS_window_s), warmup_s = absl::GetFlag(FLAGS_warmup_s);
  if (window_s <= 0 || window_s > 600 || warmup_s < 0 || warmup_s > 120) {
    std::fprintf(stderr, "server_bench: --window_s must be in (0, 600] and --warmup_s in [0, 120]\n");
    return 1;
  }
  const double run_cap = absl::GetFlag(FLAGS_shape_cap_s) > 0 ? absl::GetFlag(FLAGS_shape_cap_s)
                                                                : 200 + 4 * (warmup_s + window_s);
  std::thread(Watchdog).detach();
  const int clients = absl::GetFlag(FLAGS_clients);
  std::printf("BENCH setup parleyd=%s window_s=%.1f warmup_s=%.1f clients=%d client_threads=%d body_bytes=100 shapes=%s\n",
              parleyd.c_str(), window_s, warmup_s, clients, absl::GetFlag(FLAGS_client_threads),
              absl::StrJoin(shapes, ",").c_str());
  std::fflush(stdout);

  long parleyd_hwm = 0, nats_hwm = 0;
  int checker_failures = 0;
  // Runs `fn` on a fresh server (its own data dir) under the shape's cap.
  auto with_server = [&](const std::string& name, int runs, const std::function<void(Server&)>& fn) {
    Arm(name, run_cap * runs);
    std::unique_ptr<Server> s = Server::Start(parleyd, dir + "/" + name);
    if (s == nullptr) {
      std::printf("BENCH %s error=\"parleyd did not start\"\n", name.c_str());
      std::fflush(stdout);
      return;
    }
    if (s->nats_pid() <= 0) std::fprintf(stderr, "server_bench: no nats-server child of parleyd found\n");
    g_server = s.get();
    fn(*s);
    s->Stop();
    g_server = nullptr;
    parleyd_hwm = std::max(parleyd_hwm, s->parleyd_hwm_kb());
    nats_hwm = std::max(nats_hwm, s->nats_hwm_kb());
    std::printf("BENCH %s_rss parleyd_peak_mb=%.1f nats_server_peak_mb=%.1f\n", name.c_str(),
                s->parleyd_hwm_kb() / 1024.0, s->nats_hwm_kb() / 1024.0);
    std::fflush(stdout);
    g_deadline_us = INT64_MAX;
  };
  auto pairs = [&](int in_flight, double rate) {
    parley::LoadOptions l;
    l.clients = clients;
    l.pairs = true;
    l.group_fraction = 0;
    l.in_flight = in_flight;
    l.rate_per_s = rate;
    return l;
  };
  auto count = [&](const Figures& f) { checker_failures += f.ok && !f.r.violations.empty(); };

  std::vector<Figures> stability;
  double saturated = 0;
  if (shapes.count("stability")) {
    with_server("stability", 3, [&](Server& s) {
      for (int run = 1; run <= 3; ++run) {
        Figures f = Load(s, absl::StrCat("stab", run), pairs(16, 0));
        count(f);
        PrintRun(absl::StrCat("1to1_closed16_run", run), f);
        stability.push_back(f);
      }
    });
    if (!stability.empty() && stability[0].ok) saturated = stability[0].r.msgs_per_s;
    if (stability.size() == 3 && stability[0].ok && stability[2].ok && stability[0].r.msgs_per_s > 0) {
      const double ratio = stability[2].r.msgs_per_s / stability[0].r.msgs_per_s;
      std::printf("BENCH 1to1_closed16_stability first_msgs_per_s=%.0f second_msgs_per_s=%.0f "
                  "third_msgs_per_s=%.0f third_over_first=%.3f within_5pct=%s\n",
                  stability[0].r.msgs_per_s, stability[1].r.msgs_per_s, stability[2].r.msgs_per_s,
                  ratio, std::abs(ratio - 1) <= 0.05 ? "yes" : "no");
      std::fflush(stdout);
    }
  }
  Figures k1;
  if (shapes.count("k1")) {
    with_server("k1", 1, [&](Server& s) {
      k1 = Load(s, "k1", pairs(1, 0));
      count(k1);
      PrintRun("1to1_closed1", k1);
    });
  }
  std::map<double, Figures> open;
  if (shapes.count("open")) {
    for (const std::string& rs : absl::GetFlag(FLAGS_open_rates)) {
      const double rate = std::atof(rs.c_str());
      if (rate <= 0) continue;
      const std::string name = absl::StrFormat("open%.0f", rate);
      with_server(name, 1, [&](Server& s) {
        Figures f = Load(s, name, pairs(1, rate));
        count(f);
        PrintRun(absl::StrFormat("1to1_open_%.0f", rate), f, absl::StrFormat("offered_per_s=%.0f", rate));
        open[rate] = f;
      });
    }
  }
  std::map<std::string, Figures> groups;
  if (shapes.count("groups")) {
    for (auto [g, size] : std::vector<std::pair<int, int>>{{10, 20}, {2, 100}}) {
      const std::string name = absl::StrFormat("groups%dx%d", g, size);
      with_server(name, 1, [&](Server& s) {
        parley::LoadOptions l;
        l.clients = g * size;
        l.groups = g;
        l.group_size = size;
        l.group_senders = 3;
        l.group_fraction = 1;
        l.in_flight = 4;
        Figures f = Load(s, name, l);
        count(f);
        PrintRun(name, f);
        groups[name] = f;
      });
    }
  }
  parley::OfflineResult offline;
  bool offline_ok = false;
  if (shapes.count("offline")) {
    with_server("offline", 1, [&](Server& s) {
      parley::OfflineOptions o;
      o.servers = {s.address()};
      o.messages = 1000;
      o.repeats = absl::GetFlag(FLAGS_offline_repeats);
      o.run_id = "offline";
      auto r = parley::RunOffline(o);
      s.Sample();
      if (!r.ok()) {
        std::printf("BENCH offline_1000 error=\"%s\"\n", std::string(r.status().message()).c_str());
        return;
      }
      offline = *r;
      offline_ok = true;
      checker_failures += !r->violations.empty();
      std::printf("BENCH offline_1000 repeats=%zu login_median_ms=%.2f login_to_all_median_ms=%.2f "
                  "login_ms=%s login_to_all_ms=%s delivered=%u %s\n",
                  r->login_ms.size(), r->login_median_ms, r->all_median_ms,
                  absl::StrJoin(r->login_ms, "/", [](std::string* out, double v) {
                    absl::StrAppend(out, absl::StrFormat("%.1f", v));
                  }).c_str(),
                  absl::StrJoin(r->all_ms, "/", [](std::string* out, double v) {
                    absl::StrAppend(out, absl::StrFormat("%.1f", v));
                  }).c_str(),
                  static_cast<unsigned>(r->delivered),
                  r->violations.empty() ? "checkers=ok" : "checkers=FAILED CHECKERS FAILED");
      std::fflush(stdout);
    });
  }
  parley::LoginResult logins;
  bool logins_ok = false;
  if (shapes.count("login")) {
    with_server("login", 1, [&](Server& s) {
      parley::LoginOptions o;
      o.servers = {s.address()};
      o.count = absl::GetFlag(FLAGS_logins);
      o.run_id = "login";
      auto r = parley::RunLogins(o);
      if (!r.ok()) {
        std::printf("BENCH login error=\"%s\"\n", std::string(r.status().message()).c_str());
        return;
      }
      logins = *r;
      logins_ok = true;
      std::printf("BENCH login count=%zu login_p50_ms=%.2f login_p99_ms=%.2f session_p50_ms=%.2f "
                  "session_p99_ms=%.2f\n",
                  r->login_ms.size(), r->login_p50_ms, r->login_p99_ms, r->session_p50_ms,
                  r->session_p99_ms);
      std::fflush(stdout);
    });
  }
  Figures overload;
  double offered = 0;
  if (shapes.count("overload")) {
    if (saturated <= 0) saturated = absl::GetFlag(FLAGS_saturated_rate);
    if (saturated <= 0) {
      with_server("saturate", 1, [&](Server& s) {
        Figures f = Load(s, "saturate", pairs(16, 0));
        count(f);
        PrintRun("1to1_closed16_saturate", f);
        if (f.ok) saturated = f.r.msgs_per_s;
      });
    }
    if (saturated > 0) {
      offered = 2 * saturated;
      with_server("overload", 1, [&](Server& s) {
        overload = Load(s, "overload", pairs(1, offered));
        count(overload);
        const double ratio = overload.ok ? overload.r.msgs_per_s / saturated : 0;
        PrintRun("overload_2x", overload,
                 absl::StrFormat("offered_per_s=%.0f saturated_per_s=%.0f goodput_over_saturated=%.3f "
                                 "refusal_p50_ms=%.2f refusal_p99_ms=%.2f %s",
                                 offered, saturated, ratio, overload.r.refusal_p50_ms,
                                 overload.r.refusal_p99_ms, Codes(overload.r).c_str()));
      });
    } else {
      std::printf("BENCH overload_2x error=\"no saturated rate\"\n");
    }
  }
  std::printf("BENCH rss_peak parleyd_mb=%.1f nats_server_mb=%.1f sum_mb=%.1f\n", parleyd_hwm / 1024.0,
              nats_hwm / 1024.0, (parleyd_hwm + nats_hwm) / 1024.0);

  // The summary against the server targets (docs/operations.md, "Benchmark").
  std::vector<Target> t;
  auto add = [&](const std::string& name, bool measured, double value, const std::string& fmt_value,
                 bool met, const std::string& target) {
    Target x{name, measured ? fmt_value : "-", target, measured ? (met ? 1 : 0) : -1};
    (void)value;
    t.push_back(x);
  };
  const bool s1 = !stability.empty() && stability[0].ok;
  add("1to1_msgs_per_s", s1, 0, s1 ? absl::StrFormat("%.0f", stability[0].r.msgs_per_s) : "",
      s1 && stability[0].r.msgs_per_s >= 60000, ">=60000");
  add("1to1_deliveries_per_cpu_s", s1, 0, s1 ? absl::StrFormat("%.0f", stability[0].per_cpu_s()) : "",
      s1 && stability[0].per_cpu_s() >= 58000, ">=58000");
  const bool o10 = open.count(10000) && open[10000].ok;
  add("open10k_p99_ms", o10, 0, o10 ? absl::StrFormat("%.2f", open[10000].r.p99_ms) : "",
      o10 && open[10000].r.p99_ms <= 3, "<=3");
  const bool g1 = groups.count("groups10x20") && groups["groups10x20"].ok;
  add("groups10x20_deliveries_per_s", g1, 0,
      g1 ? absl::StrFormat("%.0f", groups["groups10x20"].r.deliveries_per_s) : "",
      g1 && groups["groups10x20"].r.deliveries_per_s >= 130000, ">=130000");
  const bool g2 = groups.count("groups2x100") && groups["groups2x100"].ok;
  add("groups2x100_deliveries_per_s", g2, 0,
      g2 ? absl::StrFormat("%.0f", groups["groups2x100"].r.deliveries_per_s) : "",
      g2 && groups["groups2x100"].r.deliveries_per_s >= 145000, ">=145000");
  const bool st = stability.size() == 3 && stability[0].ok && stability[2].ok && stability[0].r.msgs_per_s > 0;
  const double st_ratio = st ? stability[2].r.msgs_per_s / stability[0].r.msgs_per_s : 0;
  add("stability_third_over_first", st, 0, absl::StrFormat("%.3f", st_ratio),
      st && std::abs(st_ratio - 1) <= 0.05, "within 5%");
  const bool rss = parleyd_hwm > 0;
  add("rss_peak_mb", rss, 0, absl::StrFormat("%.1f", (parleyd_hwm + nats_hwm) / 1024.0),
      rss && (parleyd_hwm + nats_hwm) / 1024.0 <= 100, "<=100 (parleyd+nats-server)");
  add("offline_login_to_all_ms", offline_ok, 0, absl::StrFormat("%.2f", offline.all_median_ms),
      offline_ok && offline.all_median_ms <= 30, "<=30");
  add("login_ms", logins_ok, 0, absl::StrFormat("%.2f", logins.login_p50_ms),
      logins_ok && logins.login_p50_ms <= 5, "<=5 (median)");
  const bool ov = overload.ok && saturated > 0;
  const double ov_ratio = ov ? overload.r.msgs_per_s / saturated : 0;
  add("overload_goodput_over_saturated", ov, 0, absl::StrFormat("%.3f", ov_ratio), ov && ov_ratio >= 0.9,
      ">=0.90");
  std::printf("BENCH summary (the server targets; figures from one run on this box, noisy if it was busy)\n");
  for (const Target& x : t) {
    std::printf("BENCH target %s measured=%s target=%s %s\n", x.name.c_str(), x.measured.c_str(),
                x.target.c_str(), x.met < 0 ? "not measured" : x.met ? "met" : "NOT met");
  }
  std::printf("BENCH checkers %s\n", checker_failures == 0 ? "ok" : "CHECKERS FAILED");
  std::fflush(stdout);
  if (shapes.count("nats")) {
    Arm("nats", 120);
    NatsShape(dir + "/nats");
    g_deadline_us = INT64_MAX;
  }
  return checker_failures == 0 ? 0 : 1;
}
