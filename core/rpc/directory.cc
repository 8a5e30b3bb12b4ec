#include "core/rpc/directory.h"

#include <algorithm>
#include <utility>

namespace parley {

void ServiceDirectory::Update(const std::string& service, std::vector<Instance> instances) {
  std::sort(instances.begin(), instances.end(),
            [](const Instance& a, const Instance& b) { return a.instance_id() < b.instance_id(); });
  instances_[service] = std::move(instances);
}

const std::vector<Instance>& ServiceDirectory::Instances(const std::string& service) const {
  static const std::vector<Instance>* const kEmpty = new std::vector<Instance>();
  auto it = instances_.find(service);
  return it == instances_.end() ? *kEmpty : it->second;
}

std::string ServiceDirectory::Pick(const std::string& service,
                                   const std::set<std::string>& exclude) {
  const std::vector<Instance>& all = Instances(service);
  if (all.empty()) return "";
  uint64_t& next = next_[service];
  for (size_t i = 0; i < all.size(); ++i) {
    const Instance& candidate = all[(next + i) % all.size()];
    if (exclude.count(candidate.address()) == 0) {
      next = next + i + 1;
      return candidate.address();
    }
  }
  return all[next++ % all.size()].address();
}

std::string ServiceDirectory::PickByHash(const std::string& service, uint64_t hash_key,
                                         const std::set<std::string>& exclude) const {
  const std::vector<Instance>& all = Instances(service);
  if (all.empty()) return "";
  for (size_t i = 0; i < all.size(); ++i) {
    const Instance& candidate = all[(hash_key + i) % all.size()];
    if (exclude.count(candidate.address()) == 0) return candidate.address();
  }
  return all[hash_key % all.size()].address();
}

}  // namespace parley
