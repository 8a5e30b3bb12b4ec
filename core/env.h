// The one seam: everything a node of the core may touch of the world — time,
// randomness, its store, messages, events and timers — goes through Env. The
// simulator and the server each implement it; nodes never know which.
#ifndef PARLEY_CORE_ENV_H_
#define PARLEY_CORE_ENV_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "core/proto/events.pb.h"
#include "core/proto/rpc.pb.h"
#include "core/probe.h"
#include "core/rng.h"
#include "core/store.h"

namespace parley {

using TimerId = uint64_t;

class Env {
 public:
  virtual ~Env() = default;

  // This node's address, e.g. "svc.user.u1" or "svc.kv".
  virtual const std::string& Self() const = 0;
  // The node's clock: virtual in the simulator, possibly skewed per node.
  virtual absl::Time Now() = 0;
  // A generator seeded from the run's root seed and this node's name.
  virtual SeededRng& Rng() = 0;
  // The node's durable store.
  virtual OrderedStore& Store() = 0;

  // One-way message. It may be lost, delayed, duplicated or reordered.
  // Taken by value: pass an rvalue to hand the envelope over without a copy.
  virtual void Send(const std::string& to, Envelope envelope) = 0;

  // Hands `event` to the event bus. The bus answers with OnPublishAck once it
  // has accepted it durably; until then the publisher must publish again.
  virtual void Publish(const Event& event) = 0;
  // Joins `consumer_group` for events of the given topics (see EventTopic()).
  // Each event reaches one member of every subscribed group at least once,
  // until a member acks its delivery.
  virtual void Subscribe(const std::string& consumer_group,
                         const std::vector<std::string>& topics) = 0;
  virtual void AckEvent(uint64_t delivery_id) = 0;
  // How long a producer keeps an event after the bus acked it, to publish it
  // again should the bus lose it (see Outbox). 0: the bus's ack is durable
  // (the simulator's bus, nats-server fsyncing before its ack).
  virtual absl::Duration AckedEventRetention() { return absl::ZeroDuration(); }

  // Calls the node's OnTimer(id) after `after` on the node's clock, unless
  // cancelled first.
  virtual TimerId SetTimer(absl::Duration after) = 0;
  virtual void CancelTimer(TimerId id) = 0;

  // The node can no longer trust its memory (a store write failed after its
  // state had changed): the host stops it as a crash would, once the current
  // callback returns, and restarts it from its store as a supervisor would.
  // Nothing after this call in the callback may assume the node lives on.
  virtual void FailStop(const std::string& reason) = 0;
};

// A state machine. Callbacks are called one at a time, never concurrently.
class Node {
 public:
  virtual ~Node() = default;

  // Called once, first: after creation and after every restart from the store.
  virtual void Start() = 0;
  virtual void OnEnvelope(const Envelope& envelope) = 0;
  virtual void OnEvent(const Event& event, uint64_t delivery_id) = 0;
  virtual void OnPublishAck(const std::string& event_id) = 0;
  virtual void OnTimer(TimerId id) = 0;
  // The bus connection came back (nats-server may have restarted and lost
  // acked events it had not synced). Default: nothing.
  virtual void OnBusReconnected() {}
  // A graceful stop (a crash does not call it).
  virtual void Stop() {}

  // This node's probe counters (core/probe.h): one set per node, so nodes of
  // runs in parallel threads never share a counter.
  ProbeCounters& probes() { return probes_; }
  const ProbeCounters& probes() const { return probes_; }

 private:
  ProbeCounters probes_;
};

// The topic an event is published under: "user", "friend" or "group".
std::string EventTopic(const Event& event);

}  // namespace parley

#endif  // PARLEY_CORE_ENV_H_
