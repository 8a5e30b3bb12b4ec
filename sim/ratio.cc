// Integer ratios: parts per million, micro-hertz, and integer exponential gaps.
#include "sim/ratio.h"

#include <cmath>

namespace parley {
namespace sim {
namespace {

uint64_t Clamped(double v, double max) {
  if (!(v > 0)) return 0;  // NaN and negatives too
  return v >= max ? static_cast<uint64_t>(max) : static_cast<uint64_t>(std::llround(v));
}

}  // namespace

uint64_t Ppm(double fraction) { return Clamped(fraction * 1e6, 1e6); }
uint64_t MicroHz(double per_s) { return Clamped(per_s * 1e6, 1e15); }
int64_t Micros(double seconds) { return static_cast<int64_t>(Clamped(seconds * 1e6, 1e15)); }

int64_t MeanIntervalMicros(uint64_t micro_hz) {
  // 1e12 us per million seconds.
  const uint64_t us = micro_hz == 0 ? 1000000000000ull : 1000000000000ull / micro_hz;
  return us == 0 ? 1 : static_cast<int64_t>(us);
}

int64_t ExponentialMicros(SeededRng& rng, int64_t mean_us) {
  // X = k + U0 is Exp(1) when U0 is accepted with probability e^-U0: that is
  // the chance that the run U0 > U1 > ... of uniforms has odd length. On a
  // rejection, k grows by one and a fresh U0 is drawn.
  uint64_t k = 0;
  for (;;) {
    const uint64_t u0 = rng.Next();
    uint64_t prev = u0;
    uint64_t n = 1;
    for (;;) {
      const uint64_t u = rng.Next();
      if (u >= prev) break;
      prev = u;
      ++n;
    }
    if (n % 2 == 1) {
      const unsigned __int128 frac = static_cast<unsigned __int128>(u0) * static_cast<uint64_t>(mean_us);
      return static_cast<int64_t>(k * static_cast<uint64_t>(mean_us) + static_cast<uint64_t>(frac >> 64));
    }
    ++k;
  }
}

}  // namespace sim
}  // namespace parley
