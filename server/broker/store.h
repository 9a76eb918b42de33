#ifndef LEYR_SERVER_BROKER_STORE_H_
#define LEYR_SERVER_BROKER_STORE_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "leyr/broker/v1/authorization.pb.h"

namespace leyr {

using AuthState = broker::v1::Authorization::State;

// What the broker keeps per authorization. `code` is a secret: it never leaves the broker except
// as the x-leyr-emr-oauth-code header to Leyr.
struct AuthorizationRecord {
  std::string id;  // the {authorization_id} of "authorizations/{authorization_id}"
  std::string connection;
  std::string emr;
  AuthState state = broker::v1::Authorization::STATE_PENDING;
  std::map<std::string, std::string> labels;
  std::string return_uri;
  std::string owner;  // the caller that began it (caller identity seam)
  absl::Time create_time;
  absl::Time update_time;
  absl::Time expire_time;  // when a PENDING authorization's state stops being accepted
  std::string code;        // set while ACTIVE or REAUTHORIZATION_REQUIRED
  std::string denial_error;
  std::string denial_description;
  bool activated = false;
};

// athena's answer for one state: a code, or an error.
struct Completion {
  std::string code;
  std::string error;
  std::string error_description;
};

// A conditional update: applied only when the record's state is one of `from`.
struct Transition {
  std::vector<AuthState> from;
  std::optional<AuthState> to;
  std::optional<bool> activated;
  bool clear_code = false;
};

struct ListQuery {
  std::string connection;  // "" = all
  std::string owner;       // "" = all
  int page_size = 100;
  // Continue after this position (newest first): exclusive bound from the previous page.
  std::optional<std::pair<absl::Time, std::string>> after;
};

// Where authorizations live. Implementations: MemoryStore (default); PostgreSQL later.
// Every read applies expiry: a PENDING record past its expire_time reads as EXPIRED.
class Store {
 public:
  virtual ~Store() = default;

  // Adds a new PENDING record and its state's hash (never the state itself).
  virtual absl::Status Insert(const AuthorizationRecord& record, const std::string& state_hash) = 0;

  // NOT_FOUND (AUTHORIZATION_NOT_FOUND) when absent.
  virtual absl::StatusOr<AuthorizationRecord> Get(absl::string_view id) = 0;

  // Consumes the state with this hash, atomically and exactly once, and records the outcome:
  // ACTIVE with the code, or DENIED with the error. Errors: STATE_NOT_FOUND, STATE_ALREADY_USED,
  // AUTHORIZATION_EXPIRED, AUTHORIZATION_NOT_ACTIVE (revoked while pending).
  virtual absl::StatusOr<AuthorizationRecord> Complete(const std::string& state_hash,
                                                       const Completion& completion) = 0;

  // Applies `transition` when the record's state is in `from`; FAILED_PRECONDITION
  // (AUTHORIZATION_NOT_ACTIVE) otherwise. Returns the record after the change.
  virtual absl::StatusOr<AuthorizationRecord> Update(absl::string_view id,
                                                     const Transition& transition) = 0;

  // Newest first.
  virtual absl::StatusOr<std::vector<AuthorizationRecord>> List(const ListQuery& query) = 0;

  // Removes ended records (denied, expired, revoked) last updated before `cutoff`, and the
  // state hashes of records that no longer exist. Returns how many records were removed.
  virtual absl::StatusOr<int> Sweep(absl::Time cutoff) = 0;

  // How many records are in each state now (expiry applied), for the authorizations gauge.
  // States without records are absent.
  virtual absl::StatusOr<std::map<AuthState, int64_t>> CountByState() = 0;
};

// True for states an authorization never leaves.
bool IsEnded(AuthState state);

}  // namespace leyr

#endif  // LEYR_SERVER_BROKER_STORE_H_
