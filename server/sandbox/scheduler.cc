#include "server/sandbox/scheduler.h"

#include <utility>
#include <vector>

#include "absl/time/clock.h"

namespace leyr::sandbox {

TimerThread::TimerThread() : thread_([this] { Loop(); }) {}

TimerThread::~TimerThread() { Shutdown(); }

void TimerThread::RunAfter(absl::Duration delay, std::function<void()> task) {
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      queue_.emplace(absl::Now() + delay, std::move(task));
      return;
    }
  }
  task();
}

void TimerThread::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

size_t TimerThread::pending() const {
  absl::MutexLock lock(&mu_);
  return queue_.size();
}

void TimerThread::Loop() {
  mu_.Lock();
  while (true) {
    if (stopping_) break;
    absl::Time now = absl::Now();
    if (!queue_.empty() && queue_.begin()->first <= now) {
      // Take every due task, run them without the lock (they may call RunAfter).
      std::vector<std::function<void()>> due;
      while (!queue_.empty() && queue_.begin()->first <= now) {
        due.push_back(std::move(queue_.begin()->second));
        queue_.erase(queue_.begin());
      }
      mu_.Unlock();
      for (auto& task : due) task();
      mu_.Lock();
      continue;
    }
    absl::Time wake = queue_.empty() ? absl::InfiniteFuture() : queue_.begin()->first;
    // Wakes when stopping, when an earlier task arrives, or at the deadline.
    auto changed = [this, wake]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return stopping_ || (!queue_.empty() && queue_.begin()->first < wake);
    };
    mu_.AwaitWithDeadline(absl::Condition(&changed), wake);
  }
  // Shutting down: nothing may be dropped, so run what is left now.
  std::multimap<absl::Time, std::function<void()>> rest;
  rest.swap(queue_);
  mu_.Unlock();
  for (auto& [when, task] : rest) task();
}

}  // namespace leyr::sandbox
