#include "client/broker_connection.h"

#include "leyr/broker/v1/broker_service.grpc.pb.h"
#include "server/common/status_util.h"

namespace leyr {
namespace {

using broker::v1::BrokerService;

class GrpcBrokerConnection final : public BrokerConnection {
 public:
  explicit GrpcBrokerConnection(std::shared_ptr<grpc::Channel> channel)
      : stub_(BrokerService::NewStub(std::move(channel))) {}

  absl::StatusOr<broker::v1::BeginAuthorizationResponse> BeginAuthorization(
      const broker::v1::BeginAuthorizationRequest& request, absl::Time deadline) override {
    return Unary(&BrokerService::Stub::BeginAuthorization, request, deadline);
  }
  absl::StatusOr<broker::v1::GetAuthorizationResponse> GetAuthorization(
      const broker::v1::GetAuthorizationRequest& request, absl::Time deadline) override {
    return Unary(&BrokerService::Stub::GetAuthorization, request, deadline);
  }
  absl::StatusOr<broker::v1::WaitAuthorizationResponse> WaitAuthorization(
      const broker::v1::WaitAuthorizationRequest& request, absl::Time deadline) override {
    return Unary(&BrokerService::Stub::WaitAuthorization, request, deadline);
  }
  absl::StatusOr<broker::v1::ListAuthorizationsResponse> ListAuthorizations(
      const broker::v1::ListAuthorizationsRequest& request, absl::Time deadline) override {
    return Unary(&BrokerService::Stub::ListAuthorizations, request, deadline);
  }
  absl::StatusOr<broker::v1::RevokeAuthorizationResponse> RevokeAuthorization(
      const broker::v1::RevokeAuthorizationRequest& request, absl::Time deadline) override {
    return Unary(&BrokerService::Stub::RevokeAuthorization, request, deadline);
  }
  absl::StatusOr<broker::v1::CallLeyrResponse> CallLeyr(const broker::v1::CallLeyrRequest& request,
                                                        absl::Time deadline) override {
    return Unary(&BrokerService::Stub::CallLeyr, request, deadline);
  }

 private:
  // One blocking call of `method` with `deadline`, converted once (status_util.h).
  template <typename Request, typename Response>
  absl::StatusOr<Response> Unary(grpc::Status (BrokerService::Stub::*method)(
                                     grpc::ClientContext*, const Request&, Response*),
                                 const Request& request, absl::Time deadline) {
    grpc::ClientContext context;
    if (deadline != absl::InfiniteFuture()) context.set_deadline(absl::ToChronoTime(deadline));
    Response response;
    LEYR_RETURN_IF_ERROR(FromGrpcStatus(((*stub_).*method)(&context, request, &response)));
    return response;
  }

  std::unique_ptr<BrokerService::Stub> stub_;
};

}  // namespace

std::shared_ptr<BrokerConnection> MakeGrpcBrokerConnection(std::shared_ptr<grpc::Channel> channel) {
  return std::make_shared<GrpcBrokerConnection>(std::move(channel));
}

}  // namespace leyr
