// ManualClock: time that moves only when a test moves it.
#ifndef PARLEY_FAKES_MANUAL_CLOCK_H_
#define PARLEY_FAKES_MANUAL_CLOCK_H_

#include "absl/time/time.h"

namespace parley {

class ManualClock {
 public:
  explicit ManualClock(absl::Time start = absl::FromUnixSeconds(1700000000)) : now_(start) {}
  absl::Time Now() const { return now_; }
  void Advance(absl::Duration d) { now_ += d; }
  void Set(absl::Time t) { now_ = t; }

 private:
  absl::Time now_;
};

}  // namespace parley

#endif  // PARLEY_FAKES_MANUAL_CLOCK_H_
