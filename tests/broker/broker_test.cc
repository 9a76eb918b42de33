#include "server/broker/broker.h"

#include <chrono>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "server/broker/memory_store.h"
#include "server/broker/oauth.h"
#include "server/common/clock.h"
#include "server/common/status_util.h"
#include "server/common/url.h"
#include "tests/testing/fake_leyr_client.h"
#include "tests/testing/fake_random.h"
#include "tests/testing/status_matchers.h"

namespace leyr {
namespace {

using broker::v1::Authorization;
using ::leyr::testing::FakeLeyrClient;
using ::leyr::testing::FakeRandom;
using ::leyr::testing::IsOk;
using ::leyr::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::Pair;
using ::testing::StartsWith;
using ::testing::UnorderedElementsAre;

constexpr char kCode[] = "CANARY-athena-code-5e2b";
constexpr auto kGenerous = std::chrono::seconds(10);

template <typename T>
T Await(std::future<T>& future) {
  if (future.wait_for(kGenerous) != std::future_status::ready) {
    ADD_FAILURE() << "callback not called within 10s";
    return T(absl::DeadlineExceededError("test timed out"));
  }
  return future.get();
}

class BrokerTest : public ::testing::Test {
 protected:
  BrokerTest() { MakeBroker(Settings()); }

  static BrokerSettings Settings() {
    BrokerSettings s;
    s.listen = {"127.0.0.1:0"};
    s.plaintext_development = true;
    s.leyr_base_uri = "http://127.0.0.1:9";
    s.leyr_client_id = "leyr-client";
    s.leyr_client_secret = "CANARY-leyr-secret";
    s.activation_path = "care-units";
    s.leyr_request_timeout = absl::Seconds(30);
    s.leyr_max_response_bytes = 1 << 20;
    s.leyr_max_idle_connections = 4;
    ConnectionSettings c;
    c.name = "athena";
    c.emr = "athenapractice";
    c.base_uri = "https://athena.example.com:8443/sandbox";
    c.client_id = "athena-client";
    c.redirect_uri = "http://127.0.0.1:8081/athena/callback";
    c.scopes = {"openid", "profile", "user/*.*", "offline_access"};
    s.connections.emplace(c.name, c);
    ConnectionSettings other = c;
    other.name = "other";
    other.emr = "otheremr";
    s.connections.emplace(other.name, other);
    s.return_uri_origins = {"https://app.example.com", "http://127.0.0.1:8080"};
    s.state_ttl = absl::Minutes(10);
    s.retention = absl::Hours(24);
    s.store = "memory";
    return s;
  }

  void MakeBroker(BrokerSettings settings) {
    broker_ = std::make_unique<Broker>(
        std::move(settings),
        BrokerDeps{&clock_, &random_, &store_, &leyr_, &events_, &scheduler_});
  }

  absl::StatusOr<Broker::BeginResult> Begin(const std::string& return_uri = "",
                                            const std::string& connection = "athena") {
    broker::v1::BeginAuthorizationRequest request;
    request.set_connection(connection);
    request.set_return_uri(return_uri);
    return broker_->Begin(caller_, request);
  }

  static std::string StateOf(const std::string& authorize_uri) {
    auto fields = ParseFormUrlEncoded(authorize_uri.substr(authorize_uri.find('?') + 1));
    EXPECT_THAT(fields, IsOk());
    for (const auto& [k, v] : *fields) {
      if (k == "state") return v;
    }
    ADD_FAILURE() << "no state in " << authorize_uri;
    return "";
  }

  static std::string NameOf(const AuthorizationRecord& record) {
    return "authorizations/" + record.id;
  }

  absl::StatusOr<Broker::CompleteResult> Complete(const std::string& state,
                                                  const std::string& code,
                                                  const std::string& error = "",
                                                  const std::string& description = "",
                                                  absl::Duration deadline = absl::Seconds(30)) {
    broker::v1::CompleteAuthorizationRequest request;
    request.set_state(state);
    request.set_code(code);
    request.set_error(error);
    request.set_error_description(description);
    std::promise<absl::StatusOr<Broker::CompleteResult>> promise;
    auto future = promise.get_future();
    broker_->Complete(caller_, request, absl::Now() + deadline,
                      [&promise](absl::StatusOr<Broker::CompleteResult> r) {
                        promise.set_value(std::move(r));
                      });
    return Await(future);
  }

  // Begins and completes with kCode; Leyr answers the activation with `activation`.
  std::string BeginActive(absl::StatusOr<LeyrResponse> activation = FakeLeyrClient::Json(200, "[]"),
                          const std::string& connection = "athena") {
    auto begun = Begin("", connection);
    EXPECT_THAT(begun, IsOk());
    leyr_.AnswerAlways(activation);
    auto done = Complete(StateOf(begun->authorize_uri), kCode);
    EXPECT_THAT(done, IsOk());
    leyr_.SetHandler(nullptr);
    return NameOf(begun->record);
  }

  absl::StatusOr<broker::v1::CallLeyrResponse> Call(const std::string& name,
                                                    const std::string& path,
                                                    const std::string& method = "GET") {
    broker::v1::CallLeyrRequest request;
    request.set_authorization(name);
    request.set_method(method);
    request.set_path(path);
    std::promise<absl::StatusOr<broker::v1::CallLeyrResponse>> promise;
    auto future = promise.get_future();
    broker_->CallLeyr(caller_, request, absl::Now() + absl::Seconds(30),
                      [&promise](absl::StatusOr<broker::v1::CallLeyrResponse> r) {
                        promise.set_value(std::move(r));
                      });
    return Await(future);
  }

  absl::StatusOr<Broker::ListResult> List(int page_size, const std::string& token = "",
                                          const std::string& connection = "") {
    broker::v1::ListAuthorizationsRequest request;
    request.set_page_size(page_size);
    request.set_page_token(token);
    request.set_connection(connection);
    return broker_->List(caller_, request);
  }

  FakeClock clock_;
  FakeRandom random_;
  std::unique_ptr<KeyRingSealer> sealer_ = KeyRingSealer::Ephemeral();
  MemoryStore store_{&clock_, sealer_.get()};
  FakeLeyrClient leyr_;
  AuthorizationEvents events_;
  Scheduler scheduler_;
  std::unique_ptr<Broker> broker_;
  Caller caller_;
};

// ---------------------------------------------------------------------------------------------
// Begin

TEST_F(BrokerTest, BeginStoresPendingAndBuildsTheAuthorizeUri) {
  caller_.identity = "svc-a";
  auto begun = Begin("https://app.example.com/done?x=1");
  ASSERT_THAT(begun, IsOk());
  const AuthorizationRecord& r = begun->record;
  EXPECT_EQ(r.state, Authorization::STATE_PENDING);
  EXPECT_EQ(r.connection, "athena");
  EXPECT_EQ(r.emr, "athenapractice");
  EXPECT_EQ(r.owner, "svc-a");
  EXPECT_EQ(r.return_uri, "https://app.example.com/done?x=1");
  EXPECT_EQ(r.id.size(), 22u);
  EXPECT_EQ(r.create_time, clock_.Now());
  EXPECT_EQ(r.expire_time, clock_.Now() + absl::Minutes(10));
  EXPECT_TRUE(r.code.empty());

  EXPECT_THAT(begun->authorize_uri,
              StartsWith("https://athena.example.com:8443/sandbox/oauth2/authorize?state="));
  auto fields = ParseFormUrlEncoded(begun->authorize_uri.substr(begun->authorize_uri.find('?') + 1));
  ASSERT_THAT(fields, IsOk());
  ASSERT_EQ(fields->size(), 6u);
  const std::string state = (*fields)[0].second;
  EXPECT_TRUE(IsWellFormedState(state));
  EXPECT_THAT((*fields)[1], Pair("scope", "openid profile user/*.* offline_access"));
  EXPECT_THAT((*fields)[2], Pair("response_type", "code"));
  EXPECT_THAT((*fields)[3], Pair("redirect_uri", "http://127.0.0.1:8081/athena/callback"));
  EXPECT_THAT((*fields)[4], Pair("aud", "https://athena.example.com:8443/sandbox"));
  EXPECT_THAT((*fields)[5], Pair("client_id", "athena-client"));
  // 32 bytes for the state, 16 for the id.
  EXPECT_THAT(random_.sizes(), ElementsAre(32u, 16u));

  auto stored = store_.Get(r.id);
  ASSERT_THAT(stored, IsOk());
  EXPECT_EQ(stored->state, Authorization::STATE_PENDING);
  // The store is keyed by the hash of the state: completing by that hash works.
  EXPECT_THAT(store_.Complete(HashState(state), Completion{"c", "", ""}), IsOk());
}

TEST_F(BrokerTest, BeginStatesDifferEachTime) {
  auto a = Begin();
  auto b = Begin();
  ASSERT_THAT(a, IsOk());
  ASSERT_THAT(b, IsOk());
  EXPECT_NE(StateOf(a->authorize_uri), StateOf(b->authorize_uri));
  EXPECT_NE(a->record.id, b->record.id);
}

TEST_F(BrokerTest, BeginWithSecureRandom) {
  SecureRandom secure;
  broker_ = std::make_unique<Broker>(
      Settings(), BrokerDeps{&clock_, &secure, &store_, &leyr_, &events_, &scheduler_});
  auto a = Begin();
  auto b = Begin();
  ASSERT_THAT(a, IsOk());
  ASSERT_THAT(b, IsOk());
  EXPECT_NE(StateOf(a->authorize_uri), StateOf(b->authorize_uri));
  EXPECT_TRUE(IsWellFormedState(StateOf(a->authorize_uri)));
}

TEST_F(BrokerTest, BeginRandomFailureStoresNothing) {
  random_.set_fail(true);
  EXPECT_THAT(Begin(), Not(IsOk()));
  EXPECT_THAT(List(10)->records, IsEmpty());
}

TEST_F(BrokerTest, BeginUnknownOrMissingConnection) {
  EXPECT_THAT(Begin("", "nope"),
              StatusIs(absl::StatusCode::kNotFound, reason::kConnectionNotFound));
  EXPECT_THAT(Begin("", ""), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(List(10)->records, IsEmpty());
}

TEST_F(BrokerTest, BeginReturnUriAllowList) {
  for (const char* allowed : {
           "https://app.example.com",
           "https://app.example.com/",
           "https://app.example.com/done?x=1#top",
           "https://APP.Example.com:443/done",
           "http://127.0.0.1:8080/cb",
       }) {
    EXPECT_THAT(Begin(allowed), IsOk()) << allowed;
  }
  for (const char* refused : {
           "http://app.example.com/done",            // scheme
           "https://app.example.com:8443/done",      // port
           "https://app.example.com:80/done",        // port
           "http://127.0.0.1:8081/cb",               // port
           "https://127.0.0.1:8080/cb",              // scheme
           "http://localhost:8080/cb",               // host (not the same origin as 127.0.0.1)
           "https://evil-example.com/",              // suffix trick
           "https://evilapp.example.com/",           // suffix trick
           "https://example.com/",                   // parent domain
           "https://sub.app.example.com/",           // subdomain
           "https://app.example.com.evil.com/",      // prefix trick
           "https://app.example.com.evil.com:443/",  // prefix trick with port
           "https://app.example.com./",              // trailing dot
           "https://user@app.example.com/",          // userinfo
           "https://app.example.com@evil.com/",      // userinfo that looks like the host
           "https://app.example.com\\@evil.com/",    // backslash
           "https://app.example.com%2F@evil.com/",   // encoded slash in userinfo
           "javascript:alert(document.domain)//https://app.example.com",
           "//app.example.com/done",                 // scheme-relative
           "/done",                                  // relative
           "https:/app.example.com/done",
           " https://app.example.com/",
           "https://app.example.com/\r\nLocation: https://evil.com/",
       }) {
    EXPECT_THAT(Begin(refused),
                StatusIs(absl::StatusCode::kInvalidArgument, reason::kReturnUriNotAllowed))
        << refused;
  }
  // Only the five allowed ones were stored.
  EXPECT_EQ(List(100)->records.size(), 5u);
}

TEST_F(BrokerTest, BeginLabels) {
  auto with_labels = [&](std::map<std::string, std::string> labels) {
    broker::v1::BeginAuthorizationRequest request;
    request.set_connection("athena");
    request.mutable_labels()->insert(labels.begin(), labels.end());
    return broker_->Begin(caller_, request);
  };
  auto ok = with_labels({{"patient", "p-1"}, {"tenant_id", "t 1"}, {"a-b", ""}});
  ASSERT_THAT(ok, IsOk());
  EXPECT_THAT(ok->record.labels,
              UnorderedElementsAre(Pair("patient", "p-1"), Pair("tenant_id", "t 1"), Pair("a-b", "")));
  EXPECT_EQ(store_.Get(ok->record.id)->labels.size(), 3u);

  std::map<std::string, std::string> many;
  for (int i = 0; i < 17; ++i) many[absl::StrCat("k", i)] = "v";
  std::map<std::string, std::string> sixteen;
  for (int i = 0; i < 16; ++i) sixteen[absl::StrCat("k", i)] = "v";
  EXPECT_THAT(with_labels(sixteen), IsOk());
  const size_t stored = List(100)->records.size();
  for (const auto& bad : std::vector<std::map<std::string, std::string>>{
           many,
           {{"Upper", "v"}},
           {{"1starts-with-digit", "v"}},
           {{"", "v"}},
           {{"has space", "v"}},
           {{"dot.key", "v"}},
           {{std::string(64, 'a'), "v"}},
           {{"k", std::string(256, 'v')}},
           {{"k", "line\nbreak"}},
           {{"k", std::string("nul\0byte", 8)}},
       }) {
    EXPECT_THAT(with_labels(bad),
                StatusIs(absl::StatusCode::kInvalidArgument, reason::kInvalidLabels));
  }
  EXPECT_EQ(List(100)->records.size(), stored);
}

// ---------------------------------------------------------------------------------------------
// Complete

TEST_F(BrokerTest, CompleteSuccessActivatesWithTheCode) {
  auto begun = Begin("https://app.example.com/done");
  ASSERT_THAT(begun, IsOk());
  leyr_.AnswerAlways(FakeLeyrClient::Json(200, "[{\"id\":\"cu1\"}]"));
  auto done = Complete(StateOf(begun->authorize_uri), kCode);
  ASSERT_THAT(done, IsOk());
  EXPECT_EQ(done->record.state, Authorization::STATE_ACTIVE);
  EXPECT_TRUE(done->record.activated);

  auto requests = leyr_.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].method, "GET");
  EXPECT_EQ(requests[0].path, "/api/emrs/athenapractice/care-units");
  EXPECT_EQ(requests[0].code, kCode);
  EXPECT_THAT(requests[0].body, IsEmpty());
  EXPECT_LT(requests[0].deadline, absl::InfiniteFuture());

  // next_uri names the authorization and the result, never the code.
  EXPECT_EQ(done->next_uri.find(kCode), std::string::npos);
  ASSERT_THAT(done->next_uri, StartsWith("https://app.example.com/done?"));
  auto fields = ParseFormUrlEncoded(done->next_uri.substr(done->next_uri.find('?') + 1));
  ASSERT_THAT(fields, IsOk());
  EXPECT_THAT(*fields, ElementsAre(Pair("authorization", NameOf(begun->record)),
                                   Pair("result", "active")));

  auto stored = store_.Get(begun->record.id);
  ASSERT_THAT(stored, IsOk());
  EXPECT_EQ(stored->code, kCode);
  EXPECT_TRUE(stored->activated);
}

TEST_F(BrokerTest, CompleteActivationEndsBeforeTheCallersDeadline) {
  auto begun = Begin();
  ASSERT_THAT(begun, IsOk());
  leyr_.AnswerAlways(FakeLeyrClient::Json(200, "[]"));
  absl::Time before = absl::Now();
  auto done = Complete(StateOf(begun->authorize_uri), kCode, "", "", absl::Seconds(3));
  ASSERT_THAT(done, IsOk());
  auto requests = leyr_.requests();
  ASSERT_EQ(requests.size(), 1u);
  // At least a second is left to answer the shim after the activation call gives up.
  EXPECT_LE(requests[0].deadline, before + absl::Seconds(2) + absl::Milliseconds(100));
  EXPECT_GT(requests[0].deadline, before);
}

TEST_F(BrokerTest, CompleteWithNoTimeLeftSkipsActivationButRecordsTheCode) {
  auto begun = Begin();
  ASSERT_THAT(begun, IsOk());
  leyr_.AnswerAlways(FakeLeyrClient::Json(200, "[]"));
  auto done = Complete(StateOf(begun->authorize_uri), kCode, "", "", absl::Milliseconds(900));
  ASSERT_THAT(done, IsOk());
  EXPECT_EQ(done->record.state, Authorization::STATE_ACTIVE);
  EXPECT_FALSE(done->record.activated);
  EXPECT_EQ(leyr_.request_count(), 0u);
  auto stored = store_.Get(begun->record.id);
  ASSERT_THAT(stored, IsOk());
  EXPECT_EQ(stored->code, kCode);
}

TEST_F(BrokerTest, CompleteWithoutReturnUriHasNoNextUri) {
  auto begun = Begin();
  ASSERT_THAT(begun, IsOk());
  auto done = Complete(StateOf(begun->authorize_uri), kCode);
  ASSERT_THAT(done, IsOk());
  EXPECT_EQ(done->next_uri, "");
}

TEST_F(BrokerTest, CompleteActivationUnauthorizedRequiresReauthorization) {
  auto begun = Begin("http://127.0.0.1:8080/cb");
  ASSERT_THAT(begun, IsOk());
  leyr_.AnswerAlways(FakeLeyrClient::Error(401, "UNAUTHORIZED", 401));
  auto done = Complete(StateOf(begun->authorize_uri), kCode);
  ASSERT_THAT(done, IsOk());
  EXPECT_EQ(done->record.state, Authorization::STATE_REAUTHORIZATION_REQUIRED);
  EXPECT_FALSE(done->record.activated);
  EXPECT_THAT(done->next_uri, HasSubstr("result=reauthorization_required"));
  EXPECT_EQ(done->next_uri.find(kCode), std::string::npos);
  EXPECT_EQ(store_.Get(begun->record.id)->state, Authorization::STATE_REAUTHORIZATION_REQUIRED);
}

TEST_F(BrokerTest, CompleteActivationEmrError401RequiresReauthorization) {
  auto begun = Begin();
  ASSERT_THAT(begun, IsOk());
  leyr_.AnswerAlways(FakeLeyrClient::Error(502, "EMR_ERROR", 401));
  auto done = Complete(StateOf(begun->authorize_uri), kCode);
  ASSERT_THAT(done, IsOk());
  EXPECT_EQ(done->record.state, Authorization::STATE_REAUTHORIZATION_REQUIRED);
}

TEST_F(BrokerTest, CompleteActivationOtherFailuresKeepItActive) {
  for (const absl::StatusOr<LeyrResponse>& answer : {
           absl::StatusOr<LeyrResponse>(
               MakeError(absl::StatusCode::kUnavailable, reason::kLeyrUnavailable, "down")),
           absl::StatusOr<LeyrResponse>(FakeLeyrClient::Error(500, "INTERNAL_ERROR", 500)),
           absl::StatusOr<LeyrResponse>(FakeLeyrClient::Error(502, "EMR_ERROR", 502)),
       }) {
    auto begun = Begin();
    ASSERT_THAT(begun, IsOk());
    leyr_.AnswerAlways(answer);
    auto done = Complete(StateOf(begun->authorize_uri), kCode);
    ASSERT_THAT(done, IsOk());
    EXPECT_EQ(done->record.state, Authorization::STATE_ACTIVE);
    EXPECT_FALSE(done->record.activated);
    EXPECT_EQ(store_.Get(begun->record.id)->code, kCode);  // kept for the first CallLeyr
  }
}

TEST_F(BrokerTest, CompleteWithActivationDisabledSendsNothing) {
  BrokerSettings s = Settings();
  s.activation_path = "";
  MakeBroker(s);
  auto begun = Begin();
  ASSERT_THAT(begun, IsOk());
  auto done = Complete(StateOf(begun->authorize_uri), kCode);
  ASSERT_THAT(done, IsOk());
  EXPECT_EQ(done->record.state, Authorization::STATE_ACTIVE);
  EXPECT_FALSE(done->record.activated);
  EXPECT_EQ(leyr_.request_count(), 0u);
}

TEST_F(BrokerTest, CompleteActivationIsAsynchronous) {
  // Leyr answers later, on another thread: Complete's callback waits for it.
  auto begun = Begin();
  ASSERT_THAT(begun, IsOk());
  leyr_.set_hold(true);
  broker::v1::CompleteAuthorizationRequest request;
  request.set_state(StateOf(begun->authorize_uri));
  request.set_code(kCode);
  std::promise<absl::StatusOr<Broker::CompleteResult>> promise;
  auto future = promise.get_future();
  broker_->Complete(caller_, request, absl::Now() + absl::Seconds(30),
                    [&promise](absl::StatusOr<Broker::CompleteResult> r) {
                      promise.set_value(std::move(r));
                    });
  EXPECT_EQ(future.wait_for(std::chrono::milliseconds(0)), std::future_status::timeout);
  EXPECT_EQ(leyr_.request_count(), 1u);
  std::thread leyr_thread([&] { leyr_.ReleaseHeld(); });
  auto done = Await(future);
  leyr_thread.join();
  ASSERT_THAT(done, IsOk());
  EXPECT_TRUE(done->record.activated);
}

TEST_F(BrokerTest, CompleteDenied) {
  auto begun = Begin("https://app.example.com/done");
  ASSERT_THAT(begun, IsOk());
  auto done = Complete(StateOf(begun->authorize_uri), "", "access_denied",
                       "The user denied\naccess\x01");
  ASSERT_THAT(done, IsOk());
  EXPECT_EQ(done->record.state, Authorization::STATE_DENIED);
  EXPECT_EQ(done->record.denial_error, "access_denied");
  EXPECT_EQ(done->record.denial_description, "The user deniedaccess");  // controls dropped
  EXPECT_THAT(done->next_uri, HasSubstr("result=denied"));
  EXPECT_EQ(leyr_.request_count(), 0u);
}

TEST_F(BrokerTest, CompleteDescriptionIsCapped) {
  auto begun = Begin();
  ASSERT_THAT(begun, IsOk());
  auto done = Complete(StateOf(begun->authorize_uri), "", "access_denied", std::string(2000, 'x'));
  ASSERT_THAT(done, IsOk());
  EXPECT_EQ(done->record.denial_description.size(), 512u);
}

TEST_F(BrokerTest, CompleteRefusesBadInput) {
  auto begun = Begin();
  ASSERT_THAT(begun, IsOk());
  const std::string state = StateOf(begun->authorize_uri);
  EXPECT_THAT(Complete("", kCode),
              StatusIs(absl::StatusCode::kInvalidArgument, reason::kStateMissing));
  EXPECT_THAT(Complete("short", kCode),
              StatusIs(absl::StatusCode::kNotFound, reason::kStateNotFound));
  EXPECT_THAT(Complete(state + "x", kCode),
              StatusIs(absl::StatusCode::kNotFound, reason::kStateNotFound));
  EXPECT_THAT(Complete(std::string(43, 'A'), kCode),  // well formed, unknown
              StatusIs(absl::StatusCode::kNotFound, reason::kStateNotFound));
  EXPECT_THAT(Complete(state, kCode, "access_denied"),
              StatusIs(absl::StatusCode::kInvalidArgument, reason::kInvalidCompletion));
  EXPECT_THAT(Complete(state, ""),
              StatusIs(absl::StatusCode::kInvalidArgument, reason::kInvalidCompletion));
  EXPECT_THAT(Complete(state, "code with space"),
              StatusIs(absl::StatusCode::kInvalidArgument, reason::kInvalidCompletion));
  EXPECT_THAT(Complete(state, std::string(4097, 'c')),
              StatusIs(absl::StatusCode::kInvalidArgument, reason::kInvalidCompletion));
  EXPECT_THAT(Complete(state, "", "bad error"),
              StatusIs(absl::StatusCode::kInvalidArgument, reason::kInvalidCompletion));
  // None of these consumed the state.
  EXPECT_EQ(store_.Get(begun->record.id)->state, Authorization::STATE_PENDING);
  EXPECT_THAT(Complete(state, kCode), IsOk());
}

TEST_F(BrokerTest, CompleteReplayIsAlreadyUsed) {
  auto begun = Begin();
  ASSERT_THAT(begun, IsOk());
  const std::string state = StateOf(begun->authorize_uri);
  ASSERT_THAT(Complete(state, kCode), IsOk());
  EXPECT_THAT(Complete(state, "another-code"),
              StatusIs(absl::StatusCode::kFailedPrecondition, reason::kStateAlreadyUsed));
  EXPECT_THAT(Complete(state, "", "access_denied"),
              StatusIs(absl::StatusCode::kFailedPrecondition, reason::kStateAlreadyUsed));
  EXPECT_EQ(store_.Get(begun->record.id)->code, kCode);
  EXPECT_EQ(leyr_.request_count(), 1u);  // one activation only
}

TEST_F(BrokerTest, CompleteAfterExpiry) {
  auto begun = Begin();
  ASSERT_THAT(begun, IsOk());
  clock_.Advance(absl::Minutes(10) + absl::Seconds(1));
  EXPECT_THAT(Complete(StateOf(begun->authorize_uri), kCode),
              StatusIs(absl::StatusCode::kFailedPrecondition, reason::kAuthorizationExpired));
  EXPECT_EQ(leyr_.request_count(), 0u);
  auto got = broker_->Get(caller_, NameOf(begun->record));
  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(got->state, Authorization::STATE_EXPIRED);
}

TEST_F(BrokerTest, ErrorMessagesNeverContainCodeOrState) {
  auto begun = Begin();
  ASSERT_THAT(begun, IsOk());
  const std::string state = StateOf(begun->authorize_uri);
  std::vector<absl::Status> errors;
  errors.push_back(Complete(state, kCode, "access_denied").status());
  errors.push_back(Complete(state, std::string(kCode) + " x").status());
  errors.push_back(Complete(state.substr(1), kCode).status());
  ASSERT_THAT(Complete(state, kCode), IsOk());
  errors.push_back(Complete(state, kCode).status());
  for (const absl::Status& e : errors) {
    ASSERT_FALSE(e.ok());
    EXPECT_THAT(std::string(e.message()), Not(HasSubstr("CANARY"))) << e;
    EXPECT_THAT(std::string(e.message()), Not(HasSubstr(state.substr(1)))) << e;
  }
}

// ---------------------------------------------------------------------------------------------
// Get, ToProto

TEST_F(BrokerTest, GetChecksTheName) {
  auto begun = Begin();
  ASSERT_THAT(begun, IsOk());
  EXPECT_THAT(broker_->Get(caller_, NameOf(begun->record)), IsOk());
  EXPECT_THAT(broker_->Get(caller_, ""),
              StatusIs(absl::StatusCode::kInvalidArgument, reason::kInvalidName));
  EXPECT_THAT(broker_->Get(caller_, begun->record.id),
              StatusIs(absl::StatusCode::kInvalidArgument, reason::kInvalidName));
  EXPECT_THAT(broker_->Get(caller_, "authorizations/short"),
              StatusIs(absl::StatusCode::kInvalidArgument, reason::kInvalidName));
  EXPECT_THAT(broker_->Get(caller_, "authorizations/" + std::string(21, 'a') + "/"),
              StatusIs(absl::StatusCode::kInvalidArgument, reason::kInvalidName));
  EXPECT_THAT(broker_->Get(caller_, "authorizations/" + std::string(22, 'a')),
              StatusIs(absl::StatusCode::kNotFound, reason::kAuthorizationNotFound));
}

TEST_F(BrokerTest, ToProtoNeverContainsTheCode) {
  const std::string name = BeginActive();
  auto record = store_.Get(name.substr(strlen("authorizations/")));
  ASSERT_THAT(record, IsOk());
  ASSERT_EQ(record->code, kCode);
  record->labels = {{"patient", "p1"}};
  record->denial_description = "d";
  Authorization proto;
  Broker::ToProto(*record, &proto);
  EXPECT_EQ(proto.name(), name);
  EXPECT_EQ(proto.connection(), "athena");
  EXPECT_EQ(proto.emr(), "athenapractice");
  EXPECT_EQ(proto.state(), Authorization::STATE_ACTIVE);
  EXPECT_TRUE(proto.activated());
  EXPECT_EQ(proto.labels().at("patient"), "p1");
  EXPECT_EQ(proto.create_time().seconds(), absl::ToUnixSeconds(record->create_time));
  EXPECT_FALSE(proto.has_expire_time());  // only while pending or expired
  EXPECT_EQ(proto.SerializeAsString().find(kCode), std::string::npos);
  EXPECT_EQ(proto.DebugString().find(kCode), std::string::npos);

  AuthorizationRecord pending = *record;
  pending.state = Authorization::STATE_PENDING;
  Authorization pending_proto;
  Broker::ToProto(pending, &pending_proto);
  EXPECT_EQ(pending_proto.expire_time().seconds(), absl::ToUnixSeconds(record->expire_time));
  EXPECT_EQ(pending_proto.SerializeAsString().find(kCode), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// CallLeyr

TEST_F(BrokerTest, CallLeyrPassesStatusHeadersAndBody) {
  const std::string name = BeginActive();
  const size_t before = leyr_.request_count();
  LeyrResponse answer = FakeLeyrClient::Json(200, "{\"resourceType\":\"Bundle\"}");
  answer.headers.emplace_back("x-request-id", "r-1");
  leyr_.AnswerAlways(answer);
  auto response = Call(name, "/api/emrs/athenapractice/patients");
  ASSERT_THAT(response, IsOk());
  EXPECT_EQ(response->status_code(), 200);
  EXPECT_EQ(response->body(), "{\"resourceType\":\"Bundle\"}");
  ASSERT_EQ(response->headers_size(), 2);
  EXPECT_EQ(response->headers(0).name(), "content-type");
  EXPECT_EQ(response->headers(0).value(), "application/json");
  EXPECT_EQ(response->headers(1).name(), "x-request-id");
  EXPECT_FALSE(response->has_leyr_error());

  auto requests = leyr_.requests();
  ASSERT_EQ(requests.size(), before + 1);
  EXPECT_EQ(requests.back().method, "GET");
  EXPECT_EQ(requests.back().path, "/api/emrs/athenapractice/patients");
  EXPECT_EQ(requests.back().code, kCode);
  EXPECT_LT(requests.back().deadline, absl::Now() + absl::Seconds(31));
}

TEST_F(BrokerTest, CallLeyrRefusesWhenNotActive) {
  auto begun = Begin();
  ASSERT_THAT(begun, IsOk());
  EXPECT_THAT(Call(NameOf(begun->record), "/api/emrs/athenapractice/care-units"),
              StatusIs(absl::StatusCode::kFailedPrecondition, reason::kAuthorizationNotActive));
  auto denied = Begin();
  ASSERT_THAT(denied, IsOk());
  ASSERT_THAT(Complete(StateOf(denied->authorize_uri), "", "access_denied"), IsOk());
  EXPECT_THAT(Call(NameOf(denied->record), "/api/emrs/athenapractice/care-units"),
              StatusIs(absl::StatusCode::kFailedPrecondition, reason::kAuthorizationNotActive));
  clock_.Advance(absl::Hours(1));
  EXPECT_THAT(Call(NameOf(begun->record), "/api/emrs/athenapractice/care-units"),
              StatusIs(absl::StatusCode::kFailedPrecondition, reason::kAuthorizationExpired));
  EXPECT_THAT(Call("authorizations/" + std::string(22, 'z'), "/api/emrs/athenapractice/x"),
              StatusIs(absl::StatusCode::kNotFound, reason::kAuthorizationNotFound));
  EXPECT_THAT(Call("bad", "/api/emrs/athenapractice/x"),
              StatusIs(absl::StatusCode::kInvalidArgument, reason::kInvalidName));
  EXPECT_EQ(leyr_.request_count(), 0u);
}

TEST_F(BrokerTest, CallLeyrPathOutsideThePrefixSendsNothing) {
  const std::string name = BeginActive();
  const size_t before = leyr_.request_count();
  for (const char* path : {
           "/api/emrs/otheremr/patients",
           "/api/emrs/athenapractice",
           "/api/emrs/athenapractice/",
           "/api/emrs/athenapracticex/patients",
           "/api/emrs/athenapractice/../otheremr/patients",
           "/api/emrs/athenapractice/%2e%2e/otheremr",
           "/api/other",
           "api/emrs/athenapractice/patients",
           "https://evil.com/api/emrs/athenapractice/patients",
       }) {
    EXPECT_THAT(Call(name, path),
                StatusIs(absl::StatusCode::kInvalidArgument, reason::kPathNotAllowed))
        << path;
  }
  EXPECT_EQ(leyr_.request_count(), before);
}

TEST_F(BrokerTest, CallLeyrUsesTheAuthorizationsEmr) {
  const std::string name = BeginActive(FakeLeyrClient::Json(200, "[]"), "other");
  EXPECT_THAT(Call(name, "/api/emrs/athenapractice/patients"),
              StatusIs(absl::StatusCode::kInvalidArgument, reason::kPathNotAllowed));
  EXPECT_THAT(Call(name, "/api/emrs/otheremr/patients"), IsOk());
}

TEST_F(BrokerTest, CallLeyrUnauthorizedRequiresReauthorization) {
  struct Case {
    LeyrResponse answer;
  };
  for (const LeyrResponse& answer : {
           FakeLeyrClient::Error(401, "UNAUTHORIZED", 401),
           FakeLeyrClient::Error(401, "EMR_ERROR", 401),
           FakeLeyrClient::Error(502, "EMR_ERROR", 401),
       }) {
    const std::string name = BeginActive();
    leyr_.AnswerAlways(answer);
    EXPECT_THAT(Call(name, "/api/emrs/athenapractice/patients"),
                StatusIs(absl::StatusCode::kFailedPrecondition, reason::kReauthorizationRequired))
        << answer.body;
    auto got = broker_->Get(caller_, name);
    ASSERT_THAT(got, IsOk());
    EXPECT_EQ(got->state, Authorization::STATE_REAUTHORIZATION_REQUIRED);
    // Later calls are refused without asking Leyr.
    const size_t before = leyr_.request_count();
    EXPECT_THAT(Call(name, "/api/emrs/athenapractice/patients"),
                StatusIs(absl::StatusCode::kFailedPrecondition, reason::kReauthorizationRequired));
    EXPECT_EQ(leyr_.request_count(), before);
  }
}

TEST_F(BrokerTest, CallLeyrOtherErrorsAreReturnedWithLeyrErrorParsed) {
  const std::string name = BeginActive();
  leyr_.AnswerAlways(FakeLeyrClient::Error(404, "NOT_FOUND", 404));
  auto response = Call(name, "/api/emrs/athenapractice/patients/p-404");
  ASSERT_THAT(response, IsOk());
  EXPECT_EQ(response->status_code(), 404);
  ASSERT_TRUE(response->has_leyr_error());
  EXPECT_EQ(response->leyr_error().code(), "NOT_FOUND");
  EXPECT_EQ(response->leyr_error().status(), 404);
  EXPECT_EQ(response->leyr_error().detail(), "scripted by the test");
  EXPECT_THAT(response->body(), HasSubstr("NOT_FOUND"));

  leyr_.AnswerAlways(FakeLeyrClient::Error(502, "EMR_ERROR", 502));
  auto emr = Call(name, "/api/emrs/athenapractice/patients");
  ASSERT_THAT(emr, IsOk());
  EXPECT_EQ(emr->leyr_error().code(), "EMR_ERROR");

  leyr_.AnswerAlways(FakeLeyrClient::Json(500, "not json"));
  auto plain = Call(name, "/api/emrs/athenapractice/patients");
  ASSERT_THAT(plain, IsOk());
  EXPECT_EQ(plain->status_code(), 500);
  EXPECT_FALSE(plain->has_leyr_error());
  EXPECT_EQ(broker_->Get(caller_, name)->state, Authorization::STATE_ACTIVE);
}

TEST_F(BrokerTest, CallLeyrTransportErrorsPassThrough) {
  const std::string name = BeginActive();
  leyr_.AnswerAlways(MakeError(absl::StatusCode::kDeadlineExceeded, reason::kLeyrTimeout, "late"));
  EXPECT_THAT(Call(name, "/api/emrs/athenapractice/patients"),
              StatusIs(absl::StatusCode::kDeadlineExceeded, reason::kLeyrTimeout));
  EXPECT_EQ(broker_->Get(caller_, name)->state, Authorization::STATE_ACTIVE);
}

// ---------------------------------------------------------------------------------------------
// Wait

struct WaitProbe {
  std::promise<absl::StatusOr<AuthorizationRecord>> promise;
  std::future<absl::StatusOr<AuthorizationRecord>> future = promise.get_future();
  std::function<void(absl::StatusOr<AuthorizationRecord>)> Callback() {
    return [this](absl::StatusOr<AuthorizationRecord> r) { promise.set_value(std::move(r)); };
  }
  bool ready() { return future.wait_for(std::chrono::milliseconds(0)) == std::future_status::ready; }
};

TEST_F(BrokerTest, WaitReturnsAtOnceWhenNotPending) {
  const std::string name = BeginActive();
  WaitProbe probe;
  auto wait = broker_->Wait(caller_, name, absl::Minutes(5), probe.Callback());
  ASSERT_TRUE(probe.ready());  // called before Wait returned
  auto r = probe.future.get();
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->state, Authorization::STATE_ACTIVE);
  EXPECT_EQ(events_.subscriber_count(), 0u);
}

TEST_F(BrokerTest, WaitReturnsAtOnceWhenExpired) {
  auto begun = Begin();
  ASSERT_THAT(begun, IsOk());
  clock_.Advance(absl::Minutes(11));
  WaitProbe probe;
  broker_->Wait(caller_, NameOf(begun->record), absl::Minutes(5), probe.Callback());
  ASSERT_TRUE(probe.ready());
  EXPECT_EQ(probe.future.get()->state, Authorization::STATE_EXPIRED);
}

TEST_F(BrokerTest, WaitSeesCompleteOnAnotherThread) {
  auto begun = Begin();
  ASSERT_THAT(begun, IsOk());
  WaitProbe probe;
  auto wait = broker_->Wait(caller_, NameOf(begun->record), absl::Minutes(5), probe.Callback());
  EXPECT_FALSE(probe.ready());
  EXPECT_EQ(events_.subscriber_count(), 1u);
  std::thread completer([&] { EXPECT_THAT(Complete(StateOf(begun->authorize_uri), kCode), IsOk()); });
  ASSERT_EQ(probe.future.wait_for(kGenerous), std::future_status::ready);
  completer.join();
  auto r = probe.future.get();
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->state, Authorization::STATE_ACTIVE);
  EXPECT_EQ(events_.subscriber_count(), 0u);
}

TEST_F(BrokerTest, DrainingEndsPendingWaitsWithUnavailableAndKeepsAnswersForDoneOnes) {
  auto begun = Begin();
  ASSERT_THAT(begun, IsOk());
  WaitProbe before;
  auto wait = broker_->Wait(caller_, NameOf(begun->record), absl::Minutes(5), before.Callback());
  EXPECT_FALSE(before.ready());
  broker_->StartDraining();
  ASSERT_TRUE(before.ready());  // ended by the drain itself, not by a timer
  EXPECT_THAT(before.future.get(),
              StatusIs(absl::StatusCode::kUnavailable, reason::kShuttingDown));
  EXPECT_EQ(events_.subscriber_count(), 0u);

  // A wait that starts while draining ends at once the same way, unless it has its answer.
  WaitProbe after;
  broker_->Wait(caller_, NameOf(begun->record), absl::Minutes(5), after.Callback());
  ASSERT_TRUE(after.ready());
  EXPECT_THAT(after.future.get(),
              StatusIs(absl::StatusCode::kUnavailable, reason::kShuttingDown));
  const std::string active = BeginActive();
  WaitProbe done;
  broker_->Wait(caller_, active, absl::Minutes(5), done.Callback());
  ASSERT_TRUE(done.ready());
  auto r = done.future.get();
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->state, Authorization::STATE_ACTIVE);
  EXPECT_EQ(events_.subscriber_count(), 0u);
}

TEST_F(BrokerTest, WaitSeesDenialAndRevocation) {
  auto denied = Begin();
  ASSERT_THAT(denied, IsOk());
  WaitProbe p1;
  broker_->Wait(caller_, NameOf(denied->record), absl::Minutes(5), p1.Callback());
  ASSERT_THAT(Complete(StateOf(denied->authorize_uri), "", "access_denied"), IsOk());
  ASSERT_EQ(p1.future.wait_for(kGenerous), std::future_status::ready);
  EXPECT_EQ(p1.future.get()->state, Authorization::STATE_DENIED);

  auto revoked = Begin();
  ASSERT_THAT(revoked, IsOk());
  WaitProbe p2;
  broker_->Wait(caller_, NameOf(revoked->record), absl::Minutes(5), p2.Callback());
  ASSERT_THAT(broker_->Revoke(caller_, NameOf(revoked->record)), IsOk());
  ASSERT_EQ(p2.future.wait_for(kGenerous), std::future_status::ready);
  EXPECT_EQ(p2.future.get()->state, Authorization::STATE_REVOKED);
}

TEST_F(BrokerTest, WaitTimesOutReturningPending) {
  auto begun = Begin();
  ASSERT_THAT(begun, IsOk());
  WaitProbe probe;
  const absl::Time start = absl::Now();
  auto wait =
      broker_->Wait(caller_, NameOf(begun->record), absl::Milliseconds(50), probe.Callback());
  ASSERT_EQ(probe.future.wait_for(kGenerous), std::future_status::ready);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(45));
  auto r = probe.future.get();
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->state, Authorization::STATE_PENDING);
  EXPECT_EQ(events_.subscriber_count(), 0u);
  // A later change does not call the finished wait again (the promise would throw).
  EXPECT_THAT(Complete(StateOf(begun->authorize_uri), kCode), IsOk());
}

TEST_F(BrokerTest, WaitCancel) {
  auto begun = Begin();
  ASSERT_THAT(begun, IsOk());
  WaitProbe probe;
  auto wait = broker_->Wait(caller_, NameOf(begun->record), absl::Minutes(5), probe.Callback());
  EXPECT_FALSE(probe.ready());
  wait->Cancel();
  ASSERT_TRUE(probe.ready());
  EXPECT_THAT(probe.future.get(), StatusIs(absl::StatusCode::kCancelled));
  EXPECT_EQ(events_.subscriber_count(), 0u);
  wait->Cancel();  // twice is harmless
  EXPECT_THAT(Complete(StateOf(begun->authorize_uri), kCode), IsOk());
}

TEST_F(BrokerTest, WaitUnknownOrBadName) {
  WaitProbe unknown;
  broker_->Wait(caller_, "authorizations/" + std::string(22, 'q'), absl::Minutes(1),
                unknown.Callback());
  ASSERT_TRUE(unknown.ready());
  EXPECT_THAT(unknown.future.get(),
              StatusIs(absl::StatusCode::kNotFound, reason::kAuthorizationNotFound));
  WaitProbe bad;
  broker_->Wait(caller_, "nope", absl::Minutes(1), bad.Callback());
  ASSERT_TRUE(bad.ready());
  EXPECT_THAT(bad.future.get(), StatusIs(absl::StatusCode::kInvalidArgument, reason::kInvalidName));
  EXPECT_EQ(events_.subscriber_count(), 0u);
}

TEST_F(BrokerTest, ManyWaitersAllWoken) {
  auto begun = Begin();
  ASSERT_THAT(begun, IsOk());
  std::vector<std::unique_ptr<WaitProbe>> probes;
  for (int i = 0; i < 5; ++i) {
    probes.push_back(std::make_unique<WaitProbe>());
    broker_->Wait(caller_, NameOf(begun->record), absl::Minutes(5), probes.back()->Callback());
  }
  ASSERT_THAT(Complete(StateOf(begun->authorize_uri), kCode), IsOk());
  for (auto& p : probes) {
    ASSERT_EQ(p->future.wait_for(kGenerous), std::future_status::ready);
    EXPECT_EQ(p->future.get()->state, Authorization::STATE_ACTIVE);
  }
}

TEST_F(BrokerTest, WaitRacingCompleteAlwaysFinishesAndUnsubscribes) {
  // Complete on one thread while Wait starts on another: every wait finishes with the final
  // state, and no subscription is left behind (the handle is dropped at once).
  for (int round = 0; round < 30; ++round) {
    auto begun = Begin();
    ASSERT_THAT(begun, IsOk());
    std::promise<void> go;
    std::shared_future<void> start = go.get_future().share();
    std::thread completer([&] {
      start.wait();
      EXPECT_THAT(Complete(StateOf(begun->authorize_uri), kCode), IsOk());
    });
    WaitProbe probe;
    go.set_value();
    broker_->Wait(caller_, NameOf(begun->record), absl::Minutes(5), probe.Callback());
    ASSERT_EQ(probe.future.wait_for(kGenerous), std::future_status::ready) << round;
    completer.join();
    auto r = probe.future.get();
    ASSERT_THAT(r, IsOk());
    // Either it saw the completion, or it started before it and was woken by it.
    EXPECT_EQ(r->state, Authorization::STATE_ACTIVE) << round;
    EXPECT_EQ(events_.subscriber_count(), 0u) << round;
  }
}

// ---------------------------------------------------------------------------------------------
// List

TEST_F(BrokerTest, ListPagesNewestFirst) {
  std::vector<std::string> names;
  for (int i = 0; i < 5; ++i) {
    auto begun = Begin();
    ASSERT_THAT(begun, IsOk());
    names.insert(names.begin(), NameOf(begun->record));  // newest first
    clock_.Advance(absl::Seconds(1));
  }
  std::vector<std::string> listed;
  std::string token;
  int pages = 0;
  do {
    auto page = List(2, token);
    ASSERT_THAT(page, IsOk());
    EXPECT_LE(page->records.size(), 2u);
    for (const auto& r : page->records) listed.push_back(NameOf(r));
    token = page->next_page_token;
    ++pages;
  } while (!token.empty() && pages < 10);
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(listed, names);

  // Exactly a page: no token.
  auto all = List(5);
  ASSERT_THAT(all, IsOk());
  EXPECT_EQ(all->records.size(), 5u);
  EXPECT_EQ(all->next_page_token, "");
  // Default page size.
  EXPECT_EQ(List(0)->records.size(), 5u);
}

TEST_F(BrokerTest, ListFiltersByConnection) {
  ASSERT_THAT(Begin("", "athena"), IsOk());
  ASSERT_THAT(Begin("", "other"), IsOk());
  ASSERT_THAT(Begin("", "other"), IsOk());
  auto other = List(10, "", "other");
  ASSERT_THAT(other, IsOk());
  EXPECT_EQ(other->records.size(), 2u);
  for (const auto& r : other->records) EXPECT_EQ(r.connection, "other");
}

TEST_F(BrokerTest, ListRefusesBadTokensAndSizes) {
  for (const std::string& token : {
           std::string("!!!"),
           std::string("bm90IGEgdG9rZW4"),  // "not a token"
           Base64Url("123:short"),
           Base64Url("abc:" + std::string(22, 'a')),
           std::string(300, 'A'),
       }) {
    EXPECT_THAT(List(10, token),
                StatusIs(absl::StatusCode::kInvalidArgument, reason::kInvalidPageToken))
        << token;
  }
  EXPECT_THAT(List(-1), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(List(1001), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(List(1000), IsOk());
}

// ---------------------------------------------------------------------------------------------
// Revoke

TEST_F(BrokerTest, RevokeClearsTheCodeAndIsIdempotent) {
  const std::string name = BeginActive();
  const std::string id = name.substr(strlen("authorizations/"));
  ASSERT_EQ(store_.Get(id)->code, kCode);
  auto revoked = broker_->Revoke(caller_, name);
  ASSERT_THAT(revoked, IsOk());
  EXPECT_EQ(revoked->state, Authorization::STATE_REVOKED);
  EXPECT_TRUE(revoked->code.empty());
  EXPECT_TRUE(store_.Get(id)->code.empty());

  clock_.Advance(absl::Seconds(5));
  auto again = broker_->Revoke(caller_, name);
  ASSERT_THAT(again, IsOk());
  EXPECT_EQ(again->state, Authorization::STATE_REVOKED);
  EXPECT_EQ(again->update_time, revoked->update_time);  // nothing changed

  const size_t before = leyr_.request_count();
  EXPECT_THAT(Call(name, "/api/emrs/athenapractice/patients"),
              StatusIs(absl::StatusCode::kFailedPrecondition, reason::kAuthorizationNotActive));
  EXPECT_EQ(leyr_.request_count(), before);
}

TEST_F(BrokerTest, RevokePendingThenCallbackArrives) {
  auto begun = Begin();
  ASSERT_THAT(begun, IsOk());
  ASSERT_THAT(broker_->Revoke(caller_, NameOf(begun->record)), IsOk());
  EXPECT_THAT(Complete(StateOf(begun->authorize_uri), kCode),
              StatusIs(absl::StatusCode::kFailedPrecondition, reason::kAuthorizationNotActive));
  EXPECT_TRUE(store_.Get(begun->record.id)->code.empty());
  EXPECT_EQ(leyr_.request_count(), 0u);
}

TEST_F(BrokerTest, RevokeReauthorizationRequiredAndEndedStates) {
  const std::string reauth = BeginActive(FakeLeyrClient::Error(401, "UNAUTHORIZED", 401));
  ASSERT_EQ(broker_->Get(caller_, reauth)->state, Authorization::STATE_REAUTHORIZATION_REQUIRED);
  auto revoked = broker_->Revoke(caller_, reauth);
  ASSERT_THAT(revoked, IsOk());
  EXPECT_EQ(revoked->state, Authorization::STATE_REVOKED);
  EXPECT_TRUE(store_.Get(revoked->id)->code.empty());

  auto denied = Begin();
  ASSERT_THAT(denied, IsOk());
  ASSERT_THAT(Complete(StateOf(denied->authorize_uri), "", "access_denied"), IsOk());
  auto still_denied = broker_->Revoke(caller_, NameOf(denied->record));
  ASSERT_THAT(still_denied, IsOk());
  EXPECT_EQ(still_denied->state, Authorization::STATE_DENIED);

  EXPECT_THAT(broker_->Revoke(caller_, "authorizations/" + std::string(22, 'n')),
              StatusIs(absl::StatusCode::kNotFound, reason::kAuthorizationNotFound));
  EXPECT_THAT(broker_->Revoke(caller_, "x"),
              StatusIs(absl::StatusCode::kInvalidArgument, reason::kInvalidName));
}

// ---------------------------------------------------------------------------------------------
// Logs

TEST_F(BrokerTest, LogsNeverContainCodeOrState) {
  ::testing::internal::CaptureStderr();
  auto begun = Begin("https://app.example.com/done");
  ASSERT_THAT(begun, IsOk());
  const std::string state = StateOf(begun->authorize_uri);
  leyr_.AnswerAlways(MakeError(absl::StatusCode::kUnavailable, reason::kLeyrUnavailable, "down"));
  ASSERT_THAT(Complete(state, kCode), IsOk());  // activation fails: logged as a warning
  EXPECT_THAT(Complete(state, kCode), Not(IsOk()));
  const std::string name = NameOf(begun->record);
  leyr_.AnswerAlways(FakeLeyrClient::Error(401, "UNAUTHORIZED", 401));
  EXPECT_THAT(Call(name, "/api/emrs/athenapractice/patients"), Not(IsOk()));
  ASSERT_THAT(broker_->Revoke(caller_, name), IsOk());
  const std::string logs = ::testing::internal::GetCapturedStderr();
  EXPECT_THAT(logs, HasSubstr("authorization_state"));  // the audit lines were written
  EXPECT_THAT(logs, HasSubstr(name));
  EXPECT_THAT(logs, Not(HasSubstr("CANARY"))) << logs;
  EXPECT_THAT(logs, Not(HasSubstr(state))) << logs;
  EXPECT_THAT(logs, Not(HasSubstr(HashState(state)))) << logs;
}

// ---------------------------------------------------------------------------------------------
// Sweep

TEST_F(BrokerTest, SweepRemovesEndedRecordsAfterRetention) {
  auto denied = Begin();
  ASSERT_THAT(denied, IsOk());
  ASSERT_THAT(Complete(StateOf(denied->authorize_uri), "", "access_denied"), IsOk());
  const std::string active = BeginActive();
  clock_.Advance(absl::Hours(23));
  broker_->Sweep();
  EXPECT_THAT(broker_->Get(caller_, NameOf(denied->record)), IsOk());
  clock_.Advance(absl::Hours(2));
  broker_->Sweep();
  EXPECT_THAT(broker_->Get(caller_, NameOf(denied->record)),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(broker_->Get(caller_, active), IsOk());
}

}  // namespace
}  // namespace leyr
