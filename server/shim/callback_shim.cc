#include "server/shim/callback_shim.h"

#include <google/protobuf/stubs/common.h>
#include <grpcpp/client_context.h>

#include <map>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "server/common/config_util.h"
#include "server/common/request_id.h"
#include "server/common/status_util.h"
#include "server/common/url.h"

namespace leyr::shim {

namespace v1 = ::leyr::broker::v1;

namespace {

constexpr absl::string_view kFormType = "application/x-www-form-urlencoded";
constexpr int64_t kMaxBodyLimit = 1024 * 1024;

// Headers on every response of the shim.
void AddSecurityHeaders(HttpResponse* r) {
  r->headers.emplace_back("Referrer-Policy", "no-referrer");
  r->headers.emplace_back("Cache-Control", "no-store");
  r->headers.emplace_back("X-Content-Type-Options", "nosniff");
  r->headers.emplace_back("Content-Security-Policy", "default-src 'none'");
}

// A small HTML page. `title` and `sentence` are fixed text, never a submitted value.
HttpResponse Page(int status, absl::string_view title, absl::string_view sentence) {
  HttpResponse r;
  r.status = status;
  AddSecurityHeaders(&r);
  r.headers.emplace_back("Content-Type", "text/html; charset=utf-8");
  r.body = absl::StrCat(
      "<!doctype html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>", title,
      "</title></head>\n<body>\n<h1>", title, "</h1>\n<p>", sentence, "</p>\n</body>\n</html>\n");
  return r;
}

HttpResponse NotFoundPage() { return Page(404, "Not found", "There is nothing at this address."); }

HttpResponse MethodNotAllowedPage(absl::string_view allow) {
  HttpResponse r = Page(405, "Method not allowed",
                        "This address only accepts the sign-in response sent by the sign-in "
                        "service.");
  r.headers.emplace_back("Allow", std::string(allow));
  return r;
}

HttpResponse UnsupportedMediaTypePage() {
  return Page(415, "Unsupported content type",
              "This address only accepts the form the sign-in service submits.");
}

HttpResponse InvalidCallbackPage() {
  return Page(400, "Invalid sign-in response",
              "This sign-in response is incomplete or malformed. Please start the sign-in again "
              "from the application.");
}

HttpResponse TooLargePage() {
  return Page(413, "Request too large", "The sign-in response was larger than allowed.");
}

// What a broker answer becomes.
struct Outcome {
  HttpResponse response;
  std::string outcome;  // for the log line
  std::string reason;   // for the log line; empty on success
};

Outcome FromBrokerError(const absl::Status& status) {
  std::string reason = ReasonOf(status);
  if (reason == reason::kStateNotFound || reason == reason::kStateMissing ||
      reason == reason::kInvalidCompletion) {
    return {Page(400, "Sign-in link not recognised",
                 "This sign-in response is not valid or is no longer known. Please start the "
                 "sign-in again from the application."),
            "rejected", reason};
  }
  if (reason == reason::kStateAlreadyUsed) {
    return {Page(409, "Sign-in already completed",
                 "This sign-in response was already used. If you still need access, start the "
                 "sign-in again from the application."),
            "rejected", reason};
  }
  if (reason == reason::kAuthorizationExpired) {
    return {Page(410, "Sign-in expired",
                 "This sign-in took too long and has expired. Please start the sign-in again "
                 "from the application."),
            "rejected", reason};
  }
  if (reason.empty()) reason = absl::StatusCodeToString(status.code());
  if (status.code() == absl::StatusCode::kUnavailable ||
      status.code() == absl::StatusCode::kDeadlineExceeded) {
    return {Page(503, "Service unavailable",
                 "The sign-in service is temporarily unavailable. Please try again in a "
                 "moment."),
            "broker_unavailable", reason};
  }
  return {Page(502, "Sign-in failed",
               "The sign-in could not be completed because of a problem on our side. Please "
               "start the sign-in again later."),
          "broker_error", reason};
}

Outcome FromBrokerAnswer(const v1::CompleteAuthorizationResponse& answer) {
  const bool denied = answer.authorization().state() == v1::Authorization::STATE_DENIED;
  std::string outcome = denied ? "denied" : "completed";
  if (!answer.next_uri().empty()) {
    HttpResponse r = Page(303, "Continuing", "Sign-in finished. Returning to the application.");
    r.headers.emplace_back("Location", answer.next_uri());
    return {std::move(r), outcome, ""};
  }
  if (denied) {
    return {Page(200, "Sign-in declined",
                 "The sign-in was declined. You can close this window."),
            outcome, ""};
  }
  return {Page(200, "Sign-in complete", "The sign-in is complete. You can close this window."),
          outcome, ""};
}

// What the log line and the metrics of one callback need.
struct CallbackContext {
  ShimMetrics* metrics = nullptr;
  std::string request_id;
  absl::Time start;
};

void LogCallback(const CallbackContext& ctx, absl::string_view outcome, int http_status,
                 absl::string_view authorization, absl::string_view reason) {
  const absl::Duration duration = absl::Now() - ctx.start;
  {
    LogLine line(LogLevel::kInfo, "callback");
    line.Field("request_id", ctx.request_id)
        .Field("outcome", outcome)
        .Field("http_status", http_status)
        .Field("duration_ms", absl::ToDoubleMilliseconds(duration));
    if (!authorization.empty()) line.Field("authorization", authorization);
    if (!reason.empty()) line.Field("reason", reason);
  }
  if (ctx.metrics != nullptr) {
    ctx.metrics->callbacks->Add({std::string(outcome)});
    ctx.metrics->callback_duration->WithLabels({})->Observe(duration);
  }
}

// Answers a request refused by the shim itself (nothing reaches the broker).
void Refuse(HttpResponder& respond, HttpResponse response, absl::string_view reason,
            const CallbackContext& ctx) {
  int status = response.status;
  respond(std::move(response));
  LogCallback(ctx, "invalid_request", status, "", reason);
}

// RFC 6749 appendix A: state, code and error are printable ASCII (%x20-7E).
bool IsPrintableAscii(absl::string_view s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

// Everything forwarded goes into proto `string` fields, which must be UTF-8 (the broker could
// not even parse the request otherwise). A description that is not keeps its ASCII only.
std::string Utf8Description(std::string text) {
  if (google::protobuf::internal::IsStructurallyValidUTF8(text)) return text;
  for (char& c : text) {
    if (static_cast<unsigned char>(c) >= 0x80) c = '?';
  }
  return text;
}

// The media type of a Content-Type value, lower case, without parameters.
std::string MediaType(absl::string_view content_type) {
  absl::string_view type = content_type.substr(0, content_type.find(';'));
  return absl::AsciiStrToLower(absl::StripAsciiWhitespace(type));
}

}  // namespace

// Broker calls in flight, so that Stop() can cancel them and wait for their callbacks.
struct CallbackShim::Tracker {
  absl::Mutex mu;
  std::map<grpc::ClientContext*, bool> in_flight ABSL_GUARDED_BY(mu);
  bool stopping ABSL_GUARDED_BY(mu) = false;
};

namespace {

// One CompleteAuthorization call; deletes itself when the broker answers.
struct BrokerCall {
  grpc::ClientContext context;
  v1::CompleteAuthorizationRequest request;
  v1::CompleteAuthorizationResponse response;
  HttpResponder respond;
  CallbackContext ctx;
  std::shared_ptr<CallbackShim::Tracker> tracker;
  std::shared_ptr<v1::BrokerService::StubInterface> broker;  // outlives the call

  void Done(const grpc::Status& grpc_status) {
    absl::Status status = FromGrpcStatus(grpc_status);
    Outcome outcome = status.ok() ? FromBrokerAnswer(response) : FromBrokerError(status);
    int http_status = outcome.response.status;
    respond(std::move(outcome.response));
    LogCallback(ctx, outcome.outcome, http_status,
                status.ok() ? response.authorization().name() : "", outcome.reason);
    {
      absl::MutexLock lock(&tracker->mu);
      tracker->in_flight.erase(&context);
    }
    delete this;
  }
};

constexpr int64_t kMaxTimeoutSeconds = 3600;

}  // namespace

absl::StatusOr<ShimSettings> ValidateShimConfig(const config::ShimConfig& config) {
  ShimSettings s;
  if (config.listen().empty()) {
    return absl::InvalidArgumentError("listen: required (for example \"127.0.0.1:8080\")");
  }
  absl::Status listen_ok = ValidateListenAddress(config.listen());
  if (!listen_ok.ok()) return absl::InvalidArgumentError(absl::StrCat("listen: ", listen_ok.message()));
  s.http.listen = config.listen();
  if (config.broker_target().empty()) {
    return absl::InvalidArgumentError(
        "broker_target: required (for example \"127.0.0.1:50051\")");
  }
  s.broker_target = config.broker_target();
  if (!config.callback_path().empty()) {
    if (!absl::StartsWith(config.callback_path(), "/")) {
      return absl::InvalidArgumentError("callback_path: must start with '/'");
    }
    if (config.callback_path().find_first_of("?# ") != std::string::npos) {
      return absl::InvalidArgumentError("callback_path: must be a plain path (no query, no '#')");
    }
    if (config.callback_path() == "/healthz") {
      return absl::InvalidArgumentError("callback_path: /healthz is reserved");
    }
    s.callback_path = config.callback_path();
  }
  if (config.max_body_bytes() < 0 || config.max_body_bytes() > kMaxBodyLimit) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_body_bytes: must be between 1 and ", kMaxBodyLimit));
  }
  s.http.max_body_bytes =
      config.max_body_bytes() == 0 ? 16384 : static_cast<size_t>(config.max_body_bytes());
  LEYR_ASSIGN_OR_RETURN(s.broker_timeout,
                        DurationKey(config.broker_timeout(), "broker_timeout", absl::Seconds(10)));
  // libmicrohttpd takes an unsigned int of seconds; larger values would turn its timeout off.
  LEYR_ASSIGN_OR_RETURN(s.http.read_timeout, DurationKey(config.read_timeout(), "read_timeout",
                                                         absl::Seconds(10), kMaxTimeoutSeconds));
  LEYR_ASSIGN_OR_RETURN(s.http.request_timeout,
                        DurationKey(config.request_timeout(), "request_timeout",
                                    absl::Seconds(30), kMaxTimeoutSeconds));
  if (config.max_connections() < 0) {
    return absl::InvalidArgumentError("max_connections: must be positive");
  }
  s.http.max_connections = config.max_connections() == 0 ? 256 : config.max_connections();
  auto level = ParseLogLevel(config.log_level());
  if (!level.ok()) return absl::InvalidArgumentError(absl::StrCat("log_level: ", level.status().message()));
  s.log_level = *level;
  s.admin_listen = config.admin_listen();
  if (!s.admin_listen.empty()) {
    if (absl::Status valid = ValidateListenAddress(s.admin_listen); !valid.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("admin_listen: ", valid.message()));
    }
  }
  std::vector<std::string> problems;
  ServerTlsSettings tls = ValidateServerTls(config.tls(), "tls", /*allow_client_auth=*/false,
                                            problems);
  s.broker_tls = ValidateClientTls(config.broker_tls(), "broker_tls", problems);
  if (!problems.empty()) return absl::InvalidArgumentError(absl::StrJoin(problems, "\n"));
  if (tls.enabled()) {
    LEYR_ASSIGN_OR_RETURN(s.http.tls_cert_pem, ReadFile(tls.cert_file));
    LEYR_ASSIGN_OR_RETURN(s.http.tls_key_pem, ReadFile(tls.key_file));
  }
  return s;
}

std::shared_ptr<grpc::ChannelCredentials> BrokerChannelCredentials(const ShimSettings& settings) {
  if (settings.broker_tls.ca_file.empty()) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions ssl;
  if (auto ca = ReadFile(settings.broker_tls.ca_file); ca.ok()) ssl.pem_root_certs = *ca;
  if (!settings.broker_tls.cert_file.empty()) {
    if (auto cert = ReadFile(settings.broker_tls.cert_file); cert.ok()) ssl.pem_cert_chain = *cert;
    if (auto key = ReadFile(settings.broker_tls.key_file); key.ok()) ssl.pem_private_key = *key;
  }
  auto credentials = grpc::SslCredentials(ssl);
  if (!settings.broker_tls.token_file.empty()) {
    if (auto token = ReadSecretFile("broker_tls.token_file", settings.broker_tls.token_file);
        token.ok()) {
      credentials = grpc::CompositeChannelCredentials(credentials, BearerTokenCredentials(*token));
    }
  }
  return credentials;
}

CallbackShim::CallbackShim(const ShimSettings& settings,
                           std::shared_ptr<v1::BrokerService::StubInterface> broker,
                           ShimMetrics* metrics)
    : settings_(settings),
      broker_(std::move(broker)),
      metrics_(metrics),
      tracker_(std::make_shared<Tracker>()) {}

ShimMetrics::ShimMetrics(Metrics* r)
    : callbacks(r->AddCounter("leyr_shim_callbacks_total",
                              "Callback requests at the callback path, by outcome.", {"outcome"})),
      callback_duration(r->AddHistogram("leyr_shim_callback_duration_seconds",
                                        "Time from a callback request to its answer.", {})) {}

absl::StatusOr<std::unique_ptr<CallbackShim>> CallbackShim::Start(
    const ShimSettings& settings, std::shared_ptr<v1::BrokerService::StubInterface> broker,
    ShimMetrics* metrics) {
  if (broker == nullptr || broker->async() == nullptr) {
    return absl::InvalidArgumentError("a BrokerService stub with the callback API is required");
  }
  std::unique_ptr<CallbackShim> shim(new CallbackShim(settings, std::move(broker), metrics));
  HttpServerOptions options = settings.http;
  options.too_large_response = TooLargePage();
  const std::string callback_path = settings.callback_path;
  options.on_too_large = [callback_path, metrics](const HttpRequest& request) {
    if (request.path == callback_path) {
      CallbackContext ctx{metrics, RequestIdOr(request.Header(kRequestIdKey)), absl::Now()};
      LogCallback(ctx, "invalid_request", 413, "", reason::kBodyTooLarge);
    }
  };
  CallbackShim* self = shim.get();
  LEYR_ASSIGN_OR_RETURN(shim->server_,
                        HttpServer::Start(options, [self](HttpRequest r, HttpResponder respond) {
                          self->Handle(std::move(r), std::move(respond));
                        }));
  return shim;
}

CallbackShim::~CallbackShim() { Stop(); }

int CallbackShim::port() const { return server_->port(); }
std::string CallbackShim::address() const { return server_->address(); }

void CallbackShim::StartDraining() { draining_ = true; }

void CallbackShim::Stop() {
  if (server_ != nullptr) server_->Stop();
  absl::MutexLock lock(&tracker_->mu);
  tracker_->stopping = true;
  for (auto& [context, unused] : tracker_->in_flight) context->TryCancel();
  auto drained = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(tracker_->mu) {
    return tracker_->in_flight.empty();
  };
  tracker_->mu.AwaitWithTimeout(absl::Condition(&drained),
                                settings_.broker_timeout + absl::Seconds(5));
}

void CallbackShim::Handle(HttpRequest request, HttpResponder respond) {
  if (request.path == settings_.callback_path) {
    HandleCallback(std::move(request), std::move(respond));
    return;
  }
  if (request.path == "/healthz") {
    if (request.method != "GET" && request.method != "HEAD") {
      respond(MethodNotAllowedPage("GET, HEAD"));
      return;
    }
    HttpResponse r;
    AddSecurityHeaders(&r);
    r.headers.emplace_back("Content-Type", "text/plain; charset=utf-8");
    if (draining_) {
      r.status = 503;
      r.body = "shutting down\n";
    } else {
      r.body = "ok\n";
    }
    respond(std::move(r));
    return;
  }
  respond(NotFoundPage());
}

void CallbackShim::HandleCallback(HttpRequest request, HttpResponder respond) {
  const CallbackContext ctx{metrics_, RequestIdOr(request.Header(kRequestIdKey)), absl::Now()};
  if (request.method != "POST") {
    Refuse(respond, MethodNotAllowedPage("POST"), "METHOD_NOT_ALLOWED", ctx);
    return;
  }
  if (MediaType(request.Header("content-type")) != kFormType) {
    Refuse(respond, UnsupportedMediaTypePage(), "UNSUPPORTED_MEDIA_TYPE", ctx);
    return;
  }
  if (request.body.size() > settings_.http.max_body_bytes) {  // the server already checks
    Refuse(respond, TooLargePage(), reason::kBodyTooLarge, ctx);
    return;
  }
  absl::StatusOr<FormFields> fields = ParseFormUrlEncoded(request.body);
  if (!fields.ok()) {
    Refuse(respond, InvalidCallbackPage(), "MALFORMED_FORM", ctx);
    return;
  }
  // Only these are forwarded; id_token and anything else are ignored.
  std::string state, code, error, error_description;
  std::map<absl::string_view, std::string*> wanted = {
      {"state", &state}, {"code", &code}, {"error", &error},
      {"error_description", &error_description}};
  std::map<absl::string_view, int> seen;
  for (auto& [key, value] : *fields) {
    auto it = wanted.find(key);
    if (it == wanted.end()) continue;
    if (++seen[it->first] > 1) {
      Refuse(respond, InvalidCallbackPage(), "DUPLICATE_FIELD", ctx);
      return;
    }
    *it->second = std::move(value);
  }
  if (state.empty()) {
    Refuse(respond, InvalidCallbackPage(), reason::kStateMissing, ctx);
    return;
  }
  if (code.empty() == error.empty()) {
    Refuse(respond, InvalidCallbackPage(), reason::kInvalidCompletion, ctx);
    return;
  }
  if (!IsPrintableAscii(state) || !IsPrintableAscii(code) || !IsPrintableAscii(error)) {
    Refuse(respond, InvalidCallbackPage(), reason::kInvalidCompletion, ctx);
    return;
  }
  error_description = Utf8Description(std::move(error_description));

  auto* call = new BrokerCall;
  call->request.set_state(std::move(state));
  if (!code.empty()) {
    call->request.set_code(std::move(code));
  } else {
    call->request.set_error(std::move(error));
    call->request.set_error_description(std::move(error_description));
  }
  call->respond = std::move(respond);
  call->ctx = ctx;
  call->context.AddMetadata(kRequestIdKey, ctx.request_id);
  call->tracker = tracker_;
  call->broker = broker_;
  call->context.set_deadline(absl::ToChronoTime(absl::Now() + settings_.broker_timeout));
  {
    absl::MutexLock lock(&tracker_->mu);
    if (tracker_->stopping) {
      call->respond(Page(503, "Service unavailable",
                         "The sign-in service is shutting down. Please try again in a moment."));
      LogCallback(ctx, "broker_unavailable", 503, "", reason::kShuttingDown);
      delete call;
      return;
    }
    tracker_->in_flight.emplace(&call->context, true);
  }
  // `call` may be deleted as soon as this returns (or even before).
  broker_->async()->CompleteAuthorization(&call->context, &call->request, &call->response,
                                          [call](grpc::Status status) { call->Done(status); });
}

}  // namespace leyr::shim
