#include "client/broker_client.h"

#include <algorithm>

#include "absl/random/random.h"
#include "absl/strings/ascii.h"
#include "absl/time/clock.h"
#include "server/common/status_util.h"

namespace leyr {
namespace {

// Repeating these HTTP methods has no further effect at Leyr.
bool IsIdempotentHttpMethod(absl::string_view method) {
  std::string m = absl::AsciiStrToUpper(method);
  return m == "GET" || m == "HEAD" || m == "PUT" || m == "DELETE";
}

}  // namespace

BrokerClient::BrokerClient(std::shared_ptr<BrokerConnection> connection, Sleeper sleep)
    : connection_(std::move(connection)), sleep_(std::move(sleep)) {
  if (!sleep_) sleep_ = [](absl::Duration d) { absl::SleepFor(d); };
}

BrokerClient::BrokerClient(std::shared_ptr<grpc::Channel> channel)
    : BrokerClient(MakeGrpcBrokerConnection(std::move(channel))) {}

std::unique_ptr<BrokerClient> BrokerClient::ConnectInsecure(const std::string& target) {
  return std::make_unique<BrokerClient>(
      grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
}

absl::StatusOr<std::unique_ptr<BrokerClient>> BrokerClient::Connect(
    const std::string& target, const ClientTlsSettings& tls) {
  LEYR_ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> channel, CreateBrokerChannel(target, tls));
  return std::make_unique<BrokerClient>(std::move(channel));
}

template <typename T>
absl::StatusOr<T> BrokerClient::Retry(
    const CallOptions& options, bool retryable,
    const std::function<absl::StatusOr<T>(absl::Time deadline)>& attempt) {
  absl::BitGen gen;
  absl::Duration backoff = options.initial_backoff;
  const int attempts = retryable ? std::max(1, options.max_attempts) : 1;
  for (int i = 1;; ++i) {
    absl::StatusOr<T> result = attempt(absl::Now() + options.timeout);
    if (result.ok() || result.status().code() != absl::StatusCode::kUnavailable || i >= attempts) {
      return result;
    }
    sleep_(backoff * absl::Uniform(gen, 0.0, 1.0));  // full jitter
    backoff = std::min(backoff * 2, options.max_backoff);
  }
}

absl::StatusOr<broker::v1::BeginAuthorizationResponse> BrokerClient::Begin(
    const broker::v1::BeginAuthorizationRequest& request, const CallOptions& options) {
  return Retry<broker::v1::BeginAuthorizationResponse>(
      options, true, [&](absl::Time deadline) {
        return connection_->BeginAuthorization(request, deadline);
      });
}

absl::StatusOr<broker::v1::Authorization> BrokerClient::Get(const std::string& name,
                                                            const CallOptions& options) {
  broker::v1::GetAuthorizationRequest request;
  request.set_name(name);
  LEYR_ASSIGN_OR_RETURN(auto response,
                        Retry<broker::v1::GetAuthorizationResponse>(
                            options, true, [&](absl::Time deadline) {
                              return connection_->GetAuthorization(request, deadline);
                            }));
  return response.authorization();
}

absl::StatusOr<broker::v1::Authorization> BrokerClient::Wait(const std::string& name,
                                                             absl::Duration wait) {
  broker::v1::WaitAuthorizationRequest request;
  request.set_name(name);
  request.mutable_timeout()->set_seconds(absl::ToInt64Seconds(wait));
  request.mutable_timeout()->set_nanos(
      static_cast<int32_t>(absl::ToInt64Nanoseconds(wait % absl::Seconds(1))));
  CallOptions options;
  // The server answers at `wait` with the authorization still pending; the deadline is a backstop.
  options.timeout = wait + absl::Seconds(10);
  LEYR_ASSIGN_OR_RETURN(auto response,
                        Retry<broker::v1::WaitAuthorizationResponse>(
                            options, true, [&](absl::Time deadline) {
                              return connection_->WaitAuthorization(request, deadline);
                            }));
  return response.authorization();
}

absl::StatusOr<broker::v1::Authorization> BrokerClient::WaitUntilDone(
    const std::string& name, absl::Duration total, absl::Duration poll,
    const std::function<void(absl::Duration waited)>& progress) {
  const absl::Time start = absl::Now();
  const absl::Time end = start + total;
  while (true) {
    absl::Duration left = end - absl::Now();
    LEYR_ASSIGN_OR_RETURN(broker::v1::Authorization a,
                          Wait(name, std::max(std::min(poll, left), absl::ZeroDuration())));
    if (a.state() != broker::v1::Authorization::STATE_PENDING || absl::Now() >= end) return a;
    if (progress) progress(absl::Now() - start);
  }
}

absl::StatusOr<broker::v1::ListAuthorizationsResponse> BrokerClient::List(
    const broker::v1::ListAuthorizationsRequest& request, const CallOptions& options) {
  return Retry<broker::v1::ListAuthorizationsResponse>(
      options, true, [&](absl::Time deadline) {
        return connection_->ListAuthorizations(request, deadline);
      });
}

absl::StatusOr<broker::v1::Authorization> BrokerClient::Revoke(const std::string& name,
                                                               const CallOptions& options) {
  broker::v1::RevokeAuthorizationRequest request;
  request.set_name(name);
  LEYR_ASSIGN_OR_RETURN(auto response,
                        Retry<broker::v1::RevokeAuthorizationResponse>(
                            options, true, [&](absl::Time deadline) {
                              return connection_->RevokeAuthorization(request, deadline);
                            }));
  return response.authorization();
}

absl::StatusOr<broker::v1::CallLeyrResponse> BrokerClient::CallLeyr(
    const broker::v1::CallLeyrRequest& request, const CallOptions& options) {
  return Retry<broker::v1::CallLeyrResponse>(
      options, IsIdempotentHttpMethod(request.method()),
      [&](absl::Time deadline) { return connection_->CallLeyr(request, deadline); });
}

}  // namespace leyr
