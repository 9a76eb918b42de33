// CachingStore: CallLeyr's reads of ACTIVE records stay in memory, and changes (local, announced
// by another replica, or simply older than the TTL) are seen.

#include "server/broker/caching_store.h"

#include <gtest/gtest.h>

#include "server/broker/memory_store.h"
#include "server/broker/sealer.h"
#include "tests/testing/status_matchers.h"

namespace leyr {
namespace {

using broker::v1::Authorization;
using ::leyr::testing::IsOk;

constexpr absl::Duration kTtl = absl::Milliseconds(900);

class CachingStoreTest : public ::testing::Test {
 protected:
  CachingStoreTest() : cache_(&inner_, &clock_, kTtl, [this] { return reliable_; }) {}

  // An ACTIVE record with a code, written through the cache as the broker does.
  std::string Active(const std::string& id) {
    AuthorizationRecord r;
    r.id = id;
    r.connection = "athena";
    r.emr = "athenapractice";
    r.create_time = r.update_time = clock_.Now();
    r.expire_time = clock_.Now() + absl::Minutes(10);
    EXPECT_THAT(cache_.Insert(r, "hash-" + id), IsOk());
    Completion c;
    c.code = "code-" + id;
    EXPECT_THAT(cache_.Complete("hash-" + id, c), IsOk());
    return id;
  }

  Transition Revoke() {
    Transition t;
    t.from = {Authorization::STATE_ACTIVE};
    t.to = Authorization::STATE_REVOKED;
    t.clear_code = true;
    return t;
  }

  FakeClock clock_;
  std::unique_ptr<KeyRingSealer> sealer_ = KeyRingSealer::Ephemeral();
  MemoryStore inner_{&clock_, sealer_.get()};
  bool reliable_ = true;
  CachingStore cache_;
};

TEST_F(CachingStoreTest, ActiveRecordsAreReadFromTheInnerStoreOncePerTtl) {
  std::string id = Active("a");
  for (int i = 0; i < 100; ++i) {
    auto r = cache_.Get(id);
    ASSERT_THAT(r, IsOk());
    EXPECT_EQ(r->state, Authorization::STATE_ACTIVE);
    EXPECT_EQ(r->code, "code-a");
  }
  EXPECT_EQ(cache_.inner_reads(), 1);
  clock_.Advance(kTtl);
  ASSERT_THAT(cache_.Get(id), IsOk());
  EXPECT_EQ(cache_.inner_reads(), 2);
}

TEST_F(CachingStoreTest, PendingRecordsAreNotCached) {
  AuthorizationRecord r;
  r.id = "p";
  r.create_time = r.update_time = clock_.Now();
  r.expire_time = clock_.Now() + absl::Minutes(10);
  ASSERT_THAT(cache_.Insert(r, "hash-p"), IsOk());
  ASSERT_THAT(cache_.Get("p"), IsOk());
  ASSERT_THAT(cache_.Get("p"), IsOk());
  EXPECT_EQ(cache_.inner_reads(), 2);
}

TEST_F(CachingStoreTest, ALocalChangeIsSeenAtOnce) {
  std::string id = Active("a");
  ASSERT_THAT(cache_.Get(id), IsOk());
  ASSERT_THAT(cache_.Update(id, Revoke()), IsOk());
  auto r = cache_.Get(id);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->state, Authorization::STATE_REVOKED);
}

TEST_F(CachingStoreTest, AnAnnouncedChangeOnAnotherReplicaIsSeenAfterInvalidate) {
  std::string id = Active("a");
  ASSERT_THAT(cache_.Get(id), IsOk());
  // Another replica revokes it: the shared store changes behind this cache's back.
  ASSERT_THAT(inner_.Update(id, Revoke()), IsOk());
  EXPECT_EQ(cache_.Get(id)->state, Authorization::STATE_ACTIVE);  // not announced yet
  cache_.Invalidate(id);                                           // NOTIFY arrives
  EXPECT_EQ(cache_.Get(id)->state, Authorization::STATE_REVOKED);
}

TEST_F(CachingStoreTest, ALostAnnouncementIsCoveredByTheTtl) {
  std::string id = Active("a");
  ASSERT_THAT(cache_.Get(id), IsOk());
  ASSERT_THAT(inner_.Update(id, Revoke()), IsOk());
  clock_.Advance(kTtl - absl::Milliseconds(1));
  EXPECT_EQ(cache_.Get(id)->state, Authorization::STATE_ACTIVE);
  clock_.Advance(absl::Milliseconds(1));
  EXPECT_EQ(cache_.Get(id)->state, Authorization::STATE_REVOKED);
}

TEST_F(CachingStoreTest, NothingIsCachedWhileAnnouncementsAreUnreliable) {
  std::string id = Active("a");
  ASSERT_THAT(cache_.Get(id), IsOk());
  reliable_ = false;  // the LISTEN connection is down
  ASSERT_THAT(inner_.Update(id, Revoke()), IsOk());
  EXPECT_EQ(cache_.Get(id)->state, Authorization::STATE_REVOKED);
  EXPECT_EQ(cache_.Get(id)->state, Authorization::STATE_REVOKED);
  EXPECT_EQ(cache_.inner_reads(), 3);
}

TEST_F(CachingStoreTest, InvalidateAllDropsEveryEntry) {
  Active("a");
  Active("b");
  ASSERT_THAT(cache_.Get("a"), IsOk());
  ASSERT_THAT(cache_.Get("b"), IsOk());
  cache_.Invalidate("");
  ASSERT_THAT(cache_.Get("a"), IsOk());
  ASSERT_THAT(cache_.Get("b"), IsOk());
  EXPECT_EQ(cache_.inner_reads(), 4);
}

}  // namespace
}  // namespace leyr
