#ifndef LEYR_SERVER_BROKER_MEMORY_STORE_H_
#define LEYR_SERVER_BROKER_MEMORY_STORE_H_

#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "server/broker/sealer.h"
#include "server/broker/store.h"
#include "server/common/clock.h"

namespace leyr {

// The embedded store: one process, development and tests. Everything is lost on restart.
// Codes are kept only sealed by `sealer` (with the authorization id as associated data) and
// opened when a record is read.
class MemoryStore final : public Store {
 public:
  MemoryStore(Clock* clock, Sealer* sealer) : clock_(clock), sealer_(sealer) {}

  absl::Status Insert(const AuthorizationRecord& record, const std::string& state_hash) override;
  absl::StatusOr<AuthorizationRecord> Get(absl::string_view id) override;
  absl::StatusOr<AuthorizationRecord> Complete(const std::string& state_hash,
                                               const Completion& completion) override;
  absl::StatusOr<AuthorizationRecord> Update(absl::string_view id,
                                             const Transition& transition) override;
  absl::StatusOr<std::vector<AuthorizationRecord>> List(const ListQuery& query) override;
  absl::StatusOr<int> Sweep(absl::Time cutoff) override;
  absl::StatusOr<std::map<AuthState, int64_t>> CountByState() override;

  // The bytes kept for a record's code ("" when none), for tests of the sealing.
  std::string SealedCodeForTesting(absl::string_view id);
  // Replaces them, for tests that tamper with stored bytes.
  void SetSealedCodeForTesting(absl::string_view id, std::string sealed);

 private:
  struct StateEntry {
    std::string id;
    bool consumed = false;
  };
  // Turns a PENDING record past its expiry into EXPIRED. Requires mu_.
  void ApplyExpiry(AuthorizationRecord& record, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A copy of a stored record with its code opened.
  absl::StatusOr<AuthorizationRecord> Opened(const AuthorizationRecord& stored);

  Clock* clock_;
  Sealer* sealer_;
  absl::Mutex mu_;
  // `code` holds the sealed bytes.
  absl::flat_hash_map<std::string, AuthorizationRecord> records_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, StateEntry> states_ ABSL_GUARDED_BY(mu_);
};

}  // namespace leyr

#endif  // LEYR_SERVER_BROKER_MEMORY_STORE_H_
