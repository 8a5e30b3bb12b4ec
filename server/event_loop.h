// EventLoop: one thread that runs callbacks one at a time (one node's, or
// those of the nodes sharing a HostLoop), with timers. Post and PostAfter are
// thread-safe; library callbacks (cnats, the local network) only ever enqueue
// here. The queue is bounded; what does not fit is dropped and counted.
#ifndef PARLEY_SERVER_EVENT_LOOP_H_
#define PARLEY_SERVER_EVENT_LOOP_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace parley {

class EventLoop {
 public:
  explicit EventLoop(std::string name, size_t max_queued = 100000);
  ~EventLoop();  // stops and joins
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // `fn` runs on the loop after a run of tasks and timers: when nothing more
  // is ready, or after `max_run` of them in a row, or once the run has taken
  // `max_run_time` (the host's group commit). Set before Start.
  void SetAfterRun(std::function<void()> fn, size_t max_run = 1024,
                   absl::Duration max_run_time = absl::Milliseconds(5)) {
    after_run_ = std::move(fn);
    max_run_ = max_run;
    max_run_time_ = max_run_time;
  }

  void Start();
  // Runs what is already queued, then stops; later posts are dropped.
  void Stop();

  // Returns false if the task was dropped (queue full or loop stopped).
  bool Post(std::function<void()> fn);
  // Runs `fn` after `after`; returns an id for Cancel (0 if dropped).
  uint64_t PostAfter(absl::Duration after, std::function<void()> fn);
  void Cancel(uint64_t id);
  // Runs `fn` on the loop and waits for it (not from the loop itself).
  void RunSync(const std::function<void()>& fn);

  bool InLoop() const { return std::this_thread::get_id() == thread_.get_id(); }
  uint64_t dropped() const;
  const std::string& name() const { return name_; }

 private:
  void Run();
  // Runs one task or timer with the lock released; counts the run.
  void RunOne(std::unique_lock<std::mutex>& lock, std::function<void()> fn);

  std::function<void()> after_run_;
  size_t max_run_ = 1024;
  absl::Duration max_run_time_ = absl::Milliseconds(5);
  size_t run_ = 0;  // loop thread only
  absl::Time run_start_;  // loop thread only: when the run's first task began

  const std::string name_;
  const size_t max_queued_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  std::multimap<absl::Time, std::pair<uint64_t, std::function<void()>>> timers_;
  std::set<uint64_t> cancelled_;
  uint64_t next_timer_ = 1;
  uint64_t dropped_ = 0;
  bool stopping_ = false;
  bool started_ = false;
  std::thread thread_;
};

}  // namespace parley

#endif  // PARLEY_SERVER_EVENT_LOOP_H_
