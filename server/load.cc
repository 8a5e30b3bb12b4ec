#include "server/load.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

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

// A thread-safe history: client loops report into it concurrently.
class Recorder : public ClientObserver {
 public:
  // REQUIRES: mu held. `now` is read before taking mu, so time spent waiting
  // for the lock does not count as latency.
  sim::HistoryEntry* Add(sim::HistoryEntry::Kind kind, const std::string& client, absl::Time now) {
    sim::HistoryEntry* e = history_.add_entries();
    e->set_index(history_.entries_size() - 1);
    e->set_time_us(absl::ToUnixMicros(now));
    e->set_kind(kind);
    e->set_client(client);
    e->set_user_id(users_[client]);
    return e;
  }
  void OnDelivered(const std::string& client, const Message& m) override {
    const absl::Time now = absl::Now();
    std::lock_guard<std::mutex> lock(mu);
    sim::HistoryEntry* e = Add(sim::HistoryEntry::DELIVERED, client, now);
    ++delivered_;
    e->set_conversation(m.conversation());
    e->set_seq(m.seq());
    e->set_sender_id(m.sender_id());
    e->set_client_msg_id(m.client_msg_id());
    *e->mutable_message() = m;
    e->mutable_message()->clear_body();
  }
  void OnSendAcked(const std::string& client, const std::string& id, const SendReply& ack) override {
    const absl::Time now = absl::Now();
    std::lock_guard<std::mutex> lock(mu);
    sim::HistoryEntry* e = Add(sim::HistoryEntry::SEND_ACKED, client, now);
    ++acked_;
    e->set_client_msg_id(id);
    e->set_conversation(ack.conversation());
    e->set_seq(ack.seq());
    e->set_sender_id(e->user_id());
  }
  void OnSendFailed(const std::string& client, const std::string& id, const absl::Status& s) override {
    const absl::Time now = absl::Now();
    std::lock_guard<std::mutex> lock(mu);
    Add(sim::HistoryEntry::SEND_FAILED, client, now)->set_client_msg_id(id);
  }
  std::mutex mu;
  std::map<std::string, uint64_t> users_;
  sim::History history_;
  uint64_t acked_ = 0, delivered_ = 0;  // so far, for progress lines
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
    const std::string name = OpName(e.request());
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
            if (why.empty() && !pending_.empty()) why = pending_.begin()->second + ": no reply in time";
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
    pending_[e.correlation_id()] = name;
  }
  void Received(const Envelope& e) {
    if (!e.has_reply()) return;
    auto it = pending_.find(e.correlation_id());
    if (it == pending_.end()) return;
    const std::string op = it->second;
    pending_.erase(it);
    const ErrorCode code = e.reply().status().code();
    if (op == "login" && code == CODE_OK) expect_ = Request::kGatewayLogin;
    if (op == "login" && code == CODE_UNAUTHENTICATED) expect_ = Request::kRegister;
    if (op == "register" && (code == CODE_OK || code == CODE_ALREADY_EXISTS)) expect_ = Request::kLogin;
    if (code == CODE_OK) return;
    // Failures that make the client reconnect: of the session's own requests
    // any, of the rest an expired or revoked token.
    const bool session = op == "login" || op == "register" || op == "gateway_login" ||
                         op == "ping" || op == "sync";
    if (session || code == CODE_UNAUTHENTICATED) last_failure_ = op + ": " + ErrorCode_Name(code);
  }
  void Connection(const std::string& why) {
    if (last_failure_.empty()) last_failure_ = why;
  }
  void Churned() { churned_ = true; }

  std::map<std::string, uint64_t> reasons;
  uint64_t churns = 0;

 private:
  static std::string OpName(const Request& r) {
    const auto* field = r.GetDescriptor()->FindFieldByNumber(r.op_case());
    return field != nullptr ? field->name() : "request";
  }
  std::map<uint64_t, std::string> pending_;  // correlation id -> op
  std::string last_failure_;
  Request::OpCase expect_ = Request::OP_NOT_SET;  // the next step of a login in progress
  bool started_ = false;
  bool churned_ = false;
};

struct LoadClient {
  std::string address;
  std::unique_ptr<ReconnectTracker> tracker = std::make_unique<ReconnectTracker>();
  std::unique_ptr<TcpClientHost> host;
  uint64_t user = 0;
  std::vector<uint64_t> friends;
  std::vector<uint64_t> groups;
  absl::Time next_send;  // on its loop: unpaced, not before this (client_rate)
};

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
  if (o.client_rate < 0) return absl::InvalidArgumentError("--client_rate must not be negative");
  if (o.client_threads < 1 || o.client_threads > 64) {
    return absl::InvalidArgumentError("--client_threads must be 1..64");
  }
  Recorder recorder;
  SeededRng rng(o.seed);
  // The clients share a few runtimes (an event loop and a socket reader each).
  std::vector<std::unique_ptr<ClientRuntime>> runtimes;
  for (int t = 0; t < o.client_threads; ++t) {
    runtimes.push_back(std::make_unique<ClientRuntime>(absl::StrCat("load-", t)));
  }
  std::vector<LoadClient> clients(o.clients);
  for (int i = 0; i < o.clients; ++i) {
    ClientOptions co;
    co.name = absl::StrCat("load", o.run_id, "_", i);
    co.password = "password-" + co.name;
    co.fixed_gateway = "gw";
    co.observer = &recorder;
    co.keep_delivered = false;  // the recorder has them
    clients[i].address = "client." + co.name;
    clients[i].host = std::make_unique<TcpClientHost>(clients[i].address, o.servers,
                                                      std::make_unique<MemStore>(), o.seed * 1000 + i,
                                                      runtimes[i % runtimes.size()].get());
    ReconnectTracker* tracker = clients[i].tracker.get();
    TcpClientHost::Tap tap;
    tap.sent = [tracker](const Envelope& e) { tracker->Sent(e); };
    tap.received = [tracker](const Envelope& e) { tracker->Received(e); };
    tap.connection = [tracker](const std::string& why) { tracker->Connection(why); };
    clients[i].host->SetTap(std::move(tap));
    clients[i].host->Start([co](Env* e) { return std::make_unique<Client>(e, co); });
  }
  auto state = [](LoadClient& c) {
    Client::State s = Client::State::kOffline;
    c.host->RunOnLoop([&](Node* n) { s = dynamic_cast<Client*>(n)->state(); });
    return s;
  };
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
  report(absl::StrCat("logging in ", o.clients, " clients"));
  {
    int best = -1;
    absl::Time progressed = absl::Now(), reported = absl::Now();
    while (true) {
      int online = 0;
      for (LoadClient& c : clients) online += state(c) == Client::State::kOnline;
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
  report(absl::StrFormat("setup: %d friendships (a ring, each client with the next two) and groups of %d",
                         o.clients * std::min(2, o.clients - 1), o.group_size));
  for (LoadClient& c : clients) {
    c.host->RunOnLoop([&](Node* n) { c.user = dynamic_cast<Client*>(n)->user_id(); });
    std::lock_guard<std::mutex> lock(recorder.mu);
    recorder.users_[c.address] = c.user;
  }
  // A ring of friendships (each with the next two), and groups of consecutive clients.
  for (int i = 0; i < o.clients; ++i) {
    for (int d = 1; d <= 2 && d < o.clients; ++d) {
      LoadClient& a = clients[i];
      LoadClient& b = clients[(i + d) % o.clients];
      Request r;
      r.mutable_add_friend()->set_friend_id(b.user);
      const ErrorCode code = CallClient(*a.host, r).status().code();
      if (code == CODE_OK || code == CODE_ALREADY_EXISTS) {
        a.friends.push_back(b.user);
        b.friends.push_back(a.user);
      }
    }
  }
  std::map<uint64_t, std::vector<int>> group_members;
  for (int start = 0; start + 1 < o.clients && o.group_fraction > 0; start += o.group_size) {
    LoadClient& owner = clients[start];
    std::vector<int> members = {start};
    for (int k = start + 1; k < std::min(o.clients, start + o.group_size); ++k) {
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
    if (reply.status().code() != CODE_OK) continue;
    const uint64_t g = reply.create_group().group().group_id();
    group_members[g] = members;
    for (int m : members) clients[m].groups.push_back(g);
  }

  report(absl::StrFormat("setup done: %u groups", group_members.size()));
  phase_done("setup");
  // The load.
  report(absl::StrFormat("sending for %.0f s", o.duration_s));
  result.clients = o.clients;
  const absl::Time start = absl::Now();
  const absl::Time end = start + absl::Seconds(o.duration_s);
  double owed = 0;
  absl::Time last = start;
  uint64_t next_churn = 0;
  absl::Time reported = start;
  std::atomic<uint64_t> sent{0};
  // Sends one message from client `c` (on its loop): to a random friend, or to
  // one of its groups with probability group_fraction. `draw` is the client's
  // own rng stream, so the choices do not depend on thread timing.
  auto send_one = [&o, &recorder, &sent](LoadClient& c, Client* client, SeededRng& draw) {
    const bool group = !c.groups.empty() && draw.Bernoulli(o.group_fraction);
    if (!group && c.friends.empty()) return;
    const uint64_t target = group ? c.groups[draw.Uniform(c.groups.size())]
                                  : c.friends[draw.Uniform(c.friends.size())];
    const absl::Time now = absl::Now();
    const std::string id =
        group ? client->SendGroup(target, "load") : client->SendPrivate(target, "load");
    std::lock_guard<std::mutex> lock(recorder.mu);
    sim::HistoryEntry* e = recorder.Add(sim::HistoryEntry::SEND_INVOKED, c.address, now);
    e->set_conversation(group ? GroupConversationId(target) : PrivateConversationId(c.user, target));
    e->set_client_msg_id(id);
    e->set_sender_id(c.user);
    ++sent;
  };
  std::vector<SeededRng> draws;
  for (int i = 0; i < o.clients; ++i) draws.emplace_back(o.seed * 7919 + i);
  // Each tick posts one task per runtime: unpaced, it tops up every idle
  // client of that runtime (one send in flight each); paced, it sends what
  // the rate owes from clients picked at random.
  while (absl::Now() < end) {
    const absl::Time now = absl::Now();
    std::vector<std::vector<int>> picks(runtimes.size());
    if (o.rate_per_s > 0) {
      owed += o.rate_per_s * absl::ToDoubleSeconds(now - last);
      for (; owed >= 1; owed -= 1) {
        const int i = static_cast<int>(rng.Uniform(clients.size()));
        picks[i % runtimes.size()].push_back(i);
      }
    } else {
      for (int i = 0; i < o.clients; ++i) picks[i % runtimes.size()].push_back(i);
    }
    last = now;
    for (size_t t = 0; t < runtimes.size(); ++t) {
      if (picks[t].empty()) continue;
      runtimes[t]->loop().Post([&, picks = std::move(picks[t])] {
        for (int i : picks) {
          auto* client = dynamic_cast<Client*>(clients[i].host->node());
          if (client == nullptr) continue;
          if (o.rate_per_s == 0) {
            if (client->pending_sends() > 0) continue;
            if (o.client_rate > 0) {
              const absl::Time now = absl::Now();
              if (now < clients[i].next_send) continue;
              clients[i].next_send = now + absl::Seconds(1) / o.client_rate;
            }
          }
          send_one(clients[i], client, draws[i]);
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
      std::lock_guard<std::mutex> lock(recorder.mu);
      report(absl::StrFormat("%.0f s: sent %u, acked %u, delivered %u",
                             absl::ToDoubleSeconds(reported - start), sent.load(), recorder.acked_,
                             recorder.delivered_));
    }
    absl::SleepFor(absl::Milliseconds(o.rate_per_s > 0 ? 2 : 1));
  }
  // Let the last ticks run before counting.
  for (auto& r : runtimes) r->loop().RunSync([] {});
  result.sent = sent;
  const double load_s = absl::ToDoubleSeconds(absl::Now() - start);

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
  report("draining: waiting for deliveries to settle (7 s without news, past the clients' periodic sync)");
  int stable = 0;
  size_t last_count = 0;
  Until([&] {
    std::lock_guard<std::mutex> lock(recorder.mu);
    const size_t n = recorder.history_.entries_size();
    stable = n == last_count ? stable + 1 : 0;
    last_count = n;
    return stable >= 350;  // ~7 s without news: past the clients' periodic sync
  }, o.drain_s);
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
  }
  runtimes.clear();
  phase_done("draining");

  // What the clients saw, judged by the simulator's checkers.
  std::lock_guard<std::mutex> lock(recorder.mu);
  const sim::History& h = recorder.history_;
  report(absl::StrCat("checking a history of ", h.entries_size(), " entries"));
  sim::FinalState f;
  for (const LoadClient& c : clients) f.clients[c.address] = c.user;
  for (const auto& [g, members] : group_members) {
    for (int m : members) {
      MembershipInterval i;
      i.set_join_version(0);
      f.intervals[{clients[m].user, g}].push_back(i);  // membership never changes under load
    }
  }
  std::map<std::pair<uint64_t, std::string>, int64_t> invoked;
  std::vector<double> latencies;
  std::set<std::pair<std::string, std::pair<std::string, uint64_t>>> seen;
  for (const sim::HistoryEntry& e : h.entries()) {
    switch (e.kind()) {
      case sim::HistoryEntry::SEND_INVOKED:
        invoked[{e.sender_id(), e.client_msg_id()}] = e.time_us();
        break;
      case sim::HistoryEntry::SEND_ACKED:
        ++result.acked;
        break;
      case sim::HistoryEntry::SEND_FAILED:
        ++result.failed;
        break;
      case sim::HistoryEntry::DELIVERED: {
        ++result.delivered;
        f.messages[e.conversation()][e.seq()] = e.message();
        auto it = invoked.find({e.sender_id(), e.client_msg_id()});
        if (it != invoked.end() && e.sender_id() != e.user_id()) {
          latencies.push_back((e.time_us() - it->second) / 1000.0);
        }
        if (!seen.insert({e.client(), {e.conversation(), e.seq()}}).second) ++result.duplicated;
        break;
      }
      default:
        break;
    }
  }
  std::string error;
  result.violations = sim::RunCheckers(
      {"no_lost_ack", "no_duplicates", "order", "sender_fifo", "membership_safety",
       "idempotent_send"},
      h, f, &error);
  for (const sim::Violation& v : result.violations) {
    if (v.checker == "no_lost_ack") ++result.lost;
    if (v.checker == "order" || v.checker == "sender_fifo") ++result.reordered;
    if (v.checker == "no_duplicates" && result.duplicated == 0) ++result.duplicated;
  }
  std::sort(latencies.begin(), latencies.end());
  auto pct = [&](double p) {
    return latencies.empty() ? 0.0 : latencies[std::min(latencies.size() - 1, static_cast<size_t>(p * latencies.size()))];
  };
  result.p50_ms = pct(0.5);
  result.p99_ms = pct(0.99);
  result.p999_ms = pct(0.999);
  result.msgs_per_s = result.acked / std::max(load_s, 1e-9);
  phase_done("checking");
  result.wall_s = absl::ToDoubleSeconds(absl::Now() - run_start);
  report(absl::StrFormat("done in %.1f s", result.wall_s));
  return result;
}

}  // namespace parley
