#include "sim/world.h"

#include <utility>

namespace parley {
namespace sim {
namespace {

Kernel::Options WorldOptions(uint64_t seed) {
  Kernel::Options options;
  options.seed = seed;
  return options;
}

}  // namespace

World::World(uint64_t seed) : kernel_(WorldOptions(seed)) {
  // Only replies matter to the final-state reader.
  kernel_.AddEndpoint(kOutside, /*keep_inbox=*/false);
}

std::optional<Reply> World::Call(const std::string& to, const Request& request,
                                 uint64_t auth_user_id, absl::Duration max_wait) {
  const uint64_t correlation_id = kernel_.SendRequest(kOutside, to, request, auth_user_id, "");
  return kernel_.AwaitReply(correlation_id, max_wait);
}

}  // namespace sim
}  // namespace parley
