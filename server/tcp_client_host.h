// TcpClientHost: runs the reference client (core/client) over TCP: its sends
// become frames to a parleyd, frames from the server are delivered on its own
// event loop. A broken connection is re-dialled on the next send, trying the
// servers in turn; the client's own timeouts and reconnects do the rest.
#ifndef PARLEY_SERVER_TCP_CLIENT_HOST_H_
#define PARLEY_SERVER_TCP_CLIENT_HOST_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "core/env.h"
#include "server/event_loop.h"

namespace parley {

class TcpClientHost : public Env {
 public:
  // `servers`: "host:port" entries.
  TcpClientHost(std::string address, std::vector<std::string> servers,
                std::unique_ptr<OrderedStore> store, uint64_t seed);
  ~TcpClientHost() override;

  void Start(std::function<std::unique_ptr<Node>(Env*)> factory);
  void Stop();
  void RunOnLoop(const std::function<void(Node*)>& fn);

  const std::string& Self() const override { return address_; }
  absl::Time Now() override { return absl::Now(); }
  SeededRng& Rng() override { return rng_; }
  OrderedStore& Store() override { return *store_; }
  void Send(const std::string& to, Envelope envelope) override;
  void Publish(const Event&) override {}
  void Subscribe(const std::string&, const std::vector<std::string>&) override {}
  void AckEvent(uint64_t) override {}
  TimerId SetTimer(absl::Duration after) override;
  void CancelTimer(TimerId id) override;

 private:
  bool Dial();  // REQUIRES: mu_ held
  void ReadLoop(int fd);

  const std::string address_;
  const std::vector<std::string> servers_;
  std::unique_ptr<OrderedStore> store_;
  SeededRng rng_;
  EventLoop loop_;
  std::unique_ptr<Node> node_;
  std::mutex mu_;
  int fd_ = -1;
  size_t next_server_ = 0;
  std::vector<std::thread> readers_;
  std::atomic<bool> stopping_{false};
  std::map<TimerId, uint64_t> timers_;
  TimerId next_timer_ = 1;
};

}  // namespace parley

#endif  // PARLEY_SERVER_TCP_CLIENT_HOST_H_
