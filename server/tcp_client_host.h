// TcpClientHost: runs the reference client (core/client) over TCP: its sends
// become frames to a parleyd, frames from the server are delivered on its
// event loop. A broken connection is re-dialled on the next send, trying the
// servers in turn; the client's own timeouts and reconnects do the rest.
//
// Hosts share threads through a ClientRuntime: one event loop runs all their
// nodes and one epoll thread reads all their sockets, handing what it read to
// the loop in one task per wakeup. A host made without a runtime gets its own.
// (The load generator runs thousands of clients on a few threads this way.)
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

class TcpClientHost;

class ClientRuntime {
 public:
  explicit ClientRuntime(std::string name);
  ~ClientRuntime();  // REQUIRES: its hosts are stopped
  EventLoop& loop() { return loop_; }

 private:
  friend class TcpClientHost;
  struct Reader;
  // Reads `fd` for `host` until Unwatch or end of stream (then the host is
  // told on the loop). Thread-safe.
  void Watch(int fd, std::shared_ptr<TcpClientHost*> host);
  // Stops reading `fd`; once it returns no read of it is in progress.
  void Unwatch(int fd);
  void Run();

  EventLoop loop_;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  std::atomic<bool> stopping_{false};
  std::mutex mu_;  // readers_, and held while one fd is read
  std::map<int, std::unique_ptr<Reader>> readers_;
  std::thread thread_;
};

class TcpClientHost : public Env {
 public:
  // `servers`: "host:port" entries. `runtime`: shared threads (null: own).
  TcpClientHost(std::string address, std::vector<std::string> servers,
                std::unique_ptr<OrderedStore> store, uint64_t seed,
                ClientRuntime* runtime = nullptr);
  ~TcpClientHost() override;

  // Optional hooks, set before Start, all called on the loop: each envelope
  // the node sends and each it receives, and why the connection ended or
  // could not be made (parley_load explains its clients' reconnects by them).
  struct Tap {
    std::function<void(const Envelope&)> sent;
    std::function<void(const Envelope&)> received;
    std::function<void(const std::string& why)> connection;
  };
  void SetTap(Tap tap) { tap_ = std::move(tap); }

  void Start(std::function<std::unique_ptr<Node>(Env*)> factory);
  void Stop();
  // Runs `fn` with the node on its loop and waits (not from the loop).
  void RunOnLoop(const std::function<void(Node*)>& fn);
  // Runs `fn` with the node on its loop, later (from any thread).
  void PostToLoop(std::function<void(Node*)> fn);
  EventLoop& loop() { return runtime_->loop(); }
  // The node, for code already running on the loop (null once stopped).
  Node* node() { return *self_ != nullptr ? node_.get() : nullptr; }

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
  void FailStop(const std::string& reason) override;

 private:
  friend class ClientRuntime;
  bool Dial();                 // REQUIRES: mu_ held
  void OnEndOfStream(int fd);  // on the loop

  const std::string address_;
  const std::vector<std::string> servers_;
  std::unique_ptr<OrderedStore> store_;
  SeededRng rng_;
  std::unique_ptr<ClientRuntime> own_runtime_;
  ClientRuntime* runtime_;
  // What tasks on the shared loop hold: cleared (on the loop) at Stop, so a
  // task that runs after it finds no host.
  std::shared_ptr<TcpClientHost*> self_;
  std::unique_ptr<Node> node_;
  std::mutex mu_;
  int fd_ = -1;
  size_t next_server_ = 0;
  std::atomic<bool> stopping_{false};
  std::map<TimerId, uint64_t> timers_;  // loop only
  Tap tap_;
  TimerId next_timer_ = 1;
};

}  // namespace parley

#endif  // PARLEY_SERVER_TCP_CLIENT_HOST_H_
