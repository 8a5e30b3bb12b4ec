// SeededRng: the only source of randomness in core/ and sim/. Deterministic
// for a given seed (xoshiro256**, seeded through splitmix64).
#ifndef PARLEY_CORE_RNG_H_
#define PARLEY_CORE_RNG_H_

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace parley {

class SeededRng {
 public:
  explicit SeededRng(uint64_t seed);

  uint64_t Next();
  // Uniform in [0, n). REQUIRES: n > 0.
  uint64_t Uniform(uint64_t n);
  // True with probability p (clamped to [0, 1]).
  bool Bernoulli(double p);
  // Uniform in [0, 1).
  double UniformDouble();
  // `n` random bytes.
  std::string Bytes(size_t n);

  // A seed for a part of the run named `label`, derived from `root` so every
  // part gets its own stream and adding a part does not shift the others.
  static uint64_t Derive(uint64_t root, absl::string_view label);

 private:
  uint64_t s_[4];
};

}  // namespace parley

#endif  // PARLEY_CORE_RNG_H_
