// The process's budget of open files, shared by everything that holds many:
// each LevelDB store (its open tables) and the client listener (its
// connections) reserves its own share on top of what is reserved already.
#ifndef PARLEY_SERVER_DESCRIPTORS_H_
#define PARLEY_SERVER_DESCRIPTORS_H_

#include <sys/resource.h>

namespace parley {

// Raises the soft limit of open files by `more`, up to the hard limit.
// Returns whether all were given; *limit (if not null) is the soft limit
// after the call.
bool ReserveDescriptors(rlim_t more, rlim_t* limit = nullptr);

}  // namespace parley

#endif  // PARLEY_SERVER_DESCRIPTORS_H_
