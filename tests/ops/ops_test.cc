// Operations, with the real binaries on port 0: Prometheus metrics on the admin ports, structured
// logs (valid JSON on every line, request ids, audit lines, no secrets), the plaintext health
// port, and graceful shutdown on SIGTERM under a steady stream of calls.

#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <future>
#include <map>
#include <regex>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "client/broker_client.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "leyr/broker/v1/broker_service.grpc.pb.h"
#include "server/common/url.h"
#include "tests/testing/http_client.h"
#include "tests/testing/stack.h"
#include "tests/testing/status_matchers.h"

namespace leyr {
namespace {

using ::grpc::health::v1::HealthCheckRequest;
using ::grpc::health::v1::HealthCheckResponse;
using ::leyr::testing::CareUnitsRequest;
using ::leyr::testing::HttpRequest;
using ::leyr::testing::HttpResult;
using ::leyr::testing::IsOk;
using ::leyr::testing::Stack;
using ::leyr::testing::StackOptions;
using ::leyr::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

// One sample's value from a Prometheus text page: `series` is the name with its labels exactly as
// rendered ("leyr_broker_rpcs_total{method=\"CallLeyr\",code=\"OK\"}"); 0 when absent.
double Sample(const std::string& page, const std::string& series) {
  for (absl::string_view line : absl::StrSplit(page, '\n')) {
    if (absl::StartsWith(line, series + " ")) {
      double v = 0;
      if (absl::SimpleAtod(line.substr(series.size() + 1), &v)) return v;
    }
  }
  return 0;
}

absl::StatusOr<std::string> Scrape(const std::string& admin_address) {
  auto result = HttpRequest("GET", absl::StrCat("http://", admin_address, "/metrics"));
  if (!result.ok()) return result.status();
  if (result->status != 200) return absl::InternalError(absl::StrCat("status ", result->status));
  if (!absl::StartsWith(result->Header("content-type"), "text/plain; version=0.0.4")) {
    return absl::InternalError("wrong content type " + result->Header("content-type"));
  }
  return result->body;
}

void ExpectNoSecrets(const std::string& text, const std::set<std::string>& secrets,
                     const std::string& where) {
  for (const std::string& secret : secrets) {
    if (secret.empty()) continue;
    EXPECT_THAT(text, Not(HasSubstr(secret))) << where;
    EXPECT_THAT(text, Not(HasSubstr(PercentEncode(secret)))) << where;
  }
}

TEST(MetricsTest, BrokerAndShimCountersMoveAndNameNoSecret) {
  StackOptions options;
  options.broker_json = R"("admin_listen":"127.0.0.1:0")";
  options.shim_json = R"("admin_listen":"127.0.0.1:0")";
  auto stack = Stack::Start(options);
  ASSERT_THAT(stack, IsOk());
  auto broker_admin = Stack::AddressOn((*stack)->broker(), "admin_listening");
  auto shim_admin = Stack::AddressOn((*stack)->shim(), "admin_listening");
  ASSERT_THAT(broker_admin, IsOk());
  ASSERT_THAT(shim_admin, IsOk());
  auto before = Scrape(*broker_admin);
  ASSERT_THAT(before, IsOk());
  EXPECT_EQ(Sample(*before, "leyr_broker_serving"), 1);
  EXPECT_EQ(Sample(*before, R"(leyr_broker_rpcs_total{method="CallLeyr",code="OK"})"), 0);
  EXPECT_THAT(*before, HasSubstr("# TYPE leyr_broker_rpc_duration_seconds histogram\n"));

  auto client = BrokerClient::ConnectInsecure((*stack)->broker_address());
  auto name = (*stack)->Authorize(*client);
  ASSERT_THAT(name, IsOk());
  ASSERT_THAT(client->CallLeyr(CareUnitsRequest(*name)), IsOk());
  ASSERT_THAT(client->CallLeyr(CareUnitsRequest(*name)), IsOk());
  auto outside = CareUnitsRequest(*name);
  outside.set_path("/api/emrs/other/care-units");
  EXPECT_THAT(client->CallLeyr(outside), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(client->Get("authorizations/AAAAAAAAAAAAAAAAAAAAAA"),
              StatusIs(absl::StatusCode::kNotFound));
  auto pending = (*stack)->Begin(*client);
  ASSERT_THAT(pending, IsOk());
  ASSERT_THAT(client->Revoke(pending->authorization().name()), IsOk());
  // A callback the shim refuses itself, and one it forwards.
  auto replay = (*stack)->OpenConsentPage(pending->authorize_uri());
  ASSERT_THAT(replay, IsOk());
  auto refused = HttpRequest("POST", (*stack)->redirect_uri(), {"Content-Type: text/plain"}, "x");
  ASSERT_THAT(refused, IsOk());
  EXPECT_EQ(refused->status, 415);

  auto after = Scrape(*broker_admin);
  ASSERT_THAT(after, IsOk());
  const std::string& m = *after;
  EXPECT_EQ(Sample(m, R"(leyr_broker_rpcs_total{method="CallLeyr",code="OK"})"), 2);
  EXPECT_EQ(Sample(m, R"(leyr_broker_rpcs_total{method="CallLeyr",code="INVALID_ARGUMENT"})"), 1);
  EXPECT_EQ(Sample(m, R"(leyr_broker_rpcs_total{method="GetAuthorization",code="NOT_FOUND"})"), 1);
  EXPECT_EQ(Sample(m, R"(leyr_broker_rpcs_total{method="CompleteAuthorization",code="OK"})"), 1);
  EXPECT_EQ(Sample(m, R"(leyr_broker_rpcs_total{method="BeginAuthorization",code="OK"})"), 2);
  EXPECT_EQ(Sample(m, R"(leyr_broker_rpc_duration_seconds_count{method="CallLeyr"})"), 3);
  EXPECT_EQ(Sample(m, R"(leyr_broker_rpc_duration_seconds_bucket{method="CallLeyr",le="+Inf"})"),
            3);
  // The activation call and the two CallLeyr reached the sandbox.
  EXPECT_EQ(Sample(m, R"(leyr_broker_leyr_requests_total{status="200"})"), 3);
  EXPECT_EQ(Sample(m, "leyr_broker_leyr_request_duration_seconds_count"), 3);
  EXPECT_GE(Sample(m, "leyr_broker_leyr_connections_opened_total"), 1);
  EXPECT_EQ(Sample(m, R"(leyr_broker_authorizations{state="active"})"), 1);
  EXPECT_EQ(Sample(m, R"(leyr_broker_authorizations{state="revoked"})"), 1);
  EXPECT_EQ(Sample(m, R"(leyr_broker_authorization_state_changes_total{state="pending"})"), 2);
  EXPECT_EQ(Sample(m, R"(leyr_broker_authorization_state_changes_total{state="active"})"), 1);
  EXPECT_EQ(Sample(m, R"(leyr_broker_authorization_state_changes_total{state="revoked"})"), 1);
  EXPECT_THAT(m, HasSubstr("# TYPE leyr_broker_store_errors_total counter\n"));

  auto shim_metrics = Scrape(*shim_admin);
  ASSERT_THAT(shim_metrics, IsOk());
  EXPECT_EQ(Sample(*shim_metrics, R"(leyr_shim_callbacks_total{outcome="completed"})"), 1);
  EXPECT_EQ(Sample(*shim_metrics, R"(leyr_shim_callbacks_total{outcome="invalid_request"})"), 1);
  EXPECT_EQ(Sample(*shim_metrics, "leyr_shim_callback_duration_seconds_count"), 2);

  ExpectNoSecrets(m, (*stack)->secrets(), "broker metrics");
  ExpectNoSecrets(*shim_metrics, (*stack)->secrets(), "shim metrics");

  // The admin port serves /metrics and nothing else.
  auto other = HttpRequest("GET", absl::StrCat("http://", *broker_admin, "/debug"));
  ASSERT_THAT(other, IsOk());
  EXPECT_EQ(other->status, 404);
  auto post = HttpRequest("POST", absl::StrCat("http://", *broker_admin, "/metrics"), {}, "");
  ASSERT_THAT(post, IsOk());
  EXPECT_EQ(post->status, 405);
}

// Each line of `output` parsed as a JSON object; a line that is not one fails the test.
std::vector<google::protobuf::Struct> JsonLines(const std::string& output, const std::string& who) {
  std::vector<google::protobuf::Struct> lines;
  for (absl::string_view line : absl::StrSplit(output, '\n', absl::SkipEmpty())) {
    google::protobuf::Struct parsed;
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(std::string(line), &parsed).ok())
        << who << " wrote a line that is not JSON: " << line;
    lines.push_back(std::move(parsed));
  }
  return lines;
}

std::string Str(const google::protobuf::Struct& s, const std::string& key) {
  auto it = s.fields().find(key);
  return it == s.fields().end() ? "" : it->second.string_value();
}

TEST(LogTest, EveryLineIsJsonWithRequestIdsAuditLinesAndNoSecret) {
  auto stack = Stack::Start({});
  ASSERT_THAT(stack, IsOk());
  Stack& s = **stack;
  {
    auto client = BrokerClient::ConnectInsecure(s.broker_address());
    auto name = s.Authorize(*client);
    ASSERT_THAT(name, IsOk());
    ASSERT_THAT(client->CallLeyr(CareUnitsRequest(*name)), IsOk());
    // A denial, a replayed callback, a Leyr 401 after the sandbox forgets its codes, a revoke.
    auto denied = s.Begin(*client);
    ASSERT_THAT(denied, IsOk());
    auto deny_form = s.OpenConsentPage(denied->authorize_uri(), "deny");
    ASSERT_THAT(deny_form, IsOk());
    ASSERT_THAT(s.Submit(*deny_form), IsOk());
    ASSERT_THAT(s.Submit(*deny_form), IsOk());
    ASSERT_THAT(HttpRequest("POST", s.sandbox_url() + "/sandbox/codes/revoke"), IsOk());
    EXPECT_THAT(client->CallLeyr(CareUnitsRequest(*name)),
                StatusIs(absl::StatusCode::kFailedPrecondition, "REAUTHORIZATION_REQUIRED"));
    ASSERT_THAT(client->Revoke(*name), IsOk());

    // A caller's own request id is used and sent back.
    auto channel = grpc::CreateChannel(s.broker_address(), grpc::InsecureChannelCredentials());
    auto stub = broker::v1::BrokerService::NewStub(channel);
    grpc::ClientContext context;
    context.AddMetadata("x-request-id", "caller-req-42");
    broker::v1::GetAuthorizationRequest get;
    get.set_name(*name);
    broker::v1::GetAuthorizationResponse got;
    ASSERT_TRUE(stub->GetAuthorization(&context, get, &got).ok());
    auto echoed = context.GetServerInitialMetadata().find("x-request-id");
    ASSERT_NE(echoed, context.GetServerInitialMetadata().end());
    EXPECT_EQ(std::string(echoed->second.data(), echoed->second.size()), "caller-req-42");
  }
  // Stop every process so that all it would write is written.
  for (auto* p : {&s.shim(), &s.broker(), &s.sandbox()}) EXPECT_EQ(p->Stop(), 0);

  auto broker_lines = JsonLines(s.broker().Output(), "broker");
  auto shim_lines = JsonLines(s.shim().Output(), "shim");
  JsonLines(s.sandbox().Output(), "sandbox");
  std::map<std::string, int> rpcs_by_method;
  std::set<std::string> broker_request_ids;
  std::vector<std::pair<std::string, std::string>> audit;  // (from, to)
  for (const auto& line : broker_lines) {
    EXPECT_FALSE(Str(line, "time").empty());
    EXPECT_FALSE(Str(line, "level").empty());
    if (Str(line, "msg") == "rpc") {
      for (const char* key : {"request_id", "method", "code", "caller"}) {
        EXPECT_FALSE(Str(line, key).empty()) << key << " missing on an rpc line";
      }
      EXPECT_TRUE(line.fields().contains("duration_ms"));
      ++rpcs_by_method[Str(line, "method")];
      broker_request_ids.insert(Str(line, "request_id"));
      if (Str(line, "method") == "CallLeyr" || Str(line, "method") == "BeginAuthorization") {
        EXPECT_EQ(Str(line, "connection"), "athena-sandbox");
      }
      if (Str(line, "method") == "CallLeyr") {
        EXPECT_FALSE(Str(line, "authorization").empty());
      }
    }
    if (Str(line, "msg") == "authorization_state") {
      EXPECT_TRUE(line.fields().at("audit").bool_value());
      audit.emplace_back(Str(line, "from"), Str(line, "to"));
    }
  }
  EXPECT_EQ(rpcs_by_method["CallLeyr"], 2);
  EXPECT_EQ(rpcs_by_method["CompleteAuthorization"], 3);  // approve, deny, replayed deny
  EXPECT_TRUE(broker_request_ids.count("caller-req-42"));
  EXPECT_THAT(audit, ::testing::IsSupersetOf(
                         std::vector<std::pair<std::string, std::string>>{
                             {"unspecified", "pending"},
                             {"pending", "active"},
                             {"pending", "denied"},
                             {"active", "reauthorization_required"},
                             {"reauthorization_required", "revoked"}}));
  // Every callback line carries a request id, and the broker logged the same id for the
  // CompleteAuthorization it caused.
  int callbacks = 0;
  for (const auto& line : shim_lines) {
    if (Str(line, "msg") != "callback") continue;
    ++callbacks;
    EXPECT_FALSE(Str(line, "request_id").empty());
    EXPECT_TRUE(broker_request_ids.count(Str(line, "request_id"))) << Str(line, "request_id");
  }
  EXPECT_EQ(callbacks, 3);
  for (auto* p : {&s.shim(), &s.broker(), &s.sandbox()}) {
    ExpectNoSecrets(p->Output(), s.secrets(), "log of pid " + std::to_string(p->pid()));
  }
}

std::unique_ptr<grpc::health::v1::Health::Stub> HealthStub(const std::string& address) {
  return grpc::health::v1::Health::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
}

TEST(HealthPortTest, ServesHealthAndNothingElse) {
  StackOptions options;
  options.broker_json = R"("health_listen":"127.0.0.1:0")";
  auto stack = Stack::Start(options);
  ASSERT_THAT(stack, IsOk());
  auto health_address = Stack::AddressOn((*stack)->broker(), "health_listening");
  ASSERT_THAT(health_address, IsOk());
  auto health = HealthStub(*health_address);
  for (const char* service : {"", "leyr.broker.v1.BrokerService"}) {
    grpc::ClientContext context;
    HealthCheckRequest request;
    request.set_service(service);
    HealthCheckResponse response;
    ASSERT_TRUE(health->Check(&context, request, &response).ok()) << service;
    EXPECT_EQ(response.status(), HealthCheckResponse::SERVING) << service;
  }
  // The API is not reachable through the plaintext health port.
  auto client = BrokerClient::ConnectInsecure(*health_address);
  EXPECT_THAT(client->Get("authorizations/AAAAAAAAAAAAAAAAAAAAAA"),
              StatusIs(absl::StatusCode::kUnimplemented));
}

// Reads the Watch stream until `want` (or the deadline).
bool WatchUntil(grpc::health::v1::Health::Stub* health, HealthCheckResponse::ServingStatus want) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  HealthCheckRequest request;
  request.set_service("leyr.broker.v1.BrokerService");
  auto reader = health->Watch(&context, request);
  HealthCheckResponse response;
  while (reader->Read(&response)) {
    if (response.status() == want) {
      context.TryCancel();
      reader->Finish();
      return true;
    }
  }
  return false;
}

// SIGTERM on broker A while a steady stream of calls is spread over A and B (client-side
// round_robin with health checking, retries of UNAVAILABLE), with slow CallLeyr in flight on A.
TEST(ShutdownTest, BrokerDrainsUnderLoadWithZeroFailedCallsAndExitsZero) {
  StackOptions options;
  options.brokers = 2;
  options.sandbox_json = R"("leyr_latency":"1.5s")";
  options.broker_json = R"("health_listen":"127.0.0.1:0")";
  const absl::Duration delay = absl::Milliseconds(500), grace = absl::Seconds(8);
  options.broker_flags = {absl::StrCat("--shutdown_delay=", absl::FormatDuration(delay)),
                          absl::StrCat("--shutdown_grace=", absl::FormatDuration(grace))};
  auto stack = Stack::Start(options);
  ASSERT_THAT(stack, IsOk());
  Stack& s = **stack;
  auto a_health_address = Stack::AddressOn(s.broker(0), "health_listening");
  ASSERT_THAT(a_health_address, IsOk());

  auto on_a = BrokerClient::ConnectInsecure(s.broker_address(0));
  auto name = s.Authorize(*on_a);
  ASSERT_THAT(name, IsOk());

  // The stream: BeginAuthorization from 4 threads over both brokers.
  grpc::ChannelArguments args;
  args.SetServiceConfigJSON(
      R"({"loadBalancingConfig":[{"round_robin":{}}],)"
      R"("healthCheckConfig":{"serviceName":"leyr.broker.v1.BrokerService"}})");
  auto both = std::make_unique<BrokerClient>(grpc::CreateCustomChannel(
      absl::StrCat("ipv4:", s.broker_address(0), ",", s.broker_address(1)),
      grpc::InsecureChannelCredentials(), args));
  std::atomic<bool> stop{false};
  absl::Mutex mu;
  int ok = 0;                          // guarded by mu
  std::vector<std::string> failures;  // guarded by mu
  std::vector<std::thread> load;
  for (int t = 0; t < 4; ++t) {
    load.emplace_back([&] {
      CallOptions call;
      call.max_attempts = 6;
      call.timeout = absl::Seconds(5);
      while (!stop) {
        auto begun = s.Begin(*both, call);
        absl::MutexLock lock(&mu);
        if (begun.ok()) {
          ++ok;
        } else {
          failures.push_back(begun.status().ToString());
        }
      }
    });
  }
  // The stream is the clock here: wait for n more successful calls.
  auto wait_for_ok = [&](int n) {
    absl::MutexLock lock(&mu);
    const int target = ok + n;
    auto reached = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return ok >= target; };
    return mu.AwaitWithTimeout(absl::Condition(&reached), absl::Seconds(30));
  };
  ASSERT_TRUE(wait_for_ok(100));

  // Three slow CallLeyr on A, in flight when the signal comes (the sandbox has logged them).
  std::vector<std::future<absl::StatusOr<broker::v1::CallLeyrResponse>>> in_flight;
  for (int i = 0; i < 3; ++i) {
    in_flight.push_back(std::async(std::launch::async, [&on_a, &name] {
      return on_a->CallLeyr(CareUnitsRequest(*name));
    }));
  }
  int seen = 0;
  ASSERT_THAT(s.sandbox().WaitForLine([&seen](const std::string& l) {
    // The activation call was the first care-units request.
    return absl::StrContains(l, "/api/emrs/athenapractice/care-units") && ++seen == 4;
  }),
              IsOk());

  const absl::Time signalled = absl::Now();
  s.broker(0).Signal(SIGTERM);
  auto health = HealthStub(*a_health_address);
  EXPECT_TRUE(WatchUntil(health.get(), HealthCheckResponse::NOT_SERVING));
  auto status = s.broker(0).WaitForExit(delay + grace + absl::Seconds(10));
  ASSERT_THAT(status, IsOk());
  const absl::Duration took = absl::Now() - signalled;
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << *status;
  EXPECT_LT(took, delay + grace) << "exit after " << took;
  for (auto& f : in_flight) {
    auto response = f.get();
    ASSERT_THAT(response, IsOk());
    EXPECT_EQ(response->status_code(), 200);
  }
  // A is gone; the stream goes on on B.
  EXPECT_TRUE(wait_for_ok(100));
  stop = true;
  for (auto& t : load) t.join();
  absl::MutexLock lock(&mu);
  EXPECT_THAT(failures, ::testing::IsEmpty());
  const std::string log = s.broker(0).Output();
  EXPECT_THAT(log, HasSubstr("\"msg\":\"shutting_down\""));
  EXPECT_THAT(log, HasSubstr("\"msg\":\"draining\""));
  EXPECT_THAT(log, HasSubstr("\"msg\":\"stopped\""));
}

// SIGTERM on the shim while a callback is waiting for the broker (whose activation call to the
// slow sandbox takes 1.5 s): /healthz turns 503, the callback still gets its 303, exit 0.
TEST(ShutdownTest, ShimFinishesTheCallbackInProgressAndExitsZero) {
  StackOptions options;
  options.sandbox_json = R"("leyr_latency":"1.5s")";
  options.shim_flags = {"--shutdown_delay=1s"};
  auto stack = Stack::Start(options);
  ASSERT_THAT(stack, IsOk());
  Stack& s = **stack;
  auto client = BrokerClient::ConnectInsecure(s.broker_address());
  auto begun = s.Begin(*client);
  ASSERT_THAT(begun, IsOk());
  auto form = s.OpenConsentPage(begun->authorize_uri());
  ASSERT_THAT(form, IsOk());
  auto callback = std::async(std::launch::async, [&s, &form] { return s.Submit(*form); });
  // The broker has recorded the code and is making the activation call.
  ASSERT_THAT(s.broker().WaitForLine([](const std::string& l) {
    return absl::StrContains(l, "\"to\":\"active\"");
  }),
              IsOk());
  const absl::Time signalled = absl::Now();
  s.shim().Signal(SIGTERM);
  ASSERT_THAT(s.shim().WaitForLine([](const std::string& l) {
    return absl::StrContains(l, "\"msg\":\"stopping\"");
  }),
              IsOk());
  auto healthz = HttpRequest("GET", absl::StrCat("http://", s.shim_address(), "/healthz"));
  ASSERT_THAT(healthz, IsOk());
  EXPECT_EQ(healthz->status, 503);
  auto result = callback.get();
  ASSERT_THAT(result, IsOk());
  EXPECT_EQ(result->status, 303) << result->body;
  auto status = s.shim().WaitForExit(absl::Seconds(15));
  ASSERT_THAT(status, IsOk());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << *status;
  EXPECT_LT(absl::Now() - signalled, absl::Seconds(10));
  auto got = client->Get(begun->authorization().name());
  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(got->state(), broker::v1::Authorization::STATE_ACTIVE);
}

}  // namespace
}  // namespace leyr
