// Helpers for tests that run real processes on loopback.
#ifndef PARLEY_TESTS_PROCESS_UTIL_H_
#define PARLEY_TESTS_PROCESS_UTIL_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "server/loopback.h"  // FreePort, Listening

namespace parley {

// Starts `args[0]` with `args`, its stderr into `log`.
pid_t Spawn(const std::vector<std::string>& args, const std::string& log);
// Writes a fresh random 32-byte token key to `path` (mode 0600) for several
// parleyd to share with --token_key_file; returns the flag.
std::string SharedTokenKeyFlag(const std::string& path);

}  // namespace parley

#endif  // PARLEY_TESTS_PROCESS_UTIL_H_
