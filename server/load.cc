#include "server/load.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include <sys/resource.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "core/client/client.h"
#include "core/message/conversation.h"
#include "core/rng.h"
#include "core/status.h"
#include "fakes/mem_store.h"
#include "server/client_driver.h"
#include "server/tcp_client_host.h"

namespace parley {
namespace {

// The history, one shard per client runtime: each shard is written only on
// its runtime's loop, so recording takes no lock; the shards are merged by
// time once the loops have stopped.
class Recorder {
 public:
  struct Shard {
    sim::History history;
    std::atomic<uint64_t> acked{0}, delivered{0}, entries{0};  // for progress lines
  };
  explicit Recorder(int shards) {
    for (int i = 0; i < shards; ++i) shards_.push_back(std::make_unique<Shard>());
  }
  // On shard `shard`'s loop only. `now` is read before the call.
  sim::HistoryEntry* Add(int shard, sim::HistoryEntry::Kind kind, const std::string& client,
                         uint64_t user, absl::Time now) {
    Shard& s = *shards_[shard];
    sim::HistoryEntry* e = s.history.add_entries();
    e->set_time_us(absl::ToUnixMicros(now));
    e->set_kind(kind);
    e->set_client(client);
    e->set_user_id(user);
    s.entries.fetch_add(1, std::memory_order_relaxed);
    return e;
  }
  uint64_t acked() const { return Sum(&Shard::acked); }
  uint64_t delivered() const { return Sum(&Shard::delivered); }
  uint64_t entries() const { return Sum(&Shard::entries); }
  Shard& shard(int i) { return *shards_[i]; }
  // REQUIRES: no loop records any more. Entries by time (stable within a
  // shard), indices renumbered.
  sim::History Merge() {
    std::vector<sim::HistoryEntry*> all;
    for (auto& s : shards_) {
      for (sim::HistoryEntry& e : *s->history.mutable_entries()) all.push_back(&e);
    }
    std::stable_sort(all.begin(), all.end(), [](const sim::HistoryEntry* a, const sim::HistoryEntry* b) {
      return a->time_us() < b->time_us();
    });
    sim::History h;
    h.mutable_entries()->Reserve(static_cast<int>(all.size()));
    for (sim::HistoryEntry* e : all) {
      sim::HistoryEntry* out = h.add_entries();
      out->Swap(e);
      out->set_index(h.entries_size() - 1);
    }
    for (auto& s : shards_) s->history.Clear();
    return h;
  }

 private:
  uint64_t Sum(std::atomic<uint64_t> Shard::*field) const {
    uint64_t n = 0;
    for (const auto& s : shards_) n += ((*s).*field).load(std::memory_order_relaxed);
    return n;
  }
  std::vector<std::unique_ptr<Shard>> shards_;
};

// One client's observer: records into its shard (on the client's loop) and
// tells the load what happened.
class ClientRecorder : public ClientObserver {
 public:
  ClientRecorder(Recorder* recorder, int shard, std::string address)
      : recorder_(recorder), shard_(shard), address_(std::move(address)) {}
  void OnOnline(const std::string&, uint64_t user_id) override { user_ = user_id; }
  void OnDelivered(const std::string& client, const Message& m) override {
    const absl::Time now = absl::Now();
    sim::HistoryEntry* e = recorder_->Add(shard_, sim::HistoryEntry::DELIVERED, address_, user_, now);
    recorder_->shard(shard_).delivered.fetch_add(1, std::memory_order_relaxed);
    e->set_conversation(m.conversation());
    e->set_seq(m.seq());
    e->set_sender_id(m.sender_id());
    e->set_client_msg_id(m.client_msg_id());
    Message* copy = e->mutable_message();
    *copy = m;
    copy->clear_body();
    if (on_delivered) on_delivered(m, now);
  }
  void OnSendAcked(const std::string& client, const std::string& id, const SendReply& ack) override {
    const absl::Time now = absl::Now();
    sim::HistoryEntry* e = recorder_->Add(shard_, sim::HistoryEntry::SEND_ACKED, address_, user_, now);
    recorder_->shard(shard_).acked.fetch_add(1, std::memory_order_relaxed);
    e->set_client_msg_id(id);
    e->set_conversation(ack.conversation());
    e->set_seq(ack.seq());
    e->set_sender_id(user_);
    if (on_answered) on_answered();
  }
  void OnSendFailed(const std::string& client, const std::string& id, const absl::Status& s) override {
    const absl::Time now = absl::Now();
    recorder_->Add(shard_, sim::HistoryEntry::SEND_FAILED, address_, user_, now)->set_client_msg_id(id);
    if (on_answered) on_answered();
  }
  // A send invoked by the load (on the loop).
  void Invoked(const std::string& conversation, const std::string& id, absl::Time now) {
    sim::HistoryEntry* e = recorder_->Add(shard_, sim::HistoryEntry::SEND_INVOKED, address_, user_, now);
    e->set_conversation(conversation);
    e->set_client_msg_id(id);
    e->set_sender_id(user_);
  }
  uint64_t user() const { return user_; }
  std::function<void()> on_answered;                               // on the loop
  std::function<void(const Message&, absl::Time)> on_delivered;  // on the loop

 private:
  Recorder* recorder_;
  const int shard_;
  const std::string address_;
  uint64_t user_ = 0;
};

// The measured window, shared with the loops (micros since the epoch).
struct Window {
  std::atomic<int64_t> start_us{INT64_MAX}, end_us{INT64_MAX};
  bool Contains(absl::Time t) const {
    const int64_t us = absl::ToUnixMicros(t);
    return us >= start_us.load(std::memory_order_relaxed) && us < end_us.load(std::memory_order_relaxed);
  }
};

// Why a client reconnected, read off its traffic (on its loop). A new
// login attempt (a login, or a gateway_login that does not follow a
// successful login) after the first follows a reconnect; its cause is the
// last failure seen since the previous attempt: an error reply to a request
// whose failure reconnects, the connection ending or failing to dial, or, if
// none, a request left without a reply (the client's timeout).
class ReconnectTracker {
 public:
  void Sent(const Envelope& e) {
    if (!e.has_request()) return;
    const Request::OpCase op = e.request().op_case();
    const bool auth = op == Request::kLogin || op == Request::kRegister || op == Request::kGatewayLogin;
    if (auth) {
      const bool continuation = op == expect_;
      expect_ = Request::OP_NOT_SET;
      if (continuation) {
        last_failure_.clear();
      } else {
        if (started_) {
          if (churned_) {
            ++churns;
          } else {
            std::string why = last_failure_;
            if (why.empty() && !pending_.empty()) why = OpName(pending_.begin()->second.op) + ": no reply in time";
            if (why.empty()) why = "no failure seen (backoff or a stale reply)";
            ++reasons[why];
          }
        }
        started_ = true;
        churned_ = false;
        last_failure_.clear();
        pending_.clear();  // what the old connection waited for is abandoned
      }
    }
    const absl::Time now = absl::Now();
    const bool send = op == Request::kSendPrivate || op == Request::kSendGroup;
    if (send && window != nullptr && window->Contains(now)) ++send_frames;
    pending_[e.correlation_id()] = {op, send, now};
  }
  void Received(const Envelope& e) {
    if (!e.has_reply()) return;
    auto it = pending_.find(e.correlation_id());
    if (it == pending_.end()) return;
    const Request::OpCase op = it->second.op;
    const bool send = it->second.send;
    const absl::Time sent_at = it->second.at;
    pending_.erase(it);
    const ErrorCode code = e.reply().status().code();
    if (send && window != nullptr && window->Contains(sent_at)) {
      const absl::Time now = absl::Now();
      ++send_codes[code];
      if (code != CODE_OK) refusal_ms.push_back(absl::ToDoubleMilliseconds(now - sent_at));
    }
    if (op == Request::kLogin && code == CODE_OK) login_reply = absl::Now();
    if (op == Request::kGatewayLogin && code == CODE_OK) session_reply = absl::Now();
    if (op == Request::kLogin && code == CODE_OK) expect_ = Request::kGatewayLogin;
    if (op == Request::kLogin && code == CODE_UNAUTHENTICATED) expect_ = Request::kRegister;
    if (op == Request::kRegister && (code == CODE_OK || code == CODE_ALREADY_EXISTS)) expect_ = Request::kLogin;
    if (code == CODE_OK) return;
    // Failures that make the client reconnect: of the session's own requests
    // any, of the rest an expired or revoked token.
    const bool session = op == Request::kLogin || op == Request::kRegister ||
                         op == Request::kGatewayLogin || op == Request::kPing || op == Request::kSync;
    if (session || code == CODE_UNAUTHENTICATED) last_failure_ = OpName(op) + ": " + ErrorCode_Name(code);
  }
  void Connection(const std::string& why) {
    if (last_failure_.empty()) last_failure_ = why;
  }
  void Churned() { churned_ = true; }

  std::map<std::string, uint64_t> reasons;
  uint64_t churns = 0;
  // Sends (send_private, send_group) whose frame left in `window`: frames,
  // replies by code, and how long each refusal (not OK) took.
  const Window* window = nullptr;
  uint64_t send_frames = 0;
  std::map<int, uint64_t> send_codes;  // ErrorCode -> replies
  std::vector<double> refusal_ms;
  // The last successful login and gateway_login replies.
  absl::Time login_reply = absl::InfinitePast(), session_reply = absl::InfinitePast();

 private:
  static std::string OpName(Request::OpCase op) {
    const auto* field = Request::descriptor()->FindFieldByNumber(op);
    return field != nullptr ? field->name() : "request";
  }
  struct Pending {
    Request::OpCase op = Request::OP_NOT_SET;
    bool send = false;
    absl::Time at;
  };
  std::map<uint64_t, Pending> pending_;  // correlation id -> op
  std::string last_failure_;
  Request::OpCase expect_ = Request::OP_NOT_SET;  // the next step of a login in progress
  bool started_ = false;
  bool churned_ = false;
};

struct LoadClient {
  std::string address;
  std::unique_ptr<ReconnectTracker> tracker = std::make_unique<ReconnectTracker>();
  std::unique_ptr<ClientRecorder> recorder;
  std::unique_ptr<TcpClientHost> host;
  uint64_t user = 0;
  std::vector<uint64_t> friends;
  std::vector<uint64_t> groups;
  bool sender = true;    // sends at all (the groups shape: the first few members)
  uint64_t partner = 0;  // the pairs shape: the only one it sends to
  absl::Time next_send;  // on its loop: unpaced, not before this (client_rate)
};

// Starts `n` reference clients named load<run_id>_<i> over `runtimes`.
std::vector<LoadClient> StartClients(int n, const std::string& run_id,
                                     const std::vector<std::string>& servers, uint64_t seed,
                                     std::vector<std::unique_ptr<ClientRuntime>>& runtimes,
                                     Recorder& recorder, const Window* window,
                                     size_t on_wire = 1) {
  std::vector<LoadClient> clients(n);
  for (int i = 0; i < n; ++i) {
    ClientOptions co;
    co.name = absl::StrCat("load", run_id, "_", i);
    co.password = "password-" + co.name;
    co.fixed_gateway = "gw";
    co.keep_delivered = false;  // the recorder has them
    co.max_sends_in_flight = on_wire;
    clients[i].address = "client." + co.name;
    const int shard = i % static_cast<int>(runtimes.size());
    clients[i].recorder = std::make_unique<ClientRecorder>(&recorder, shard, clients[i].address);
    co.observer = clients[i].recorder.get();
    clients[i].host = std::make_unique<TcpClientHost>(clients[i].address, servers,
                                                      std::make_unique<MemStore>(), seed * 1000 + i,
                                                      runtimes[shard].get());
    ReconnectTracker* tracker = clients[i].tracker.get();
    tracker->window = window;
    TcpClientHost::Tap tap;
    tap.sent = [tracker](const Envelope& e) { tracker->Sent(e); };
    tap.received = [tracker](const Envelope& e) { tracker->Received(e); };
    tap.connection = [tracker](const std::string& why) { tracker->Connection(why); };
    clients[i].host->SetTap(std::move(tap));
    clients[i].host->Start([co](Env* e) { return std::make_unique<Client>(e, co); });
  }
  return clients;
}

Client::State StateOf(LoadClient& c) {
  Client::State s = Client::State::kOffline;
  c.host->RunOnLoop([&](Node* n) { s = dynamic_cast<Client*>(n)->state(); });
  return s;
}

// The simulator's checkers on what the clients saw.
std::vector<sim::Violation> Judge(const sim::History& h, const std::vector<LoadClient>& clients,
                                  const std::map<uint64_t, std::vector<int>>& group_members) {
  sim::FinalState f;
  for (const LoadClient& c : clients) f.clients[c.address] = c.user;
  for (const auto& [g, members] : group_members) {
    for (int m : members) {
      MembershipInterval i;
      i.set_join_version(0);
      f.intervals[{clients[m].user, g}].push_back(i);  // membership never changes under load
    }
  }
  for (const sim::HistoryEntry& e : h.entries()) {
    if (e.kind() == sim::HistoryEntry::DELIVERED) f.messages[e.conversation()][e.seq()] = e.message();
  }
  std::string error;
  return sim::RunCheckers({"no_lost_ack", "no_duplicates", "order", "sender_fifo",
                           "membership_safety", "idempotent_send"},
                          h, f, &error);
}

double Percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}

double CpuSeconds() {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

template <typename F>
bool Until(F done, double seconds) {
  const absl::Time deadline = absl::Now() + absl::Seconds(seconds);
  while (absl::Now() < deadline) {
    if (done()) return true;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return done();
}

}  // namespace

std::string LoadResult::LoadLine() const {
  return absl::StrFormat(
      "LOAD clients=%d sent=%u acked=%u delivered=%u lost=%u duplicated=%u reordered=%u "
      "msgs_per_s=%.1f p50_ms=%.2f p99_ms=%.2f",
      clients, sent, acked, delivered, lost, duplicated, reordered, msgs_per_s, p50_ms, p99_ms);
}

std::vector<std::string> LoadResult::Explain() const {
  std::vector<std::string> lines;
  lines.push_back(absl::StrFormat(
      "sends: %u sent, %u acked, %u failed (gave up after their retries), %u still unanswered at "
      "the end; %u send retries (a send answered with a retryable error or not at all, sent again "
      "with the same client_msg_id)",
      sent, acked, failed, sent > acked + failed ? sent - acked - failed : 0, send_retries));
  lines.push_back(absl::StrFormat(
      "deliveries: %u delivered to the app; %u duplicates dropped by the clients (a message seen "
      "twice, e.g. in a push and a sync)",
      delivered, duplicates_dropped));
  const uint64_t at_login = std::min(syncs, connects);
  const uint64_t gap = std::min(syncs - at_login, gap_syncs);
  lines.push_back(absl::StrFormat(
      "syncs: %u = %u at login or reconnect (one per session opened) + %u after a gap (a push "
      "ahead of a missing seq, 200 ms without it) + %u periodic or next pages (has_more); their "
      "replies carried %u messages",
      syncs, at_login, gap, syncs - at_login - gap, sync_messages));
  std::string why;
  uint64_t explained = 0;
  std::vector<std::pair<uint64_t, std::string>> by_count;
  for (const auto& [reason, n] : reconnect_reasons) by_count.push_back({n, reason});
  std::sort(by_count.rbegin(), by_count.rend());
  for (const auto& [n, reason] : by_count) {
    absl::StrAppend(&why, why.empty() ? "" : ", ", n, " after ", reason);
    explained += n;
  }
  if (reconnects > explained) {
    absl::StrAppend(&why, why.empty() ? "" : ", ", reconnects - explained,
                    " not yet retried when the run ended");
  }
  lines.push_back(absl::StrCat(
      "reconnects: ", reconnects, " (a client whose login, session or connection failed backs off "
      "and logs in again)", reconnects > 0 ? ": " + why : std::string(),
      churn_reconnects > 0 ? absl::StrCat("; plus ", churn_reconnects, " drops made by --churn")
                           : std::string()));
  std::string phases_text;
  for (const auto& [name, seconds] : phases) {
    absl::StrAppend(&phases_text, phases_text.empty() ? "" : " + ", name,
                    absl::StrFormat(" %.1f s", seconds));
  }
  lines.push_back(absl::StrFormat("wall time: %.1f s = %s", wall_s, phases_text));
  return lines;
}

absl::StatusOr<LoadResult> RunLoad(const LoadOptions& o) {
  for (const std::string& s : o.servers) {
    if (s.rfind("127.", 0) != 0 && s.rfind("localhost:", 0) != 0) {
      return absl::InvalidArgumentError(absl::StrCat("load goes to loopback only, not ", s));
    }
  }
  if (o.clients < 2 || o.clients > 5000) return absl::InvalidArgumentError("--clients must be 2..5000");
  if (o.duration_s <= 0 || o.duration_s > 3600) {
    return absl::InvalidArgumentError("--duration_s must be in (0, 3600]");
  }
  if (o.warmup_s < 0 || o.warmup_s > 600) return absl::InvalidArgumentError("--warmup_s must be in [0, 600]");
  if (o.client_rate < 0) return absl::InvalidArgumentError("--client_rate must not be negative");
  if (o.client_threads < 1 || o.client_threads > 64) {
    return absl::InvalidArgumentError("--client_threads must be 1..64");
  }
  if (o.max_backlog < 0) return absl::InvalidArgumentError("--max_backlog must not be negative");
  if (o.in_flight < 1 || o.in_flight > 1000) return absl::InvalidArgumentError("--in_flight must be 1..1000");
  if (o.on_wire < 0 || o.on_wire > 1000) return absl::InvalidArgumentError("--on_wire must be 0..1000");
  if (o.body_bytes < 1 || o.body_bytes > 65536) return absl::InvalidArgumentError("--body_bytes must be 1..65536");
  if (o.pairs && o.clients % 2 != 0) return absl::InvalidArgumentError("--pairs needs an even --clients");
  if (o.groups > 0 && (o.group_size < 2 || o.groups * o.group_size != o.clients)) {
    return absl::InvalidArgumentError("--groups G needs --clients = G x --group_size (2 or more)");
  }
  if (o.groups > 0 && o.pairs) return absl::InvalidArgumentError("--pairs and --groups are two shapes");
  Recorder recorder(o.client_threads);
  Window window;
  SeededRng rng(o.seed);
  // The clients share a few runtimes (an event loop and a socket reader each).
  std::vector<std::unique_ptr<ClientRuntime>> runtimes;
  for (int t = 0; t < o.client_threads; ++t) {
    runtimes.push_back(std::make_unique<ClientRuntime>(absl::StrCat("load-", t)));
  }
  std::vector<LoadClient> clients =
      StartClients(o.clients, o.run_id, o.servers, o.seed, runtimes, recorder, &window,
                   static_cast<size_t>(std::max(1, o.on_wire)));
  auto report = [&o](const std::string& line) {
    if (o.progress) o.progress(line);
  };
  LoadResult result;
  const absl::Time run_start = absl::Now();
  absl::Time phase_start = run_start;
  auto phase_done = [&](const std::string& name) {
    const absl::Time now = absl::Now();
    result.phases.push_back({name, absl::ToDoubleSeconds(now - phase_start)});
    phase_start = now;
  };
  auto stop_all = [&] {
    for (LoadClient& c : clients) c.host->Stop();
    runtimes.clear();
  };
  report(absl::StrCat("logging in ", o.clients, " clients"));
  {
    int best = -1;
    absl::Time progressed = absl::Now(), reported = absl::Now();
    while (true) {
      int online = 0;
      for (LoadClient& c : clients) online += StateOf(c) == Client::State::kOnline;
      const absl::Time now = absl::Now();
      if (online == o.clients) {
        report(absl::StrFormat("%d/%d clients logged in (%.1f s)", online, o.clients,
                               absl::ToDoubleSeconds(now - run_start)));
        break;
      }
      if (online > best) {
        best = online;
        progressed = now;
      } else if (now - progressed > absl::Seconds(o.login_stall_s)) {
        report(absl::StrFormat("%d/%d clients logged in; giving up", online, o.clients));
        stop_all();
        return absl::UnavailableError(absl::StrFormat(
            "%d of %d clients could not log in (none came online for %.0f s); is parleyd "
            "running at %s? a crowd of logins is slow unless parleyd runs --minimal_password_cost",
            o.clients - online, o.clients, o.login_stall_s, absl::StrJoin(o.servers, ",")));
      }
      if (now - reported >= absl::Seconds(5)) {
        report(absl::StrCat(online, "/", o.clients, " clients logged in"));
        reported = now;
      }
      absl::SleepFor(absl::Milliseconds(50));
    }
  }
  phase_done("login");
  for (LoadClient& c : clients) {
    c.host->RunOnLoop([&](Node* n) { c.user = dynamic_cast<Client*>(n)->user_id(); });
  }
  auto befriend = [&](LoadClient& a, LoadClient& b) {
    Request r;
    r.mutable_add_friend()->set_friend_id(b.user);
    const ErrorCode code = CallClient(*a.host, r).status().code();
    if (code == CODE_OK || code == CODE_ALREADY_EXISTS) {
      a.friends.push_back(b.user);
      b.friends.push_back(a.user);
      return true;
    }
    return false;
  };
  std::map<uint64_t, std::vector<int>> group_members;
  auto make_group = [&](int start, int size) {
    LoadClient& owner = clients[start];
    std::vector<int> members = {start};
    for (int k = start + 1; k < std::min(o.clients, start + size); ++k) {
      Request r;
      r.mutable_add_friend()->set_friend_id(clients[k].user);
      CallClient(*owner.host, r);
      members.push_back(k);
    }
    Request create;
    create.mutable_create_group()->set_name(absl::StrCat("load", o.run_id, "_", start));
    for (size_t k = 1; k < members.size(); ++k) {
      create.mutable_create_group()->add_member_ids(clients[members[k]].user);
    }
    Reply reply = CallClient(*owner.host, create);
    if (reply.status().code() != CODE_OK) return;
    const uint64_t g = reply.create_group().group().group_id();
    group_members[g] = members;
    for (int m : members) clients[m].groups.push_back(g);
  };
  if (o.pairs) {
    report(absl::StrFormat("setup: %d pairs of friends, each pair talking only to each other", o.clients / 2));
    for (int i = 0; i + 1 < o.clients; i += 2) {
      if (!befriend(clients[i], clients[i + 1])) {
        stop_all();
        return absl::InternalError(absl::StrCat("pair ", i / 2, " could not become friends"));
      }
      clients[i].partner = clients[i + 1].user;
      clients[i + 1].partner = clients[i].user;
    }
  } else if (o.groups > 0) {
    report(absl::StrFormat("setup: %d groups of %d, %d senders each", o.groups, o.group_size,
                           o.group_senders));
    for (int g = 0; g < o.groups; ++g) {
      make_group(g * o.group_size, o.group_size);
      for (int k = 0; k < o.group_size; ++k) clients[g * o.group_size + k].sender = k < o.group_senders;
    }
    if (static_cast<int>(group_members.size()) != o.groups) {
      stop_all();
      return absl::InternalError(absl::StrFormat("only %u of %d groups could be created",
                                                 group_members.size(), o.groups));
    }
  } else {
    report(absl::StrFormat("setup: %d friendships (a ring, each client with the next two) and groups of %d",
                           o.clients * std::min(2, o.clients - 1), o.group_size));
    // A ring of friendships (each with the next two), and groups of consecutive clients.
    for (int i = 0; i < o.clients; ++i) {
      for (int d = 1; d <= 2 && d < o.clients; ++d) befriend(clients[i], clients[(i + d) % o.clients]);
    }
    for (int start = 0; start + 1 < o.clients && o.group_fraction > 0; start += o.group_size) {
      make_group(start, o.group_size);
    }
  }
  report(absl::StrFormat("setup done: %u groups", group_members.size()));
  phase_done("setup");

  // The load.
  result.clients = o.clients;
  std::vector<int> senders;
  for (int i = 0; i < o.clients; ++i) {
    if (clients[i].sender) senders.push_back(i);
  }
  const std::string body(o.body_bytes, 'x');
  const bool paced = o.rate_per_s > 0;
  std::atomic<bool> sending{true};
  std::atomic<uint64_t> sent{0}, shed{0};
  std::vector<SeededRng> draws;
  for (int i = 0; i < o.clients; ++i) draws.emplace_back(o.seed * 7919 + i);
  // Sends one message from client `i` (on its loop): to its partner (pairs),
  // its group (groups), else to a random friend or, with probability
  // group_fraction, one of its groups. `draws[i]` is the client's own rng
  // stream, so the choices do not depend on thread timing.
  auto send_one = [&](int i, Client* client) {
    LoadClient& c = clients[i];
    bool group;
    uint64_t target;
    if (o.pairs) {
      group = false;
      target = c.partner;
    } else if (o.groups > 0) {
      if (c.groups.empty()) return;
      group = true;
      target = c.groups[0];
    } else {
      group = !c.groups.empty() && draws[i].Bernoulli(o.group_fraction);
      if (!group && c.friends.empty()) return;
      target = group ? c.groups[draws[i].Uniform(c.groups.size())]
                     : c.friends[draws[i].Uniform(c.friends.size())];
    }
    const absl::Time now = absl::Now();
    const std::string id = group ? client->SendGroup(target, body) : client->SendPrivate(target, body);
    c.recorder->Invoked(group ? GroupConversationId(target) : PrivateConversationId(c.user, target), id, now);
    sent.fetch_add(1, std::memory_order_relaxed);
  };
  // Closed loop: keeps `in_flight` sends outstanding (under client_rate).
  auto top_up = [&](int i) {
    if (!sending.load(std::memory_order_relaxed)) return;
    auto* client = dynamic_cast<Client*>(clients[i].host->node());
    if (client == nullptr) return;
    while (client->pending_sends() < static_cast<size_t>(o.in_flight)) {
      if (o.client_rate > 0) {
        const absl::Time now = absl::Now();
        if (now < clients[i].next_send) return;
        clients[i].next_send = now + absl::Seconds(1) / o.client_rate;
      }
      const size_t before = client->pending_sends();
      send_one(i, client);
      if (client->pending_sends() <= before) return;  // nothing to send to
    }
  };
  if (!paced) {
    for (int i : senders) {
      clients[i].recorder->on_answered = [&top_up, &clients, i] {
        // After the client's own bookkeeping of the answer.
        clients[i].host->PostToLoop([&top_up, i](Node*) { top_up(i); });
      };
    }
  }
  const absl::Time start = absl::Now();
  const absl::Time window_start = start + absl::Seconds(o.warmup_s);
  const absl::Time end = window_start + absl::Seconds(o.duration_s);
  window.start_us = absl::ToUnixMicros(window_start);
  window.end_us = absl::ToUnixMicros(end);
  report(absl::StrFormat("sending for %.0f s (%.0f s warm-up, then a %.0f s window): %s", o.warmup_s + o.duration_s,
                         o.warmup_s, o.duration_s,
                         paced ? absl::StrFormat("open loop at %.0f/s", o.rate_per_s)
                               : absl::StrFormat("closed loop, %d outstanding per sender", o.in_flight)));
  double owed = 0;
  absl::Time last = start;
  uint64_t next_churn = 0;
  absl::Time reported = start;
  bool in_window = false;
  double cpu_at_start = 0;
  // Each tick posts one task per runtime: unpaced, it tops up every sender
  // of that runtime (answers top up at once too; the tick is for
  // client_rate and a start); paced, it sends what the rate owes from
  // senders picked at random.
  while (true) {
    const absl::Time now = absl::Now();
    if (!in_window && now >= window_start) {
      in_window = true;
      cpu_at_start = CpuSeconds();
      if (o.on_window) o.on_window(true);
    }
    if (now >= end) break;
    std::vector<std::vector<int>> picks(runtimes.size());
    if (paced) {
      owed += o.rate_per_s * absl::ToDoubleSeconds(now - last);
      for (; owed >= 1; owed -= 1) {
        const int i = senders[rng.Uniform(senders.size())];
        picks[i % runtimes.size()].push_back(i);
      }
    } else {
      for (int i : senders) picks[i % runtimes.size()].push_back(i);
    }
    last = now;
    for (size_t t = 0; t < runtimes.size(); ++t) {
      if (picks[t].empty()) continue;
      runtimes[t]->loop().Post([&, paced, picks = std::move(picks[t])] {
        for (int i : picks) {
          if (!paced) {
            top_up(i);
            continue;
          }
          auto* client = dynamic_cast<Client*>(clients[i].host->node());
          if (client == nullptr) continue;
          if (o.max_backlog > 0 && client->pending_sends() >= static_cast<size_t>(o.max_backlog)) {
            shed.fetch_add(1, std::memory_order_relaxed);
            continue;
          }
          send_one(i, client);
        }
      });
    }
    if (o.churn && absl::Now() - start > absl::Seconds(1) * (next_churn + 1)) {
      ++next_churn;
      LoadClient& c = clients[rng.Uniform(clients.size())];
      ReconnectTracker* tracker = c.tracker.get();
      c.host->RunOnLoop([tracker](Node* n) {
        tracker->Churned();
        dynamic_cast<Client*>(n)->Disconnect();
      });
      c.host->RunOnLoop([](Node* n) { dynamic_cast<Client*>(n)->Connect(); });
    }
    if (absl::Now() - reported >= absl::Seconds(5)) {
      reported = absl::Now();
      report(absl::StrFormat("%.0f s: sent %u, acked %u, delivered %u",
                             absl::ToDoubleSeconds(reported - start), sent.load(), recorder.acked(),
                             recorder.delivered()));
    }
    // Paced: a tick every 2 ms. Unpaced, answers top up; the tick only
    // matters under client_rate.
    absl::SleepFor(absl::Milliseconds(paced ? 2 : o.client_rate > 0 ? 1 : 20));
  }
  sending = false;
  if (o.on_window) o.on_window(false);
  result.load_cpu_s = CpuSeconds() - cpu_at_start;
  result.window_s = absl::ToDoubleSeconds(absl::Now() - window_start);
  // Let the last ticks run before counting.
  for (auto& r : runtimes) r->loop().RunSync([] {});
  result.sent = sent;
  result.shed = shed;

  // Drain: every send answered, then deliveries settle (clients also sync
  // every few seconds, so lost pushes arrive too).
  auto pending_total = [&] {
    size_t n = 0;
    for (LoadClient& c : clients) {
      c.host->RunOnLoop([&](Node* node) { n += dynamic_cast<Client*>(node)->pending_sends(); });
    }
    return n;
  };
  phase_done("sending");
  report(absl::StrFormat("draining: waiting for the last acks (up to %.0f s)", o.drain_s));
  {
    absl::Time noted = absl::Now();
    Until([&] {
      const size_t n = pending_total();
      if (n > 0 && absl::Now() - noted >= absl::Seconds(5)) {
        noted = absl::Now();
        report(absl::StrCat("draining: ", n, " sends not yet acked"));
      }
      return n == 0;
    }, o.drain_s);
  }
  report(absl::StrFormat("draining: waiting for deliveries to settle (%.0f s without news)", o.settle_s));
  int stable = 0;
  uint64_t last_count = 0;
  Until([&] {
    const uint64_t n = recorder.entries();
    stable = n == last_count ? stable + 1 : 0;
    last_count = n;
    return stable >= std::max(1, static_cast<int>(o.settle_s * 50));  // polled every 20 ms
  }, std::max(o.drain_s, o.settle_s + 1));
  std::vector<double> refusals;
  uint64_t send_frames = 0, send_replies = 0;
  for (LoadClient& c : clients) {
    c.host->RunOnLoop([&](Node* n) {
      const ClientStats& st = dynamic_cast<Client*>(n)->stats();
      result.gap_syncs += st.gap_syncs;
      result.syncs += st.syncs;
      for (uint32_t n : st.sync_sizes) result.sync_messages += n;
      result.duplicates_dropped += st.duplicates_dropped;
      result.send_retries += st.send_retries;
      result.reconnects += st.reconnects;
      result.connects += st.connects;
      result.sends_failed_by_clients += st.sends_failed;
    });
    c.host->Stop();
    for (const auto& [why, n] : c.tracker->reasons) result.reconnect_reasons[why] += n;
    result.churn_reconnects += c.tracker->churns;
    for (const auto& [code, n] : c.tracker->send_codes) {
      result.send_replies[ErrorCode_Name(static_cast<ErrorCode>(code))] += n;
      send_replies += n;
    }
    send_frames += c.tracker->send_frames;
    refusals.insert(refusals.end(), c.tracker->refusal_ms.begin(), c.tracker->refusal_ms.end());
  }
  runtimes.clear();
  if (send_frames > send_replies) result.send_replies["no reply"] = send_frames - send_replies;
  result.refusal_p50_ms = Percentile(refusals, 0.5);
  result.refusal_p99_ms = Percentile(refusals, 0.99);
  phase_done("draining");

  // What the clients saw, judged by the simulator's checkers.
  const sim::History h = recorder.Merge();
  report(absl::StrCat("checking a history of ", h.entries_size(), " entries"));
  std::map<std::pair<uint64_t, std::string>, int64_t> invoked;
  std::vector<double> latencies;
  std::set<std::pair<std::string, std::pair<std::string, uint64_t>>> seen;
  std::set<std::string> conversations;
  std::map<std::string, int64_t> outstanding;  // client -> sends invoked, not answered
  const int64_t ws = window.start_us, we = window.end_us;
  auto in = [ws, we](int64_t t) { return t >= ws && t < we; };
  for (const sim::HistoryEntry& e : h.entries()) {
    switch (e.kind()) {
      case sim::HistoryEntry::SEND_INVOKED:
        invoked[{e.sender_id(), e.client_msg_id()}] = e.time_us();
        result.max_outstanding =
            std::max<uint64_t>(result.max_outstanding, ++outstanding[e.client()]);
        break;
      case sim::HistoryEntry::SEND_ACKED:
        --outstanding[e.client()];
        ++result.acked;
        result.window_acked += in(e.time_us());
        break;
      case sim::HistoryEntry::SEND_FAILED:
        --outstanding[e.client()];
        ++result.failed;
        break;
      case sim::HistoryEntry::DELIVERED: {
        ++result.delivered;
        conversations.insert(e.conversation());
        if (e.sender_id() != e.user_id()) {
          result.window_deliveries += in(e.time_us());
          auto it = invoked.find({e.sender_id(), e.client_msg_id()});
          if (it != invoked.end() && in(it->second)) latencies.push_back((e.time_us() - it->second) / 1000.0);
        }
        if (!seen.insert({e.client(), {e.conversation(), e.seq()}}).second) ++result.duplicated;
        break;
      }
      default:
        break;
    }
  }
  result.conversations = conversations.size();
  result.violations = Judge(h, clients, group_members);
  for (const sim::Violation& v : result.violations) {
    if (v.checker == "no_lost_ack") ++result.lost;
    if (v.checker == "order" || v.checker == "sender_fifo") ++result.reordered;
    if (v.checker == "no_duplicates" && result.duplicated == 0) ++result.duplicated;
  }
  result.p50_ms = Percentile(latencies, 0.5);
  result.p99_ms = Percentile(latencies, 0.99);
  result.p999_ms = Percentile(latencies, 0.999);
  const double window_s = std::max(o.duration_s, 1e-9);
  result.msgs_per_s = result.window_acked / window_s;
  result.deliveries_per_s = result.window_deliveries / window_s;
  phase_done("checking");
  result.wall_s = absl::ToDoubleSeconds(absl::Now() - run_start);
  report(absl::StrFormat("done in %.1f s", result.wall_s));
  return result;
}

namespace {

absl::Status CheckLoopback(const std::vector<std::string>& servers) {
  if (servers.empty()) return absl::InvalidArgumentError("no server");
  for (const std::string& s : servers) {
    if (s.rfind("127.", 0) != 0 && s.rfind("localhost:", 0) != 0) {
      return absl::InvalidArgumentError(absl::StrCat("load goes to loopback only, not ", s));
    }
  }
  return absl::OkStatus();
}

bool AllOnline(std::vector<LoadClient>& clients, double seconds) {
  return Until([&] {
    for (LoadClient& c : clients) {
      if (StateOf(c) != Client::State::kOnline) return false;
    }
    return true;
  }, seconds);
}

// Logs `c` out and waits until the server has seen it (a ping of another
// client would not tell; the logout's reply does, but the client drops it).
void LogOut(LoadClient& c) {
  c.host->RunOnLoop([](Node* n) { dynamic_cast<Client*>(n)->Disconnect(); });
  absl::SleepFor(absl::Milliseconds(50));
}

}  // namespace

absl::StatusOr<OfflineResult> RunOffline(const OfflineOptions& o) {
  if (absl::Status s = CheckLoopback(o.servers); !s.ok()) return s;
  if (o.messages < 1 || o.messages > 100000) return absl::InvalidArgumentError("messages must be 1..100000");
  if (o.repeats < 1 || o.repeats > 100) return absl::InvalidArgumentError("repeats must be 1..100");
  Recorder recorder(1);
  Window window;
  std::vector<std::unique_ptr<ClientRuntime>> runtimes;
  runtimes.push_back(std::make_unique<ClientRuntime>("offline"));
  std::vector<LoadClient> clients =
      StartClients(2, "off" + o.run_id, o.servers, 1, runtimes, recorder, &window);
  auto stop_all = [&] {
    for (LoadClient& c : clients) c.host->Stop();
    runtimes.clear();
  };
  if (!AllOnline(clients, o.timeout_s)) {
    stop_all();
    return absl::UnavailableError("the two offline-shape clients could not log in");
  }
  for (LoadClient& c : clients) {
    c.host->RunOnLoop([&](Node* n) { c.user = dynamic_cast<Client*>(n)->user_id(); });
  }
  LoadClient& a = clients[0];
  LoadClient& b = clients[1];
  {
    Request r;
    r.mutable_add_friend()->set_friend_id(a.user);
    const ErrorCode code = CallClient(*b.host, r).status().code();
    if (code != CODE_OK && code != CODE_ALREADY_EXISTS) {
      stop_all();
      return absl::InternalError(absl::StrCat("add_friend: ", ErrorCode_Name(code)));
    }
  }
  // Deliveries to A from B, and when the last one expected arrived (A's loop).
  uint64_t from_b = 0, expect = 0;
  absl::Time all_at = absl::InfinitePast();
  const uint64_t b_user = b.user;
  a.recorder->on_delivered = [&, b_user](const Message& m, absl::Time now) {
    if (m.sender_id() != b_user) return;
    if (++from_b == expect) all_at = now;
  };
  const std::string body(o.body_bytes, 'x');
  OfflineResult result;
  absl::Status failure;
  for (int rep = 0; rep < o.repeats && failure.ok(); ++rep) {
    LogOut(a);
    b.host->RunOnLoop([&](Node* n) {
      auto* client = dynamic_cast<Client*>(n);
      for (int k = 0; k < o.messages; ++k) {
        const absl::Time now = absl::Now();
        const std::string id = client->SendPrivate(a.user, body);
        b.recorder->Invoked(PrivateConversationId(b.user, a.user), id, now);
      }
    });
    if (!WaitForClient(*b.host, [](Client* c) { return c->pending_sends() == 0; },
                       absl::Seconds(o.timeout_s))) {
      failure = absl::DeadlineExceededError("the offline messages were not all acked in time");
      break;
    }
    absl::Time connect_at;
    a.host->RunOnLoop([&](Node* n) {
      expect = from_b + o.messages;
      all_at = absl::InfinitePast();
      connect_at = absl::Now();
      dynamic_cast<Client*>(n)->Connect();
    });
    bool done = false;
    Until([&] {
      a.host->RunOnLoop([&](Node*) { done = all_at != absl::InfinitePast(); });
      return done;
    }, o.timeout_s);
    if (!done) {
      failure = absl::DeadlineExceededError(
          absl::StrFormat("repeat %d: A got %u of the messages in %.0f s", rep, from_b, o.timeout_s));
      break;
    }
    absl::Time login_at;
    a.host->RunOnLoop([&](Node*) { login_at = a.tracker->login_reply; });
    if (login_at < connect_at) {
      failure = absl::InternalError("no login reply seen after the connect");
      break;
    }
    result.login_ms.push_back(absl::ToDoubleMilliseconds(login_at - connect_at));
    result.all_ms.push_back(absl::ToDoubleMilliseconds(all_at - login_at));
  }
  a.host->RunOnLoop([&](Node*) { result.delivered = from_b; });
  // Settle (acks of the last deliveries) and judge.
  absl::SleepFor(absl::Milliseconds(200));
  stop_all();
  if (!failure.ok()) return failure;
  result.violations = Judge(recorder.Merge(), clients, {});
  std::vector<double> l = result.login_ms, all = result.all_ms;
  result.login_median_ms = Percentile(l, 0.5);
  result.all_median_ms = Percentile(all, 0.5);
  return result;
}

absl::StatusOr<LoginResult> RunLogins(const LoginOptions& o) {
  if (absl::Status s = CheckLoopback(o.servers); !s.ok()) return s;
  if (o.count < 1 || o.count > 10000) return absl::InvalidArgumentError("count must be 1..10000");
  Recorder recorder(1);
  Window window;
  std::vector<std::unique_ptr<ClientRuntime>> runtimes;
  runtimes.push_back(std::make_unique<ClientRuntime>("logins"));
  std::vector<LoadClient> clients =
      StartClients(1, "login" + o.run_id, o.servers, 1, runtimes, recorder, &window);
  LoadClient& c = clients[0];
  auto stop_all = [&] {
    c.host->Stop();
    runtimes.clear();
  };
  const absl::Time deadline = absl::Now() + absl::Seconds(o.timeout_s);
  if (!AllOnline(clients, o.timeout_s)) {
    stop_all();
    return absl::UnavailableError("the login-shape client could not log in");
  }
  LoginResult result;
  for (int k = 0; k < o.count && absl::Now() < deadline; ++k) {
    LogOut(c);
    absl::Time connect_at;
    c.host->RunOnLoop([&](Node* n) {
      connect_at = absl::Now();
      dynamic_cast<Client*>(n)->Connect();
    });
    absl::Time login_at, session_at;
    const bool ok = Until([&] {
      c.host->RunOnLoop([&](Node*) {
        login_at = c.tracker->login_reply;
        session_at = c.tracker->session_reply;
      });
      return login_at > connect_at && session_at > connect_at;
    }, absl::ToDoubleSeconds(deadline - absl::Now()));
    if (!ok) break;
    result.login_ms.push_back(absl::ToDoubleMilliseconds(login_at - connect_at));
    result.session_ms.push_back(absl::ToDoubleMilliseconds(session_at - connect_at));
  }
  stop_all();
  if (result.login_ms.empty()) return absl::DeadlineExceededError("no login completed in time");
  std::vector<double> l = result.login_ms, s = result.session_ms;
  result.login_p50_ms = Percentile(l, 0.5);
  result.login_p99_ms = Percentile(l, 0.99);
  result.session_p50_ms = Percentile(s, 0.5);
  result.session_p99_ms = Percentile(s, 0.99);
  return result;
}

}  // namespace parley
