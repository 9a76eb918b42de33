#include "server/shim/callback_shim.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <future>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/status_util.h"
#include "tests/shim/fake_broker.h"
#include "tests/testing/http_client.h"
#include "tests/testing/status_matchers.h"

namespace leyr::shim {
namespace {

namespace v1 = ::leyr::broker::v1;
using ::leyr::testing::CurlResult;
using ::leyr::testing::FakeBrokerServer;
using ::leyr::testing::Fetch;
using ::leyr::testing::IsOk;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;

constexpr char kForm[] = "Content-Type: application/x-www-form-urlencoded";
constexpr char kCanaryState[] = "CANARYSTATEq8Zt3v";
constexpr char kCanaryCode[] = "CANARYCODEw7Yx2k";
constexpr char kCanaryToken[] = "CANARYIDTOKENp1Lm";
constexpr char kCanaryDescription[] = "CANARYDESCRu5Ns";

// Sends everything written to stderr (the log) into a file while alive.
class StderrCapture {
 public:
  StderrCapture() {
    fflush(stderr);
    path_ = ::testing::TempDir() + "shim_log_XXXXXX";
    int fd = mkstemp(path_.data());
    saved_ = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    close(fd);
  }
  // Restores stderr and returns what was written.
  std::string Finish() {
    if (saved_ >= 0) {
      fflush(stderr);
      dup2(saved_, STDERR_FILENO);
      close(saved_);
      saved_ = -1;
    }
    std::ifstream in(path_);
    std::stringstream text;
    text << in.rdbuf();
    unlink(path_.c_str());
    return text.str();
  }
  ~StderrCapture() { Finish(); }

 private:
  std::string path_;
  int saved_ = -1;
};

void ExpectSecurityHeaders(const CurlResult& r, bool html = true) {
  EXPECT_EQ(r.Header("referrer-policy"), "no-referrer") << r.status;
  EXPECT_EQ(r.Header("cache-control"), "no-store") << r.status;
  EXPECT_EQ(r.Header("x-content-type-options"), "nosniff") << r.status;
  EXPECT_EQ(r.Header("content-security-policy"), "default-src 'none'") << r.status;
  if (html) {
    EXPECT_EQ(r.Header("content-type"), "text/html; charset=utf-8") << r.status;
    EXPECT_THAT(r.body, HasSubstr("<!doctype html>")) << r.status;
  }
}

class CallbackShimTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { curl_global_init(CURL_GLOBAL_DEFAULT); }

  void SetUp() override { ASSERT_TRUE(broker_.Start()); }

  void StartShim(absl::Duration broker_timeout = absl::Seconds(10),
                 absl::Duration stop_grace = absl::Seconds(5)) {
    ShimSettings settings;
    settings.http.stop_grace = stop_grace;
    settings.http.listen = "127.0.0.1:0";
    settings.http.max_body_bytes = 2048;
    settings.broker_target = broker_.target();
    settings.callback_path = "/oauth/callback";
    settings.broker_timeout = broker_timeout;
    auto channel =
        grpc::CreateChannel(settings.broker_target, BrokerChannelCredentials(settings));
    std::shared_ptr<v1::BrokerService::StubInterface> stub = v1::BrokerService::NewStub(channel);
    auto shim = CallbackShim::Start(settings, stub);
    ASSERT_THAT(shim.status(), IsOk());
    shim_ = std::move(*shim);
  }

  void TearDown() override {
    broker_.service.Release();
    if (shim_ != nullptr) shim_->Stop();
    broker_.Stop();
  }

  std::string Url(const std::string& path) { return absl::StrCat("http://", shim_->address(), path); }

  CurlResult Post(const std::string& body, const std::string& content_type = kForm,
                  const std::string& path = "/oauth/callback") {
    std::vector<std::string> headers;
    if (!content_type.empty()) headers.push_back(content_type);
    return Fetch("POST", Url(path), &body, headers);
  }

  void AnswerActive(const std::string& next_uri) {
    v1::CompleteAuthorizationResponse answer;
    answer.mutable_authorization()->set_name("authorizations/abc123");
    answer.mutable_authorization()->set_state(v1::Authorization::STATE_ACTIVE);
    answer.set_next_uri(next_uri);
    broker_.service.Answer(answer);
  }

  FakeBrokerServer broker_;
  std::unique_ptr<CallbackShim> shim_;
};

TEST_F(CallbackShimTest, GoodPostForwardsExactlyStateAndCodeAndRedirects) {
  StartShim();
  const std::string next = "https://app.example.com/done?authorization=authorizations%2Fabc123&result=active";
  AnswerActive(next);
  CurlResult r = Post(absl::StrCat("state=", kCanaryState, "&code=", kCanaryCode, "&id_token=",
                                   kCanaryToken, "&session_state=zzz"),
                      "Content-Type: application/x-www-form-urlencoded; charset=UTF-8");
  ASSERT_EQ(r.code, CURLE_OK);
  EXPECT_EQ(r.status, 303);
  EXPECT_EQ(r.Header("location"), next);
  ExpectSecurityHeaders(r);
  auto received = broker_.service.received();
  ASSERT_THAT(received, SizeIs(1));
  EXPECT_EQ(received[0].state(), kCanaryState);
  EXPECT_EQ(received[0].code(), kCanaryCode);
  EXPECT_EQ(received[0].error(), "");
  EXPECT_EQ(received[0].error_description(), "");
  EXPECT_THAT(r.body, Not(HasSubstr(kCanaryState)));
  EXPECT_THAT(r.body, Not(HasSubstr(kCanaryCode)));
}

TEST_F(CallbackShimTest, FormValuesArePercentDecodedBeforeForwarding) {
  StartShim();
  AnswerActive("");
  CurlResult r = Post("code=a%2Bb+c&state=s%3D1");
  ASSERT_EQ(r.code, CURLE_OK);
  EXPECT_EQ(r.status, 200);
  auto received = broker_.service.received();
  ASSERT_THAT(received, SizeIs(1));
  EXPECT_EQ(received[0].state(), "s=1");
  EXPECT_EQ(received[0].code(), "a+b c");
}

TEST_F(CallbackShimTest, DenialIsForwardedAndShownAsDeclined) {
  StartShim();
  v1::CompleteAuthorizationResponse answer;
  answer.mutable_authorization()->set_name("authorizations/abc123");
  answer.mutable_authorization()->set_state(v1::Authorization::STATE_DENIED);
  broker_.service.Answer(answer);
  CurlResult r = Post(absl::StrCat("error=access_denied&error_description=", kCanaryDescription,
                                   "&state=", kCanaryState));
  ASSERT_EQ(r.code, CURLE_OK);
  EXPECT_EQ(r.status, 200);
  EXPECT_THAT(r.body, HasSubstr("declined"));
  EXPECT_THAT(r.body, Not(HasSubstr(kCanaryDescription)));
  ExpectSecurityHeaders(r);
  auto received = broker_.service.received();
  ASSERT_THAT(received, SizeIs(1));
  EXPECT_EQ(received[0].state(), kCanaryState);
  EXPECT_EQ(received[0].code(), "");
  EXPECT_EQ(received[0].error(), "access_denied");
  EXPECT_EQ(received[0].error_description(), kCanaryDescription);
}

TEST_F(CallbackShimTest, DescriptionThatIsNotUtf8StillReachesTheBroker) {
  StartShim();
  v1::CompleteAuthorizationResponse answer;
  answer.mutable_authorization()->set_name("authorizations/abc123");
  answer.mutable_authorization()->set_state(v1::Authorization::STATE_DENIED);
  broker_.service.Answer(answer);
  CurlResult r = Post("state=s&error=access_denied&error_description=refus%E9");
  ASSERT_EQ(r.code, CURLE_OK);
  EXPECT_EQ(r.status, 200);
  auto received = broker_.service.received();
  ASSERT_THAT(received, SizeIs(1));
  EXPECT_EQ(received[0].error_description(), "refus?");

  r = Post("state=t&error=access_denied&error_description=refus%C3%A9");
  EXPECT_EQ(r.status, 200);
  received = broker_.service.received();
  ASSERT_THAT(received, SizeIs(2));
  EXPECT_EQ(received[1].error_description(), "refus\xc3\xa9");
}

TEST_F(CallbackShimTest, CompletionWithoutReturnUriShowsPage) {
  StartShim();
  AnswerActive("");
  CurlResult r = Post("state=s&code=c");
  ASSERT_EQ(r.code, CURLE_OK);
  EXPECT_EQ(r.status, 200);
  EXPECT_THAT(r.body, HasSubstr("complete"));
  EXPECT_THAT(r.body, HasSubstr("close this window"));
  EXPECT_EQ(r.Header("location"), "");
  ExpectSecurityHeaders(r);
}

struct BadInput {
  std::string name;
  std::string method;
  std::string path;
  std::string content_type;
  std::string body;
  long want_status;
};

TEST_F(CallbackShimTest, BadInputsGetTheir4xxAndNothingReachesTheBroker) {
  StartShim();
  AnswerActive("https://app.example.com/done");
  const std::string ok_body = "state=s&code=c";
  const std::vector<BadInput> cases = {
      {"get", "GET", "/oauth/callback", "", "", 405},
      {"put", "PUT", "/oauth/callback", kForm, ok_body, 405},
      {"delete", "DELETE", "/oauth/callback", "", "", 405},
      {"json", "POST", "/oauth/callback", "Content-Type: application/json", ok_body, 415},
      {"no content type", "POST", "/oauth/callback", "Content-Type:", ok_body, 415},
      {"multipart", "POST", "/oauth/callback", "Content-Type: multipart/form-data; boundary=x",
       ok_body, 415},
      {"missing state", "POST", "/oauth/callback", kForm, "code=c", 400},
      {"empty state", "POST", "/oauth/callback", kForm, "state=&code=c", 400},
      {"code and error", "POST", "/oauth/callback", kForm, "state=s&code=c&error=access_denied",
       400},
      {"neither code nor error", "POST", "/oauth/callback", kForm, "state=s", 400},
      {"empty code", "POST", "/oauth/callback", kForm, "state=s&code=", 400},
      {"repeated state", "POST", "/oauth/callback", kForm, "state=s&state=t&code=c", 400},
      {"repeated code", "POST", "/oauth/callback", kForm, "state=s&code=c&code=d", 400},
      {"repeated error", "POST", "/oauth/callback", kForm,
       "state=s&error=access_denied&error=x", 400},
      {"malformed escape", "POST", "/oauth/callback", kForm, "state=%zz&code=c", 400},
      {"state not ascii", "POST", "/oauth/callback", kForm, "state=s%FF&code=c", 400},
      {"code not ascii", "POST", "/oauth/callback", kForm, "state=s&code=c%C3%A9", 400},
      {"code with control", "POST", "/oauth/callback", kForm, "state=s&code=c%0A", 400},
      {"error not ascii", "POST", "/oauth/callback", kForm, "state=s&error=%FF", 400},
      {"too large", "POST", "/oauth/callback", kForm,
       "state=s&code=c&id_token=" + std::string(4000, 'x'), 413},
      {"unknown path", "POST", "/oauth/callbackx", kForm, ok_body, 404},
      {"unknown path get", "GET", "/", "", "", 404},
  };
  for (const BadInput& c : cases) {
    SCOPED_TRACE(c.name);
    std::vector<std::string> headers;
    if (!c.content_type.empty()) headers.push_back(c.content_type);
    const bool has_body = c.method == "POST" || c.method == "PUT";
    CurlResult r = Fetch(c.method, Url(c.path), has_body ? &c.body : nullptr, headers);
    ASSERT_EQ(r.code, CURLE_OK);
    EXPECT_EQ(r.status, c.want_status);
    ExpectSecurityHeaders(r);
    if (c.want_status == 405) {
      EXPECT_EQ(r.Header("allow"), "POST");
    }
    EXPECT_THAT(broker_.service.received(), IsEmpty());
  }
}

struct BrokerError {
  grpc::Status status;
  long want_status;
};

TEST_F(CallbackShimTest, BrokerErrorsAreMapped) {
  StartShim();
  auto error = [](absl::StatusCode code, absl::string_view reason) {
    return ToGrpcStatus(MakeError(code, reason, "broker says no"));
  };
  const std::vector<BrokerError> cases = {
      {error(absl::StatusCode::kNotFound, reason::kStateNotFound), 400},
      {error(absl::StatusCode::kInvalidArgument, reason::kStateMissing), 400},
      {error(absl::StatusCode::kInvalidArgument, reason::kInvalidCompletion), 400},
      {error(absl::StatusCode::kFailedPrecondition, reason::kStateAlreadyUsed), 409},
      {error(absl::StatusCode::kFailedPrecondition, reason::kAuthorizationExpired), 410},
      {grpc::Status(grpc::StatusCode::UNAVAILABLE, "down"), 503},
      {grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "slow"), 503},
      {error(absl::StatusCode::kInternal, reason::kInternal), 502},
      {grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "no"), 502},
      {grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "no"), 502},
  };
  size_t calls = 0;
  for (const BrokerError& c : cases) {
    SCOPED_TRACE(absl::StrCat(c.status.error_code(), " ", c.want_status));
    broker_.service.Fail(c.status);
    CurlResult r = Post(absl::StrCat("state=", kCanaryState, "&code=", kCanaryCode));
    ASSERT_EQ(r.code, CURLE_OK);
    EXPECT_EQ(r.status, c.want_status);
    ExpectSecurityHeaders(r);
    EXPECT_THAT(r.body, Not(HasSubstr("broker says no")));
    EXPECT_THAT(r.body, Not(HasSubstr(kCanaryState)));
    EXPECT_EQ(broker_.service.received().size(), ++calls);
  }
}

TEST_F(CallbackShimTest, SlowBrokerIs503AfterTheDeadline) {
  StartShim(absl::Milliseconds(300));
  broker_.service.Hold(true);
  CurlResult r = Post("state=s&code=c");
  ASSERT_EQ(r.code, CURLE_OK);
  EXPECT_EQ(r.status, 503);
  ExpectSecurityHeaders(r);
  EXPECT_THAT(broker_.service.received(), SizeIs(1));
}

TEST_F(CallbackShimTest, StopCancelsABrokerCallInFlightAndReturns) {
  StartShim(absl::Seconds(30), absl::Milliseconds(100));
  broker_.service.Hold(true);
  auto post = std::async(std::launch::async, [this] { return Post("state=s&code=c"); });
  ASSERT_TRUE(broker_.service.WaitForReceived(1));
  auto stopped = std::async(std::launch::async, [this] { shim_->Stop(); });
  if (stopped.wait_for(std::chrono::seconds(20)) != std::future_status::ready) {
    // Stop() is stuck (the cancelled call's callback waits for the lock Stop holds).
    ADD_FAILURE() << "CallbackShim::Stop() did not return";
    std::_Exit(1);
  }
  CurlResult r = post.get();
  ASSERT_EQ(r.code, CURLE_OK);
  EXPECT_EQ(r.status, 503);
}

TEST_F(CallbackShimTest, BrokerDownIs503) {
  StartShim(absl::Seconds(5));
  broker_.Stop();
  CurlResult r = Post("state=s&code=c");
  ASSERT_EQ(r.code, CURLE_OK);
  EXPECT_EQ(r.status, 503);
  ExpectSecurityHeaders(r);
}

TEST_F(CallbackShimTest, HealthzIsOk) {
  StartShim();
  CurlResult r = Fetch("GET", Url("/healthz"), nullptr);
  ASSERT_EQ(r.code, CURLE_OK);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "ok\n");
  EXPECT_EQ(r.Header("content-type"), "text/plain; charset=utf-8");
  ExpectSecurityHeaders(r, /*html=*/false);
  CurlResult post = Fetch("POST", Url("/healthz"), nullptr);
  EXPECT_EQ(post.status, 405);
  ExpectSecurityHeaders(post);
}

TEST_F(CallbackShimTest, CanariesNeverReachBodiesOrLog) {
  StderrCapture capture;
  StartShim();
  std::vector<CurlResult> results;
  const std::string canaries = absl::StrCat("state=", kCanaryState, "&code=", kCanaryCode,
                                            "&id_token=", kCanaryToken);
  AnswerActive("https://app.example.com/done?authorization=authorizations%2Fabc123");
  results.push_back(Post(canaries));
  results.push_back(Post(canaries + "&state=" + kCanaryState));               // repeated
  results.push_back(Post(canaries, "Content-Type: text/plain"));                 // 415
  results.push_back(Post(canaries + "&error=" + kCanaryDescription));           // both
  results.push_back(Post(absl::StrCat("state=", kCanaryState, "&error=access_denied",
                                      "&error_description=", kCanaryDescription)));
  broker_.service.Fail(ToGrpcStatus(
      MakeError(absl::StatusCode::kFailedPrecondition, reason::kStateAlreadyUsed, "used")));
  results.push_back(Post(canaries));
  broker_.service.Fail(grpc::Status(grpc::StatusCode::INTERNAL, "boom"));
  results.push_back(Post(canaries));
  results.push_back(Fetch("GET", Url(absl::StrCat("/oauth/callback?state=", kCanaryState)),
                          nullptr));
  results.push_back(Post(canaries + "&pad=" + std::string(3000, 'p')));  // 413
  shim_->Stop();
  std::string log = capture.Finish();

  for (const CurlResult& r : results) {
    ASSERT_EQ(r.code, CURLE_OK);
    for (const char* canary : {kCanaryState, kCanaryCode, kCanaryToken, kCanaryDescription}) {
      EXPECT_THAT(r.body, Not(HasSubstr(canary)));
      for (const auto& [name, value] : r.headers) EXPECT_THAT(value, Not(HasSubstr(canary)));
    }
  }
  for (const char* canary : {kCanaryState, kCanaryCode, kCanaryToken, kCanaryDescription}) {
    EXPECT_THAT(log, Not(HasSubstr(canary)));
  }
  // One line per callback, with the fields scripts and people read.
  EXPECT_THAT(log, ::testing::ContainsRegex(
                       "\"msg\":\"callback\",\"request_id\":\"[0-9a-f]{16}\",\"outcome\":\"completed\","
                       "\"http_status\":303"));
  EXPECT_THAT(log, HasSubstr("\"authorization\":\"authorizations/abc123\""));
  EXPECT_THAT(log, HasSubstr("\"outcome\":\"invalid_request\",\"http_status\":400"));
  EXPECT_THAT(log, HasSubstr("\"reason\":\"DUPLICATE_FIELD\""));
  EXPECT_THAT(log, HasSubstr("\"reason\":\"STATE_ALREADY_USED\""));
  EXPECT_THAT(log, HasSubstr("\"http_status\":415"));
  EXPECT_THAT(log, HasSubstr("\"http_status\":413"));
  EXPECT_THAT(log, HasSubstr("\"duration_ms\":"));
  size_t lines = 0;
  for (size_t pos = 0; (pos = log.find("\"msg\":\"callback\"", pos)) != std::string::npos; ++pos) {
    ++lines;
  }
  EXPECT_EQ(lines, results.size());
}

TEST(ValidateShimConfigTest, RequiredKeysAreNamed) {
  config::ShimConfig c;
  EXPECT_THAT(ValidateShimConfig(c).status().message(), HasSubstr("listen"));
  c.set_listen("127.0.0.1:0");
  EXPECT_THAT(ValidateShimConfig(c).status().message(), HasSubstr("broker_target"));
  c.set_broker_target("127.0.0.1:50051");
  c.set_callback_path("oauth/callback");
  EXPECT_THAT(ValidateShimConfig(c).status().message(), HasSubstr("callback_path"));
  c.set_callback_path("/cb");
  c.set_max_body_bytes(-1);
  EXPECT_THAT(ValidateShimConfig(c).status().message(), HasSubstr("max_body_bytes"));
  c.set_max_body_bytes(0);
  c.set_listen("nonsense");
  EXPECT_THAT(ValidateShimConfig(c).status().message(), HasSubstr("listen"));
  c.set_listen("[::1]:0");
  c.set_log_level("loud");
  EXPECT_THAT(ValidateShimConfig(c).status().message(), HasSubstr("log_level"));
}

TEST(ValidateShimConfigTest, DefaultsAreFilledIn) {
  config::ShimConfig c;
  c.set_listen("127.0.0.1:0");
  c.set_broker_target("127.0.0.1:50051");
  auto s = ValidateShimConfig(c);
  ASSERT_THAT(s.status(), IsOk());
  EXPECT_EQ(s->callback_path, "/oauth/callback");
  EXPECT_EQ(s->http.max_body_bytes, 16384u);
  EXPECT_EQ(s->broker_timeout, absl::Seconds(10));
  EXPECT_EQ(s->http.read_timeout, absl::Seconds(10));
  EXPECT_EQ(s->http.request_timeout, absl::Seconds(30));
  EXPECT_EQ(s->http.max_connections, 256);
}

TEST(ValidateShimConfigTest, RequestTimeoutMustBePositiveAndAtMostAnHour) {
  config::ShimConfig c;
  c.set_listen("127.0.0.1:0");
  c.set_broker_target("127.0.0.1:50051");
  c.mutable_request_timeout()->set_seconds(-1);
  EXPECT_THAT(ValidateShimConfig(c).status().message(), HasSubstr("request_timeout"));
  c.mutable_request_timeout()->set_seconds(3601);
  EXPECT_THAT(ValidateShimConfig(c).status().message(), HasSubstr("request_timeout"));
  c.mutable_request_timeout()->set_seconds(5);
  auto s = ValidateShimConfig(c);
  ASSERT_THAT(s.status(), IsOk());
  EXPECT_EQ(s->http.request_timeout, absl::Seconds(5));
}

}  // namespace
}  // namespace leyr::shim
