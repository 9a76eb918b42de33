#ifndef LEYR_CLIENT_BROKER_CLIENT_H_
#define LEYR_CLIENT_BROKER_CLIENT_H_

#include <functional>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/broker_connection.h"
#include "leyr/broker/v1/broker_service.pb.h"
#include "server/broker/tls.h"

namespace leyr {

// Per-call options.
struct CallOptions {
  // Deadline of each attempt.
  absl::Duration timeout = absl::Seconds(30);
  // Attempts in all (1 = no retry). Only UNAVAILABLE is retried, and only for calls that are
  // safe to repeat: every RPC but CallLeyr, and CallLeyr with GET, HEAD, PUT or DELETE.
  int max_attempts = 3;
  // Exponential backoff between attempts, with full jitter.
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(2);
};

// A synchronous client for BrokerService: every method returns absl::StatusOr, with the broker's
// ErrorInfo reason kept (leyr::ReasonOf). Layered over a mockable BrokerConnection.
class BrokerClient {
 public:
  using Sleeper = std::function<void(absl::Duration)>;

  // `sleep` waits between retries (tests pass a recorder instead of sleeping).
  explicit BrokerClient(std::shared_ptr<BrokerConnection> connection, Sleeper sleep = nullptr);
  explicit BrokerClient(std::shared_ptr<grpc::Channel> channel);
  // A plaintext channel to `target` ("127.0.0.1:50051", "unix:/path").
  static std::unique_ptr<BrokerClient> ConnectInsecure(const std::string& target);
  // A channel to `target` with TLS (tls.ca_file), mTLS (tls.cert_file, tls.key_file) and/or a
  // bearer token (tls.token_file); plaintext when tls.ca_file is empty. Reads the files now.
  static absl::StatusOr<std::unique_ptr<BrokerClient>> Connect(const std::string& target,
                                                               const ClientTlsSettings& tls);

  absl::StatusOr<broker::v1::BeginAuthorizationResponse> Begin(
      const broker::v1::BeginAuthorizationRequest& request, const CallOptions& options = {});
  absl::StatusOr<broker::v1::Authorization> Get(const std::string& name,
                                                const CallOptions& options = {});
  // One long poll: returns when the authorization leaves PENDING or after `wait` (still PENDING).
  absl::StatusOr<broker::v1::Authorization> Wait(const std::string& name, absl::Duration wait);
  // Waits up to `total` for the authorization to leave PENDING, in long polls of at most
  // `poll` each (so that `progress` can be called between them, e.g. for a terminal spinner).
  // Returns the authorization as it is at the end (PENDING when `total` passed).
  absl::StatusOr<broker::v1::Authorization> WaitUntilDone(
      const std::string& name, absl::Duration total, absl::Duration poll = absl::Seconds(60),
      const std::function<void(absl::Duration waited)>& progress = nullptr);
  absl::StatusOr<broker::v1::ListAuthorizationsResponse> List(
      const broker::v1::ListAuthorizationsRequest& request, const CallOptions& options = {});
  absl::StatusOr<broker::v1::Authorization> Revoke(const std::string& name,
                                                   const CallOptions& options = {});
  absl::StatusOr<broker::v1::CallLeyrResponse> CallLeyr(const broker::v1::CallLeyrRequest& request,
                                                        const CallOptions& options = {});

 private:
  // Runs `attempt` until it succeeds, fails with something other than UNAVAILABLE, is not
  // `retryable`, or options.max_attempts is reached.
  template <typename T>
  absl::StatusOr<T> Retry(const CallOptions& options, bool retryable,
                          const std::function<absl::StatusOr<T>(absl::Time deadline)>& attempt);

  std::shared_ptr<BrokerConnection> connection_;
  Sleeper sleep_;
};

}  // namespace leyr

#endif  // LEYR_CLIENT_BROKER_CLIENT_H_
