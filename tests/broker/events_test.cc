#include "server/broker/events.h"

#include <atomic>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"

namespace leyr {
namespace {

using ::testing::ElementsAre;

constexpr absl::Duration kGenerous = absl::Seconds(10);

TEST(AuthorizationEventsTest, NotifiesSubscribersOfThatIdOnly) {
  AuthorizationEvents events;
  int a_calls = 0, a2_calls = 0, b_calls = 0;
  uint64_t a = events.Subscribe("a", [&] { ++a_calls; });
  uint64_t a2 = events.Subscribe("a", [&] { ++a2_calls; });
  uint64_t b = events.Subscribe("b", [&] { ++b_calls; });
  EXPECT_NE(a, a2);
  EXPECT_EQ(events.subscriber_count(), 3u);
  events.Notify("a");
  EXPECT_EQ(a_calls, 1);
  EXPECT_EQ(a2_calls, 1);
  EXPECT_EQ(b_calls, 0);
  events.Notify("c");  // nobody listening: nothing happens
  events.Unsubscribe(a);
  events.Notify("a");
  EXPECT_EQ(a_calls, 1);
  EXPECT_EQ(a2_calls, 2);
  events.Unsubscribe(a);  // twice is harmless
  events.Unsubscribe(a2);
  events.Unsubscribe(b);
  EXPECT_EQ(events.subscriber_count(), 0u);
  events.Notify("a");
  EXPECT_EQ(a2_calls, 2);
}

TEST(AuthorizationEventsTest, CallbackMayUnsubscribeItself) {
  AuthorizationEvents events;
  int calls = 0;
  auto handle = std::make_shared<uint64_t>(0);
  *handle = events.Subscribe("a", [&, handle] {
    ++calls;
    events.Unsubscribe(*handle);  // no lock is held during callbacks
  });
  events.Notify("a");
  events.Notify("a");
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(events.subscriber_count(), 0u);
}

TEST(SchedulerTest, RunsCallbacksInTimeOrder) {
  Scheduler scheduler;
  absl::Mutex mu;
  std::vector<int> order;
  absl::Notification last;
  scheduler.After(absl::Milliseconds(60), [&] {
    {
      absl::MutexLock lock(&mu);
      order.push_back(3);
    }
    last.Notify();
  });
  scheduler.After(absl::Milliseconds(20), [&] {
    absl::MutexLock lock(&mu);
    order.push_back(1);
  });
  scheduler.After(absl::Milliseconds(40), [&] {
    absl::MutexLock lock(&mu);
    order.push_back(2);
  });
  ASSERT_TRUE(last.WaitForNotificationWithTimeout(kGenerous));
  absl::MutexLock lock(&mu);
  EXPECT_THAT(order, ElementsAre(1, 2, 3));
}

TEST(SchedulerTest, SameDelayRunsInSchedulingOrder) {
  Scheduler scheduler;
  absl::Mutex mu;
  std::vector<int> order;
  absl::Notification done;
  // All due at once (zero delay is "as soon as possible").
  for (int i = 0; i < 5; ++i) {
    scheduler.After(absl::ZeroDuration(), [&, i] {
      absl::MutexLock lock(&mu);
      order.push_back(i);
      if (order.size() == 5) done.Notify();
    });
  }
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(kGenerous));
  absl::MutexLock lock(&mu);
  EXPECT_THAT(order, ElementsAre(0, 1, 2, 3, 4));
}

TEST(SchedulerTest, CancelPreventsTheRun) {
  Scheduler scheduler;
  std::atomic<bool> cancelled_ran{false};
  absl::Notification later;
  uint64_t handle = scheduler.After(absl::Milliseconds(10), [&] { cancelled_ran = true; });
  scheduler.Cancel(handle);
  // Runs after the cancelled one would have: the scheduler runs in time order on one thread.
  scheduler.After(absl::Milliseconds(50), [&] { later.Notify(); });
  ASSERT_TRUE(later.WaitForNotificationWithTimeout(kGenerous));
  EXPECT_FALSE(cancelled_ran.load());
}

TEST(SchedulerTest, CancelAfterRunIsHarmless) {
  Scheduler scheduler;
  absl::Notification ran;
  uint64_t handle = scheduler.After(absl::ZeroDuration(), [&] { ran.Notify(); });
  ASSERT_TRUE(ran.WaitForNotificationWithTimeout(kGenerous));
  scheduler.Cancel(handle);
  scheduler.Cancel(12345);  // never issued
  absl::Notification again;
  scheduler.After(absl::ZeroDuration(), [&] { again.Notify(); });
  EXPECT_TRUE(again.WaitForNotificationWithTimeout(kGenerous));
}

TEST(SchedulerTest, EarlierCallbackScheduledLaterWakesTheLoop) {
  Scheduler scheduler;
  absl::Notification soon;
  scheduler.After(absl::Hours(1), [] {});
  const absl::Time start = absl::Now();
  scheduler.After(absl::Milliseconds(10), [&] { soon.Notify(); });
  ASSERT_TRUE(soon.WaitForNotificationWithTimeout(kGenerous));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST(SchedulerTest, CallbackMayScheduleAndDestructorDropsPending) {
  absl::Notification second;
  std::atomic<bool> far_ran{false};
  {
    Scheduler scheduler;
    scheduler.After(absl::ZeroDuration(), [&] {
      scheduler.After(absl::ZeroDuration(), [&] { second.Notify(); });
    });
    ASSERT_TRUE(second.WaitForNotificationWithTimeout(kGenerous));
    scheduler.After(absl::Hours(1), [&] { far_ran = true; });
    // Destroyed here: must return promptly without running the far callback.
  }
  EXPECT_FALSE(far_ran.load());
}

}  // namespace
}  // namespace leyr
