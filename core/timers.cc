#include "core/timers.h"

#include <utility>

namespace parley {

TimerId Timers::After(absl::Duration after, std::function<void()> fn) {
  const TimerId id = env_->SetTimer(after);
  callbacks_[id] = std::move(fn);
  return id;
}

void Timers::Cancel(TimerId id) {
  if (callbacks_.erase(id) > 0) env_->CancelTimer(id);
}

bool Timers::Fire(TimerId id) {
  auto it = callbacks_.find(id);
  if (it == callbacks_.end()) return false;
  std::function<void()> fn = std::move(it->second);
  callbacks_.erase(it);
  fn();
  return true;
}

}  // namespace parley
