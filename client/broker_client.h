#ifndef LEYR_CLIENT_BROKER_CLIENT_H_
#define LEYR_CLIENT_BROKER_CLIENT_H_

#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "leyr/broker/v1/broker_service.grpc.pb.h"
#include "server/broker/tls.h"

namespace leyr {

// Per-call options.
struct CallOptions {
  absl::Duration timeout = absl::Seconds(30);
};

// A small synchronous client for BrokerService: every method returns absl::StatusOr, with the
// broker's ErrorInfo reason kept (leyr::ReasonOf). (The full client library with retries, TLS and
// a mockable connection is a later issue; this is its seed.)
class BrokerClient {
 public:
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
  // Waits up to `wait` for the authorization to leave PENDING.
  absl::StatusOr<broker::v1::Authorization> Wait(const std::string& name, absl::Duration wait);
  absl::StatusOr<broker::v1::ListAuthorizationsResponse> List(
      const broker::v1::ListAuthorizationsRequest& request, const CallOptions& options = {});
  absl::StatusOr<broker::v1::Authorization> Revoke(const std::string& name,
                                                   const CallOptions& options = {});
  absl::StatusOr<broker::v1::CallLeyrResponse> CallLeyr(const broker::v1::CallLeyrRequest& request,
                                                        const CallOptions& options = {});

 private:
  std::unique_ptr<broker::v1::BrokerService::Stub> stub_;
};

}  // namespace leyr

#endif  // LEYR_CLIENT_BROKER_CLIENT_H_
