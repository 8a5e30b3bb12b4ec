#include "server/nats_server_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace parley {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

std::string NatsServerProcess::Version(const std::string& binary) {
  if (access(binary.c_str(), X_OK) != 0) return "";
  FILE* p = popen(("'" + binary + "' --version 2>&1").c_str(), "r");
  if (p == nullptr) return "";
  char buf[256];
  std::string out;
  while (fgets(buf, sizeof(buf), p) != nullptr) out += buf;
  pclose(p);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

absl::StatusOr<std::unique_ptr<NatsServerProcess>> NatsServerProcess::Start(
    const std::string& dir, absl::Duration timeout, const std::string& binary, int port,
    const std::vector<std::string>& extra_args, bool sync_always) {
  if (sync_always) {
    // Fsync before the ack; a server that does not know the setting refuses
    // the file at once (2.9: "unknown field \"sync_interval\""): then start
    // it without, and say so through syncs_always().
    auto started = StartOnce(dir, timeout, binary, port, extra_args,
                             "jetstream {\n  sync_interval: always\n}\n");
    if (started.ok()) {
      (*started)->syncs_always_ = true;
      return started;
    }
    if (!absl::StrContains(started.status().message(), "sync_interval")) return started;
    std::error_code ec;
    std::filesystem::remove(dir + "/nats-server.conf", ec);
  }
  return StartOnce(dir, timeout, binary, port, extra_args, "");
}

absl::StatusOr<std::unique_ptr<NatsServerProcess>> NatsServerProcess::StartOnce(
    const std::string& dir, absl::Duration timeout, const std::string& binary, int port,
    const std::vector<std::string>& extra_args, const std::string& config) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  if (access(binary.c_str(), X_OK) != 0) {
    return absl::NotFoundError(absl::StrCat(binary, " is not executable (run ./setup.sh)"));
  }
  const std::string log = dir + "/nats-server.log";
  const std::string config_path = dir + "/nats-server.conf";
  if (!config.empty()) {
    std::ofstream out(config_path, std::ios::trunc);
    out << config;
    if (!out) return absl::InternalError(absl::StrCat("cannot write ", config_path));
  }
  const pid_t pid = fork();
  if (pid < 0) return absl::InternalError("fork failed");
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);  // never outlive the process that started it
    const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    const std::string port_arg = std::to_string(port);
    std::vector<std::string> args = {"nats-server", "-a", "127.0.0.1", "-p", port_arg, "-js",
                                     "-sd", dir, "--ports_file_dir", dir};
    if (!config.empty()) {
      args.push_back("-c");
      args.push_back(config_path);
    }
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(binary.c_str(), argv.data());
    _exit(127);
  }
  const std::string ports = absl::StrCat(dir, "/nats-server_", pid, ".ports");
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      return absl::UnavailableError(absl::StrCat("nats-server exited at start: ", ReadFile(log)));
    }
    const std::string text = ReadFile(ports);
    const size_t at = text.find("nats://");
    if (at != std::string::npos) {
      const size_t end = text.find('"', at);
      return std::unique_ptr<NatsServerProcess>(
          new NatsServerProcess(pid, text.substr(at, end - at)));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  return absl::DeadlineExceededError(
      absl::StrCat("nats-server wrote no ports file within ", absl::FormatDuration(timeout)));
}

NatsServerProcess::~NatsServerProcess() { Stop().IgnoreError(); }

absl::Status NatsServerProcess::Stop(absl::Duration grace) {
  if (pid_ <= 0) return absl::OkStatus();
  kill(pid_, SIGINT);
  const absl::Time deadline = absl::Now() + grace;
  int status = 0;
  while (absl::Now() < deadline) {
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = 0;
      return absl::OkStatus();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  kill(pid_, SIGKILL);
  waitpid(pid_, &status, 0);
  pid_ = 0;
  return absl::DeadlineExceededError("nats-server ignored SIGINT; killed");
}

}  // namespace parley
