#include "server/event_loop.h"

#include <future>
#include <utility>

#include "server/thread_name.h"

namespace parley {

EventLoop::EventLoop(std::string name, size_t max_queued)
    : name_(std::move(name)), max_queued_(max_queued) {}

EventLoop::~EventLoop() { Stop(); }

void EventLoop::Start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (started_) return;
  started_ = true;
  thread_ = std::thread([this] {
    NameThisThread(name_);
    Run();
  });
}

void EventLoop::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!started_ || stopping_) {
      stopping_ = true;
      if (!thread_.joinable()) return;
    }
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable() && !InLoop()) thread_.join();
}

bool EventLoop::Post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ || tasks_.size() >= max_queued_) {
      ++dropped_;
      return false;
    }
    tasks_.push_back(std::move(fn));
  }
  cv_.notify_one();
  return true;
}

uint64_t EventLoop::PostAfter(absl::Duration after, std::function<void()> fn) {
  uint64_t id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ || timers_.size() >= max_queued_) {
      ++dropped_;
      return 0;
    }
    id = next_timer_++;
    timers_.emplace(absl::Now() + after, std::make_pair(id, std::move(fn)));
  }
  cv_.notify_one();
  return id;
}

void EventLoop::Cancel(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  cancelled_.insert(id);
}

void EventLoop::RunSync(const std::function<void()>& fn) {
  std::promise<void> done;
  if (!Post([&] {
        fn();
        done.set_value();
      })) {
    return;
  }
  done.get_future().wait();
}

uint64_t EventLoop::dropped() const {
  std::lock_guard<std::mutex> lock(mu_);
  return dropped_;
}

void EventLoop::RunOne(std::unique_lock<std::mutex>& lock, std::function<void()> fn) {
  lock.unlock();
  if (after_run_ && run_ == 0) run_start_ = absl::Now();
  fn();
  if (after_run_ && (++run_ >= max_run_ || absl::Now() - run_start_ >= max_run_time_)) {
    run_ = 0;
    after_run_();
  }
  lock.lock();
}

void EventLoop::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    const absl::Time now = absl::Now();
    // Due timers first, in time order.
    while (!timers_.empty() && timers_.begin()->first <= now) {
      auto node = timers_.extract(timers_.begin());
      const uint64_t id = node.mapped().first;
      if (cancelled_.erase(id) > 0) continue;
      RunOne(lock, std::move(node.mapped().second));
    }
    if (!tasks_.empty()) {
      std::function<void()> fn = std::move(tasks_.front());
      tasks_.pop_front();
      RunOne(lock, std::move(fn));
      continue;
    }
    // Nothing ready: the end of a run.
    if (run_ > 0 && after_run_) {
      run_ = 0;
      lock.unlock();
      after_run_();
      lock.lock();
      continue;  // it may have posted or made timers due
    }
    if (stopping_) return;
    if (timers_.empty()) {
      cv_.wait(lock);
    } else {
      cv_.wait_for(lock, absl::ToChronoNanoseconds(timers_.begin()->first - absl::Now()));
    }
  }
}

}  // namespace parley
