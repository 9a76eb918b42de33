#include "server/broker/memory_store.h"

#include <atomic>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "server/broker/oauth.h"
#include "server/common/clock.h"
#include "server/common/status_util.h"
#include "tests/testing/status_matchers.h"

namespace leyr {
namespace {

using broker::v1::Authorization;
using ::leyr::testing::IsOk;
using ::leyr::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

class MemoryStoreTest : public ::testing::Test {
 protected:
  // A PENDING record created now, expiring after `ttl`; its state hash is "hash-" + id.
  AuthorizationRecord Pending(const std::string& id, absl::Duration ttl = absl::Minutes(10)) {
    AuthorizationRecord r;
    r.id = id;
    r.connection = "athena";
    r.emr = "athenapractice";
    r.owner = "anonymous";
    r.labels = {{"patient", "p1"}};
    r.return_uri = "https://app.example.com/done";
    r.create_time = clock_.Now();
    r.update_time = r.create_time;
    r.expire_time = r.create_time + ttl;
    return r;
  }
  static std::string Hash(const std::string& id) { return "hash-" + id; }
  void InsertPending(const std::string& id, absl::Duration ttl = absl::Minutes(10)) {
    ASSERT_THAT(store_.Insert(Pending(id, ttl), Hash(id)), IsOk());
  }
  static Completion Code(const std::string& code) { return Completion{code, "", ""}; }

  FakeClock clock_;
  std::unique_ptr<KeyRingSealer> sealer_ = KeyRingSealer::Ephemeral();
  MemoryStore store_{&clock_, sealer_.get()};
};

TEST_F(MemoryStoreTest, InsertAndGet) {
  InsertPending("a");
  auto got = store_.Get("a");
  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(got->id, "a");
  EXPECT_EQ(got->state, Authorization::STATE_PENDING);
  EXPECT_EQ(got->connection, "athena");
  EXPECT_EQ(got->labels.at("patient"), "p1");
  EXPECT_EQ(got->expire_time, clock_.Now() + absl::Minutes(10));
  EXPECT_TRUE(got->code.empty());
  EXPECT_THAT(store_.Get("b"),
              StatusIs(absl::StatusCode::kNotFound, reason::kAuthorizationNotFound));
}

TEST_F(MemoryStoreTest, InsertRefusesCollisions) {
  InsertPending("a");
  EXPECT_THAT(store_.Insert(Pending("a"), "other-hash"),
              StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_THAT(store_.Insert(Pending("b"), Hash("a")), StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_THAT(store_.Get("b"), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(MemoryStoreTest, CompleteWithCode) {
  InsertPending("a");
  clock_.Advance(absl::Seconds(5));
  auto done = store_.Complete(Hash("a"), Code("the-code"));
  ASSERT_THAT(done, IsOk());
  EXPECT_EQ(done->state, Authorization::STATE_ACTIVE);
  EXPECT_EQ(done->code, "the-code");
  EXPECT_EQ(done->update_time, clock_.Now());
  auto got = store_.Get("a");
  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(got->state, Authorization::STATE_ACTIVE);
  EXPECT_EQ(got->code, "the-code");
}

TEST_F(MemoryStoreTest, CompleteWithErrorIsDenied) {
  InsertPending("a");
  auto done = store_.Complete(Hash("a"), Completion{"", "access_denied", "The user said no"});
  ASSERT_THAT(done, IsOk());
  EXPECT_EQ(done->state, Authorization::STATE_DENIED);
  EXPECT_EQ(done->denial_error, "access_denied");
  EXPECT_EQ(done->denial_description, "The user said no");
  EXPECT_TRUE(done->code.empty());
  EXPECT_EQ(store_.Get("a")->state, Authorization::STATE_DENIED);
}

TEST_F(MemoryStoreTest, UnknownStateAndReplay) {
  InsertPending("a");
  EXPECT_THAT(store_.Complete("hash-nope", Code("c")),
              StatusIs(absl::StatusCode::kNotFound, reason::kStateNotFound));
  ASSERT_THAT(store_.Complete(Hash("a"), Code("c1")), IsOk());
  EXPECT_THAT(store_.Complete(Hash("a"), Code("c2")),
              StatusIs(absl::StatusCode::kFailedPrecondition, reason::kStateAlreadyUsed));
  EXPECT_THAT(store_.Complete(Hash("a"), Completion{"", "access_denied", ""}),
              StatusIs(absl::StatusCode::kFailedPrecondition, reason::kStateAlreadyUsed));
  // The replay changed nothing.
  EXPECT_EQ(store_.Get("a")->code, "c1");
  EXPECT_EQ(store_.Get("a")->state, Authorization::STATE_ACTIVE);
}

TEST_F(MemoryStoreTest, ExpiryWithTheFakeClock) {
  InsertPending("a", absl::Minutes(10));
  const absl::Time expire = clock_.Now() + absl::Minutes(10);
  clock_.Advance(absl::Minutes(10) - absl::Seconds(1));
  EXPECT_EQ(store_.Get("a")->state, Authorization::STATE_PENDING);
  clock_.Advance(absl::Seconds(2));
  auto got = store_.Get("a");
  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(got->state, Authorization::STATE_EXPIRED);
  EXPECT_EQ(got->update_time, expire);
  EXPECT_THAT(store_.Complete(Hash("a"), Code("late")),
              StatusIs(absl::StatusCode::kFailedPrecondition, reason::kAuthorizationExpired));
  EXPECT_EQ(store_.Get("a")->state, Authorization::STATE_EXPIRED);
  EXPECT_TRUE(store_.Get("a")->code.empty());
  // And the state stays used.
  EXPECT_THAT(store_.Complete(Hash("a"), Code("late")),
              StatusIs(absl::StatusCode::kFailedPrecondition, reason::kStateAlreadyUsed));
}

TEST_F(MemoryStoreTest, ExpiryExactlyAtExpireTime) {
  InsertPending("a", absl::Seconds(30));
  clock_.Advance(absl::Seconds(30));
  EXPECT_THAT(store_.Complete(Hash("a"), Code("c")),
              StatusIs(absl::StatusCode::kFailedPrecondition, reason::kAuthorizationExpired));
}

TEST_F(MemoryStoreTest, CompleteAfterRevokeIsNotActive) {
  InsertPending("a");
  Transition revoke;
  revoke.from = {Authorization::STATE_PENDING};
  revoke.to = Authorization::STATE_REVOKED;
  ASSERT_THAT(store_.Update("a", revoke), IsOk());
  EXPECT_THAT(store_.Complete(Hash("a"), Code("c")),
              StatusIs(absl::StatusCode::kFailedPrecondition, reason::kAuthorizationNotActive));
  EXPECT_EQ(store_.Get("a")->state, Authorization::STATE_REVOKED);
  EXPECT_TRUE(store_.Get("a")->code.empty());
}

TEST_F(MemoryStoreTest, UpdateChecksTheFromState) {
  InsertPending("a");
  Transition to_reauth;
  to_reauth.from = {Authorization::STATE_ACTIVE};
  to_reauth.to = Authorization::STATE_REAUTHORIZATION_REQUIRED;
  // PENDING is not in `from`.
  EXPECT_THAT(store_.Update("a", to_reauth),
              StatusIs(absl::StatusCode::kFailedPrecondition, reason::kAuthorizationNotActive));
  EXPECT_EQ(store_.Get("a")->state, Authorization::STATE_PENDING);
  EXPECT_THAT(store_.Update("nope", to_reauth),
              StatusIs(absl::StatusCode::kNotFound, reason::kAuthorizationNotFound));

  ASSERT_THAT(store_.Complete(Hash("a"), Code("c")), IsOk());
  clock_.Advance(absl::Seconds(3));
  Transition activate;
  activate.from = {Authorization::STATE_ACTIVE};
  activate.activated = true;
  auto activated = store_.Update("a", activate);
  ASSERT_THAT(activated, IsOk());
  EXPECT_TRUE(activated->activated);
  EXPECT_EQ(activated->state, Authorization::STATE_ACTIVE);  // `to` unset: state unchanged
  EXPECT_EQ(activated->update_time, clock_.Now());
  EXPECT_EQ(activated->code, "c");

  auto reauth = store_.Update("a", to_reauth);
  ASSERT_THAT(reauth, IsOk());
  EXPECT_EQ(reauth->state, Authorization::STATE_REAUTHORIZATION_REQUIRED);
  EXPECT_EQ(reauth->code, "c");  // kept until revoked
  // A second move from ACTIVE fails: it is no longer ACTIVE.
  EXPECT_THAT(store_.Update("a", to_reauth),
              StatusIs(absl::StatusCode::kFailedPrecondition, reason::kAuthorizationNotActive));

  Transition revoke;
  revoke.from = {Authorization::STATE_ACTIVE, Authorization::STATE_REAUTHORIZATION_REQUIRED};
  revoke.to = Authorization::STATE_REVOKED;
  revoke.clear_code = true;
  auto revoked = store_.Update("a", revoke);
  ASSERT_THAT(revoked, IsOk());
  EXPECT_EQ(revoked->state, Authorization::STATE_REVOKED);
  EXPECT_TRUE(revoked->code.empty());
  EXPECT_TRUE(store_.Get("a")->code.empty());
}

TEST_F(MemoryStoreTest, UpdateSeesExpiry) {
  InsertPending("a", absl::Minutes(1));
  clock_.Advance(absl::Minutes(2));
  Transition revoke;
  revoke.from = {Authorization::STATE_PENDING};
  revoke.to = Authorization::STATE_REVOKED;
  EXPECT_THAT(store_.Update("a", revoke), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(store_.Get("a")->state, Authorization::STATE_EXPIRED);
}

std::vector<std::string> Ids(const std::vector<AuthorizationRecord>& records) {
  std::vector<std::string> ids;
  for (const auto& r : records) ids.push_back(r.id);
  return ids;
}

TEST_F(MemoryStoreTest, ListNewestFirstWithPaging) {
  for (const char* id : {"r1", "r2", "r3", "r4", "r5"}) {
    InsertPending(id);
    clock_.Advance(absl::Seconds(1));
  }
  ListQuery q;
  q.page_size = 2;
  auto page1 = store_.List(q);
  ASSERT_THAT(page1, IsOk());
  EXPECT_THAT(Ids(*page1), ElementsAre("r5", "r4"));
  q.after = std::make_pair(page1->back().create_time, page1->back().id);
  auto page2 = store_.List(q);
  ASSERT_THAT(page2, IsOk());
  EXPECT_THAT(Ids(*page2), ElementsAre("r3", "r2"));
  q.after = std::make_pair(page2->back().create_time, page2->back().id);
  auto page3 = store_.List(q);
  ASSERT_THAT(page3, IsOk());
  EXPECT_THAT(Ids(*page3), ElementsAre("r1"));
  q.after = std::make_pair(page3->back().create_time, page3->back().id);
  EXPECT_THAT(*store_.List(q), IsEmpty());

  ListQuery all;
  all.page_size = 100;
  EXPECT_THAT(Ids(*store_.List(all)), ElementsAre("r5", "r4", "r3", "r2", "r1"));
}

TEST_F(MemoryStoreTest, ListTiesBrokenByIdAndNoRecordSkippedOrRepeated) {
  // Same create_time for all: order by id descending, bounds exclusive.
  for (const char* id : {"b", "d", "a", "c"}) InsertPending(id);
  ListQuery q;
  q.page_size = 3;
  auto page1 = store_.List(q);
  ASSERT_THAT(page1, IsOk());
  EXPECT_THAT(Ids(*page1), ElementsAre("d", "c", "b"));
  q.after = std::make_pair(page1->back().create_time, page1->back().id);
  EXPECT_THAT(Ids(*store_.List(q)), ElementsAre("a"));
}

TEST_F(MemoryStoreTest, ListFiltersAndAppliesExpiry) {
  InsertPending("a", absl::Minutes(1));
  AuthorizationRecord other = Pending("b");
  other.connection = "other";
  other.owner = "someone";
  ASSERT_THAT(store_.Insert(other, Hash("b")), IsOk());
  clock_.Advance(absl::Minutes(2));
  ListQuery by_connection;
  by_connection.connection = "athena";
  auto listed = store_.List(by_connection);
  ASSERT_THAT(listed, IsOk());
  ASSERT_THAT(Ids(*listed), ElementsAre("a"));
  EXPECT_EQ((*listed)[0].state, Authorization::STATE_EXPIRED);
  ListQuery by_owner;
  by_owner.owner = "someone";
  EXPECT_THAT(Ids(*store_.List(by_owner)), ElementsAre("b"));
}

TEST_F(MemoryStoreTest, SweepRemovesOnlyEndedRecordsOlderThanTheCutoff) {
  // Old records (updated at t0).
  InsertPending("old-denied");
  ASSERT_THAT(store_.Complete(Hash("old-denied"), Completion{"", "access_denied", ""}), IsOk());
  InsertPending("old-active");
  ASSERT_THAT(store_.Complete(Hash("old-active"), Code("c")), IsOk());
  InsertPending("old-revoked");
  Transition revoke;
  revoke.from = {Authorization::STATE_PENDING};
  revoke.to = Authorization::STATE_REVOKED;
  ASSERT_THAT(store_.Update("old-revoked", revoke), IsOk());
  InsertPending("old-expired", absl::Seconds(10));  // expires at t0 + 10s
  InsertPending("pending-long", absl::Hours(1));    // still pending at the sweep
  clock_.Advance(absl::Minutes(30));
  const absl::Time cutoff = clock_.Now();
  // Recent ended record (after the cutoff).
  clock_.Advance(absl::Seconds(1));
  InsertPending("new-denied");
  ASSERT_THAT(store_.Complete(Hash("new-denied"), Completion{"", "access_denied", ""}), IsOk());

  auto removed = store_.Sweep(cutoff);
  ASSERT_THAT(removed, IsOk());
  EXPECT_EQ(*removed, 3);
  EXPECT_THAT(store_.Get("old-denied"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store_.Get("old-revoked"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store_.Get("old-expired"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store_.Get("old-active"), IsOk());
  EXPECT_THAT(store_.Get("pending-long"), IsOk());
  EXPECT_THAT(store_.Get("new-denied"), IsOk());
  // The swept records' state hashes went with them; the others' stay (used or not).
  EXPECT_THAT(store_.Complete(Hash("old-expired"), Code("c")),
              StatusIs(absl::StatusCode::kNotFound, reason::kStateNotFound));
  EXPECT_THAT(store_.Complete(Hash("old-active"), Code("c")),
              StatusIs(absl::StatusCode::kFailedPrecondition, reason::kStateAlreadyUsed));
  EXPECT_THAT(store_.Complete(Hash("pending-long"), Code("c")), IsOk());
  // Sweeping again removes nothing.
  EXPECT_EQ(*store_.Sweep(cutoff), 0);
}

TEST_F(MemoryStoreTest, ConcurrentCompleteHasExactlyOneWinner) {
  constexpr int kThreads = 8;
  constexpr int kRounds = 25;
  for (int round = 0; round < kRounds; ++round) {
    const std::string id = absl::StrCat("r", round);
    InsertPending(id);
    std::promise<void> go;
    std::shared_future<void> start = go.get_future().share();
    std::atomic<int> ready{0};
    std::vector<std::future<absl::StatusOr<AuthorizationRecord>>> results;
    for (int t = 0; t < kThreads; ++t) {
      results.push_back(std::async(std::launch::async, [&, t] {
        ready.fetch_add(1);
        start.wait();
        return store_.Complete(Hash(id), Code(absl::StrCat("code-", t)));
      }));
    }
    while (ready.load() < kThreads) std::this_thread::yield();
    go.set_value();
    int winners = 0;
    std::string winning_code;
    for (int t = 0; t < kThreads; ++t) {
      auto r = results[t].get();
      if (r.ok()) {
        ++winners;
        winning_code = r->code;
      } else {
        EXPECT_THAT(r, StatusIs(absl::StatusCode::kFailedPrecondition, reason::kStateAlreadyUsed));
      }
    }
    ASSERT_EQ(winners, 1) << "round " << round;
    EXPECT_EQ(store_.Get(id)->code, winning_code);
  }
}

}  // namespace
}  // namespace leyr
