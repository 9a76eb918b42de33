#ifndef LEYR_SERVER_BROKER_BROKER_H_
#define LEYR_SERVER_BROKER_BROKER_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "leyr/broker/v1/broker_service.pb.h"
#include "server/broker/events.h"
#include "server/broker/oauth.h"
#include "server/broker/policy.h"
#include "server/broker/settings.h"
#include "server/broker/store.h"
#include "server/common/clock.h"
#include "server/common/random.h"
#include "server/leyr/call_policy.h"
#include "server/leyr/leyr_client.h"
#include "server/broker/broker_metrics.h"

namespace leyr {

// Who is calling: filled by the authenticator (server/broker/auth.h) from the mTLS certificate
// SAN or a bearer token.
struct Caller {
  std::string identity = "anonymous";
  // What the caller may do; nullptr when no policy is configured (plaintext development): then
  // every caller has full access.
  std::shared_ptr<const CallerPermissions> permissions;
};

// What the broker needs from the outside, injected so that tests control time, randomness,
// storage and Leyr.
struct BrokerDeps {
  Clock* clock = nullptr;
  Random* random = nullptr;
  Store* store = nullptr;
  LeyrClient* leyr = nullptr;
  AuthorizationEvents* events = nullptr;
  Scheduler* scheduler = nullptr;
  BrokerMetrics* metrics = nullptr;  // optional
};

// A wait in progress; Cancel() ends it with CANCELLED (used when the RPC is cancelled).
class PendingWait {
 public:
  virtual ~PendingWait() = default;
  virtual void Cancel() = 0;
};

// The broker's logic, free of gRPC: plain inputs, absl::Status outputs (TF Serving's *_impl
// split). BrokerServiceImpl only translates.
class Broker {
 public:
  Broker(BrokerSettings settings, BrokerDeps deps);

  struct BeginResult {
    AuthorizationRecord record;
    std::string authorize_uri;
  };
  absl::StatusOr<BeginResult> Begin(const Caller& caller,
                                    const broker::v1::BeginAuthorizationRequest& request);

  struct CompleteResult {
    AuthorizationRecord record;
    std::string next_uri;
  };
  // Consumes the state, records the outcome, and makes the activation call to Leyr before
  // `done` runs (on any thread).
  void Complete(const Caller& caller, const broker::v1::CompleteAuthorizationRequest& request,
                absl::Time deadline, std::function<void(absl::StatusOr<CompleteResult>)> done);

  absl::StatusOr<AuthorizationRecord> Get(const Caller& caller, absl::string_view name);

  // Calls `done` once, when the authorization leaves PENDING, when `timeout` (capped at 15
  // minutes) passes, or when it expires. May call `done` before returning.
  std::shared_ptr<PendingWait> Wait(const Caller& caller, absl::string_view name,
                                    absl::Duration timeout,
                                    std::function<void(absl::StatusOr<AuthorizationRecord>)> done);

  struct ListResult {
    std::vector<AuthorizationRecord> records;
    std::string next_page_token;
  };
  absl::StatusOr<ListResult> List(const Caller& caller,
                                  const broker::v1::ListAuthorizationsRequest& request);

  absl::StatusOr<AuthorizationRecord> Revoke(const Caller& caller, absl::string_view name);

  // Sends the request to Leyr with the authorization's credentials; `done` runs on any thread.
  // `connection`, when given, receives the authorization's connection (for the RPC's log line)
  // before the request is sent.
  void CallLeyr(const Caller& caller, const broker::v1::CallLeyrRequest& request,
                absl::Time deadline,
                std::function<void(absl::StatusOr<broker::v1::CallLeyrResponse>)> done,
                std::string* connection = nullptr);

  // Removes ended authorizations older than the retention period.
  void Sweep();

  // Shutting down: waits in progress and new ones whose authorization is still PENDING end
  // with UNAVAILABLE (SHUTTING_DOWN), so that callers retry on another replica instead of
  // being cut off at the end of the grace period. Everything else keeps working.
  void StartDraining();

  const BrokerSettings& settings() const { return settings_; }

  // The public view of a record: everything but the code.
  static void ToProto(const AuthorizationRecord& record, broker::v1::Authorization* out);

 private:
  // "authorizations/{id}" → id, or INVALID_ARGUMENT (INVALID_NAME).
  absl::StatusOr<std::string> ParseName(absl::string_view name, absl::string_view field) const;
  // Writes one audit line for a state change and, with `notify`, wakes waiters.
  void Changed(const AuthorizationRecord& record, AuthState from, bool notify = true);
  void Activate(AuthorizationRecord record, absl::Time deadline,
                std::function<void(absl::StatusOr<CompleteResult>)> done);
  absl::StatusOr<std::string> NextUri(const AuthorizationRecord& record) const;

  const BrokerSettings settings_;
  const BrokerDeps deps_;
  // Per connection name, its authorize URI around the state (encoded once, not per Begin).
  const absl::flat_hash_map<std::string, AuthorizeUriParts> authorize_uri_parts_;
  const CallPolicyOptions call_policy_;
  std::atomic<bool> draining_{false};
};

}  // namespace leyr

#endif  // LEYR_SERVER_BROKER_BROKER_H_
