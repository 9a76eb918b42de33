#include "client/broker_client.h"

#include "absl/time/clock.h"
#include "server/common/status_util.h"

namespace leyr {
namespace {

void SetDeadline(grpc::ClientContext& context, absl::Duration timeout) {
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
}

}  // namespace

BrokerClient::BrokerClient(std::shared_ptr<grpc::Channel> channel)
    : stub_(broker::v1::BrokerService::NewStub(std::move(channel))) {}

std::unique_ptr<BrokerClient> BrokerClient::ConnectInsecure(const std::string& target) {
  return std::make_unique<BrokerClient>(
      grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
}

absl::StatusOr<std::unique_ptr<BrokerClient>> BrokerClient::Connect(
    const std::string& target, const ClientTlsSettings& tls) {
  LEYR_ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> channel, CreateBrokerChannel(target, tls));
  return std::make_unique<BrokerClient>(std::move(channel));
}

absl::StatusOr<broker::v1::BeginAuthorizationResponse> BrokerClient::Begin(
    const broker::v1::BeginAuthorizationRequest& request, const CallOptions& options) {
  grpc::ClientContext context;
  SetDeadline(context, options.timeout);
  broker::v1::BeginAuthorizationResponse response;
  LEYR_RETURN_IF_ERROR(FromGrpcStatus(stub_->BeginAuthorization(&context, request, &response)));
  return response;
}

absl::StatusOr<broker::v1::Authorization> BrokerClient::Get(const std::string& name,
                                                            const CallOptions& options) {
  grpc::ClientContext context;
  SetDeadline(context, options.timeout);
  broker::v1::GetAuthorizationRequest request;
  request.set_name(name);
  broker::v1::GetAuthorizationResponse response;
  LEYR_RETURN_IF_ERROR(FromGrpcStatus(stub_->GetAuthorization(&context, request, &response)));
  return response.authorization();
}

absl::StatusOr<broker::v1::Authorization> BrokerClient::Wait(const std::string& name,
                                                             absl::Duration wait) {
  grpc::ClientContext context;
  // The server answers at `wait` with the authorization still pending; the deadline is a backstop.
  SetDeadline(context, wait + absl::Seconds(10));
  broker::v1::WaitAuthorizationRequest request;
  request.set_name(name);
  request.mutable_timeout()->set_seconds(absl::ToInt64Seconds(wait));
  request.mutable_timeout()->set_nanos(
      static_cast<int32_t>(absl::ToInt64Nanoseconds(wait % absl::Seconds(1))));
  broker::v1::WaitAuthorizationResponse response;
  LEYR_RETURN_IF_ERROR(FromGrpcStatus(stub_->WaitAuthorization(&context, request, &response)));
  return response.authorization();
}

absl::StatusOr<broker::v1::ListAuthorizationsResponse> BrokerClient::List(
    const broker::v1::ListAuthorizationsRequest& request, const CallOptions& options) {
  grpc::ClientContext context;
  SetDeadline(context, options.timeout);
  broker::v1::ListAuthorizationsResponse response;
  LEYR_RETURN_IF_ERROR(FromGrpcStatus(stub_->ListAuthorizations(&context, request, &response)));
  return response;
}

absl::StatusOr<broker::v1::Authorization> BrokerClient::Revoke(const std::string& name,
                                                               const CallOptions& options) {
  grpc::ClientContext context;
  SetDeadline(context, options.timeout);
  broker::v1::RevokeAuthorizationRequest request;
  request.set_name(name);
  broker::v1::RevokeAuthorizationResponse response;
  LEYR_RETURN_IF_ERROR(FromGrpcStatus(stub_->RevokeAuthorization(&context, request, &response)));
  return response.authorization();
}

absl::StatusOr<broker::v1::CallLeyrResponse> BrokerClient::CallLeyr(
    const broker::v1::CallLeyrRequest& request, const CallOptions& options) {
  grpc::ClientContext context;
  SetDeadline(context, options.timeout);
  broker::v1::CallLeyrResponse response;
  LEYR_RETURN_IF_ERROR(FromGrpcStatus(stub_->CallLeyr(&context, request, &response)));
  return response;
}

}  // namespace leyr
