#ifndef LEYR_CLIENT_BROKER_CONNECTION_H_
#define LEYR_CLIENT_BROKER_CONNECTION_H_

#include <memory>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "leyr/broker/v1/broker_service.pb.h"

namespace leyr {

// One attempt of each BrokerService RPC, with the broker's ErrorInfo reason kept in the status
// (leyr::ReasonOf). No retries here: BrokerClient adds them. Mock this interface to test code
// that uses BrokerClient without a broker (google-cloud-cpp's *_connection.h layering).
class BrokerConnection {
 public:
  virtual ~BrokerConnection() = default;
  virtual absl::StatusOr<broker::v1::BeginAuthorizationResponse> BeginAuthorization(
      const broker::v1::BeginAuthorizationRequest& request, absl::Time deadline) = 0;
  virtual absl::StatusOr<broker::v1::GetAuthorizationResponse> GetAuthorization(
      const broker::v1::GetAuthorizationRequest& request, absl::Time deadline) = 0;
  virtual absl::StatusOr<broker::v1::WaitAuthorizationResponse> WaitAuthorization(
      const broker::v1::WaitAuthorizationRequest& request, absl::Time deadline) = 0;
  virtual absl::StatusOr<broker::v1::ListAuthorizationsResponse> ListAuthorizations(
      const broker::v1::ListAuthorizationsRequest& request, absl::Time deadline) = 0;
  virtual absl::StatusOr<broker::v1::RevokeAuthorizationResponse> RevokeAuthorization(
      const broker::v1::RevokeAuthorizationRequest& request, absl::Time deadline) = 0;
  virtual absl::StatusOr<broker::v1::CallLeyrResponse> CallLeyr(
      const broker::v1::CallLeyrRequest& request, absl::Time deadline) = 0;
};

// The real connection over a gRPC channel (plaintext, TLS, mTLS or with a bearer token: that is
// the channel's business; see CreateBrokerChannel in server/broker/tls.h).
std::shared_ptr<BrokerConnection> MakeGrpcBrokerConnection(std::shared_ptr<grpc::Channel> channel);

}  // namespace leyr

#endif  // LEYR_CLIENT_BROKER_CONNECTION_H_
