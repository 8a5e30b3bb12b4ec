// Integer ratios: how the simulator turns a scenario's fractions and rates
// into the integers its decisions are made with. A decision (which action,
// which fault, yes or no) compares integers drawn with SeededRng::Uniform,
// never doubles, so no floating-point rounding can steer a run; the
// scenario's doubles are converted once, here, at the boundary.
#ifndef PARLEY_SIM_RATIO_H_
#define PARLEY_SIM_RATIO_H_

#include <cstdint>

#include "core/rng.h"

namespace parley {
namespace sim {

inline constexpr uint64_t kMillion = 1000000;

// A fraction as parts per million, clamped to [0, 1e6].
uint64_t Ppm(double fraction);
// Events per second as events per million seconds (micro-hertz), clamped
// to [0, 1e15].
uint64_t MicroHz(double per_s);
// Seconds as whole microseconds, rounded, clamped to [0, 1e15].
int64_t Micros(double seconds);

// True with probability ppm / 1e6.
inline bool Chance(SeededRng& rng, uint64_t ppm) { return rng.Uniform(kMillion) < ppm; }

// An exponentially distributed interval of mean `mean_us` microseconds, in
// integers only (von Neumann's comparison method): the gaps of a Poisson
// process.
int64_t ExponentialMicros(SeededRng& rng, int64_t mean_us);

// The mean interval, in microseconds, of a process of `micro_hz` events per
// million seconds (at least 1).
int64_t MeanIntervalMicros(uint64_t micro_hz);

}  // namespace sim
}  // namespace parley

#endif  // PARLEY_SIM_RATIO_H_
