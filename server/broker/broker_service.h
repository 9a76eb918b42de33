#ifndef LEYR_SERVER_BROKER_BROKER_SERVICE_H_
#define LEYR_SERVER_BROKER_BROKER_SERVICE_H_

#include <functional>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "leyr/broker/v1/broker_service.grpc.pb.h"
#include "server/broker/broker.h"

namespace leyr {

// Identifies the caller of an RPC (mTLS or bearer token later). The default says "anonymous".
using Authenticator = std::function<absl::StatusOr<Caller>(grpc::CallbackServerContext*)>;

// The gRPC face of Broker: converts requests and statuses once, logs one line per RPC, and
// metrics; nothing else (TF Serving's *_service_impl).
class BrokerServiceImpl final : public broker::v1::BrokerService::CallbackService {
 public:
  // `metrics` (optional) receives leyr_broker_rpcs_total and leyr_broker_rpc_duration_seconds.
  BrokerServiceImpl(Broker* broker, Authenticator authenticator = nullptr,
                    BrokerMetrics* metrics = nullptr);

  grpc::ServerUnaryReactor* BeginAuthorization(
      grpc::CallbackServerContext* context, const broker::v1::BeginAuthorizationRequest* request,
      broker::v1::BeginAuthorizationResponse* response) override;
  grpc::ServerUnaryReactor* CompleteAuthorization(
      grpc::CallbackServerContext* context,
      const broker::v1::CompleteAuthorizationRequest* request,
      broker::v1::CompleteAuthorizationResponse* response) override;
  grpc::ServerUnaryReactor* GetAuthorization(grpc::CallbackServerContext* context,
                                             const broker::v1::GetAuthorizationRequest* request,
                                             broker::v1::GetAuthorizationResponse* response) override;
  grpc::ServerUnaryReactor* WaitAuthorization(
      grpc::CallbackServerContext* context, const broker::v1::WaitAuthorizationRequest* request,
      broker::v1::WaitAuthorizationResponse* response) override;
  grpc::ServerUnaryReactor* ListAuthorizations(
      grpc::CallbackServerContext* context, const broker::v1::ListAuthorizationsRequest* request,
      broker::v1::ListAuthorizationsResponse* response) override;
  grpc::ServerUnaryReactor* RevokeAuthorization(
      grpc::CallbackServerContext* context, const broker::v1::RevokeAuthorizationRequest* request,
      broker::v1::RevokeAuthorizationResponse* response) override;
  grpc::ServerUnaryReactor* CallLeyr(grpc::CallbackServerContext* context,
                                     const broker::v1::CallLeyrRequest* request,
                                     broker::v1::CallLeyrResponse* response) override;

 private:
  Broker* broker_;
  Authenticator authenticator_;
  BrokerMetrics* metrics_;
};

}  // namespace leyr

#endif  // LEYR_SERVER_BROKER_BROKER_SERVICE_H_
