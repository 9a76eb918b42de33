#ifndef LEYR_SERVER_BROKER_EVENTS_H_
#define LEYR_SERVER_BROKER_EVENTS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace leyr {

// Tells waiters that an authorization changed. In-process now; a PostgreSQL store will feed it
// from LISTEN/NOTIFY so that a wait on one replica sees a change made on another.
class AuthorizationEvents {
 public:
  using Callback = std::function<void()>;

  // Calls `callback` (on the notifying thread, without locks held) after every change of `id`
  // until Unsubscribe. Returns a handle.
  uint64_t Subscribe(absl::string_view id, Callback callback);
  void Unsubscribe(uint64_t handle);
  void Notify(absl::string_view id);
  size_t subscriber_count();

  // Other replicas (PostgresEventBridge, server/broker/pg_events.h): Notify also hands the id to
  // `publisher` (set once, before any Notify; empty = none), and changes announced by another
  // replica reach this process's subscribers through NotifyLocal (which does not publish).
  void SetPublisher(std::function<void(absl::string_view id)> publisher);
  void NotifyLocal(absl::string_view id);
  // Wakes every subscriber (after announcements may have been missed, e.g. a reconnect).
  void NotifyAllLocal();
  // Calls `listener` with the id of every change this process hears of, local or announced by
  // another replica, and with "" from NotifyAllLocal (used to drop cached records). Set once,
  // before any Notify.
  void SetChangeListener(std::function<void(absl::string_view id)> listener);

 private:
  absl::Mutex mu_;
  uint64_t next_handle_ ABSL_GUARDED_BY(mu_) = 1;
  absl::flat_hash_map<uint64_t, std::pair<std::string, Callback>> by_handle_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, absl::flat_hash_map<uint64_t, Callback>> by_id_
      ABSL_GUARDED_BY(mu_);
  std::function<void(absl::string_view)> publisher_;  // set before use, then read-only
  std::function<void(absl::string_view)> change_listener_;  // likewise
};

// Runs callbacks after a delay on one thread. Used for wait timeouts and the store sweeper.
class Scheduler {
 public:
  Scheduler();
  ~Scheduler();  // Stop().
  // Drops callbacks not yet run and joins the thread (waiting for a running one). Idempotent;
  // After() does nothing afterwards.
  void Stop();
  uint64_t After(absl::Duration delay, std::function<void()> fn);
  // Cancels a callback not yet started; harmless when it already ran.
  void Cancel(uint64_t handle);

 private:
  void Loop();
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t next_ ABSL_GUARDED_BY(mu_) = 1;
  // (when, handle) → callback, earliest first.
  std::map<std::pair<absl::Time, uint64_t>, std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint64_t, absl::Time> when_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace leyr

#endif  // LEYR_SERVER_BROKER_EVENTS_H_
