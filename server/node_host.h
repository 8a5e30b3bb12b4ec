// NodeHost: runs one node of the core on an event loop, with the system
// clock, an OS-seeded rng, a LevelDB (or any) store and a Network. It is the
// server mode's implementation of the seam.
//
// Loops: a node has a loop of its own, or shares a HostLoop with other nodes
// of the process (parleyd --loops): one thread runs the callbacks of all its
// nodes one at a time, so a send between two nodes of one loop is a queue
// push on the same thread, not a wakeup of another.
//
// Group commit: the node's writes go to a GroupCommitStore, and its outputs
// (sends, publishes, event acks) are held during each run of the loop. At the
// end of the run — when nothing more is ready, or after 1024 callbacks or
// 5 ms of work, so one slow handler does not hold a queue's replies — every
// node of the loop commits (one durable write per node that wrote, covering
// every batch of the run), and only then do the held outputs of all of them
// go out: the sends to each address together and in order (one wakeup of the
// receiver, one socket write to a client), then publishes and acks in order.
// So whatever a node acknowledges is on disk, and concurrent commits share
// one sync.
//
// Load shedding: a request that waited in the loop's queue longer than its
// caller said it would wait (Envelope.timeout_us) is dropped unhandled, since
// its answer would arrive after the caller gave up; without this a backlog of
// slow requests (a crowd of argon2id logins) grows with every retry and no
// answer is ever in time.
#ifndef PARLEY_SERVER_NODE_HOST_H_
#define PARLEY_SERVER_NODE_HOST_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "core/env.h"
#include "server/event_loop.h"
#include "server/group_commit_store.h"
#include "server/network.h"

namespace parley {

class NodeHost;

// One event-loop thread shared by several NodeHosts, with their joint group
// commit at the end of each run. Create, Start, then give it to the hosts;
// it must outlive them (stop the hosts first).
class HostLoop {
 public:
  explicit HostLoop(std::string name, size_t max_queued = kDefaultMaxQueued);
  ~HostLoop();
  HostLoop(const HostLoop&) = delete;
  HostLoop& operator=(const HostLoop&) = delete;

  void Start() { loop_.Start(); }
  void Stop() { loop_.Stop(); }
  EventLoop& loop() { return loop_; }
  // Loop thread only.
  size_t hosts() const { return hosts_.size(); }
  uint64_t runs() const { return runs_; }

  // Tasks a loop holds at most (what does not fit is dropped and counted):
  // enough for every in-flight request of thousands of connections.
  static constexpr size_t kDefaultMaxQueued = 65536;

 private:
  friend class NodeHost;
  // Loop thread only.
  void Add(NodeHost* host);
  void Remove(NodeHost* host);
  // The end of a run: every host commits, then every host releases.
  void FlushAll();

  EventLoop loop_;
  std::vector<NodeHost*> hosts_;  // loop thread only, in the order added
  uint64_t runs_ = 0;             // loop thread only
};

class NodeHost : public Env, public Endpoint {
 public:
  using Factory = std::function<std::unique_ptr<Node>(Env*)>;

  // On a loop of its own, named after the node.
  NodeHost(std::string address, std::unique_ptr<OrderedStore> store, Network* network,
           uint64_t seed);
  // On `loop` (started, and outliving this host), shared with other hosts.
  NodeHost(std::string address, std::unique_ptr<OrderedStore> store, Network* network,
           uint64_t seed, HostLoop* loop);
  ~NodeHost() override;

  // Creates the node on its loop and starts it.
  void Start(Factory factory);
  // Stops the node gracefully (Node::Stop), waits until nothing queued for it
  // is left on the loop and cancels its timers; stops the loop if its own.
  void Stop();

  // Thread-safe entry points used by the network.
  void Deliver(Envelope envelope) override;
  void DeliverMany(std::vector<Envelope> envelopes) override;
  void DeliverEvent(Event event, uint64_t delivery_id) override;
  void DeliverPublishAck(std::string event_id) override;
  void DeliverBusReconnected() override;
  // What AckedEventRetention() tells the node (set before Start).
  void SetAckedEventRetention(absl::Duration retention) { acked_event_retention_ = retention; }

  // Durable writes and the batches they covered (read on the loop).
  uint64_t commits() const { return store_.commits(); }
  uint64_t batches() const { return store_.batches(); }
  // Requests dropped because they waited in the queue past their timeout.
  uint64_t expired() const { return expired_.load(); }

  // Runs `fn` with the node on its loop and waits (for tests and tools).
  void RunOnLoop(const std::function<void(Node*)>& fn);

  // Env.
  const std::string& Self() const override { return address_; }
  absl::Time Now() override { return absl::Now(); }
  SeededRng& Rng() override { return rng_; }
  OrderedStore& Store() override { return store_; }
  void Send(const std::string& to, Envelope envelope) override;
  void Publish(const Event& event) override;
  void Subscribe(const std::string& group, const std::vector<std::string>& topics) override;
  void AckEvent(uint64_t delivery_id) override;
  TimerId SetTimer(absl::Duration after) override;
  void CancelTimer(TimerId id) override;
  // Logs `reason` and ends the process: its nodes restart from their stores
  // under the supervisor (a crash, deliberately).
  void FailStop(const std::string& reason) override;
  absl::Duration AckedEventRetention() override { return acked_event_retention_; }

 private:
  friend class HostLoop;
  // Commits pending writes; stops the process if the disk refuses (the
  // node's memory is ahead of its disk).
  void Commit();
  // Releases held outputs (after Commit).
  void Release();
  // Hands a delivered envelope to the node unless it is a request that waited
  // since `arrived` longer than its caller waits.
  void Handle(const Envelope& envelope, absl::Time arrived);

  const std::string address_;
  GroupCommitStore store_;
  Network* network_;
  SeededRng rng_;
  std::unique_ptr<HostLoop> own_loop_;  // null on a shared loop
  HostLoop* const host_loop_;
  EventLoop& loop_;
  std::unique_ptr<Node> node_;
  // Loop-thread only: timer ids given to the node -> the loop's ids.
  std::map<TimerId, uint64_t> timers_;
  // Loop-thread only: outputs waiting for the end of the run. Sends by
  // address, in the order addresses first appeared; events and acks in order.
  std::vector<std::pair<std::string, std::vector<Envelope>>> held_sends_;
  std::map<std::string, size_t> held_index_;
  std::vector<std::function<void()>> held_events_;
  TimerId next_timer_ = 1;
  std::atomic<uint64_t> expired_{0};
  absl::Duration acked_event_retention_ = absl::ZeroDuration();
};

}  // namespace parley

#endif  // PARLEY_SERVER_NODE_HOST_H_
