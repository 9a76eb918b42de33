#include "server/sandbox/sandbox.h"

#include <cmath>
#include <utility>

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "server/common/config_util.h"
#include "server/common/log.h"
#include "server/common/url.h"
#include "server/sandbox/sample_data.h"

namespace leyr::sandbox {
namespace {

using google::protobuf::ListValue;
using google::protobuf::Struct;
using google::protobuf::Value;

constexpr char kDenyDescription[] = "The user denied the request.";
// Most Leyr-side requests kept for /sandbox/requests (the count goes on past it).
constexpr size_t kMaxLoggedRequests = 10000;
// Issued codes kept before expired, never-redeemed ones are swept.
constexpr size_t kCodeSweepThreshold = 10000;

std::string HeaderValue(const HttpRequest& request, absl::string_view name) {
  for (const auto& [key, value] : request.headers) {
    if (absl::EqualsIgnoreCase(key, name)) return value;
  }
  return "";
}

size_t QueryCount(const HttpRequest& request, absl::string_view name) {
  size_t n = 0;
  for (const auto& [key, value] : request.query) n += key == name ? 1 : 0;
  return n;
}

std::string QueryValue(const HttpRequest& request, absl::string_view name) {
  for (const auto& [key, value] : request.query) {
    if (key == name) return value;
  }
  return "";
}

Value StringValue(absl::string_view s) {
  Value v;
  v.set_string_value(std::string(s));
  return v;
}

Value NumberValue(double d) {
  Value v;
  v.set_number_value(d);
  return v;
}

Value BoolValue(bool b) {
  Value v;
  v.set_bool_value(b);
  return v;
}

std::string ToJson(const google::protobuf::Message& message) {
  std::string out;
  // Struct, ListValue and Value always print.
  (void)google::protobuf::util::MessageToJsonString(message, &out);
  return out;
}

HttpResponse JsonResponse(int status, std::string body) {
  HttpResponse response;
  response.status = status;
  response.headers = {{"Content-Type", "application/json"}, {"Cache-Control", "no-store"}};
  response.body = std::move(body);
  return response;
}

HttpResponse JsonResponse(int status, const Value& value) {
  return JsonResponse(status, ToJson(value));
}

HttpResponse TextResponse(int status, absl::string_view text) {
  HttpResponse response;
  response.status = status;
  response.headers = {{"Content-Type", "text/plain; charset=utf-8"},
                      {"Cache-Control", "no-store"}};
  response.body = absl::StrCat(text, "\n");
  return response;
}

// Leyr's error JSON: {"code","type","title","status","detail","instance","errors":[]}.
HttpResponse LeyrError(int status, absl::string_view code, absl::string_view title,
                       absl::string_view detail, absl::string_view instance) {
  Struct error;
  auto& f = *error.mutable_fields();
  f["code"] = StringValue(code);
  f["type"] = StringValue("about:blank");
  f["title"] = StringValue(title);
  f["status"] = NumberValue(status);
  f["detail"] = StringValue(detail);
  f["instance"] = StringValue(instance);
  f["errors"].mutable_list_value();
  return JsonResponse(status, ToJson(error));
}

std::string HtmlEscape(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

// Headers of every athena-side page.
HttpFields AthenaHeaders(absl::string_view content_type) {
  return {{"Content-Type", std::string(content_type)},
          {"Cache-Control", "no-store"},
          {"Referrer-Policy", "no-referrer"},
          {"X-Content-Type-Options", "nosniff"},
          {"Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"}};
}

// 400 page naming the bad parameter, never echoing a value.
HttpResponse AuthorizeError(absl::string_view parameter, absl::string_view problem) {
  HttpResponse response;
  response.status = 400;
  response.headers = AthenaHeaders("text/html; charset=utf-8");
  response.headers.emplace_back("X-Sandbox-Bad-Parameter", std::string(parameter));
  response.body = absl::StrCat(
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<title>Sandbox athena: invalid request</title></head>\n<body>\n"
      "<h1>invalid_request</h1>\n<p id=\"error\" data-parameter=\"",
      HtmlEscape(parameter), "\">Bad parameter <code>", HtmlEscape(parameter), "</code>: ",
      HtmlEscape(problem), "</p>\n</body></html>\n");
  return response;
}

std::string HiddenInput(absl::string_view name, absl::string_view value) {
  return absl::StrCat("<input type=\"hidden\" name=\"", HtmlEscape(name), "\" value=\"",
                      HtmlEscape(value), "\">\n");
}

// True when the Accept header lists application/json.
bool WantsJson(const HttpRequest& request) {
  for (absl::string_view part : absl::StrSplit(HeaderValue(request, "accept"), ',')) {
    absl::string_view type = part.substr(0, part.find(';'));
    if (absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(type), "application/json")) return true;
  }
  return false;
}

bool IsDate(absl::string_view s) {
  if (s.size() != 10 || s[4] != '-' || s[7] != '-') return false;
  for (size_t i : {0, 1, 2, 3, 5, 6, 8, 9}) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(s[i]))) return false;
  }
  return true;
}

bool ValidHttpUri(absl::string_view uri) { return CanonicalOrigin(uri).ok(); }

}  // namespace

absl::StatusOr<SandboxOptions> OptionsFromConfig(const config::SandboxConfig& config) {
  SandboxOptions options;
  if (config.clients_size() == 0) {
    return absl::InvalidArgumentError("clients: at least one client is required");
  }
  for (int i = 0; i < config.clients_size(); ++i) {
    const auto& client = config.clients(i);
    std::string key = absl::StrCat("clients[", i, "]");
    if (client.client_id().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(key, ".client_id: required"));
    }
    if (!ValidHttpUri(client.redirect_uri())) {
      return absl::InvalidArgumentError(
          absl::StrCat(key, ".redirect_uri: must be an absolute http or https URI"));
    }
    if (!options.clients.emplace(client.client_id(), client.redirect_uri()).second) {
      return absl::InvalidArgumentError(absl::StrCat(key, ".client_id: duplicate"));
    }
  }
  for (int i = 0; i < config.required_scopes_size(); ++i) {
    const std::string& scope = config.required_scopes(i);
    if (scope.empty() || absl::StrContains(scope, ' ')) {
      return absl::InvalidArgumentError(
          absl::StrCat("required_scopes[", i, "]: must be one non-empty scope without spaces"));
    }
    options.required_scopes.push_back(scope);
  }
  if (options.required_scopes.empty()) {
    options.required_scopes = {"openid", "profile", "user/*.*", "offline_access"};
  }
  if (config.leyr_client_id().empty()) {
    return absl::InvalidArgumentError("leyr_client_id: required");
  }
  options.leyr_client_id = config.leyr_client_id();
  auto secret = ReadSecretFile("leyr_client_secret_file", config.leyr_client_secret_file());
  if (!secret.ok()) return secret.status();
  options.leyr_client_secret = *std::move(secret);

  auto code_lifetime = DurationKey(config.code_lifetime(), "code_lifetime", absl::Seconds(300));
  if (!code_lifetime.ok()) return code_lifetime.status();
  options.code_lifetime = *code_lifetime;
  options.leyr_latency = DurationOr(config.leyr_latency(), absl::ZeroDuration());
  if (options.leyr_latency < absl::ZeroDuration() || options.leyr_latency > absl::Minutes(10)) {
    return absl::InvalidArgumentError("leyr_latency: must be between 0s and 600s");
  }
  options.leyr_failure_rate = config.leyr_failure_rate();
  if (!(options.leyr_failure_rate >= 0 && options.leyr_failure_rate <= 1)) {
    return absl::InvalidArgumentError("leyr_failure_rate: must be between 0 and 1");
  }
  if (!ParseLogLevel(config.log_level()).ok()) {
    return absl::InvalidArgumentError("log_level: must be debug, info, warn or error");
  }
  if (!config.public_base_uri().empty()) {
    if (!ValidHttpUri(config.public_base_uri()) ||
        absl::EndsWith(config.public_base_uri(), "/")) {
      return absl::InvalidArgumentError(
          "public_base_uri: must be an absolute http or https URI without a trailing slash");
    }
    options.public_base_uri = config.public_base_uri();
  }
  if (config.max_connections() < 0) {
    return absl::InvalidArgumentError("max_connections: must not be negative");
  }
  return options;
}

Sandbox::Sandbox(SandboxOptions options, Clock* clock, Random* random, Scheduler* scheduler)
    : options_(std::move(options)),
      clock_(clock),
      random_(random),
      scheduler_(scheduler),
      public_base_uri_(options_.public_base_uri) {}

void Sandbox::SetPublicBaseUri(std::string uri) {
  absl::MutexLock lock(&mu_);
  public_base_uri_ = std::move(uri);
}

std::string Sandbox::public_base_uri() const {
  absl::MutexLock lock(&mu_);
  return public_base_uri_;
}

void Sandbox::Handle(HttpRequest request, HttpResponder respond) {
  HttpResponse response;
  bool leyr_side = absl::StartsWith(request.path, "/api/");
  if (request.path == "/oauth2/authorize") {
    response = Authorize(request);
  } else if (leyr_side) {
    response = Leyr(request);
  } else if (request.path == "/healthz" || absl::StartsWith(request.path, "/sandbox/")) {
    response = Admin(request);
  } else {
    response = TextResponse(404, "not found");
  }
  // Method, path and status only: never a query, a header or a body.
  LEYR_LOG(Info, "request")
      .Field("method", request.method)
      .Field("path", request.path)
      .Field("status", response.status);
  if (leyr_side && options_.leyr_latency > absl::ZeroDuration()) {
    scheduler_->RunAfter(options_.leyr_latency,
                         [respond = std::move(respond), response = std::move(response)]() mutable {
                           respond(std::move(response));
                         });
    return;
  }
  respond(std::move(response));
}

HttpResponse Sandbox::Authorize(const HttpRequest& request) {
  if (request.method != "GET") {
    HttpResponse response = TextResponse(405, "method not allowed");
    response.headers.emplace_back("Allow", "GET");
    return response;
  }
  for (const char* name :
       {"client_id", "redirect_uri", "aud", "response_type", "scope", "state"}) {
    size_t n = QueryCount(request, name);
    if (n == 0) return AuthorizeError(name, "missing");
    if (n > 1) return AuthorizeError(name, "given more than once");
  }
  const std::string client_id = QueryValue(request, "client_id");
  auto client = options_.clients.find(client_id);
  if (client == options_.clients.end()) {
    return AuthorizeError("client_id", "not a registered client");
  }
  const std::string& redirect_uri = client->second;
  if (QueryValue(request, "redirect_uri") != redirect_uri) {
    return AuthorizeError("redirect_uri", "not the redirect URI registered for this client");
  }
  const std::string base = public_base_uri();
  if (base.empty() || QueryValue(request, "aud") != base) {
    return AuthorizeError("aud", "not this server's base URI");
  }
  if (QueryValue(request, "response_type") != "code") {
    return AuthorizeError("response_type", "must be code");
  }
  const std::string scope = QueryValue(request, "scope");
  std::vector<absl::string_view> scopes = absl::StrSplit(scope, ' ', absl::SkipEmpty());
  for (const std::string& required : options_.required_scopes) {
    if (std::find(scopes.begin(), scopes.end(), required) == scopes.end()) {
      return AuthorizeError("scope", absl::StrCat("must include ", required));
    }
  }
  const std::string state = QueryValue(request, "state");
  if (state.empty()) return AuthorizeError("state", "empty");

  auto code = IssueCode();
  if (!code.ok()) {
    LEYR_LOG(Error, "cannot issue a code").Field("error", code.status().ToString());
    return TextResponse(500, "internal error");
  }
  const std::string id_token = FakeIdToken(client_id);

  HttpResponse response;
  response.status = 200;
  if (WantsJson(request)) {
    Struct page;
    auto& f = *page.mutable_fields();
    f["action"] = StringValue(redirect_uri);
    auto& approve = *f["approve"].mutable_struct_value()->mutable_fields();
    approve["code"] = StringValue(*code);
    approve["state"] = StringValue(state);
    approve["id_token"] = StringValue(id_token);
    auto& deny = *f["deny"].mutable_struct_value()->mutable_fields();
    deny["error"] = StringValue("access_denied");
    deny["error_description"] = StringValue(kDenyDescription);
    deny["state"] = StringValue(state);
    response.headers = AthenaHeaders("application/json");
    response.body = ToJson(page);
    return response;
  }
  const std::string action = HtmlEscape(redirect_uri);
  response.headers = AthenaHeaders("text/html; charset=utf-8");
  response.body = absl::StrCat(
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<title>Sandbox athena: authorize</title></head>\n<body>\n"
      "<h1>Sandbox athena Practice</h1>\n<p>The application <code>",
      HtmlEscape(client_id), "</code> asks for access with the scopes <code>",
      HtmlEscape(scope), "</code>.</p>\n",
      "<form id=\"approve\" method=\"post\" action=\"", action, "\">\n",
      HiddenInput("code", *code), HiddenInput("state", state), HiddenInput("id_token", id_token),
      "<button type=\"submit\">Approve</button>\n</form>\n",
      "<form id=\"deny\" method=\"post\" action=\"", action, "\">\n",
      HiddenInput("error", "access_denied"), HiddenInput("error_description", kDenyDescription),
      HiddenInput("state", state), "<button type=\"submit\">Deny</button>\n</form>\n",
      "</body></html>\n");
  return response;
}

HttpResponse Sandbox::Leyr(const HttpRequest& request) {
  LoggedRequest entry;
  entry.method = request.method;
  entry.path = request.path;
  entry.query = EncodeQuery(request.query);
  entry.client_id_ok = ConstantTimeEquals(HeaderValue(request, "x-leyr-client-id"),
                                          options_.leyr_client_id);
  entry.client_secret_ok = ConstantTimeEquals(HeaderValue(request, "x-leyr-client-secret"),
                                              options_.leyr_client_secret);
  const std::string code = HeaderValue(request, "x-leyr-emr-oauth-code");
  std::string why;

  HttpResponse response;
  if (InjectFailure()) {
    // Leyr is "down": it neither checks nor redeems anything.
    entry.code_ok = CheckCode(code, /*redeem=*/false, &why);
    response = LeyrError(503, "UNKNOWN_ERROR", "Service Unavailable",
                         "Injected failure (leyr_failure_rate).", request.path);
  } else if (!entry.client_id_ok || !entry.client_secret_ok) {
    entry.code_ok = CheckCode(code, /*redeem=*/false, &why);
    response = LeyrError(401, "UNAUTHORIZED", "Unauthorized",
                         "Invalid x-leyr-client-id or x-leyr-client-secret.", request.path);
  } else {
    entry.code_ok = CheckCode(code, /*redeem=*/true, &why);
    if (!entry.code_ok) {
      response = LeyrError(401, "EMR_ERROR", "Unauthorized", why, request.path);
    } else if (!absl::StartsWith(request.path, kLeyrPrefix)) {
      response = LeyrError(404, "BAD_REQUEST", "Not Found", "Unknown EMR or resource.",
                           request.path);
    } else {
      response = LeyrResource(request, request.path.substr(sizeof(kLeyrPrefix) - 1));
    }
  }
  entry.status = response.status;
  absl::MutexLock lock(&mu_);
  ++request_count_;
  if (requests_.size() < kMaxLoggedRequests) requests_.push_back(std::move(entry));
  return response;
}

HttpResponse Sandbox::LeyrResource(const HttpRequest& request, const std::string& resource) {
  if (resource == "echo" || absl::StartsWith(resource, "echo/")) {
    Struct echo;
    auto& f = *echo.mutable_fields();
    f["method"] = StringValue(request.method);
    f["path"] = StringValue(request.path);
    auto* query = f["query"].mutable_list_value();
    for (const auto& [name, value] : request.query) {
      auto& arg = *query->add_values()->mutable_struct_value()->mutable_fields();
      arg["name"] = StringValue(name);
      arg["value"] = StringValue(value);
    }
    auto& headers = *f["headers"].mutable_struct_value()->mutable_fields();
    for (const auto& [name, value] : request.headers) {
      std::string lower = absl::AsciiStrToLower(name);
      if (absl::StartsWith(lower, "x-leyr-") || headers.count(lower) > 0) continue;
      headers[lower] = StringValue(value);
    }
    f["content_type"] = StringValue(HeaderValue(request, "content-type"));
    f["body"] = StringValue(request.body);
    return JsonResponse(200, ToJson(echo));
  }

  auto method_not_allowed = [&] {
    HttpResponse response = LeyrError(405, "BAD_REQUEST", "Method Not Allowed",
                                      "Only GET is supported here.", request.path);
    response.headers.emplace_back("Allow", "GET");
    return response;
  };
  Value list;
  if (resource == "care-units") {
    if (request.method != "GET") return method_not_allowed();
    *list.mutable_list_value() = SampleCareUnits();
    return JsonResponse(200, list);
  }
  if (resource == "patients") {
    if (request.method != "GET") return method_not_allowed();
    *list.mutable_list_value() = SamplePatients();
    return JsonResponse(200, list);
  }
  if (absl::StartsWith(resource, "patients/")) {
    if (request.method != "GET") return method_not_allowed();
    absl::string_view id = absl::string_view(resource).substr(sizeof("patients/") - 1);
    for (const Value& patient : SamplePatients().values()) {
      const auto& fields = patient.struct_value().fields();
      auto it = fields.find("id");
      if (it != fields.end() && it->second.string_value() == id) {
        return JsonResponse(200, patient);
      }
    }
    return LeyrError(404, "BAD_REQUEST", "Not Found", "No patient with this id.",
                     request.path);
  }
  if (resource == "appointments") {
    if (request.method != "GET") return method_not_allowed();
    *list.mutable_list_value() = SampleAppointments();
    if (QueryCount(request, "date") > 0) {
      const std::string date = QueryValue(request, "date");
      if (!IsDate(date)) {
        return LeyrError(400, "BAD_REQUEST", "Bad Request", "date must be YYYY-MM-DD.",
                         request.path);
      }
      // The sample schedule is the same every day: answer it for the day asked.
      for (Value& appointment : *list.mutable_list_value()->mutable_values()) {
        (*appointment.mutable_struct_value()->mutable_fields())["date"] = StringValue(date);
      }
    }
    return JsonResponse(200, list);
  }
  return LeyrError(404, "BAD_REQUEST", "Not Found", "Unknown resource.", request.path);
}

HttpResponse Sandbox::Admin(const HttpRequest& request) {
  auto expect = [&](absl::string_view method) { return request.method == method; };
  if (request.path == "/healthz") {
    return expect("GET") || expect("HEAD") ? TextResponse(200, "ok")
                                           : TextResponse(405, "method not allowed");
  }
  if (request.path == "/sandbox/requests") {
    if (!expect("GET")) return TextResponse(405, "method not allowed");
    Struct out;
    auto& f = *out.mutable_fields();
    auto* list = f["requests"].mutable_list_value();
    absl::MutexLock lock(&mu_);
    f["count"] = NumberValue(static_cast<double>(request_count_));
    for (const LoggedRequest& entry : requests_) {
      auto& e = *list->add_values()->mutable_struct_value()->mutable_fields();
      e["method"] = StringValue(entry.method);
      e["path"] = StringValue(entry.path);
      e["query"] = StringValue(entry.query);
      e["status"] = NumberValue(entry.status);
      e["client_id_ok"] = BoolValue(entry.client_id_ok);
      e["client_secret_ok"] = BoolValue(entry.client_secret_ok);
      e["code_ok"] = BoolValue(entry.code_ok);
    }
    return JsonResponse(200, ToJson(out));
  }
  if (request.path == "/sandbox/requests/reset") {
    if (!expect("POST")) return TextResponse(405, "method not allowed");
    absl::MutexLock lock(&mu_);
    requests_.clear();
    request_count_ = 0;
    return JsonResponse(200, "{}");
  }
  if (request.path == "/sandbox/codes/revoke") {
    if (!expect("POST")) return TextResponse(405, "method not allowed");
    absl::MutexLock lock(&mu_);
    int64_t revoked = 0;
    for (auto& [hash, record] : codes_) {
      revoked_.insert(hash);
      ++revoked;
    }
    codes_.clear();
    return JsonResponse(200, absl::StrCat("{\"revoked\":", revoked, "}"));
  }
  return TextResponse(404, "not found");
}

bool Sandbox::CheckCode(const std::string& code, bool redeem, std::string* why) {
  if (code.empty()) {
    *why = "The x-leyr-emr-oauth-code header is missing.";
    return false;
  }
  const std::string key = Hex(Sha256(code));
  const absl::Time now = clock_->Now();
  absl::MutexLock lock(&mu_);
  if (revoked_.count(key) > 0) {
    *why = "The EMR authorization code was revoked.";
    return false;
  }
  auto it = codes_.find(key);
  if (it == codes_.end()) {
    *why = "The EMR authorization code is not valid.";
    return false;
  }
  if (it->second.redeemed) return true;
  if (now - it->second.issued > options_.code_lifetime) {
    *why = "The EMR authorization code expired before its first use.";
    return false;
  }
  if (redeem) it->second.redeemed = true;
  return true;
}

absl::StatusOr<std::string> Sandbox::IssueCode() {
  auto bytes = random_->Bytes(32);
  if (!bytes.ok()) return bytes.status();
  std::string code = Base64Url(*bytes);
  const absl::Time now = clock_->Now();
  absl::MutexLock lock(&mu_);
  if (codes_.size() >= kCodeSweepThreshold) {
    for (auto it = codes_.begin(); it != codes_.end();) {
      if (!it->second.redeemed && now - it->second.issued > options_.code_lifetime) {
        it = codes_.erase(it);
      } else {
        ++it;
      }
    }
  }
  codes_[Hex(Sha256(code))] = CodeRecord{now, false};
  return code;
}

std::string Sandbox::FakeIdToken(const std::string& client_id) {
  const int64_t now = absl::ToUnixSeconds(clock_->Now());
  Struct header;
  (*header.mutable_fields())["alg"] = StringValue("RS256");
  (*header.mutable_fields())["typ"] = StringValue("JWT");
  (*header.mutable_fields())["kid"] = StringValue("leyr-sandbox");
  Struct claims;
  auto& c = *claims.mutable_fields();
  c["iss"] = StringValue(public_base_uri());
  c["aud"] = StringValue(client_id);
  c["sub"] = StringValue("sandbox-clinician-1");
  c["name"] = StringValue("Sandbox Clinician");
  c["iat"] = NumberValue(static_cast<double>(now));
  c["exp"] = NumberValue(static_cast<double>(now + 3600));
  // Not a real signature: the sandbox's id_token is only shaped like a JWT.
  auto signature = random_->Bytes(32);
  return absl::StrCat(Base64Url(ToJson(header)), ".", Base64Url(ToJson(claims)), ".",
                      Base64Url(signature.ok() ? *signature : std::string(32, '\0')));
}

bool Sandbox::InjectFailure() {
  if (options_.leyr_failure_rate <= 0) return false;
  absl::MutexLock lock(&mu_);
  return absl::Bernoulli(bitgen_, options_.leyr_failure_rate);
}

}  // namespace leyr::sandbox
