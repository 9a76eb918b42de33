// Faults: a real leyr-broker on its own throw-away PostgreSQL cluster (not the shared fixture's:
// this test stops its database). Under a steady stream of BeginAuthorization calls the database
// is stopped: calls answer UNAVAILABLE (STORE_UNAVAILABLE) within a second, the health service
// turns NOT_SERVING, nothing crashes; the database is started again: within 5 s calls succeed and
// health is SERVING, and every authorization whose Begin answered OK is still there.

#include <sys/wait.h>

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "client/broker_client.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "server/common/status_util.h"
#include "tests/store/pg_test_database.h"
#include "tests/testing/process.h"
#include "tests/testing/status_matchers.h"

namespace leyr {
namespace {

using ::leyr::testing::IsOk;
using ::leyr::testing::Process;
using ::leyr::testing::TempDir;
using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

constexpr char kBrokerService[] = "leyr.broker.v1.BrokerService";

int Cluster(const std::string& command, const std::string& info) {
  return std::system(
      absl::StrCat(LEYR_PG_CLUSTER_SCRIPT, " ", command, " ", info, " >/dev/null").c_str());
}

class FaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    info_ = dir_.path() + "/pg";
    ASSERT_EQ(Cluster("start", info_), 0);
    started_ = true;
    setenv("LEYR_PG_INFO_DIR", info_.c_str(), 1);
    db_ = std::make_unique<::leyr::testing::PgTestDatabase>();
    ASSERT_TRUE(db_->available()) << db_->error();
    const std::string config = dir_.WriteFile(
        "broker.json",
        absl::StrCat(
            R"({"listen":["127.0.0.1:0"],"plaintext_development":true,)",
            R"("leyr":{"base_uri":"http://127.0.0.1:9","client_id":"c","client_secret_file":")",
            dir_.WriteFile("secret", "fault-secret"), R"("},)",
            R"("connections":[{"name":"athena","emr":"athenapractice","base_uri":"http://127.0.0.1:9",)",
            R"("client_id":"x","redirect_uri":"http://127.0.0.1:9/cb"}],)",
            R"("store":"postgres","sealing_key_file":")",
            dir_.WriteFile("keys.json",
                           R"({"primary":"k1","keys":[{"id":"k1","key_base64":"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}]})"),
            R"(","postgres":{"conninfo":")", db_->Options().conninfo, R"(","password_file":")",
            dir_.WriteFile("pw", db_->Options().password), R"(","pool_size":4}})"));
    auto broker = Process::Start({LEYR_BROKER_BIN, "--config=" + config});
    ASSERT_THAT(broker, IsOk());
    broker_ = std::move(*broker);
    auto line = broker_->WaitForListening();
    ASSERT_THAT(line, IsOk());
    address_ = *line;
    client_ = BrokerClient::ConnectInsecure(address_);
    health_ = grpc::health::v1::Health::NewStub(
        grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()));
  }
  void TearDown() override {
    broker_.reset();
    db_.reset();
    if (started_) Cluster("stop", info_);
    unsetenv("LEYR_PG_INFO_DIR");
  }

  // The readiness answer (the BrokerService); `service` "" is the liveness answer.
  HealthCheckResponse::ServingStatus Health(const std::string& service = kBrokerService) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
    HealthCheckRequest request;
    request.set_service(service);
    HealthCheckResponse response;
    if (!health_->Check(&ctx, request, &response).ok()) return HealthCheckResponse::UNKNOWN;
    return response.status();
  }
  // Waits (checking every 50 ms) until Health() is `want`; false after `timeout`.
  bool HealthBecomes(HealthCheckResponse::ServingStatus want, absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      if (Health() == want) return true;
      absl::SleepFor(absl::Milliseconds(50));
    }
    return false;
  }

  TempDir dir_;
  std::string info_;
  bool started_ = false;
  std::unique_ptr<::leyr::testing::PgTestDatabase> db_;
  std::unique_ptr<Process> broker_;
  std::string address_;
  std::unique_ptr<BrokerClient> client_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
};

TEST_F(FaultTest, StopAndStartPostgresUnderASteadyStreamOfRequests) {
  ASSERT_TRUE(HealthBecomes(HealthCheckResponse::SERVING, absl::Seconds(5)));

  // The steady stream: two callers beginning authorizations back to back; every OK name kept.
  absl::Mutex mu;
  std::vector<std::string> acknowledged;
  std::vector<std::pair<absl::Duration, std::string>> failures;  // latency, reason
  std::atomic<bool> stop{false};
  std::atomic<int64_t> ok_count{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < 2; ++t) {
    callers.emplace_back([&] {
      auto client = BrokerClient::ConnectInsecure(address_);
      broker::v1::BeginAuthorizationRequest request;
      request.set_connection("athena");
      CallOptions options;
      options.timeout = absl::Seconds(5);
      while (!stop.load()) {
        const absl::Time start = absl::Now();
        auto r = client->Begin(request, options);
        absl::MutexLock lock(&mu);
        if (r.ok()) {
          acknowledged.push_back(r->authorization().name());
          ok_count.fetch_add(1);
        } else {
          failures.emplace_back(absl::Now() - start, ReasonOf(r.status()));
        }
      }
    });
  }
  auto wait_for_more_ok = [&](int64_t n, absl::Duration timeout) {
    const int64_t target = ok_count.load() + n;
    absl::MutexLock lock(&mu);
    auto reached = [&]() { return ok_count.load() >= target; };
    return mu.AwaitWithTimeout(absl::Condition(&reached), timeout);
  };
  ASSERT_TRUE(wait_for_more_ok(20, absl::Seconds(10)));

  ASSERT_EQ(Cluster("pause", info_), 0);  // pg_ctl stop -m fast: the database is gone
  EXPECT_TRUE(HealthBecomes(HealthCheckResponse::NOT_SERVING, absl::Seconds(2)));
  // Liveness stays SERVING: a database outage must not make kubelet restart the replica.
  EXPECT_EQ(Health(""), HealthCheckResponse::SERVING);
  {
    // Calls fail fast with the store's reason while it is away.
    broker::v1::BeginAuthorizationRequest request;
    request.set_connection("athena");
    const absl::Time start = absl::Now();
    auto r = client_->Begin(request);
    EXPECT_LT(absl::Now() - start, absl::Seconds(1));
    EXPECT_THAT(r, ::leyr::testing::StatusIs(absl::StatusCode::kUnavailable,
                                             reason::kStoreUnavailable));
  }

  ASSERT_EQ(Cluster("resume", info_), 0);
  const absl::Time back = absl::Now();
  EXPECT_TRUE(wait_for_more_ok(5, absl::Seconds(5))) << "no recovery within 5 s";
  EXPECT_TRUE(HealthBecomes(HealthCheckResponse::SERVING, absl::Seconds(5) - (absl::Now() - back)));
  stop = true;
  for (auto& c : callers) c.join();

  // Failures during the outage: some, only STORE_UNAVAILABLE, each answered within a second.
  EXPECT_FALSE(failures.empty());
  for (const auto& [latency, why] : failures) {
    EXPECT_EQ(why, reason::kStoreUnavailable);
    EXPECT_LT(latency, absl::Seconds(1)) << why;
  }
  // Every acknowledged authorization survived.
  for (const auto& name : acknowledged) EXPECT_THAT(client_->Get(name), IsOk()) << name;
  // Nothing crashed: SIGTERM ends the broker with status 0.
  const int status = broker_->Stop();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

}  // namespace
}  // namespace leyr
