#include "server/broker/events.h"

#include <vector>

namespace leyr {

uint64_t AuthorizationEvents::Subscribe(absl::string_view id, Callback callback) {
  absl::MutexLock lock(&mu_);
  uint64_t handle = next_handle_++;
  by_handle_.emplace(handle, std::make_pair(std::string(id), callback));
  by_id_[id].emplace(handle, std::move(callback));
  return handle;
}

void AuthorizationEvents::Unsubscribe(uint64_t handle) {
  absl::MutexLock lock(&mu_);
  auto it = by_handle_.find(handle);
  if (it == by_handle_.end()) return;
  auto id_it = by_id_.find(it->second.first);
  if (id_it != by_id_.end()) {
    id_it->second.erase(handle);
    if (id_it->second.empty()) by_id_.erase(id_it);
  }
  by_handle_.erase(it);
}

void AuthorizationEvents::SetPublisher(std::function<void(absl::string_view id)> publisher) {
  publisher_ = std::move(publisher);
}

void AuthorizationEvents::Notify(absl::string_view id) {
  if (publisher_) publisher_(id);
  NotifyLocal(id);
}

void AuthorizationEvents::SetChangeListener(std::function<void(absl::string_view id)> listener) {
  change_listener_ = std::move(listener);
}

void AuthorizationEvents::NotifyAllLocal() {
  if (change_listener_) change_listener_("");
  std::vector<Callback> callbacks;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [handle, entry] : by_handle_) callbacks.push_back(entry.second);
  }
  for (auto& cb : callbacks) cb();
}

void AuthorizationEvents::NotifyLocal(absl::string_view id) {
  if (change_listener_) change_listener_(id);
  std::vector<Callback> callbacks;
  {
    absl::MutexLock lock(&mu_);
    auto it = by_id_.find(id);
    if (it == by_id_.end()) return;
    for (const auto& [handle, cb] : it->second) callbacks.push_back(cb);
  }
  for (auto& cb : callbacks) cb();
}

size_t AuthorizationEvents::subscriber_count() {
  absl::MutexLock lock(&mu_);
  return by_handle_.size();
}

Scheduler::Scheduler() : thread_([this] { Loop(); }) {}

Scheduler::~Scheduler() { Stop(); }

void Scheduler::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    queue_.clear();
    when_.clear();
  }
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

uint64_t Scheduler::After(absl::Duration delay, std::function<void()> fn) {
  absl::MutexLock lock(&mu_);
  uint64_t handle = next_++;
  if (stop_) return handle;
  absl::Time when = absl::Now() + delay;
  queue_.emplace(std::make_pair(when, handle), std::move(fn));
  when_.emplace(handle, when);
  return handle;
}

void Scheduler::Cancel(uint64_t handle) {
  absl::MutexLock lock(&mu_);
  auto it = when_.find(handle);
  if (it == when_.end()) return;
  queue_.erase(std::make_pair(it->second, handle));
  when_.erase(it);
}

void Scheduler::Loop() {
  absl::MutexLock lock(&mu_);
  while (!stop_) {
    if (queue_.empty()) {
      mu_.Await(absl::Condition(
          +[](Scheduler* s) ABSL_NO_THREAD_SAFETY_ANALYSIS { return s->stop_ || !s->queue_.empty(); },
          this));
      continue;
    }
    auto first = queue_.begin();
    absl::Time when = first->first.first;
    if (absl::Now() < when) {
      // Wake up at `when`, or earlier when something earlier is scheduled or we stop.
      struct Wake {
        Scheduler* self;
        std::pair<absl::Time, uint64_t> earliest;
        static bool Ready(Wake* w) ABSL_NO_THREAD_SAFETY_ANALYSIS {
          return w->self->stop_ || w->self->queue_.empty() ||
                 w->self->queue_.begin()->first != w->earliest;
        }
      } wake{this, first->first};
      mu_.AwaitWithDeadline(absl::Condition(&Wake::Ready, &wake), when);
      continue;
    }
    std::function<void()> fn = std::move(first->second);
    when_.erase(first->first.second);
    queue_.erase(first);
    mu_.Unlock();
    fn();
    mu_.Lock();
  }
}

}  // namespace leyr
