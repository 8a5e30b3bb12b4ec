// Names the calling thread (as top -H, perf and gdb show it). Linux keeps 15
// bytes of it: longer names keep their end, which tells nodes apart
// ("svc.message.0", "gw.1").
#ifndef PARLEY_SERVER_THREAD_NAME_H_
#define PARLEY_SERVER_THREAD_NAME_H_

#include <pthread.h>

#include <string>

namespace parley {

inline void NameThisThread(const std::string& name) {
  const std::string shown = name.size() > 15 ? name.substr(name.size() - 15) : name;
  pthread_setname_np(pthread_self(), shown.c_str());
}

}  // namespace parley

#endif  // PARLEY_SERVER_THREAD_NAME_H_
