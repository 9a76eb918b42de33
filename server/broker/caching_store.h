#ifndef LEYR_SERVER_BROKER_CACHING_STORE_H_
#define LEYR_SERVER_BROKER_CACHING_STORE_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "server/broker/store.h"
#include "server/common/clock.h"

namespace leyr {

// Keeps ACTIVE authorizations read from a shared store (PostgreSQL) for a short time, so that
// CallLeyr for a known authorization does not cost a database round trip per call.
//
// An entry is dropped when this process changes the record, when any replica announces a change
// (Invalidate, fed by LISTEN/NOTIFY through AuthorizationEvents), and at the latest after `ttl`
// (at most a second), so a revoke or a re-authorization on another replica is seen here within
// `ttl` even if an announcement is lost. Nothing is cached while `announcements_reliable` says
// false (the LISTEN connection is down).
class CachingStore final : public Store {
 public:
  CachingStore(Store* inner, Clock* clock, absl::Duration ttl,
               std::function<bool()> announcements_reliable);

  absl::Status Insert(const AuthorizationRecord& record, const std::string& state_hash) override;
  absl::StatusOr<AuthorizationRecord> Get(absl::string_view id) override;
  absl::StatusOr<AuthorizationRecord> Complete(const std::string& state_hash,
                                               const Completion& completion) override;
  absl::StatusOr<AuthorizationRecord> Update(absl::string_view id,
                                             const Transition& transition) override;
  absl::StatusOr<std::vector<AuthorizationRecord>> List(const ListQuery& query) override;
  absl::StatusOr<int> Sweep(absl::Time cutoff) override;
  absl::StatusOr<std::map<AuthState, int64_t>> CountByState() override;

  // Drops `id` ("" = every entry).
  void Invalidate(absl::string_view id);

  // Reads that reached the inner store (for tests and metrics).
  int64_t inner_reads();

 private:
  struct Entry {
    AuthorizationRecord record;
    absl::Time expires;
  };

  Store* inner_;
  Clock* clock_;
  absl::Duration ttl_;
  std::function<bool()> announcements_reliable_;
  absl::Mutex mu_;
  // Bumped by every invalidation: a read that started before one must not fill the cache.
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t inner_reads_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
};

}  // namespace leyr

#endif  // LEYR_SERVER_BROKER_CACHING_STORE_H_
