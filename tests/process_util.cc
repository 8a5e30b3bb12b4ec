#include "tests/process_util.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fcntl.h>
#include <sys/random.h>

#include <cstdio>

namespace parley {

pid_t Spawn(const std::vector<std::string>& args, const std::string& log) {
  const pid_t pid = fork();
  if (pid == 0) {
    FILE* out = freopen(log.c_str(), "w", stderr);
    (void)out;
    std::vector<char*> argv;
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

std::string SharedTokenKeyFlag(const std::string& path) {
  unsigned char key[32];
  if (getrandom(key, sizeof(key), 0) != static_cast<ssize_t>(sizeof(key))) return "";
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) return "";
  const bool ok = write(fd, key, sizeof(key)) == static_cast<ssize_t>(sizeof(key));
  close(fd);
  return ok ? "--token_key_file=" + path : "";
}

}  // namespace parley
