#include "core/probe.h"

#include <algorithm>
#include <cstring>

namespace parley {
namespace {

// Appended to by DeclaredProbe's constructor during static initialization
// (one thread) and only read afterwards.
std::vector<const DeclaredProbe*>& Registry() {
  static auto* const kRegistry = new std::vector<const DeclaredProbe*>();
  return *kRegistry;
}

}  // namespace

DeclaredProbe::DeclaredProbe(const char* name, const char* description, Kind kind)
    : name_(name), description_(description), kind_(kind) {
  Registry().push_back(this);
}

std::vector<const DeclaredProbe*> DeclaredProbes() {
  std::vector<const DeclaredProbe*> all = Registry();
  std::sort(all.begin(), all.end(), [](const DeclaredProbe* a, const DeclaredProbe* b) {
    const int by_name = std::strcmp(a->name(), b->name());
    return by_name != 0 ? by_name < 0 : std::strcmp(a->description(), b->description()) < 0;
  });
  all.erase(std::unique(all.begin(), all.end(),
                        [](const DeclaredProbe* a, const DeclaredProbe* b) {
                          return std::strcmp(a->name(), b->name()) == 0;
                        }),
            all.end());
  return all;
}

}  // namespace parley
