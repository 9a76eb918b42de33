#ifndef LEYR_SERVER_SANDBOX_SCHEDULER_H_
#define LEYR_SERVER_SANDBOX_SCHEDULER_H_

#include <functional>
#include <map>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace leyr::sandbox {

// Runs callbacks after a delay, so that a delayed answer holds no server thread.
class Scheduler {
 public:
  virtual ~Scheduler() = default;
  // Runs `task` once, no earlier than `delay` from now, on some other thread (or inline when
  // the scheduler has been shut down, so that no task is ever dropped).
  virtual void RunAfter(absl::Duration delay, std::function<void()> task) = 0;
};

// One timer thread over a time-ordered queue; tasks must be short (they only send a response).
class TimerThread final : public Scheduler {
 public:
  TimerThread();
  // Runs the tasks still pending at once, then joins the thread.
  ~TimerThread() override;
  TimerThread(const TimerThread&) = delete;
  TimerThread& operator=(const TimerThread&) = delete;

  void RunAfter(absl::Duration delay, std::function<void()> task) override;
  // Runs every pending task now and stops the thread; later RunAfter calls run inline.
  // Idempotent.
  void Shutdown();
  // Number of tasks waiting.
  size_t pending() const;

 private:
  void Loop();

  mutable absl::Mutex mu_;
  std::multimap<absl::Time, std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace leyr::sandbox

#endif  // LEYR_SERVER_SANDBOX_SCHEDULER_H_
