// Timers: callbacks on top of Env's timer ids, so every part of a node (the
// rpc client, the outbox relay, the registry agent) can own its timers.
#ifndef PARLEY_CORE_TIMERS_H_
#define PARLEY_CORE_TIMERS_H_

#include <functional>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "core/env.h"

namespace parley {

class Timers {
 public:
  explicit Timers(Env* env) : env_(env) {}
  Timers(const Timers&) = delete;
  Timers& operator=(const Timers&) = delete;

  // Runs `fn` after `after`, unless cancelled.
  TimerId After(absl::Duration after, std::function<void()> fn);
  void Cancel(TimerId id);
  // Called from Node::OnTimer. Returns false for an unknown or cancelled id.
  bool Fire(TimerId id);

  size_t pending() const { return callbacks_.size(); }

 private:
  Env* env_;
  // Looked up by id only, never iterated: a hash map's order cannot leak.
  absl::flat_hash_map<TimerId, std::function<void()>> callbacks_;
};

}  // namespace parley

#endif  // PARLEY_CORE_TIMERS_H_
