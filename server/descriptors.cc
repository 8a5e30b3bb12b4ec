#include "server/descriptors.h"

#include <algorithm>

namespace parley {

bool ReserveDescriptors(rlim_t more, rlim_t* limit) {
  rlimit files{};
  if (getrlimit(RLIMIT_NOFILE, &files) != 0) return false;
  bool given = true;
  if (files.rlim_cur != RLIM_INFINITY) {
    const rlim_t want = files.rlim_cur + more;
    files.rlim_cur = std::min(want, files.rlim_max);
    if (setrlimit(RLIMIT_NOFILE, &files) != 0) {
      getrlimit(RLIMIT_NOFILE, &files);
      given = false;
    }
    given = given && files.rlim_cur >= want;
  }
  if (limit != nullptr) *limit = files.rlim_cur;
  return given;
}

}  // namespace parley
