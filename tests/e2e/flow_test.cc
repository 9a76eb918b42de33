// End to end: the real leyr-sandbox, leyr-broker and leyr-callback-shim binaries on port 0,
// driven as a browser and an internal service would drive them.

#include <regex>
#include <set>
#include <string>

#include <gmock/gmock.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "client/broker_client.h"
#include "server/common/status_util.h"
#include "server/common/url.h"
#include "tests/testing/consent_form.h"
#include "tests/testing/http_client.h"
#include "tests/testing/process.h"
#include "tests/testing/status_matchers.h"

namespace leyr {
namespace {

using ::leyr::testing::HttpRequest;
using ::leyr::testing::HttpResult;
using ::leyr::testing::IsOk;
using ::leyr::testing::Process;
using ::leyr::testing::StatusIs;
using ::leyr::testing::TempDir;
using ::testing::HasSubstr;
using ::testing::Not;
using broker::v1::Authorization;

constexpr char kLeyrSecret[] = "canary-LEYR-SECRET-7f3a9c";
constexpr char kReturnOrigin[] = "http://127.0.0.1:3999";

using ::leyr::testing::Form;
using ::leyr::testing::ParseForm;

class FlowTest : public ::testing::Test {
 protected:
  void SetUp() override { StartStack("600s"); }

  void StartStack(const std::string& state_ttl) {
    std::string secret_file = dir_.WriteFile("leyr-secret", std::string(kLeyrSecret) + "\n");
    std::string socket = dir_.path() + "/broker.sock";

    // The shim first: the broker's configuration needs its URL, and it reaches the broker over a
    // Unix socket whose path is known before the broker starts.
    std::string shim_config = dir_.WriteFile(
        "shim.json", absl::StrCat(R"({"listen":"127.0.0.1:0","broker_target":"unix:)", socket,
                                  R"(","callback_path":"/oauth/callback"})"));
    auto shim = Process::Start({LEYR_SHIM_BIN, "--config=" + shim_config});
    ASSERT_THAT(shim, IsOk());
    shim_ = std::move(*shim);
    auto shim_address = shim_->WaitForListening();
    ASSERT_THAT(shim_address, IsOk());
    redirect_uri_ = absl::StrCat("http://", *shim_address, "/oauth/callback");

    std::string sandbox_config = dir_.WriteFile(
        "sandbox.json",
        absl::StrCat(R"({"listen":"127.0.0.1:0","clients":[{"client_id":"athena-client","redirect_uri":")",
                     redirect_uri_, R"("}],"leyr_client_id":"leyr-client","leyr_client_secret_file":")",
                     secret_file, R"("})"));
    auto sandbox = Process::Start({LEYR_SANDBOX_BIN, "--config=" + sandbox_config});
    ASSERT_THAT(sandbox, IsOk());
    sandbox_ = std::move(*sandbox);
    auto sandbox_address = sandbox_->WaitForListening();
    ASSERT_THAT(sandbox_address, IsOk());
    sandbox_url_ = absl::StrCat("http://", *sandbox_address);

    std::string broker_config = dir_.WriteFile(
        "broker.json",
        absl::StrCat(R"({"listen":["unix:)", socket, R"(","127.0.0.1:0"],"plaintext_development":true,)",
                     R"("state_ttl":")", state_ttl, R"(",)",
                     R"("leyr":{"base_uri":")", sandbox_url_,
                     R"(","client_id":"leyr-client","client_secret_file":")", secret_file, R"("},)",
                     R"("connections":[{"name":"athena-sandbox","emr":"athenapractice","base_uri":")",
                     sandbox_url_, R"(","client_id":"athena-client","redirect_uri":")", redirect_uri_,
                     R"("}],"return_uri_origins":[")", kReturnOrigin, R"("]})"));
    auto broker = Process::Start({LEYR_BROKER_BIN, "--config=" + broker_config});
    ASSERT_THAT(broker, IsOk());
    broker_ = std::move(*broker);
    // The first "listening" line is the Unix socket, the second the TCP port.
    auto tcp = broker_->WaitForLine([](const std::string& l) {
      return absl::StrContains(l, "\"msg\":\"listening\"") && absl::StrContains(l, "127.0.0.1:");
    });
    ASSERT_THAT(tcp, IsOk());
    std::string key = "\"address\":\"";
    size_t start = tcp->find(key) + key.size();
    client_ = BrokerClient::ConnectInsecure(tcp->substr(start, tcp->find('"', start) - start));
  }

  // BeginAuthorization with a return URI; remembers the state for the canary checks.
  broker::v1::BeginAuthorizationResponse Begin() {
    broker::v1::BeginAuthorizationRequest request;
    request.set_connection("athena-sandbox");
    request.set_return_uri(absl::StrCat(kReturnOrigin, "/done?from=test"));
    (*request.mutable_labels())["patient_app"] = "e2e";
    auto response = client_->Begin(request);
    EXPECT_THAT(response, IsOk());
    return response.ok() ? *response : broker::v1::BeginAuthorizationResponse();
  }

  // Opens the authorize URI as the clinician's browser does and reads the chosen form.
  Form OpenConsentPage(const std::string& authorize_uri, const std::string& form_id) {
    auto page = HttpRequest("GET", authorize_uri);
    EXPECT_THAT(page, IsOk());
    if (!page.ok()) return {};
    EXPECT_EQ(page->status, 200) << page->body;
    auto form = ParseForm(page->body, form_id);
    EXPECT_THAT(form, IsOk()) << page->body;
    if (!form.ok()) return {};
    secrets_.insert(form->Field("code"));
    secrets_.insert(form->Field("state"));
    secrets_.insert(form->Field("id_token"));
    return *form;
  }

  // Submits the form as a browser does: a cross-site form POST, redirects not followed.
  HttpResult Submit(const Form& form) {
    auto result = HttpRequest("POST", form.action,
                              {"Content-Type: application/x-www-form-urlencoded"},
                              EncodeQuery(form.fields));
    EXPECT_THAT(result, IsOk());
    return result.ok() ? *result : HttpResult();
  }

  // Runs begin → consent page → approve → 303 and returns the authorization's name.
  std::string Authorize() {
    auto begun = Begin();
    Form form = OpenConsentPage(begun.authorize_uri(), "approve");
    HttpResult result = Submit(form);
    EXPECT_EQ(result.status, 303) << result.body;
    return begun.authorization().name();
  }

  google::protobuf::Struct SandboxRequests() {
    auto result = HttpRequest("GET", sandbox_url_ + "/sandbox/requests");
    EXPECT_THAT(result, IsOk());
    google::protobuf::Struct out;
    if (result.ok()) {
      EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(result->body, &out).ok()) << result->body;
    }
    return out;
  }

  double SandboxRequestCount() { return SandboxRequests().fields().at("count").number_value(); }

  broker::v1::CallLeyrRequest CareUnits(const std::string& name) {
    broker::v1::CallLeyrRequest request;
    request.set_authorization(name);
    request.set_method("GET");
    request.set_path("/api/emrs/athenapractice/care-units");
    return request;
  }

  TempDir dir_;
  std::unique_ptr<Process> shim_, sandbox_, broker_;
  std::string redirect_uri_, sandbox_url_;
  std::unique_ptr<BrokerClient> client_;
  std::set<std::string> secrets_ = {kLeyrSecret};
};

TEST_F(FlowTest, BrowserFlowActivatesAndCallLeyrAddsTheThreeHeaders) {
  auto begun = Begin();
  const std::string name = begun.authorization().name();
  EXPECT_EQ(begun.authorization().state(), Authorization::STATE_PENDING);
  Form form = OpenConsentPage(begun.authorize_uri(), "approve");
  EXPECT_EQ(form.action, redirect_uri_);
  ASSERT_FALSE(form.Field("code").empty());

  HttpResult callback = Submit(form);
  ASSERT_EQ(callback.status, 303) << callback.body;
  const std::string location = callback.Header("location");
  EXPECT_TRUE(absl::StartsWith(location, absl::StrCat(kReturnOrigin, "/done?from=test&")))
      << location;
  auto query = ParseFormUrlEncoded(location.substr(location.find('?') + 1));
  ASSERT_THAT(query, IsOk());
  EXPECT_THAT(*query, ::testing::ElementsAre(::testing::Pair("from", "test"),
                                             ::testing::Pair("authorization", name),
                                             ::testing::Pair("result", "active")));
  EXPECT_THAT(location, Not(HasSubstr(form.Field("code"))));
  EXPECT_THAT(location, Not(HasSubstr(PercentEncode(form.Field("code")))));
  EXPECT_EQ(callback.Header("referrer-policy"), "no-referrer");
  EXPECT_EQ(callback.Header("cache-control"), "no-store");

  auto waited = client_->Wait(name, absl::Seconds(20));
  ASSERT_THAT(waited, IsOk());
  EXPECT_EQ(waited->state(), Authorization::STATE_ACTIVE);
  EXPECT_TRUE(waited->activated());  // the activation call redeemed the code at once

  auto response = client_->CallLeyr(CareUnits(name));
  ASSERT_THAT(response, IsOk());
  EXPECT_EQ(response->status_code(), 200);
  google::protobuf::Value body;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(response->body(), &body).ok())
      << response->body();
  for (const auto& h : response->headers()) {
    EXPECT_FALSE(absl::StartsWithIgnoreCase(h.name(), "x-leyr-")) << h.name();
  }

  // The sandbox saw the activation call and ours, each with all three headers right.
  auto requests = SandboxRequests();
  const auto& list = requests.fields().at("requests").list_value().values();
  ASSERT_GE(list.size(), 2);
  for (const auto& entry : list) {
    const auto& f = entry.struct_value().fields();
    EXPECT_TRUE(f.at("client_id_ok").bool_value());
    EXPECT_TRUE(f.at("client_secret_ok").bool_value());
    EXPECT_TRUE(f.at("code_ok").bool_value());
    EXPECT_EQ(f.at("path").string_value(), "/api/emrs/athenapractice/care-units");
  }
}

TEST_F(FlowTest, CallLeyrPassesMethodQueryAndBody) {
  const std::string name = Authorize();
  broker::v1::CallLeyrRequest request;
  request.set_authorization(name);
  request.set_method("POST");
  request.set_path("/api/emrs/athenapractice/echo");
  auto* q = request.add_query();
  q->set_name("date");
  q->set_value("2026-12-03 & more");
  auto* h = request.add_headers();
  h->set_name("Content-Type");
  h->set_value("application/json");
  request.set_body(R"({"note":"hello"})");
  auto response = client_->CallLeyr(request);
  ASSERT_THAT(response, IsOk());
  EXPECT_EQ(response->status_code(), 200) << response->body();
  EXPECT_THAT(response->body(), HasSubstr("POST"));
  EXPECT_THAT(response->body(), HasSubstr("2026-12-03 & more"));
  EXPECT_THAT(response->body(), HasSubstr("hello"));
}

TEST_F(FlowTest, AthenaDenialMakesTheAuthorizationDenied) {
  auto begun = Begin();
  Form form = OpenConsentPage(begun.authorize_uri(), "deny");
  EXPECT_EQ(form.Field("error"), "access_denied");
  HttpResult callback = Submit(form);
  ASSERT_EQ(callback.status, 303) << callback.body;
  EXPECT_THAT(callback.Header("location"), HasSubstr("result=denied"));
  auto got = client_->Get(begun.authorization().name());
  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(got->state(), Authorization::STATE_DENIED);
  EXPECT_EQ(got->denial_error(), "access_denied");
  EXPECT_THAT(client_->CallLeyr(CareUnits(begun.authorization().name())),
              StatusIs(absl::StatusCode::kFailedPrecondition, "AUTHORIZATION_NOT_ACTIVE"));
}

TEST_F(FlowTest, ReplayedStateIsRefusedAndChangesNothing) {
  auto begun = Begin();
  Form form = OpenConsentPage(begun.authorize_uri(), "approve");
  ASSERT_EQ(Submit(form).status, 303);
  auto before = client_->Get(begun.authorization().name());
  ASSERT_THAT(before, IsOk());

  Form replay = form;
  for (auto& [k, v] : replay.fields) {
    if (k == "code") v = "another-code-from-an-attacker";
  }
  HttpResult second = Submit(replay);
  EXPECT_EQ(second.status, 409) << second.body;
  auto after = client_->Get(begun.authorization().name());
  ASSERT_THAT(after, IsOk());
  EXPECT_EQ(after->state(), Authorization::STATE_ACTIVE);
  EXPECT_EQ(after->update_time().SerializeAsString(), before->update_time().SerializeAsString());
  // Still the first code: Leyr accepts the calls.
  auto response = client_->CallLeyr(CareUnits(begun.authorization().name()));
  ASSERT_THAT(response, IsOk());
  EXPECT_EQ(response->status_code(), 200);
}

TEST_F(FlowTest, UnknownStateIsRefusedByTheShim) {
  Form form;
  form.action = redirect_uri_;
  form.fields = {{"code", "x"}, {"state", std::string(43, 'A')}};
  EXPECT_EQ(Submit(form).status, 400);
}

TEST_F(FlowTest, UnknownAuthorizationIsNotFound) {
  EXPECT_THAT(client_->Get("authorizations/AAAAAAAAAAAAAAAAAAAAAA"),
              StatusIs(absl::StatusCode::kNotFound, "AUTHORIZATION_NOT_FOUND"));
  EXPECT_THAT(client_->CallLeyr(CareUnits("authorizations/AAAAAAAAAAAAAAAAAAAAAA")),
              StatusIs(absl::StatusCode::kNotFound, "AUTHORIZATION_NOT_FOUND"));
}

TEST_F(FlowTest, LeyrUnauthorizedRequiresReauthorization) {
  const std::string name = Authorize();
  auto revoke = HttpRequest("POST", sandbox_url_ + "/sandbox/codes/revoke");
  ASSERT_THAT(revoke, IsOk());
  ASSERT_EQ(revoke->status, 200);
  EXPECT_THAT(client_->CallLeyr(CareUnits(name)),
              StatusIs(absl::StatusCode::kFailedPrecondition, "REAUTHORIZATION_REQUIRED"));
  auto got = client_->Get(name);
  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(got->state(), Authorization::STATE_REAUTHORIZATION_REQUIRED);
  // Later calls are refused by the broker without reaching Leyr.
  double count = SandboxRequestCount();
  EXPECT_THAT(client_->CallLeyr(CareUnits(name)),
              StatusIs(absl::StatusCode::kFailedPrecondition, "REAUTHORIZATION_REQUIRED"));
  EXPECT_EQ(SandboxRequestCount(), count);
}

TEST_F(FlowTest, PathOutsideTheEmrPrefixReachesNothing) {
  const std::string name = Authorize();
  double count = SandboxRequestCount();
  for (const char* path : {"/api/emrs/otheremr/patients", "/sandbox/codes/revoke",
                           "/api/emrs/athenapractice/../otheremr/x", "http://evil.example/x"}) {
    auto request = CareUnits(name);
    request.set_path(path);
    EXPECT_THAT(client_->CallLeyr(request),
                StatusIs(absl::StatusCode::kInvalidArgument, "PATH_NOT_ALLOWED"))
        << path;
  }
  EXPECT_EQ(SandboxRequestCount(), count);
}

TEST_F(FlowTest, RevokedAuthorizationCannotCallLeyr) {
  const std::string name = Authorize();
  auto revoked = client_->Revoke(name);
  ASSERT_THAT(revoked, IsOk());
  EXPECT_EQ(revoked->state(), Authorization::STATE_REVOKED);
  EXPECT_THAT(client_->CallLeyr(CareUnits(name)),
              StatusIs(absl::StatusCode::kFailedPrecondition, "AUTHORIZATION_NOT_ACTIVE"));
}

TEST_F(FlowTest, SecretsNeverReachAnyLog) {
  // A flow that touches every path that logs: success, denial, replay, a Leyr 401.
  const std::string name = Authorize();
  ASSERT_THAT(client_->CallLeyr(CareUnits(name)), IsOk());
  auto denied = Begin();
  Submit(OpenConsentPage(denied.authorize_uri(), "deny"));
  auto begun = Begin();
  Form form = OpenConsentPage(begun.authorize_uri(), "approve");
  Submit(form);
  Submit(form);
  ASSERT_THAT(HttpRequest("POST", sandbox_url_ + "/sandbox/codes/revoke"), IsOk());
  (void)client_->CallLeyr(CareUnits(name));
  ASSERT_GE(secrets_.size(), 5u);

  // Stop every process so that everything it would log is flushed.
  // (Closing our channel first: gRPC 1.51's Server::Shutdown otherwise waits ~5 s for an idle
  // client connection to go away.)
  client_.reset();
  for (Process* p : {shim_.get(), broker_.get(), sandbox_.get()}) {
    EXPECT_EQ(p->Stop(), 0) << "exit status of pid " << p->pid();
  }
  for (Process* p : {shim_.get(), broker_.get(), sandbox_.get()}) {
    std::string output = p->Output();
    EXPECT_THAT(output, HasSubstr("\"msg\":"));  // it did log
    for (const std::string& secret : secrets_) {
      if (secret.empty()) continue;
      EXPECT_THAT(output, Not(HasSubstr(secret)));
      EXPECT_THAT(output, Not(HasSubstr(PercentEncode(secret))));
    }
  }
}

class ExpiryTest : public FlowTest {
 protected:
  void SetUp() override { StartStack("1s"); }
};

TEST_F(ExpiryTest, ExpiredStateIsRefusedAndTheAuthorizationExpires) {
  auto begun = Begin();
  Form form = OpenConsentPage(begun.authorize_uri(), "approve");
  // WaitAuthorization returns when the state expires: no sleeping in the test.
  auto waited = client_->Wait(begun.authorization().name(), absl::Seconds(30));
  ASSERT_THAT(waited, IsOk());
  EXPECT_EQ(waited->state(), Authorization::STATE_EXPIRED);
  HttpResult late = Submit(form);
  EXPECT_EQ(late.status, 410) << late.body;
  auto got = client_->Get(begun.authorization().name());
  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(got->state(), Authorization::STATE_EXPIRED);
}

}  // namespace
}  // namespace leyr
