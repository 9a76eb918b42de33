// The Store contract, run against every implementation: MemoryStore and PostgresStore (on the
// throw-away cluster of the CTest fixture `postgres`). Every operation, expiry with a FakeClock,
// single use under concurrency, paging and sweeping.

#include <atomic>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "server/broker/memory_store.h"
#include "server/broker/postgres_store.h"
#include "server/broker/sealer.h"
#include "server/common/clock.h"
#include "server/common/status_util.h"
#include "tests/store/pg_test_database.h"
#include "tests/testing/status_matchers.h"

namespace leyr {
namespace {

using broker::v1::Authorization;
using ::leyr::testing::IsOk;
using ::leyr::testing::PgTestDatabase;
using ::leyr::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

enum class Backend { kMemory, kPostgres };

std::string BackendName(const ::testing::TestParamInfo<Backend>& info) {
  return info.param == Backend::kMemory ? "Memory" : "Postgres";
}

class StoreContractTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == Backend::kMemory) {
      store_ = std::make_unique<MemoryStore>(&clock_, sealer_.get());
      return;
    }
    db_ = std::make_unique<PgTestDatabase>();
    if (!db_->available()) {
      if (PgTestDatabase::required()) {
        FAIL() << "PostgreSQL test cluster unavailable: " << db_->error();
      }
      GTEST_SKIP() << "no PostgreSQL test cluster (run through ctest, or set LEYR_PG_INFO_DIR "
                      "to a directory made by scripts/pg-test-cluster.sh start)";
    }
    PostgresOptions options = db_->Options();
    options.pool_size = 8;  // the concurrency test's threads all get a connection
    options.sealer = sealer_.get();
    auto store = PostgresStore::Create(options, &clock_);
    ASSERT_THAT(store, IsOk());
    store_ = std::move(*store);
  }

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
    ASSERT_THAT(store_->Insert(Pending(id, ttl), Hash(id)), IsOk());
  }
  static Completion Code(const std::string& code) { return Completion{code, "", ""}; }
  static Transition Revoke(std::vector<AuthState> from) {
    Transition t;
    t.from = std::move(from);
    t.to = Authorization::STATE_REVOKED;
    t.clear_code = true;
    return t;
  }

  FakeClock clock_;
  std::unique_ptr<KeyRingSealer> sealer_ = KeyRingSealer::Ephemeral();
  std::unique_ptr<PgTestDatabase> db_;
  std::unique_ptr<Store> store_;
};

std::vector<std::string> Ids(const std::vector<AuthorizationRecord>& records) {
  std::vector<std::string> ids;
  for (const auto& r : records) ids.push_back(r.id);
  return ids;
}

TEST_P(StoreContractTest, InsertAndGetRoundTripEveryField) {
  AuthorizationRecord r = Pending("a");
  r.labels = {{"patient", "p1"}, {"quote\"back\\slash", "ünïcode \t tab"}, {"empty", ""}};
  r.create_time += absl::Nanoseconds(123);  // nanoseconds survive
  r.update_time = r.create_time;
  ASSERT_THAT(store_->Insert(r, Hash("a")), IsOk());
  auto got = store_->Get("a");
  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(got->id, "a");
  EXPECT_EQ(got->state, Authorization::STATE_PENDING);
  EXPECT_EQ(got->connection, "athena");
  EXPECT_EQ(got->emr, "athenapractice");
  EXPECT_EQ(got->owner, "anonymous");
  EXPECT_EQ(got->return_uri, "https://app.example.com/done");
  EXPECT_EQ(got->labels, r.labels);
  EXPECT_EQ(got->create_time, r.create_time);
  EXPECT_EQ(got->update_time, r.update_time);
  EXPECT_EQ(got->expire_time, clock_.Now() + absl::Minutes(10));
  EXPECT_TRUE(got->code.empty());
  EXPECT_FALSE(got->activated);
  EXPECT_THAT(store_->Get("b"),
              StatusIs(absl::StatusCode::kNotFound, reason::kAuthorizationNotFound));
}

TEST_P(StoreContractTest, InsertRefusesCollisions) {
  InsertPending("a");
  EXPECT_THAT(store_->Insert(Pending("a"), "other-hash"),
              StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_THAT(store_->Insert(Pending("b"), Hash("a")), StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_THAT(store_->Get("b"), StatusIs(absl::StatusCode::kNotFound));
}

TEST_P(StoreContractTest, CompleteWithCode) {
  InsertPending("a");
  clock_.Advance(absl::Seconds(5));
  auto done = store_->Complete(Hash("a"), Code("the-code"));
  ASSERT_THAT(done, IsOk());
  EXPECT_EQ(done->id, "a");
  EXPECT_EQ(done->state, Authorization::STATE_ACTIVE);
  EXPECT_EQ(done->code, "the-code");
  EXPECT_EQ(done->update_time, clock_.Now());
  EXPECT_EQ(done->labels.at("patient"), "p1");
  auto got = store_->Get("a");
  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(got->state, Authorization::STATE_ACTIVE);
  EXPECT_EQ(got->code, "the-code");
}

TEST_P(StoreContractTest, CompleteWithErrorIsDenied) {
  InsertPending("a");
  auto done = store_->Complete(Hash("a"), Completion{"", "access_denied", "The user said no"});
  ASSERT_THAT(done, IsOk());
  EXPECT_EQ(done->state, Authorization::STATE_DENIED);
  EXPECT_EQ(done->denial_error, "access_denied");
  EXPECT_EQ(done->denial_description, "The user said no");
  EXPECT_TRUE(done->code.empty());
  auto got = store_->Get("a");
  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(got->state, Authorization::STATE_DENIED);
  EXPECT_EQ(got->denial_error, "access_denied");
}

TEST_P(StoreContractTest, UnknownStateAndReplay) {
  InsertPending("a");
  EXPECT_THAT(store_->Complete("hash-nope", Code("c")),
              StatusIs(absl::StatusCode::kNotFound, reason::kStateNotFound));
  ASSERT_THAT(store_->Complete(Hash("a"), Code("c1")), IsOk());
  EXPECT_THAT(store_->Complete(Hash("a"), Code("c2")),
              StatusIs(absl::StatusCode::kFailedPrecondition, reason::kStateAlreadyUsed));
  EXPECT_THAT(store_->Complete(Hash("a"), Completion{"", "access_denied", ""}),
              StatusIs(absl::StatusCode::kFailedPrecondition, reason::kStateAlreadyUsed));
  // The replay changed nothing.
  EXPECT_EQ(store_->Get("a")->code, "c1");
  EXPECT_EQ(store_->Get("a")->state, Authorization::STATE_ACTIVE);
}

TEST_P(StoreContractTest, ExpiryWithTheFakeClock) {
  InsertPending("a", absl::Minutes(10));
  const absl::Time expire = clock_.Now() + absl::Minutes(10);
  clock_.Advance(absl::Minutes(10) - absl::Seconds(1));
  EXPECT_EQ(store_->Get("a")->state, Authorization::STATE_PENDING);
  clock_.Advance(absl::Seconds(2));
  auto got = store_->Get("a");
  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(got->state, Authorization::STATE_EXPIRED);
  EXPECT_EQ(got->update_time, expire);
  EXPECT_THAT(store_->Complete(Hash("a"), Code("late")),
              StatusIs(absl::StatusCode::kFailedPrecondition, reason::kAuthorizationExpired));
  EXPECT_EQ(store_->Get("a")->state, Authorization::STATE_EXPIRED);
  EXPECT_EQ(store_->Get("a")->update_time, expire);
  EXPECT_TRUE(store_->Get("a")->code.empty());
  // And the state stays used.
  EXPECT_THAT(store_->Complete(Hash("a"), Code("late")),
              StatusIs(absl::StatusCode::kFailedPrecondition, reason::kStateAlreadyUsed));
}

TEST_P(StoreContractTest, ExpiryExactlyAtExpireTime) {
  InsertPending("a", absl::Seconds(30));
  clock_.Advance(absl::Seconds(30));
  EXPECT_EQ(store_->Get("a")->state, Authorization::STATE_EXPIRED);
  EXPECT_THAT(store_->Complete(Hash("a"), Code("c")),
              StatusIs(absl::StatusCode::kFailedPrecondition, reason::kAuthorizationExpired));
}

TEST_P(StoreContractTest, OneNanosecondBeforeExpiryStillCompletes) {
  InsertPending("a", absl::Seconds(30));
  clock_.Advance(absl::Seconds(30) - absl::Nanoseconds(1));
  EXPECT_THAT(store_->Complete(Hash("a"), Code("c")), IsOk());
}

TEST_P(StoreContractTest, CompleteAfterRevokeIsNotActive) {
  InsertPending("a");
  ASSERT_THAT(store_->Update("a", Revoke({Authorization::STATE_PENDING})), IsOk());
  EXPECT_THAT(store_->Complete(Hash("a"), Code("c")),
              StatusIs(absl::StatusCode::kFailedPrecondition, reason::kAuthorizationNotActive));
  EXPECT_EQ(store_->Get("a")->state, Authorization::STATE_REVOKED);
  EXPECT_TRUE(store_->Get("a")->code.empty());
  EXPECT_THAT(store_->Complete(Hash("a"), Code("c")),
              StatusIs(absl::StatusCode::kFailedPrecondition, reason::kStateAlreadyUsed));
}

TEST_P(StoreContractTest, UpdateChecksTheFromState) {
  InsertPending("a");
  Transition to_reauth;
  to_reauth.from = {Authorization::STATE_ACTIVE};
  to_reauth.to = Authorization::STATE_REAUTHORIZATION_REQUIRED;
  // PENDING is not in `from`.
  EXPECT_THAT(store_->Update("a", to_reauth),
              StatusIs(absl::StatusCode::kFailedPrecondition, reason::kAuthorizationNotActive));
  EXPECT_EQ(store_->Get("a")->state, Authorization::STATE_PENDING);
  EXPECT_THAT(store_->Update("nope", to_reauth),
              StatusIs(absl::StatusCode::kNotFound, reason::kAuthorizationNotFound));
  Transition none;  // an empty `from` allows nothing
  EXPECT_THAT(store_->Update("a", none),
              StatusIs(absl::StatusCode::kFailedPrecondition, reason::kAuthorizationNotActive));

  ASSERT_THAT(store_->Complete(Hash("a"), Code("c")), IsOk());
  clock_.Advance(absl::Seconds(3));
  Transition activate;
  activate.from = {Authorization::STATE_ACTIVE};
  activate.activated = true;
  auto activated = store_->Update("a", activate);
  ASSERT_THAT(activated, IsOk());
  EXPECT_TRUE(activated->activated);
  EXPECT_EQ(activated->state, Authorization::STATE_ACTIVE);  // `to` unset: state unchanged
  EXPECT_EQ(activated->update_time, clock_.Now());
  EXPECT_EQ(activated->code, "c");
  EXPECT_TRUE(store_->Get("a")->activated);

  auto reauth = store_->Update("a", to_reauth);
  ASSERT_THAT(reauth, IsOk());
  EXPECT_EQ(reauth->state, Authorization::STATE_REAUTHORIZATION_REQUIRED);
  EXPECT_EQ(reauth->code, "c");  // kept until revoked
  // A second move from ACTIVE fails: it is no longer ACTIVE.
  EXPECT_THAT(store_->Update("a", to_reauth),
              StatusIs(absl::StatusCode::kFailedPrecondition, reason::kAuthorizationNotActive));

  auto revoked = store_->Update(
      "a", Revoke({Authorization::STATE_ACTIVE, Authorization::STATE_REAUTHORIZATION_REQUIRED}));
  ASSERT_THAT(revoked, IsOk());
  EXPECT_EQ(revoked->state, Authorization::STATE_REVOKED);
  EXPECT_TRUE(revoked->code.empty());
  EXPECT_TRUE(store_->Get("a")->code.empty());
  EXPECT_EQ(store_->Get("a")->state, Authorization::STATE_REVOKED);
}

TEST_P(StoreContractTest, UpdateSeesExpiry) {
  InsertPending("a", absl::Minutes(1));
  clock_.Advance(absl::Minutes(2));
  EXPECT_THAT(store_->Update("a", Revoke({Authorization::STATE_PENDING})),
              StatusIs(absl::StatusCode::kFailedPrecondition, reason::kAuthorizationNotActive));
  EXPECT_EQ(store_->Get("a")->state, Authorization::STATE_EXPIRED);
  // A transition from EXPIRED applies to an expired record.
  auto revoked = store_->Update("a", Revoke({Authorization::STATE_EXPIRED}));
  ASSERT_THAT(revoked, IsOk());
  EXPECT_EQ(revoked->state, Authorization::STATE_REVOKED);
  EXPECT_EQ(revoked->update_time, clock_.Now());
}

TEST_P(StoreContractTest, ListNewestFirstWithPaging) {
  for (const char* id : {"r1", "r2", "r3", "r4", "r5"}) {
    InsertPending(id);
    clock_.Advance(absl::Seconds(1));
  }
  ListQuery q;
  q.page_size = 2;
  auto page1 = store_->List(q);
  ASSERT_THAT(page1, IsOk());
  EXPECT_THAT(Ids(*page1), ElementsAre("r5", "r4"));
  q.after = std::make_pair(page1->back().create_time, page1->back().id);
  auto page2 = store_->List(q);
  ASSERT_THAT(page2, IsOk());
  EXPECT_THAT(Ids(*page2), ElementsAre("r3", "r2"));
  q.after = std::make_pair(page2->back().create_time, page2->back().id);
  auto page3 = store_->List(q);
  ASSERT_THAT(page3, IsOk());
  EXPECT_THAT(Ids(*page3), ElementsAre("r1"));
  q.after = std::make_pair(page3->back().create_time, page3->back().id);
  EXPECT_THAT(*store_->List(q), IsEmpty());

  ListQuery all;
  all.page_size = 100;
  EXPECT_THAT(Ids(*store_->List(all)), ElementsAre("r5", "r4", "r3", "r2", "r1"));
  ListQuery none;
  none.page_size = 0;
  EXPECT_THAT(*store_->List(none), IsEmpty());
}

TEST_P(StoreContractTest, ListTiesBrokenByIdBytewiseAndNoRecordSkippedOrRepeated) {
  // Same create_time for all: order by id descending (bytewise: "B" < "a"), bounds exclusive.
  for (const char* id : {"b", "d", "a", "c", "B", "_"}) InsertPending(id);
  ListQuery q;
  q.page_size = 4;
  auto page1 = store_->List(q);
  ASSERT_THAT(page1, IsOk());
  EXPECT_THAT(Ids(*page1), ElementsAre("d", "c", "b", "a"));
  q.after = std::make_pair(page1->back().create_time, page1->back().id);
  EXPECT_THAT(Ids(*store_->List(q)), ElementsAre("_", "B"));
}

TEST_P(StoreContractTest, ListFiltersAndAppliesExpiry) {
  InsertPending("a", absl::Minutes(1));
  AuthorizationRecord other = Pending("b");
  other.connection = "other";
  other.owner = "someone";
  ASSERT_THAT(store_->Insert(other, Hash("b")), IsOk());
  clock_.Advance(absl::Minutes(2));
  ListQuery by_connection;
  by_connection.connection = "athena";
  auto listed = store_->List(by_connection);
  ASSERT_THAT(listed, IsOk());
  ASSERT_THAT(Ids(*listed), ElementsAre("a"));
  EXPECT_EQ((*listed)[0].state, Authorization::STATE_EXPIRED);
  ListQuery by_owner;
  by_owner.owner = "someone";
  EXPECT_THAT(Ids(*store_->List(by_owner)), ElementsAre("b"));
  ListQuery both;
  both.owner = "someone";
  both.connection = "athena";
  EXPECT_THAT(*store_->List(both), IsEmpty());
}

TEST_P(StoreContractTest, ListReturnsCodes) {
  InsertPending("a");
  ASSERT_THAT(store_->Complete(Hash("a"), Code("code-a")), IsOk());
  auto listed = store_->List(ListQuery{});
  ASSERT_THAT(listed, IsOk());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].code, "code-a");
}

TEST_P(StoreContractTest, SweepRemovesOnlyEndedRecordsOlderThanTheCutoff) {
  // Old records (updated at t0).
  InsertPending("old-denied");
  ASSERT_THAT(store_->Complete(Hash("old-denied"), Completion{"", "access_denied", ""}), IsOk());
  InsertPending("old-active");
  ASSERT_THAT(store_->Complete(Hash("old-active"), Code("c")), IsOk());
  InsertPending("old-revoked");
  ASSERT_THAT(store_->Update("old-revoked", Revoke({Authorization::STATE_PENDING})), IsOk());
  InsertPending("old-expired", absl::Seconds(10));  // expires at t0 + 10s
  InsertPending("pending-long", absl::Hours(1));    // still pending at the sweep
  clock_.Advance(absl::Minutes(30));
  const absl::Time cutoff = clock_.Now();
  // Recent ended records (after the cutoff), one of them expired after the cutoff.
  clock_.Advance(absl::Seconds(1));
  InsertPending("new-denied");
  ASSERT_THAT(store_->Complete(Hash("new-denied"), Completion{"", "access_denied", ""}), IsOk());
  InsertPending("new-expired", absl::Seconds(1));
  clock_.Advance(absl::Seconds(2));

  auto removed = store_->Sweep(cutoff);
  ASSERT_THAT(removed, IsOk());
  EXPECT_EQ(*removed, 3);
  EXPECT_THAT(store_->Get("old-denied"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store_->Get("old-revoked"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store_->Get("old-expired"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store_->Get("old-active"), IsOk());
  EXPECT_THAT(store_->Get("pending-long"), IsOk());
  EXPECT_THAT(store_->Get("new-denied"), IsOk());
  EXPECT_EQ(store_->Get("new-expired")->state, Authorization::STATE_EXPIRED);
  // The swept records' state hashes went with them; the others' stay (used or not).
  EXPECT_THAT(store_->Complete(Hash("old-expired"), Code("c")),
              StatusIs(absl::StatusCode::kNotFound, reason::kStateNotFound));
  EXPECT_THAT(store_->Complete(Hash("old-active"), Code("c")),
              StatusIs(absl::StatusCode::kFailedPrecondition, reason::kStateAlreadyUsed));
  EXPECT_THAT(store_->Complete(Hash("pending-long"), Code("c")), IsOk());
  // Sweeping again removes nothing.
  EXPECT_EQ(*store_->Sweep(cutoff), 0);
}

TEST_P(StoreContractTest, CountByStateAppliesExpiry) {
  auto empty = store_->CountByState();
  ASSERT_THAT(empty, IsOk());
  EXPECT_TRUE(empty->empty());
  InsertPending("a", absl::Minutes(1));
  InsertPending("b", absl::Minutes(10));
  InsertPending("c", absl::Minutes(10));
  InsertPending("d", absl::Minutes(10));
  ASSERT_THAT(store_->Complete(Hash("b"), Code("code-b")), IsOk());
  ASSERT_THAT(store_->Complete(Hash("c"), Completion{"", "access_denied", ""}), IsOk());
  ASSERT_THAT(store_->Update("d", Revoke({Authorization::STATE_PENDING})), IsOk());
  using Counts = std::map<AuthState, int64_t>;
  auto counts = store_->CountByState();
  ASSERT_THAT(counts, IsOk());
  EXPECT_EQ(*counts, (Counts{{Authorization::STATE_PENDING, 1},
                             {Authorization::STATE_ACTIVE, 1},
                             {Authorization::STATE_DENIED, 1},
                             {Authorization::STATE_REVOKED, 1}}));
  clock_.Advance(absl::Minutes(2));  // "a" is past its expiry without anyone reading it
  counts = store_->CountByState();
  ASSERT_THAT(counts, IsOk());
  EXPECT_EQ(*counts, (Counts{{Authorization::STATE_EXPIRED, 1},
                             {Authorization::STATE_ACTIVE, 1},
                             {Authorization::STATE_DENIED, 1},
                             {Authorization::STATE_REVOKED, 1}}));
}

TEST_P(StoreContractTest, ConcurrentCompleteHasExactlyOneWinner) {
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
        // Half grant, half deny: whichever wins decides the outcome.
        return t % 2 == 0 ? store_->Complete(Hash(id), Code(absl::StrCat("code-", t)))
                          : store_->Complete(Hash(id), Completion{"", "access_denied", ""});
      }));
    }
    while (ready.load() < kThreads) std::this_thread::yield();
    go.set_value();
    int winners = 0;
    AuthorizationRecord winner;
    for (int t = 0; t < kThreads; ++t) {
      auto r = results[t].get();
      if (r.ok()) {
        ++winners;
        winner = *r;
      } else {
        EXPECT_THAT(r, StatusIs(absl::StatusCode::kFailedPrecondition, reason::kStateAlreadyUsed));
      }
    }
    ASSERT_EQ(winners, 1) << "round " << round;
    auto stored = store_->Get(id);
    ASSERT_THAT(stored, IsOk());
    EXPECT_EQ(stored->state, winner.state);
    EXPECT_EQ(stored->code, winner.code);
  }
}

INSTANTIATE_TEST_SUITE_P(Stores, StoreContractTest,
                         ::testing::Values(Backend::kMemory, Backend::kPostgres), BackendName);

}  // namespace
}  // namespace leyr
