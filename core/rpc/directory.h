// ServiceDirectory: a caller's view of the healthy instances of each service,
// fed by the registry, and the picker that chooses whom to call.
#ifndef PARLEY_CORE_RPC_DIRECTORY_H_
#define PARLEY_CORE_RPC_DIRECTORY_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/proto/entities.pb.h"

namespace parley {

class ServiceDirectory {
 public:
  // Replaces the known instances of `service` (kept sorted by instance id).
  void Update(const std::string& service, std::vector<Instance> instances);
  const std::vector<Instance>& Instances(const std::string& service) const;

  // Round robin over the instances of `service` whose address is not in
  // `exclude`; if every instance is excluded, round robin over all of them.
  // Returns "" when the service has no instance.
  std::string Pick(const std::string& service, const std::set<std::string>& exclude);
  // Deterministic choice by `hash_key` (sticky routing), falling over to the
  // next instance when that one is excluded. Returns "" when none.
  std::string PickByHash(const std::string& service, uint64_t hash_key,
                         const std::set<std::string>& exclude) const;

 private:
  std::map<std::string, std::vector<Instance>> instances_;
  std::map<std::string, uint64_t> next_;
};

}  // namespace parley

#endif  // PARLEY_CORE_RPC_DIRECTORY_H_
