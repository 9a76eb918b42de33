// Unit tests of the sandbox's logic, called directly (no socket).

#include "server/sandbox/sandbox.h"

#include <atomic>
#include <cstdio>
#include <fstream>
#include <future>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "server/common/clock.h"
#include "server/common/random.h"
#include "server/sandbox/scheduler.h"
#include "tests/sandbox/sandbox_test_util.h"
#include "tests/testing/status_matchers.h"

namespace leyr::sandbox {
namespace {

using ::leyr::sandbox::testing::Field;
using ::leyr::sandbox::testing::Form;
using ::leyr::sandbox::testing::ParseJson;
using ::leyr::sandbox::testing::ReadForm;
using ::leyr::testing::IsOk;
using ::leyr::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kBase[] = "http://127.0.0.1:4000";
constexpr char kClientId[] = "sandbox-client";
constexpr char kRedirect[] = "http://127.0.0.1:8080/oauth/callback?x=1&y=2";
constexpr char kLeyrId[] = "leyr-client-id";
constexpr char kLeyrSecret[] = "leyr-secret-CANARY-3141";
constexpr char kState[] = "STATE-CANARY-2718";

std::string HeaderOf(const HttpResponse& response, const std::string& name) {
  for (const auto& [key, value] : response.headers) {
    if (absl::EqualsIgnoreCase(key, name)) return value;
  }
  return "";
}

SandboxOptions TestOptions() {
  SandboxOptions options;
  options.clients = {{kClientId, kRedirect}, {"other-client", "https://other.example/cb"}};
  options.required_scopes = {"openid", "profile", "user/*.*", "offline_access"};
  options.leyr_client_id = kLeyrId;
  options.leyr_client_secret = kLeyrSecret;
  options.code_lifetime = absl::Seconds(300);
  options.public_base_uri = kBase;
  return options;
}

HttpFields GoodAuthorizeQuery() {
  return {{"state", kState},
          {"scope", "openid profile user/*.* offline_access"},
          {"response_type", "code"},
          {"redirect_uri", kRedirect},
          {"aud", kBase},
          {"client_id", kClientId}};
}

class SandboxTest : public ::testing::Test {
 protected:
  void Make(SandboxOptions options) {
    sandbox_ = std::make_unique<Sandbox>(std::move(options), &clock_, &random_, &timers_);
  }
  void SetUp() override { Make(TestOptions()); }

  // Handles `request` and waits for its answer (at most 30 s).
  HttpResponse Call(HttpRequest request) {
    auto promise = std::make_shared<std::promise<HttpResponse>>();
    auto future = promise->get_future();
    sandbox_->Handle(std::move(request),
                     [promise](HttpResponse response) { promise->set_value(std::move(response)); });
    if (future.wait_for(std::chrono::seconds(30)) != std::future_status::ready) {
      ADD_FAILURE() << "no answer";
      return HttpResponse{0, {}, ""};
    }
    return future.get();
  }

  HttpResponse Authorize(HttpFields query, HttpFields headers = {}) {
    HttpRequest request;
    request.method = "GET";
    request.path = "/oauth2/authorize";
    request.query = std::move(query);
    request.headers = std::move(headers);
    return Call(std::move(request));
  }

  // Gets a fresh code through the consent page.
  std::string IssueCode() {
    HttpResponse page = Authorize(GoodAuthorizeQuery());
    Form approve = ReadForm(page.body, "approve");
    EXPECT_TRUE(approve.found);
    return approve.fields["code"];
  }

  HttpRequest LeyrRequest(const std::string& path, const std::string& code,
                          const std::string& id = kLeyrId,
                          const std::string& secret = kLeyrSecret) {
    HttpRequest request;
    request.method = "GET";
    request.path = std::string(kLeyrPrefix) + path;
    request.headers = {{"x-leyr-client-id", id},
                       {"x-leyr-client-secret", secret},
                       {"x-leyr-emr-oauth-code", code}};
    return request;
  }

  HttpResponse CallLeyr(const std::string& path, const std::string& code) {
    return Call(LeyrRequest(path, code));
  }

  HttpResponse Admin(const std::string& method, const std::string& path) {
    HttpRequest request;
    request.method = method;
    request.path = path;
    return Call(std::move(request));
  }

  // Checks the Leyr error shape and returns the parsed error.
  static google::protobuf::Value ExpectLeyrError(const HttpResponse& response, int status,
                                                 const std::string& code) {
    EXPECT_EQ(response.status, status);
    EXPECT_EQ(HeaderOf(response, "Content-Type"), "application/json");
    google::protobuf::Value error = ParseJson(response.body);
    EXPECT_EQ(Field(error, "code").string_value(), code) << response.body;
    EXPECT_EQ(Field(error, "status").number_value(), status) << response.body;
    for (const char* key : {"type", "title", "detail", "instance"}) {
      EXPECT_TRUE(Field(error, key).has_string_value()) << key << " in " << response.body;
    }
    EXPECT_TRUE(Field(error, "errors").has_list_value()) << response.body;
    return error;
  }

  FakeClock clock_;
  SecureRandom random_;
  TimerThread timers_;
  std::unique_ptr<Sandbox> sandbox_;
};

// --- athena side --------------------------------------------------------------------------

TEST_F(SandboxTest, AuthorizeValidRequestAnswersConsentPage) {
  HttpResponse page = Authorize(GoodAuthorizeQuery());
  ASSERT_EQ(page.status, 200) << page.body;
  EXPECT_EQ(HeaderOf(page, "Cache-Control"), "no-store");
  EXPECT_EQ(HeaderOf(page, "Referrer-Policy"), "no-referrer");
  EXPECT_THAT(HeaderOf(page, "Content-Type"), HasSubstr("text/html"));

  Form approve = ReadForm(page.body, "approve");
  ASSERT_TRUE(approve.found) << page.body;
  EXPECT_EQ(approve.method, "post");
  EXPECT_EQ(approve.action, kRedirect);
  EXPECT_EQ(approve.fields["state"], kState);
  // 32 random bytes, unpadded base64url.
  EXPECT_EQ(approve.fields["code"].size(), 43u);
  EXPECT_EQ(approve.fields["code"].find_first_not_of(
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
            std::string::npos);
  std::vector<std::string> jwt = absl::StrSplit(approve.fields["id_token"], '.');
  EXPECT_EQ(jwt.size(), 3u);

  Form deny = ReadForm(page.body, "deny");
  ASSERT_TRUE(deny.found) << page.body;
  EXPECT_EQ(deny.method, "post");
  EXPECT_EQ(deny.action, kRedirect);
  EXPECT_EQ(deny.fields["error"], "access_denied");
  EXPECT_EQ(deny.fields["error_description"], "The user denied the request.");
  EXPECT_EQ(deny.fields["state"], kState);
  EXPECT_EQ(deny.fields.count("code"), 0u);
}

TEST_F(SandboxTest, AuthorizeIssuesADifferentCodeEachTime) {
  EXPECT_NE(IssueCode(), IssueCode());
}

TEST_F(SandboxTest, AuthorizeEscapesAttributeValues) {
  HttpFields query = GoodAuthorizeQuery();
  const std::string nasty = "a\"><script>alert('x')</script>&";
  for (auto& [name, value] : query) {
    if (name == "state") value = nasty;
  }
  HttpResponse page = Authorize(query);
  ASSERT_EQ(page.status, 200);
  EXPECT_THAT(page.body, Not(HasSubstr("<script>")));
  EXPECT_EQ(ReadForm(page.body, "approve").fields["state"], nasty);
  EXPECT_EQ(ReadForm(page.body, "deny").fields["state"], nasty);
}

TEST_F(SandboxTest, AuthorizeJsonVariantCarriesBothForms) {
  HttpResponse page = Authorize(GoodAuthorizeQuery(), {{"accept", "application/json"}});
  ASSERT_EQ(page.status, 200) << page.body;
  EXPECT_EQ(HeaderOf(page, "Content-Type"), "application/json");
  EXPECT_EQ(HeaderOf(page, "Cache-Control"), "no-store");
  EXPECT_EQ(HeaderOf(page, "Referrer-Policy"), "no-referrer");
  google::protobuf::Value json = ParseJson(page.body);
  EXPECT_EQ(Field(json, "action").string_value(), kRedirect);
  const auto& approve = Field(json, "approve");
  EXPECT_EQ(Field(approve, "code").string_value().size(), 43u);
  EXPECT_EQ(Field(approve, "state").string_value(), kState);
  EXPECT_FALSE(Field(approve, "id_token").string_value().empty());
  const auto& deny = Field(json, "deny");
  EXPECT_EQ(Field(deny, "error").string_value(), "access_denied");
  EXPECT_EQ(Field(deny, "error_description").string_value(), "The user denied the request.");
  EXPECT_EQ(Field(deny, "state").string_value(), kState);

  // The code from the JSON variant is a real one.
  EXPECT_EQ(CallLeyr("care-units", Field(approve, "code").string_value()).status, 200);
}

TEST_F(SandboxTest, AuthorizeAcceptListWithJsonGetsJson) {
  HttpResponse page =
      Authorize(GoodAuthorizeQuery(), {{"accept", "text/html;q=0.9, application/json"}});
  EXPECT_EQ(HeaderOf(page, "Content-Type"), "application/json");
}

struct BadParameterCase {
  std::string name;       // test label
  std::string parameter;  // the parameter the page must name
  // Changes the good query into a bad one.
  std::function<void(HttpFields*)> spoil;
};

void Remove(HttpFields* q, const std::string& name) {
  q->erase(std::remove_if(q->begin(), q->end(), [&](const auto& f) { return f.first == name; }),
           q->end());
}
void Set(HttpFields* q, const std::string& name, const std::string& value) {
  for (auto& [k, v] : *q) {
    if (k == name) v = value;
  }
}
void Repeat(HttpFields* q, const std::string& name) {
  for (const auto& [k, v] : HttpFields(*q)) {
    if (k == name) q->emplace_back(k, v);
  }
}

std::vector<BadParameterCase> BadParameterCases() {
  std::vector<BadParameterCase> cases;
  for (const char* p : {"client_id", "redirect_uri", "aud", "response_type", "scope", "state"}) {
    std::string name = p;
    cases.push_back({name + "_missing", name, [name](HttpFields* q) { Remove(q, name); }});
    cases.push_back({name + "_repeated", name, [name](HttpFields* q) { Repeat(q, name); }});
  }
  cases.push_back({"client_id_unknown", "client_id",
                   [](HttpFields* q) { Set(q, "client_id", "stranger"); }});
  cases.push_back({"redirect_uri_of_other_client", "redirect_uri",
                   [](HttpFields* q) { Set(q, "redirect_uri", "https://other.example/cb"); }});
  cases.push_back({"redirect_uri_trailing_slash", "redirect_uri", [](HttpFields* q) {
                     Set(q, "redirect_uri", std::string(kRedirect) + "/");
                   }});
  cases.push_back({"redirect_uri_other_case", "redirect_uri", [](HttpFields* q) {
                     Set(q, "redirect_uri", "HTTP://127.0.0.1:8080/oauth/callback?x=1&y=2");
                   }});
  cases.push_back({"aud_other", "aud",
                   [](HttpFields* q) { Set(q, "aud", "http://127.0.0.1:4001"); }});
  cases.push_back({"aud_trailing_slash", "aud",
                   [](HttpFields* q) { Set(q, "aud", std::string(kBase) + "/"); }});
  cases.push_back({"response_type_token", "response_type",
                   [](HttpFields* q) { Set(q, "response_type", "token"); }});
  cases.push_back({"scope_without_offline_access", "scope",
                   [](HttpFields* q) { Set(q, "scope", "openid profile user/*.*"); }});
  cases.push_back({"scope_joined_by_plus", "scope", [](HttpFields* q) {
                     Set(q, "scope", "openid+profile+user/*.*+offline_access");
                   }});
  cases.push_back({"state_empty", "state", [](HttpFields* q) { Set(q, "state", ""); }});
  return cases;
}

class AuthorizeBadParameterTest : public SandboxTest,
                                  public ::testing::WithParamInterface<BadParameterCase> {};

TEST_P(AuthorizeBadParameterTest, AnswersBadRequestNamingIt) {
  HttpFields query = GoodAuthorizeQuery();
  GetParam().spoil(&query);
  HttpResponse page = Authorize(query);
  EXPECT_EQ(page.status, 400);
  EXPECT_EQ(HeaderOf(page, "X-Sandbox-Bad-Parameter"), GetParam().parameter);
  EXPECT_THAT(page.body, HasSubstr("data-parameter=\"" + GetParam().parameter + "\""));
  EXPECT_THAT(page.body, HasSubstr("<code>" + GetParam().parameter + "</code>"));
  EXPECT_THAT(page.body, Not(HasSubstr(kState)));
  EXPECT_EQ(HeaderOf(page, "Cache-Control"), "no-store");
  EXPECT_EQ(HeaderOf(page, "Referrer-Policy"), "no-referrer");
  EXPECT_THAT(page.body, Not(HasSubstr("<form")));
}

INSTANTIATE_TEST_SUITE_P(AllParameters, AuthorizeBadParameterTest,
                         ::testing::ValuesIn(BadParameterCases()),
                         [](const auto& info) { return info.param.name; });

TEST_F(SandboxTest, AuthorizeExtraScopesAndOrderAreAccepted) {
  HttpFields query = GoodAuthorizeQuery();
  Set(&query, "scope", "offline_access  launch user/*.* profile openid");
  EXPECT_EQ(Authorize(query).status, 200);
}

TEST_F(SandboxTest, AuthorizeOtherMethodIsNotAllowed) {
  HttpRequest request;
  request.method = "POST";
  request.path = "/oauth2/authorize";
  request.query = GoodAuthorizeQuery();
  HttpResponse response = Call(request);
  EXPECT_EQ(response.status, 405);
  EXPECT_EQ(HeaderOf(response, "Allow"), "GET");
}

TEST_F(SandboxTest, AuthorizeBeforeBaseUriIsKnownRejectsAud) {
  SandboxOptions options = TestOptions();
  options.public_base_uri.clear();
  Make(options);
  HttpFields query = GoodAuthorizeQuery();
  Set(&query, "aud", "");
  EXPECT_EQ(Authorize(query).status, 400);
  sandbox_->SetPublicBaseUri(kBase);
  EXPECT_EQ(Authorize(GoodAuthorizeQuery()).status, 200);
}

// --- Leyr side: headers and codes ---------------------------------------------------------

TEST_F(SandboxTest, LeyrValidHeadersAnswerData) {
  HttpResponse response = CallLeyr("care-units", IssueCode());
  EXPECT_EQ(response.status, 200) << response.body;
  EXPECT_EQ(HeaderOf(response, "Content-Type"), "application/json");
}

TEST_F(SandboxTest, LeyrWrongClientIdIsUnauthorized) {
  HttpResponse response = Call(LeyrRequest("care-units", IssueCode(), "someone-else"));
  ExpectLeyrError(response, 401, "UNAUTHORIZED");
}

TEST_F(SandboxTest, LeyrWrongSecretIsUnauthorized) {
  HttpResponse response = Call(LeyrRequest("care-units", IssueCode(), kLeyrId, "wrong"));
  auto error = ExpectLeyrError(response, 401, "UNAUTHORIZED");
  EXPECT_EQ(Field(error, "instance").string_value(),
            std::string(kLeyrPrefix) + "care-units");
  EXPECT_THAT(response.body, Not(HasSubstr(kLeyrSecret)));
}

TEST_F(SandboxTest, LeyrMissingHeadersAreUnauthorized) {
  HttpRequest request = LeyrRequest("care-units", IssueCode());
  request.headers.clear();
  ExpectLeyrError(Call(request), 401, "UNAUTHORIZED");
}

TEST_F(SandboxTest, LeyrUnknownCodeIsEmrError) {
  ExpectLeyrError(CallLeyr("care-units", "no-such-code"), 401, "EMR_ERROR");
  ExpectLeyrError(CallLeyr("care-units", ""), 401, "EMR_ERROR");
}

TEST_F(SandboxTest, LeyrCodeFirstSeenAfterLifetimeIsEmrError) {
  std::string code = IssueCode();
  clock_.Advance(absl::Seconds(301));
  HttpResponse response = CallLeyr("care-units", code);
  ExpectLeyrError(response, 401, "EMR_ERROR");
  EXPECT_THAT(response.body, Not(HasSubstr(code)));
}

TEST_F(SandboxTest, LeyrCodeFirstSeenAtLifetimeIsAccepted) {
  std::string code = IssueCode();
  clock_.Advance(absl::Seconds(300));
  EXPECT_EQ(CallLeyr("care-units", code).status, 200);
}

TEST_F(SandboxTest, LeyrRedeemedCodeIsAcceptedAfterLifetime) {
  std::string code = IssueCode();
  clock_.Advance(absl::Seconds(10));
  ASSERT_EQ(CallLeyr("care-units", code).status, 200);
  clock_.Advance(absl::Hours(5));
  EXPECT_EQ(CallLeyr("patients", code).status, 200);
  EXPECT_EQ(CallLeyr("care-units", code).status, 200);
}

TEST_F(SandboxTest, LeyrCallWithBadSecretDoesNotRedeemTheCode) {
  std::string code = IssueCode();
  ExpectLeyrError(Call(LeyrRequest("care-units", code, kLeyrId, "wrong")), 401, "UNAUTHORIZED");
  clock_.Advance(absl::Seconds(301));
  ExpectLeyrError(CallLeyr("care-units", code), 401, "EMR_ERROR");
}

TEST_F(SandboxTest, LeyrConfiguredCodeLifetimeApplies) {
  SandboxOptions options = TestOptions();
  options.code_lifetime = absl::Seconds(5);
  Make(options);
  std::string code = IssueCode();
  clock_.Advance(absl::Seconds(6));
  ExpectLeyrError(CallLeyr("care-units", code), 401, "EMR_ERROR");
}

TEST_F(SandboxTest, RevokeRejectsRedeemedAndFreshCodes) {
  std::string redeemed = IssueCode();
  ASSERT_EQ(CallLeyr("care-units", redeemed).status, 200);
  std::string fresh = IssueCode();

  HttpResponse revoke = Admin("POST", "/sandbox/codes/revoke");
  EXPECT_EQ(revoke.status, 200);
  EXPECT_EQ(Field(ParseJson(revoke.body), "revoked").number_value(), 2);

  ExpectLeyrError(CallLeyr("care-units", redeemed), 401, "EMR_ERROR");
  ExpectLeyrError(CallLeyr("care-units", fresh), 401, "EMR_ERROR");
  // Codes issued afterwards work.
  EXPECT_EQ(CallLeyr("care-units", IssueCode()).status, 200);
}

TEST_F(SandboxTest, RevokeNeedsPost) {
  EXPECT_EQ(Admin("GET", "/sandbox/codes/revoke").status, 405);
}

// --- Leyr side: resources -----------------------------------------------------------------

TEST_F(SandboxTest, SampleCareUnitsAndPatients) {
  std::string code = IssueCode();
  for (const char* resource : {"care-units", "patients", "appointments"}) {
    HttpResponse response = CallLeyr(resource, code);
    ASSERT_EQ(response.status, 200) << resource;
    google::protobuf::Value list = ParseJson(response.body);
    ASSERT_TRUE(list.has_list_value()) << response.body;
    EXPECT_GE(list.list_value().values_size(), 3) << resource;
    for (const auto& item : list.list_value().values()) {
      EXPECT_FALSE(Field(item, "id").string_value().empty()) << resource;
    }
  }
}

TEST_F(SandboxTest, PatientById) {
  std::string code = IssueCode();
  HttpResponse response = CallLeyr("patients/p-1002", code);
  ASSERT_EQ(response.status, 200);
  google::protobuf::Value patient = ParseJson(response.body);
  EXPECT_EQ(Field(patient, "id").string_value(), "p-1002");
  EXPECT_EQ(Field(patient, "lastName").string_value(), "Okafor");

  ExpectLeyrError(CallLeyr("patients/p-9999", code), 404, "BAD_REQUEST");
}

TEST_F(SandboxTest, AppointmentsEchoTheDate) {
  HttpRequest request = LeyrRequest("appointments", IssueCode());
  request.query = {{"date", "2026-02-03"}};
  HttpResponse response = Call(request);
  ASSERT_EQ(response.status, 200) << response.body;
  google::protobuf::Value list = ParseJson(response.body);
  ASSERT_GE(list.list_value().values_size(), 1);
  for (const auto& appointment : list.list_value().values()) {
    EXPECT_EQ(Field(appointment, "date").string_value(), "2026-02-03");
  }
  request.query = {{"date", "tomorrow"}};
  ExpectLeyrError(Call(request), 400, "BAD_REQUEST");
}

TEST_F(SandboxTest, UnknownResourceAndOtherEmrAreNotFound) {
  std::string code = IssueCode();
  ExpectLeyrError(CallLeyr("invoices", code), 404, "BAD_REQUEST");
  HttpRequest request = LeyrRequest("care-units", code);
  request.path = "/api/emrs/otheremr/care-units";
  ExpectLeyrError(Call(request), 404, "BAD_REQUEST");
}

TEST_F(SandboxTest, DataResourcesOnlyAnswerGet) {
  HttpRequest request = LeyrRequest("care-units", IssueCode());
  request.method = "DELETE";
  ExpectLeyrError(Call(request), 405, "BAD_REQUEST");
}

TEST_F(SandboxTest, EchoReturnsTheRequest) {
  HttpRequest request = LeyrRequest("echo/deeper/path", IssueCode());
  request.method = "PATCH";
  request.query = {{"a", "1 2"}, {"b", "x&y"}, {"a", "3"}};
  request.headers.emplace_back("content-type", "application/json; charset=utf-8");
  request.headers.emplace_back("x-request-id", "r-42");
  request.body = "{\"hello\": \"w\\u00f6rld\"}";
  HttpResponse response = Call(request);
  ASSERT_EQ(response.status, 200) << response.body;
  google::protobuf::Value echo = ParseJson(response.body);
  EXPECT_EQ(Field(echo, "method").string_value(), "PATCH");
  EXPECT_EQ(Field(echo, "path").string_value(), std::string(kLeyrPrefix) + "echo/deeper/path");
  EXPECT_EQ(Field(echo, "content_type").string_value(), "application/json; charset=utf-8");
  EXPECT_EQ(Field(echo, "body").string_value(), request.body);
  const auto& query = Field(echo, "query").list_value();
  ASSERT_EQ(query.values_size(), 3);
  EXPECT_EQ(Field(query.values(0), "name").string_value(), "a");
  EXPECT_EQ(Field(query.values(0), "value").string_value(), "1 2");
  EXPECT_EQ(Field(query.values(1), "value").string_value(), "x&y");
  EXPECT_EQ(Field(query.values(2), "value").string_value(), "3");
  EXPECT_EQ(Field(Field(echo, "headers"), "x-request-id").string_value(), "r-42");
  // The x-leyr-* headers are never echoed.
  EXPECT_THAT(response.body, Not(HasSubstr("x-leyr")));
  EXPECT_THAT(response.body, Not(HasSubstr(kLeyrSecret)));
}

// --- request log --------------------------------------------------------------------------

TEST_F(SandboxTest, RequestLogRecordsBooleansNeverValues) {
  std::string code = IssueCode();
  HttpRequest good = LeyrRequest("appointments", code);
  good.query = {{"date", "2026-02-03"}};
  ASSERT_EQ(Call(good).status, 200);
  Call(LeyrRequest("care-units", code, "wrong-id"));
  Call(LeyrRequest("care-units", code, kLeyrId, "wrong-secret"));
  Call(LeyrRequest("care-units", "unknown-code"));

  HttpResponse log = Admin("GET", "/sandbox/requests");
  ASSERT_EQ(log.status, 200);
  EXPECT_THAT(log.body, Not(HasSubstr(code)));
  EXPECT_THAT(log.body, Not(HasSubstr(kLeyrSecret)));
  google::protobuf::Value json = ParseJson(log.body);
  EXPECT_EQ(Field(json, "count").number_value(), 4);
  const auto& requests = Field(json, "requests").list_value();
  ASSERT_EQ(requests.values_size(), 4);

  const auto& first = requests.values(0);
  EXPECT_EQ(Field(first, "method").string_value(), "GET");
  EXPECT_EQ(Field(first, "path").string_value(), std::string(kLeyrPrefix) + "appointments");
  EXPECT_EQ(Field(first, "query").string_value(), "date=2026-02-03");
  EXPECT_EQ(Field(first, "status").number_value(), 200);
  EXPECT_TRUE(Field(first, "client_id_ok").bool_value());
  EXPECT_TRUE(Field(first, "client_secret_ok").bool_value());
  EXPECT_TRUE(Field(first, "code_ok").bool_value());

  const auto& wrong_id = requests.values(1);
  EXPECT_FALSE(Field(wrong_id, "client_id_ok").bool_value());
  EXPECT_TRUE(Field(wrong_id, "client_secret_ok").bool_value());
  EXPECT_TRUE(Field(wrong_id, "code_ok").bool_value());
  EXPECT_EQ(Field(wrong_id, "status").number_value(), 401);

  const auto& wrong_secret = requests.values(2);
  EXPECT_TRUE(Field(wrong_secret, "client_id_ok").bool_value());
  EXPECT_FALSE(Field(wrong_secret, "client_secret_ok").bool_value());

  const auto& unknown_code = requests.values(3);
  EXPECT_TRUE(Field(unknown_code, "client_id_ok").bool_value());
  EXPECT_TRUE(Field(unknown_code, "client_secret_ok").bool_value());
  EXPECT_FALSE(Field(unknown_code, "code_ok").bool_value());

  // Athena-side and admin requests are not Leyr requests.
  EXPECT_EQ(Admin("POST", "/sandbox/requests/reset").status, 200);
  IssueCode();
  json = ParseJson(Admin("GET", "/sandbox/requests").body);
  EXPECT_EQ(Field(json, "count").number_value(), 0);
  EXPECT_EQ(Field(json, "requests").list_value().values_size(), 0);
}

TEST_F(SandboxTest, HealthzAndUnknownPaths) {
  EXPECT_EQ(Admin("GET", "/healthz").status, 200);
  EXPECT_EQ(Admin("GET", "/nothing-here").status, 404);
  EXPECT_EQ(Admin("GET", "/sandbox/nothing").status, 404);
  EXPECT_EQ(Admin("POST", "/sandbox/requests").status, 405);
}

// --- faults and latency -------------------------------------------------------------------

TEST_F(SandboxTest, FailureRateOneAnswersUnavailable) {
  SandboxOptions options = TestOptions();
  options.leyr_failure_rate = 1.0;
  Make(options);
  std::string code = IssueCode();
  ExpectLeyrError(CallLeyr("care-units", code), 503, "UNKNOWN_ERROR");
  // Athena's side is not affected.
  EXPECT_EQ(Authorize(GoodAuthorizeQuery()).status, 200);
  auto json = ParseJson(Admin("GET", "/sandbox/requests").body);
  EXPECT_TRUE(Field(Field(json, "requests").list_value().values(0), "code_ok").bool_value());
}

TEST_F(SandboxTest, FailureRateHalfFailsSomeNotAll) {
  SandboxOptions options = TestOptions();
  options.leyr_failure_rate = 0.5;
  Make(options);
  std::string code = IssueCode();
  int failed = 0, ok = 0;
  for (int i = 0; i < 200; ++i) {
    int status = CallLeyr("care-units", code).status;
    failed += status == 503;
    ok += status == 200;
  }
  EXPECT_EQ(failed + ok, 200);
  // Binomial(200, 0.5): outside [40, 160] has probability far below 1e-15.
  EXPECT_GT(failed, 40);
  EXPECT_GT(ok, 40);
}

TEST_F(SandboxTest, LatencyDelaysLeyrAnswersWithoutBlocking) {
  SandboxOptions options = TestOptions();
  options.leyr_latency = absl::Milliseconds(300);
  Make(options);
  std::string code = IssueCode();  // athena's side is not delayed (Call would wait anyway)

  std::atomic<bool> handle_returned{false};
  absl::Notification answered;
  HttpResponse response;
  absl::Time answered_at;
  const absl::Time start = absl::Now();
  sandbox_->Handle(LeyrRequest("care-units", code), [&](HttpResponse r) {
    answered_at = absl::Now();
    // Answered from the timer thread, after Handle returned: no server thread was held.
    EXPECT_TRUE(handle_returned.load());
    response = std::move(r);
    answered.Notify();
  });
  handle_returned = true;
  ASSERT_TRUE(answered.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_GE(answered_at - start, absl::Milliseconds(300));
  EXPECT_EQ(response.status, 200);
}

TEST_F(SandboxTest, LatencyHandlesTwoThousandRequestsInFlight) {
  SandboxOptions options = TestOptions();
  options.leyr_latency = absl::Milliseconds(500);
  Make(options);
  std::string code = IssueCode();

  constexpr int kRequests = 2000;
  std::atomic<int> answered{0}, ok{0}, early{0};
  absl::Notification all_answered;
  absl::Duration longest_handle = absl::ZeroDuration();
  for (int i = 0; i < kRequests; ++i) {
    const absl::Time start = absl::Now();
    sandbox_->Handle(LeyrRequest("care-units", code), [&, start](HttpResponse r) {
      if (absl::Now() - start < absl::Milliseconds(500)) ++early;
      if (r.status == 200) ++ok;
      if (++answered == kRequests) all_answered.Notify();
    });
    longest_handle = std::max(longest_handle, absl::Now() - start);
  }
  ASSERT_TRUE(all_answered.WaitForNotificationWithTimeout(absl::Seconds(60)));
  EXPECT_EQ(ok.load(), kRequests);
  EXPECT_EQ(early.load(), 0);
  EXPECT_LT(longest_handle, absl::Milliseconds(500));
}

// --- the timer thread ---------------------------------------------------------------------

TEST(TimerThreadTest, RunsTasksInDeadlineOrder) {
  TimerThread timers;
  absl::Mutex mu;
  std::vector<int> order;
  absl::Notification done;
  auto push = [&](int i) {
    absl::MutexLock lock(&mu);
    order.push_back(i);
    if (order.size() == 3) done.Notify();
  };
  timers.RunAfter(absl::Milliseconds(200), [&] { push(3); });
  timers.RunAfter(absl::Milliseconds(100), [&] { push(2); });
  timers.RunAfter(absl::ZeroDuration(), [&] { push(1); });
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(30)));
  absl::MutexLock lock(&mu);
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
}

TEST(TimerThreadTest, ShutdownRunsPendingTasksAtOnce) {
  TimerThread timers;
  std::atomic<int> ran{0};
  for (int i = 0; i < 10; ++i) timers.RunAfter(absl::Hours(1), [&] { ++ran; });
  EXPECT_EQ(timers.pending(), 10u);
  timers.Shutdown();
  EXPECT_EQ(ran.load(), 10);
  // After shutdown, tasks run inline.
  timers.RunAfter(absl::Hours(1), [&] { ++ran; });
  EXPECT_EQ(ran.load(), 11);
}

// --- configuration ------------------------------------------------------------------------

class OptionsFromConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    secret_path_ = ::testing::TempDir() + "/sandbox_secret_" +
                   ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::ofstream(secret_path_) << "s3cret\n";
    config_.set_leyr_client_id("leyr-id");
    config_.set_leyr_client_secret_file(secret_path_);
    auto* client = config_.add_clients();
    client->set_client_id("app");
    client->set_redirect_uri("http://127.0.0.1:8080/oauth/callback");
  }
  void TearDown() override { std::remove(secret_path_.c_str()); }

  // Expects an InvalidArgument error whose message starts with `key`.
  void ExpectBadKey(const std::string& key) {
    auto options = OptionsFromConfig(config_);
    EXPECT_THAT(options, StatusIs(absl::StatusCode::kInvalidArgument));
    EXPECT_TRUE(absl::StartsWith(options.status().message(), key))
        << options.status().message();
  }

  std::string secret_path_;
  config::SandboxConfig config_;
};

TEST_F(OptionsFromConfigTest, ValidConfigGetsDefaults) {
  auto options = OptionsFromConfig(config_);
  ASSERT_THAT(options, IsOk());
  EXPECT_EQ(options->leyr_client_secret, "s3cret");
  EXPECT_EQ(options->code_lifetime, absl::Seconds(300));
  EXPECT_EQ(options->leyr_latency, absl::ZeroDuration());
  EXPECT_EQ(options->required_scopes,
            (std::vector<std::string>{"openid", "profile", "user/*.*", "offline_access"}));
  EXPECT_EQ(options->clients.at("app"), "http://127.0.0.1:8080/oauth/callback");
  EXPECT_TRUE(options->public_base_uri.empty());
}

TEST_F(OptionsFromConfigTest, NoClients) {
  config_.clear_clients();
  ExpectBadKey("clients");
}

TEST_F(OptionsFromConfigTest, ClientWithoutId) {
  config_.add_clients()->set_redirect_uri("http://127.0.0.1:1/cb");
  ExpectBadKey("clients[1].client_id");
}

TEST_F(OptionsFromConfigTest, DuplicateClient) {
  *config_.add_clients() = config_.clients(0);
  ExpectBadKey("clients[1].client_id");
}

TEST_F(OptionsFromConfigTest, BadRedirectUri) {
  config_.mutable_clients(0)->set_redirect_uri("/relative");
  ExpectBadKey("clients[0].redirect_uri");
}

TEST_F(OptionsFromConfigTest, BadScope) {
  config_.add_required_scopes("openid profile");
  ExpectBadKey("required_scopes[0]");
}

TEST_F(OptionsFromConfigTest, MissingLeyrClientId) {
  config_.clear_leyr_client_id();
  ExpectBadKey("leyr_client_id");
}

TEST_F(OptionsFromConfigTest, MissingOrEmptySecretFile) {
  config_.set_leyr_client_secret_file(secret_path_ + ".absent");
  ExpectBadKey("leyr_client_secret_file");
  std::ofstream(secret_path_, std::ios::trunc) << "\n";
  config_.set_leyr_client_secret_file(secret_path_);
  ExpectBadKey("leyr_client_secret_file");
}

TEST_F(OptionsFromConfigTest, NegativeDurationsAndRates) {
  config_.mutable_code_lifetime()->set_seconds(-1);
  ExpectBadKey("code_lifetime");
  config_.clear_code_lifetime();
  config_.mutable_leyr_latency()->set_seconds(-1);
  ExpectBadKey("leyr_latency");
  config_.clear_leyr_latency();
  config_.set_leyr_failure_rate(1.5);
  ExpectBadKey("leyr_failure_rate");
  config_.set_leyr_failure_rate(std::nan(""));
  ExpectBadKey("leyr_failure_rate");
}

TEST_F(OptionsFromConfigTest, BadLogLevelAndBaseUri) {
  config_.set_log_level("chatty");
  ExpectBadKey("log_level");
  config_.clear_log_level();
  config_.set_public_base_uri("http://127.0.0.1:4000/");
  ExpectBadKey("public_base_uri");
  config_.set_public_base_uri("127.0.0.1:4000");
  ExpectBadKey("public_base_uri");
}

}  // namespace
}  // namespace leyr::sandbox
