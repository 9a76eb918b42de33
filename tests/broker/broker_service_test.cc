// BrokerServiceImpl over a real in-process gRPC server on 127.0.0.1 (port 0), with the
// broker's dependencies faked: statuses carry one ErrorInfo, waits end on deadline, and the
// authenticator hook is honoured.

#include "server/broker/broker_service.h"

#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>

#include <grpcpp/grpcpp.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "server/broker/memory_store.h"
#include "server/common/status_util.h"
#include "server/common/url.h"
#include "tests/testing/fake_leyr_client.h"
#include "tests/testing/fake_random.h"
#include "tests/testing/status_matchers.h"

namespace leyr {
namespace {

using broker::v1::Authorization;
using broker::v1::BrokerService;
using ::leyr::testing::FakeLeyrClient;
using ::leyr::testing::FakeRandom;
using ::leyr::testing::IsOk;
using ::leyr::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kCode[] = "CANARY-service-code-77aa";

BrokerSettings Settings() {
  BrokerSettings s;
  s.listen = {"127.0.0.1:0"};
  s.plaintext_development = true;
  s.leyr_base_uri = "http://127.0.0.1:9";
  s.leyr_client_id = "leyr-client";
  s.leyr_client_secret = "secret";
  s.activation_path = "care-units";
  s.leyr_request_timeout = absl::Seconds(30);
  s.leyr_max_response_bytes = 1 << 20;
  s.leyr_max_idle_connections = 4;
  ConnectionSettings c;
  c.name = "athena";
  c.emr = "athenapractice";
  c.base_uri = "http://127.0.0.1:9/athena";
  c.client_id = "athena-client";
  c.redirect_uri = "http://127.0.0.1:8081/callback";
  c.scopes = {"openid"};
  s.connections.emplace(c.name, c);
  s.return_uri_origins = {"https://app.example.com"};
  s.state_ttl = absl::Minutes(10);
  s.retention = absl::Hours(24);
  s.store = "memory";
  return s;
}

class BrokerServiceTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(nullptr); }
  void TearDown() override { Stop(); }

  void Start(Authenticator authenticator) {
    broker_ = std::make_unique<Broker>(
        Settings(), BrokerDeps{&clock_, &random_, &store_, &leyr_, &events_, &scheduler_});
    service_ = std::make_unique<BrokerServiceImpl>(broker_.get(), std::move(authenticator));
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port, 0);
    stub_ = BrokerService::NewStub(
        grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
  }
  void Stop() {
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
    server_.reset();
    stub_.reset();
  }

  static void WithDeadline(grpc::ClientContext* context, std::chrono::milliseconds d =
                                                              std::chrono::seconds(10)) {
    context->set_deadline(std::chrono::system_clock::now() + d);
  }

  broker::v1::BeginAuthorizationResponse Begin() {
    grpc::ClientContext context;
    WithDeadline(&context);
    broker::v1::BeginAuthorizationRequest request;
    request.set_connection("athena");
    request.set_return_uri("https://app.example.com/done");
    broker::v1::BeginAuthorizationResponse response;
    grpc::Status status = stub_->BeginAuthorization(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  static std::string StateOf(const std::string& uri) {
    auto fields = ParseFormUrlEncoded(uri.substr(uri.find('?') + 1));
    EXPECT_THAT(fields, IsOk());
    for (const auto& [k, v] : *fields) {
      if (k == "state") return v;
    }
    return "";
  }

  grpc::Status Complete(const std::string& state, broker::v1::CompleteAuthorizationResponse* out) {
    grpc::ClientContext context;
    WithDeadline(&context);
    broker::v1::CompleteAuthorizationRequest request;
    request.set_state(state);
    request.set_code(kCode);
    return stub_->CompleteAuthorization(&context, request, out);
  }

  // Polls a condition (for effects on the server that the client cannot observe directly).
  template <typename F>
  static bool Eventually(F condition) {
    const absl::Time end = absl::Now() + absl::Seconds(10);
    while (absl::Now() < end) {
      if (condition()) return true;
      std::this_thread::yield();
    }
    return condition();
  }

  FakeClock clock_;
  FakeRandom random_;
  std::unique_ptr<KeyRingSealer> sealer_ = KeyRingSealer::Ephemeral();
  MemoryStore store_{&clock_, sealer_.get()};
  FakeLeyrClient leyr_;
  AuthorizationEvents events_;
  Scheduler scheduler_;
  std::unique_ptr<Broker> broker_;
  std::unique_ptr<BrokerServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<BrokerService::Stub> stub_;
};

TEST_F(BrokerServiceTest, FlowOverGrpc) {
  auto begun = Begin();
  EXPECT_THAT(begun.authorization().name(), StartsWith("authorizations/"));
  EXPECT_EQ(begun.authorization().state(), Authorization::STATE_PENDING);
  EXPECT_THAT(begun.authorize_uri(), StartsWith("http://127.0.0.1:9/athena/oauth2/authorize?"));

  broker::v1::CompleteAuthorizationResponse completed;
  ASSERT_TRUE(Complete(StateOf(begun.authorize_uri()), &completed).ok());
  EXPECT_EQ(completed.authorization().state(), Authorization::STATE_ACTIVE);
  EXPECT_TRUE(completed.authorization().activated());
  EXPECT_THAT(completed.next_uri(), StartsWith("https://app.example.com/done?authorization="));
  EXPECT_EQ(completed.SerializeAsString().find(kCode), std::string::npos);

  grpc::ClientContext get_context;
  WithDeadline(&get_context);
  broker::v1::GetAuthorizationRequest get;
  get.set_name(begun.authorization().name());
  broker::v1::GetAuthorizationResponse got;
  ASSERT_TRUE(stub_->GetAuthorization(&get_context, get, &got).ok());
  EXPECT_EQ(got.authorization().state(), Authorization::STATE_ACTIVE);
  EXPECT_EQ(got.SerializeAsString().find(kCode), std::string::npos);

  leyr_.AnswerAlways(FakeLeyrClient::Json(200, "[\"patient\"]"));
  grpc::ClientContext call_context;
  WithDeadline(&call_context);
  broker::v1::CallLeyrRequest call;
  call.set_authorization(begun.authorization().name());
  call.set_method("GET");
  call.set_path("/api/emrs/athenapractice/patients");
  broker::v1::CallLeyrResponse answer;
  ASSERT_TRUE(stub_->CallLeyr(&call_context, call, &answer).ok());
  EXPECT_EQ(answer.status_code(), 200);
  EXPECT_EQ(answer.body(), "[\"patient\"]");
  // The caller's gRPC deadline became the Leyr request's deadline.
  EXPECT_LT(leyr_.requests().back().deadline, absl::Now() + absl::Seconds(11));
  EXPECT_EQ(leyr_.requests().back().code, kCode);

  grpc::ClientContext list_context;
  WithDeadline(&list_context);
  broker::v1::ListAuthorizationsResponse listed;
  ASSERT_TRUE(stub_->ListAuthorizations(&list_context, {}, &listed).ok());
  ASSERT_EQ(listed.authorizations_size(), 1);
  EXPECT_EQ(listed.SerializeAsString().find(kCode), std::string::npos);

  grpc::ClientContext revoke_context;
  WithDeadline(&revoke_context);
  broker::v1::RevokeAuthorizationRequest revoke;
  revoke.set_name(begun.authorization().name());
  broker::v1::RevokeAuthorizationResponse revoked;
  ASSERT_TRUE(stub_->RevokeAuthorization(&revoke_context, revoke, &revoked).ok());
  EXPECT_EQ(revoked.authorization().state(), Authorization::STATE_REVOKED);
}

TEST_F(BrokerServiceTest, ErrorsCarryOneErrorInfo) {
  auto begun = Begin();
  broker::v1::CompleteAuthorizationResponse completed;
  ASSERT_TRUE(Complete(StateOf(begun.authorize_uri()), &completed).ok());
  const size_t before = leyr_.request_count();

  grpc::ClientContext context;
  WithDeadline(&context);
  broker::v1::CallLeyrRequest call;
  call.set_authorization(begun.authorization().name());
  call.set_method("GET");
  call.set_path("/api/emrs/otheremr/patients");
  broker::v1::CallLeyrResponse answer;
  grpc::Status status = stub_->CallLeyr(&context, call, &answer);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  google::rpc::Status rpc;
  ASSERT_TRUE(rpc.ParseFromString(status.error_details()));
  ASSERT_EQ(rpc.details_size(), 1);
  google::rpc::ErrorInfo info;
  ASSERT_TRUE(rpc.details(0).UnpackTo(&info));
  EXPECT_EQ(info.domain(), "broker.leyr.v1");
  EXPECT_EQ(info.reason(), "PATH_NOT_ALLOWED");
  EXPECT_EQ(leyr_.request_count(), before);

  // Replay over gRPC.
  broker::v1::CompleteAuthorizationResponse again;
  grpc::Status replay = Complete(StateOf(begun.authorize_uri()), &again);
  EXPECT_THAT(FromGrpcStatus(replay),
              StatusIs(absl::StatusCode::kFailedPrecondition, "STATE_ALREADY_USED"));
  EXPECT_THAT(replay.error_message(), ::testing::Not(HasSubstr(kCode)));

  grpc::ClientContext get_context;
  WithDeadline(&get_context);
  broker::v1::GetAuthorizationRequest get;
  get.set_name("authorizations/" + std::string(22, 'x'));
  broker::v1::GetAuthorizationResponse got;
  EXPECT_THAT(FromGrpcStatus(stub_->GetAuthorization(&get_context, get, &got)),
              StatusIs(absl::StatusCode::kNotFound, "AUTHORIZATION_NOT_FOUND"));
}

TEST_F(BrokerServiceTest, WaitTimesOutPendingAndRefusesNegativeTimeout) {
  auto begun = Begin();
  grpc::ClientContext context;
  WithDeadline(&context);
  broker::v1::WaitAuthorizationRequest wait;
  wait.set_name(begun.authorization().name());
  wait.mutable_timeout()->set_nanos(50 * 1000 * 1000);
  broker::v1::WaitAuthorizationResponse waited;
  ASSERT_TRUE(stub_->WaitAuthorization(&context, wait, &waited).ok());
  EXPECT_EQ(waited.authorization().state(), Authorization::STATE_PENDING);

  grpc::ClientContext negative_context;
  WithDeadline(&negative_context);
  wait.mutable_timeout()->set_seconds(-1);
  wait.mutable_timeout()->set_nanos(0);
  EXPECT_THAT(FromGrpcStatus(stub_->WaitAuthorization(&negative_context, wait, &waited)),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(BrokerServiceTest, WaitEndsWithTheClientsDeadline) {
  auto begun = Begin();
  grpc::ClientContext context;
  WithDeadline(&context, std::chrono::milliseconds(200));
  broker::v1::WaitAuthorizationRequest wait;
  wait.set_name(begun.authorization().name());
  wait.mutable_timeout()->set_seconds(600);
  broker::v1::WaitAuthorizationResponse waited;
  grpc::Status status = stub_->WaitAuthorization(&context, wait, &waited);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  // The server side ended the wait too: its subscription is gone.
  EXPECT_TRUE(Eventually([&] { return events_.subscriber_count() == 0; }));
}

TEST_F(BrokerServiceTest, WaitSeesCompletionFromAnotherRpc) {
  auto begun = Begin();
  auto waiter = std::async(std::launch::async, [&] {
    grpc::ClientContext context;
    WithDeadline(&context);
    broker::v1::WaitAuthorizationRequest wait;
    wait.set_name(begun.authorization().name());
    wait.mutable_timeout()->set_seconds(30);
    broker::v1::WaitAuthorizationResponse waited;
    grpc::Status status = stub_->WaitAuthorization(&context, wait, &waited);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return waited.authorization().state();
  });
  broker::v1::CompleteAuthorizationResponse completed;
  ASSERT_TRUE(Complete(StateOf(begun.authorize_uri()), &completed).ok());
  ASSERT_EQ(waiter.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_EQ(waiter.get(), Authorization::STATE_ACTIVE);
}

TEST_F(BrokerServiceTest, AuthenticatorHook) {
  Stop();
  Start([](grpc::CallbackServerContext*) -> absl::StatusOr<Caller> {
    return Caller{"svc-billing", nullptr};
  });
  auto begun = Begin();
  auto id = begun.authorization().name().substr(strlen("authorizations/"));
  EXPECT_EQ(store_.Get(id)->owner, "svc-billing");

  Stop();
  Start([](grpc::CallbackServerContext*) -> absl::StatusOr<Caller> {
    return MakeError(absl::StatusCode::kUnauthenticated, "UNAUTHENTICATED", "no credentials");
  });
  grpc::ClientContext context;
  WithDeadline(&context);
  broker::v1::BeginAuthorizationRequest request;
  request.set_connection("athena");
  broker::v1::BeginAuthorizationResponse response;
  EXPECT_EQ(stub_->BeginAuthorization(&context, request, &response).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

}  // namespace
}  // namespace leyr
