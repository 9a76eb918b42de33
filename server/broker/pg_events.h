#ifndef LEYR_SERVER_BROKER_PG_EVENTS_H_
#define LEYR_SERVER_BROKER_PG_EVENTS_H_

#include <deque>
#include <memory>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "server/broker/events.h"
#include "server/broker/postgres_store.h"

namespace leyr {

// Carries AuthorizationEvents between replicas over PostgreSQL LISTEN/NOTIFY, so that a wait on
// one broker returns when the callback completes on another. Every local Notify is published
// (NOTIFY leyr_authorization, payload "{instance}:{id}", from a background thread so that no
// caller waits on the database); every notification from another instance wakes the local
// subscribers of that id. After the LISTEN connection comes back from an outage every local
// waiter is woken once to re-read its record (announcements may have been missed). Never blocks
// or fails its callers: while the database is away, waiters fall back on their own timers.
class PostgresEventBridge {
 public:
  static constexpr char kChannel[] = "leyr_authorization";

  // Hooks into `events` (which must outlive the bridge) and starts the two threads.
  PostgresEventBridge(const PostgresOptions& options, AuthorizationEvents* events);
  ~PostgresEventBridge();  // Stop()

  // Stops publishing and listening and joins the threads. Idempotent.
  void Stop();

  // True while the LISTEN connection is up.
  bool listening();

 private:
  void Publish(absl::string_view id);
  void ListenLoop();
  void PublishLoop();
  // Waits up to `d` or until Stop(); false when stopping.
  bool Pause(absl::Duration d);

  const PostgresOptions options_;
  AuthorizationEvents* events_;
  const std::string instance_;  // random, tells our own notifications apart
  int wake_[2] = {-1, -1};      // pipe: Stop() wakes the listener's poll()

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool listening_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<std::string> outbox_ ABSL_GUARDED_BY(mu_);
  std::thread listener_;
  std::thread publisher_;
};

}  // namespace leyr

#endif  // LEYR_SERVER_BROKER_PG_EVENTS_H_
