// Login and offline-sync benchmark on loopback, against an in-process parleyd
// (its own nats-server child) with --minimal_password_cost. Each round makes
// two friends A and B, takes A offline, has B send A `--messages` messages,
// then brings A back on a fresh connection and device (the reference client,
// over TCP) and times:
//   login ms:   start (the TCP connect happens at the first send) -> the
//               gateway_login reply (session open; password login before it)
//   offline ms: the gateway_login reply -> the last offline message delivered
// plus, split, the password login (connect -> login reply) and the
// gateway_login round trip, and how many sync round trips the client made.
// Then `--serial_logins` logins one after another, each on a new connection:
// of one device again and again (its store kept, so each is the next epoch),
// then of a new device each time. Prints `BENCH login ...` lines. Bounded in count and
// time; run with -c opt.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/client/client.h"
#include "fakes/mem_store.h"
#include "server/client_driver.h"
#include "server/parleyd.h"
#include "server/tcp_client_host.h"

ABSL_FLAG(int, rounds, 5, "offline rounds (median reported)");
ABSL_FLAG(int, messages, 1000, "offline messages per round");
ABSL_FLAG(int, serial_logins, 100, "serial logins (median and p99 reported)");
ABSL_FLAG(std::string, dir, "/tmp/parley-login-bench", "scratch directory (wiped)");

namespace parley {
namespace {

double Ms(absl::Duration d) { return absl::ToDoubleMilliseconds(d); }

double Quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(q * (v.size() - 1) + 0.5));
  return v[i];
}

// The device's local store, kept across connections (each host owns the
// store it is given: this one forwards to a shared one).
class SharedStore : public OrderedStore {
 public:
  explicit SharedStore(OrderedStore* store) : store_(store) {}
  absl::Status Get(absl::string_view key, std::string* value) const override {
    return store_->Get(key, value);
  }
  absl::Status Scan(absl::string_view prefix, absl::string_view start_after, size_t limit,
                    std::vector<KeyValue>* out) const override {
    return store_->Scan(prefix, start_after, limit, out);
  }
  absl::Status Write(const WriteBatch& batch) override { return store_->Write(batch); }

 private:
  OrderedStore* store_;
};

// Times one client's way online: all on the client's loop.
struct Timing : public ClientObserver {
  std::atomic<int> delivered{0};
  std::atomic<bool> online{false};
  int want = 0;
  absl::Time start, login_reply, online_at, last_delivered;
  int syncs = 0;
  std::mutex mu;
  void OnOnline(const std::string&, uint64_t) override {
    std::lock_guard<std::mutex> lock(mu);
    online_at = absl::Now();
    online = true;
  }
  void OnDelivered(const std::string&, const Message&) override {
    std::lock_guard<std::mutex> lock(mu);
    if (++delivered == want) last_delivered = absl::Now();
  }
  TcpClientHost::Tap Tap() {
    TcpClientHost::Tap tap;
    tap.sent = [this](const Envelope& e) {
      if (e.has_request() && e.request().has_sync()) ++syncs;
    };
    tap.received = [this](const Envelope& e) {
      if (e.has_reply() && e.reply().has_login() && login_reply == absl::InfinitePast()) {
        login_reply = absl::Now();
      }
    };
    return tap;
  }
  Timing() : start(absl::InfinitePast()), login_reply(absl::InfinitePast()) {}
};

std::unique_ptr<TcpClientHost> StartClient(const std::string& server, const std::string& name,
                                           const std::string& device, uint64_t seed,
                                           Timing* timing, OrderedStore* shared = nullptr) {
  ClientOptions co;
  co.name = name;
  co.password = "password-" + name;
  co.device_id = device;
  co.fixed_gateway = "gw";
  co.observer = timing;
  auto host = std::make_unique<TcpClientHost>("client." + name + "." + device,
                                              std::vector<std::string>{server},
                                              shared != nullptr ? std::unique_ptr<OrderedStore>(std::make_unique<SharedStore>(shared))
                                                                : std::make_unique<MemStore>(),
                                              seed);
  if (timing != nullptr) host->SetTap(timing->Tap());
  if (timing != nullptr) timing->start = absl::Now();
  host->Start([co](Env* e) { return std::make_unique<Client>(e, co); });
  return host;
}

bool Online(TcpClientHost& host) {
  return WaitForClient(host, [](Client* c) { return c->state() == Client::State::kOnline; },
                       absl::Seconds(20));
}

uint64_t UserOf(TcpClientHost& host) {
  uint64_t id = 0;
  host.RunOnLoop([&](Node* n) { id = dynamic_cast<Client*>(n)->user_id(); });
  return id;
}

int Run() {
  const std::string dir = absl::GetFlag(FLAGS_dir);
  (void)!std::system(("rm -rf '" + dir + "'").c_str());
  ParleydOptions o;
  o.data_dir = dir + "/parleyd";
  o.listen = "127.0.0.1:0";
  o.minimal_password_cost = true;
  o.client_requests_per_s = 100000;
  o.client_burst = 100000;
  o.client_limits.user_requests_per_s = 100000;
  o.client_limits.user_burst = 100000;
  auto d = Parleyd::Start(o, [](const std::string&) {});
  if (!d.ok()) {
    std::fprintf(stderr, "login_bench: %s\n", std::string(d.status().message()).c_str());
    return 1;
  }
  const std::string server = absl::StrCat("127.0.0.1:", (*d)->listen_port());
  const int n = absl::GetFlag(FLAGS_messages);
  std::vector<double> login_ms, offline_ms, password_ms, gw_login_ms, syncs;
  uint64_t seed = 1;
  std::string first_a;
  for (int r = 0; r < absl::GetFlag(FLAGS_rounds); ++r) {
    const std::string a_name = absl::StrCat("bencha", r), b_name = absl::StrCat("benchb", r);
    if (first_a.empty()) first_a = a_name;
    auto a = StartClient(server, a_name, "setup", seed++, nullptr);
    auto b = StartClient(server, b_name, "d1", seed++, nullptr);
    if (!Online(*a) || !Online(*b)) {
      std::fprintf(stderr, "login_bench: round %d: clients did not come online\n", r);
      return 1;
    }
    const uint64_t a_id = UserOf(*a);
    Request add;
    add.mutable_add_friend()->set_friend_id(UserOf(*b));
    const Reply added = CallClient(*a, add);
    if (added.status().code() != CODE_OK && added.status().code() != CODE_ALREADY_EXISTS) {
      std::fprintf(stderr, "login_bench: add_friend: %s\n", added.status().message().c_str());
      return 1;
    }
    a->Stop();  // A goes offline: the connection closes
    a.reset();
    absl::SleepFor(absl::Milliseconds(100));
    b->RunOnLoop([&](Node* node) {
      for (int i = 0; i < n; ++i) dynamic_cast<Client*>(node)->SendPrivate(a_id, absl::StrCat("m", i, std::string(90, 'x')));
    });
    if (!WaitForClient(*b, [n](Client* c) { return c->stats().sends_acked >= static_cast<uint64_t>(n); },
                       absl::Seconds(60))) {
      std::fprintf(stderr, "login_bench: round %d: sends not acked in 60 s\n", r);
      return 1;
    }
    Timing t;
    t.want = n;
    auto a2 = StartClient(server, a_name, "bench", seed++, &t);
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (t.delivered < n && absl::Now() < deadline) absl::SleepFor(absl::Microseconds(200));
    if (t.delivered < n) {
      std::fprintf(stderr, "login_bench: round %d: %d of %d delivered in 30 s\n", r,
                   t.delivered.load(), n);
      return 1;
    }
    std::lock_guard<std::mutex> lock(t.mu);
    login_ms.push_back(Ms(t.online_at - t.start));
    offline_ms.push_back(Ms(t.last_delivered - t.online_at));
    password_ms.push_back(Ms(t.login_reply - t.start));
    gw_login_ms.push_back(Ms(t.online_at - t.login_reply));
    syncs.push_back(t.syncs);
    std::printf("round %d: login %.2f ms (password %.2f + gateway_login %.2f), offline %d in %.2f ms, %d syncs\n",
                r, login_ms.back(), password_ms.back(), gw_login_ms.back(), n, offline_ms.back(), t.syncs);
    std::fflush(stdout);
    a2->Stop();
    b->Stop();
  }
  std::printf(
      "BENCH login offline: rounds=%zu messages=%d login_ms_median=%.2f password_login_ms_median=%.2f "
      "gateway_login_ms_median=%.2f offline_ms_median=%.2f offline_ms_max=%.2f syncs_median=%.0f\n",
      login_ms.size(), n, Quantile(login_ms, 0.5), Quantile(password_ms, 0.5),
      Quantile(gw_login_ms, 0.5), Quantile(offline_ms, 0.5), Quantile(offline_ms, 1.0),
      Quantile(syncs, 0.5));
  // Serial logins: the same device again and again (its store kept, so each
  // login is the next epoch), then a new device each time.
  for (const bool same_device : {true, false}) {
    std::vector<double> serial;
    MemStore device_store;
    for (int i = 0; i < absl::GetFlag(FLAGS_serial_logins) && !first_a.empty(); ++i) {
      Timing t;
      auto h = same_device ? StartClient(server, first_a, "phone", seed++, &t, &device_store)
                           : StartClient(server, first_a, absl::StrCat("s", i), seed++, &t);
      const absl::Time deadline = absl::Now() + absl::Seconds(10);
      while (!t.online && absl::Now() < deadline) absl::SleepFor(absl::Microseconds(100));
      if (!t.online) {
        std::fprintf(stderr, "login_bench: serial login %d did not come online\n", i);
        return 1;
      }
      {
        std::lock_guard<std::mutex> lock(t.mu);
        serial.push_back(Ms(t.online_at - t.start));
      }
      h->Stop();
    }
    std::printf(
        "BENCH login serial: device=%s logins=%zu login_ms_median=%.2f login_ms_p99=%.2f "
        "login_ms_max=%.2f\n",
        same_device ? "same" : "new", serial.size(), Quantile(serial, 0.5), Quantile(serial, 0.99),
        Quantile(serial, 1.0));
    std::fflush(stdout);
  }
  (*d)->Stop();
  return 0;
}

}  // namespace
}  // namespace parley

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return parley::Run();
}
