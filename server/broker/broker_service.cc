#include "server/broker/broker_service.h"

#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "server/common/log.h"
#include "server/common/request_id.h"
#include "server/common/status_util.h"

namespace leyr {
namespace {

// The caller's x-request-id when sensible, otherwise a fresh one (server/common/request_id.h).
std::string RequestIdOf(grpc::CallbackServerContext* context) {
  const auto& metadata = context->client_metadata();
  auto it = metadata.find(kRequestIdKey);
  return RequestIdOr(it == metadata.end() ? absl::string_view()
                                          : absl::string_view(it->second.data(), it->second.size()));
}

// One RPC in progress: converts the status once, writes the RPC's log line and metrics, and
// deletes itself when gRPC is done with it. Logic callbacks hold a raw pointer and call Finish
// exactly once.
class Call final : public grpc::ServerUnaryReactor {
 public:
  Call(grpc::CallbackServerContext* context, absl::string_view method, BrokerMetrics* metrics)
      : method_(method), start_(absl::Now()), metrics_(metrics), request_id_(RequestIdOf(context)) {
    context->AddInitialMetadata(kRequestIdKey, request_id_);
  }

  void set_authorization(absl::string_view name) { authorization_ = std::string(name); }
  void set_connection(absl::string_view connection) { connection_ = std::string(connection); }
  void set_caller(absl::string_view caller) { caller_ = std::string(caller); }
  std::string* mutable_connection() { return &connection_; }
  // Runs `fn` if the client cancels or the deadline passes before Finish.
  void OnCancelDo(std::function<void()> fn) {
    absl::MutexLock lock(&mu_);
    on_cancel_ = std::move(fn);
  }

  void Finish(const absl::Status& status) {
    duration_ = absl::Now() - start_;
    code_ = absl::StatusCodeToString(status.code());
    if (!status.ok()) reason_ = ReasonOf(status);
    expected_ = status.ok() || status.code() == absl::StatusCode::kInvalidArgument ||
                status.code() == absl::StatusCode::kNotFound ||
                status.code() == absl::StatusCode::kFailedPrecondition ||
                status.code() == absl::StatusCode::kCancelled;
    // Metrics before the answer, so that a scrape after a call has returned counts it.
    if (metrics_ != nullptr) {
      metrics_->rpcs->Add({method_, code_});
      metrics_->rpc_duration->Observe({method_}, duration_);
    }
    finished_ = true;
    // The log line is written in OnDone, once the answer is on its way: its formatting and
    // write(2) are then not part of the caller's latency.
    grpc::ServerUnaryReactor::Finish(ToGrpcStatus(status));
  }

  void OnCancel() override {
    std::function<void()> fn;
    {
      absl::MutexLock lock(&mu_);
      fn = std::move(on_cancel_);
    }
    if (fn) fn();
  }
  void OnDone() override {
    if (finished_) {
      LogLine line(expected_ ? LogLevel::kInfo : LogLevel::kWarn, "rpc");
      line.Field("request_id", request_id_)
          .Field("method", method_)
          .Field("code", code_)
          .Field("duration_ms", absl::ToDoubleMilliseconds(duration_))
          .Field("caller", caller_);
      if (!reason_.empty()) line.Field("reason", reason_);
      if (!connection_.empty()) line.Field("connection", connection_);
      if (!authorization_.empty()) line.Field("authorization", authorization_);
    }
    delete this;
  }
  // Lets gRPC run OnDone and OnCancel on the thread that completes the call instead of handing
  // them to its executor: a CallLeyr finished on the Leyr client's thread otherwise wakes an
  // executor thread per call (about one extra context switch per RPC on the broker's CPU).
  // gRPC marks this hook "not API, for reactors with trivial reactions"; ours are: OnDone
  // deletes, OnCancel only signals a pending wait (which may Finish, as a reaction may).
  bool InternalInlineable() override { return true; }

 private:
  std::string method_;
  absl::Time start_;
  BrokerMetrics* metrics_;
  std::string request_id_;
  std::string authorization_;
  std::string connection_;
  std::string caller_ = "anonymous";
  // Set by Finish, for OnDone's log line (gRPC orders OnDone after Finish).
  bool finished_ = false;
  bool expected_ = true;
  absl::Duration duration_;
  std::string code_;
  std::string reason_;
  absl::Mutex mu_;
  std::function<void()> on_cancel_ ABSL_GUARDED_BY(mu_);
};

// Holds a wait so that a cancellation arriving before or after it starts ends it.
class WaitSlot {
 public:
  void Set(std::shared_ptr<PendingWait> wait) {
    bool cancelled;
    {
      absl::MutexLock lock(&mu_);
      wait_ = wait;
      cancelled = cancelled_;
    }
    if (cancelled) wait->Cancel();
  }
  void Cancel() {
    std::shared_ptr<PendingWait> wait;
    {
      absl::MutexLock lock(&mu_);
      cancelled_ = true;
      wait = wait_;
    }
    if (wait) wait->Cancel();
  }

 private:
  absl::Mutex mu_;
  std::shared_ptr<PendingWait> wait_ ABSL_GUARDED_BY(mu_);
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
};

absl::Time DeadlineOf(grpc::CallbackServerContext* context) {
  auto deadline = context->deadline();
  if (deadline == std::chrono::system_clock::time_point::max()) return absl::InfiniteFuture();
  return absl::FromChrono(deadline);
}

}  // namespace

BrokerServiceImpl::BrokerServiceImpl(Broker* broker, Authenticator authenticator,
                                     BrokerMetrics* metrics)
    : broker_(broker), authenticator_(std::move(authenticator)), metrics_(metrics) {
  if (!authenticator_) {
    authenticator_ = [](grpc::CallbackServerContext*) -> absl::StatusOr<Caller> { return Caller{}; };
  }
}

// Each RPC: authenticate, call the logic, finish. `call` lives on the heap until Finish.
#define LEYR_BEGIN_RPC(method)         \
  Call* call = new Call(context, method, metrics_); \
  auto caller = authenticator_(context); \
  if (!caller.ok()) {                  \
    call->Finish(caller.status());     \
    return call;                       \
  }                                    \
  call->set_caller(caller->identity)

grpc::ServerUnaryReactor* BrokerServiceImpl::BeginAuthorization(
    grpc::CallbackServerContext* context, const broker::v1::BeginAuthorizationRequest* request,
    broker::v1::BeginAuthorizationResponse* response) {
  LEYR_BEGIN_RPC("BeginAuthorization");
  call->set_connection(request->connection());
  auto result = broker_->Begin(*caller, *request);
  if (result.ok()) {
    Broker::ToProto(result->record, response->mutable_authorization());
    response->set_authorize_uri(std::move(result->authorize_uri));
    call->set_authorization(response->authorization().name());
    call->set_connection(response->authorization().connection());
  }
  call->Finish(result.status());
  return call;
}

grpc::ServerUnaryReactor* BrokerServiceImpl::CompleteAuthorization(
    grpc::CallbackServerContext* context, const broker::v1::CompleteAuthorizationRequest* request,
    broker::v1::CompleteAuthorizationResponse* response) {
  LEYR_BEGIN_RPC("CompleteAuthorization");
  broker_->Complete(*caller, *request, DeadlineOf(context),
                    [call, response](absl::StatusOr<Broker::CompleteResult> result) {
                      if (result.ok()) {
                        Broker::ToProto(result->record, response->mutable_authorization());
                        response->set_next_uri(std::move(result->next_uri));
                        call->set_authorization(response->authorization().name());
                        call->set_connection(response->authorization().connection());
                      }
                      call->Finish(result.status());
                    });
  return call;
}

grpc::ServerUnaryReactor* BrokerServiceImpl::GetAuthorization(
    grpc::CallbackServerContext* context, const broker::v1::GetAuthorizationRequest* request,
    broker::v1::GetAuthorizationResponse* response) {
  LEYR_BEGIN_RPC("GetAuthorization");
  auto record = broker_->Get(*caller, request->name());
  if (record.ok()) {
    Broker::ToProto(*record, response->mutable_authorization());
    call->set_authorization(response->authorization().name());
    call->set_connection(response->authorization().connection());
  }
  call->Finish(record.status());
  return call;
}

grpc::ServerUnaryReactor* BrokerServiceImpl::WaitAuthorization(
    grpc::CallbackServerContext* context, const broker::v1::WaitAuthorizationRequest* request,
    broker::v1::WaitAuthorizationResponse* response) {
  LEYR_BEGIN_RPC("WaitAuthorization");
  absl::Duration timeout =
      absl::Seconds(request->timeout().seconds()) + absl::Nanoseconds(request->timeout().nanos());
  if (timeout < absl::ZeroDuration()) {
    call->Finish(MakeError(absl::StatusCode::kInvalidArgument, reason::kInvalidArgument,
                           "timeout must not be negative"));
    return call;
  }
  // A deadline shorter than the timeout, or the client going away, ends the wait through
  // cancellation. The slot outlives `call`, which may be gone as soon as Wait finishes it.
  auto slot = std::make_shared<WaitSlot>();
  call->OnCancelDo([slot] { slot->Cancel(); });
  slot->Set(broker_->Wait(*caller, request->name(), timeout,
                            [call, response](absl::StatusOr<AuthorizationRecord> record) {
                              if (record.ok()) {
                                Broker::ToProto(*record, response->mutable_authorization());
                                call->set_authorization(response->authorization().name());
                                call->set_connection(response->authorization().connection());
                              }
                              call->Finish(record.status());
                            }));
  return call;
}

grpc::ServerUnaryReactor* BrokerServiceImpl::ListAuthorizations(
    grpc::CallbackServerContext* context, const broker::v1::ListAuthorizationsRequest* request,
    broker::v1::ListAuthorizationsResponse* response) {
  LEYR_BEGIN_RPC("ListAuthorizations");
  auto result = broker_->List(*caller, *request);
  if (result.ok()) {
    for (const auto& record : result->records) {
      Broker::ToProto(record, response->add_authorizations());
    }
    response->set_next_page_token(std::move(result->next_page_token));
  }
  call->Finish(result.status());
  return call;
}

grpc::ServerUnaryReactor* BrokerServiceImpl::RevokeAuthorization(
    grpc::CallbackServerContext* context, const broker::v1::RevokeAuthorizationRequest* request,
    broker::v1::RevokeAuthorizationResponse* response) {
  LEYR_BEGIN_RPC("RevokeAuthorization");
  auto record = broker_->Revoke(*caller, request->name());
  if (record.ok()) {
    Broker::ToProto(*record, response->mutable_authorization());
    call->set_authorization(response->authorization().name());
    call->set_connection(response->authorization().connection());
  }
  call->Finish(record.status());
  return call;
}

grpc::ServerUnaryReactor* BrokerServiceImpl::CallLeyr(grpc::CallbackServerContext* context,
                                                      const broker::v1::CallLeyrRequest* request,
                                                      broker::v1::CallLeyrResponse* response) {
  LEYR_BEGIN_RPC("CallLeyr");
  call->set_authorization(request->authorization());
  broker_->CallLeyr(*caller, *request, DeadlineOf(context),
                    [call, response](absl::StatusOr<broker::v1::CallLeyrResponse> result) {
                      if (result.ok()) *response = std::move(*result);
                      call->Finish(result.status());
                    },
                    call->mutable_connection());
  return call;
}

}  // namespace leyr
