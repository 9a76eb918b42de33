// Two real leyr-broker processes on one PostgreSQL database (the CTest fixture's cluster, a
// private schema), one callback shim in front of broker B, and the sandbox: begin on A, the
// browser's callback through the shim to B, the wait on A returns (LISTEN/NOTIFY), CallLeyr on B
// works, and a revoke on B makes A's next CallLeyr fail.

#include <future>
#include <regex>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "client/broker_client.h"
#include "server/common/status_util.h"
#include "server/common/url.h"
#include "tests/store/pg_test_database.h"
#include "tests/testing/http_client.h"
#include "tests/testing/process.h"
#include "tests/testing/status_matchers.h"

namespace leyr {
namespace {

using ::leyr::testing::HttpRequest;
using ::leyr::testing::IsOk;
using ::leyr::testing::PgTestDatabase;
using ::leyr::testing::Process;
using ::leyr::testing::StatusIs;
using ::leyr::testing::TempDir;
using broker::v1::Authorization;

constexpr char kLeyrSecret[] = "canary-LEYR-SECRET-two-brokers";

std::string HtmlUnescape(std::string s) {
  return absl::StrReplaceAll(s, {{"&quot;", "\""}, {"&#39;", "'"}, {"&lt;", "<"}, {"&gt;", ">"},
                                 {"&amp;", "&"}});
}

// The approve form of the sandbox's consent page: its action and hidden fields.
bool ParseApproveForm(const std::string& html, std::string* action, FormFields* fields) {
  std::smatch m;
  std::regex form_re(
      "<form id=\"approve\" method=\"post\" action=\"([^\"]*)\">([\\s\\S]*?)</form>");
  if (!std::regex_search(html, m, form_re)) return false;
  *action = HtmlUnescape(m[1]);
  std::string inner = m[2];
  std::regex input_re("<input type=\"hidden\" name=\"([^\"]*)\" value=\"([^\"]*)\">");
  for (auto it = std::sregex_iterator(inner.begin(), inner.end(), input_re);
       it != std::sregex_iterator(); ++it) {
    fields->emplace_back(HtmlUnescape((*it)[1]), HtmlUnescape((*it)[2]));
  }
  return true;
}

std::string AddressOf(const std::string& line) {
  const std::string key = "\"address\":\"";
  size_t start = line.find(key) + key.size();
  return line.substr(start, line.find('"', start) - start);
}

class TwoBrokersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!db_.available()) {
      if (PgTestDatabase::required()) FAIL() << "PostgreSQL test cluster: " << db_.error();
      GTEST_SKIP() << "no PostgreSQL test cluster (see scripts/pg-test-cluster.sh)";
    }
    const std::string secret_file = dir_.WriteFile("leyr-secret", std::string(kLeyrSecret));
    const std::string db_password = dir_.WriteFile("db-password", db_.Options().password);
    // Both replicas share the key ring: each opens the codes the other sealed.
    const std::string keys = dir_.WriteFile(
        "keys.json",
        R"({"primary":"k1","keys":[{"id":"k1","key_base64":"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}]})");
    const std::string socket_b = dir_.path() + "/broker-b.sock";

    auto shim = Process::Start(
        {LEYR_SHIM_BIN,
         "--config=" + dir_.WriteFile("shim.json",
                                      absl::StrCat(R"({"listen":"127.0.0.1:0","broker_target":"unix:)",
                                                   socket_b, R"("})"))});
    ASSERT_THAT(shim, IsOk());
    shim_ = std::move(*shim);
    auto shim_address = shim_->WaitForListening();
    ASSERT_THAT(shim_address, IsOk());
    const std::string redirect_uri = absl::StrCat("http://", *shim_address, "/oauth/callback");

    auto sandbox = Process::Start(
        {LEYR_SANDBOX_BIN,
         "--config=" +
             dir_.WriteFile("sandbox.json",
                            absl::StrCat(R"({"listen":"127.0.0.1:0","clients":[{"client_id":"athena-client","redirect_uri":")",
                                         redirect_uri,
                                         R"("}],"leyr_client_id":"leyr-client","leyr_client_secret_file":")",
                                         secret_file, R"("})"))});
    ASSERT_THAT(sandbox, IsOk());
    sandbox_ = std::move(*sandbox);
    auto sandbox_address = sandbox_->WaitForListening();
    ASSERT_THAT(sandbox_address, IsOk());
    const std::string sandbox_url = absl::StrCat("http://", *sandbox_address);

    auto broker_config = [&](const std::string& listen) {
      return absl::StrCat(
          R"({"listen":[)", listen, R"(],"plaintext_development":true,)",
          R"("leyr":{"base_uri":")", sandbox_url, R"(","client_id":"leyr-client","client_secret_file":")",
          secret_file, R"("},)",
          R"("connections":[{"name":"athena-sandbox","emr":"athenapractice","base_uri":")",
          sandbox_url, R"(","client_id":"athena-client","redirect_uri":")", redirect_uri, R"("}],)",
          R"("store":"postgres","sealing_key_file":")", keys, R"(",)",
          R"("postgres":{"conninfo":")", db_.Options().conninfo, R"(","password_file":")",
          db_password, R"(","pool_size":2}})");
    };
    auto start_broker = [&](const std::string& name, const std::string& listen,
                            std::unique_ptr<Process>* process,
                            std::unique_ptr<BrokerClient>* client) {
      auto p = Process::Start(
          {LEYR_BROKER_BIN, "--config=" + dir_.WriteFile(name + ".json", broker_config(listen))});
      ASSERT_THAT(p, IsOk());
      *process = std::move(*p);
      auto tcp = (*process)->WaitForLine([](const std::string& l) {
        return absl::StrContains(l, "\"msg\":\"listening\"") && absl::StrContains(l, "127.0.0.1:");
      });
      ASSERT_THAT(tcp, IsOk());
      *client = BrokerClient::ConnectInsecure(AddressOf(*tcp));
    };
    start_broker("broker-a", R"("127.0.0.1:0")", &broker_a_, &a_);
    start_broker("broker-b", absl::StrCat(R"("unix:)", socket_b, R"(","127.0.0.1:0")"), &broker_b_,
                 &b_);
  }

  broker::v1::CallLeyrRequest CareUnits(const std::string& name) {
    broker::v1::CallLeyrRequest request;
    request.set_authorization(name);
    request.set_method("GET");
    request.set_path("/api/emrs/athenapractice/care-units");
    return request;
  }

  PgTestDatabase db_;
  TempDir dir_;
  std::unique_ptr<Process> shim_, sandbox_, broker_a_, broker_b_;
  std::unique_ptr<BrokerClient> a_, b_;
};

TEST_F(TwoBrokersTest, BeginOnACallbackOnBWaitOnAReturnsRevokeOnBSeenByA) {
  broker::v1::BeginAuthorizationRequest begin;
  begin.set_connection("athena-sandbox");
  auto begun = a_->Begin(begin);
  ASSERT_THAT(begun, IsOk());
  const std::string name = begun->authorization().name();

  // The wait on A starts before the callback and must end because of it, long before its own
  // 60 s timeout.
  const absl::Time wait_start = absl::Now();
  auto waited = std::async(std::launch::async, [&] { return a_->Wait(name, absl::Seconds(60)); });

  auto page = HttpRequest("GET", begun->authorize_uri());
  ASSERT_THAT(page, IsOk());
  std::string action;
  FormFields fields;
  ASSERT_TRUE(ParseApproveForm(page->body, &action, &fields)) << page->body;
  auto callback = HttpRequest("POST", action, {"Content-Type: application/x-www-form-urlencoded"},
                              EncodeQuery(fields));
  ASSERT_THAT(callback, IsOk());
  // Broker B completed it (no return URI: the shim's own "Sign-in complete" page).
  EXPECT_EQ(callback->status, 200) << callback->body;
  EXPECT_THAT(callback->body, ::testing::HasSubstr("Sign-in complete"));

  auto result = waited.get();
  ASSERT_THAT(result, IsOk());
  EXPECT_EQ(result->state(), Authorization::STATE_ACTIVE);
  EXPECT_TRUE(result->activated());
  EXPECT_LT(absl::Now() - wait_start, absl::Seconds(30)) << "the wait ended by its timeout";

  auto on_b = b_->CallLeyr(CareUnits(name));
  ASSERT_THAT(on_b, IsOk());
  EXPECT_EQ(on_b->status_code(), 200);
  auto on_a = a_->CallLeyr(CareUnits(name));
  ASSERT_THAT(on_a, IsOk());
  EXPECT_EQ(on_a->status_code(), 200);

  ASSERT_THAT(b_->Revoke(name), IsOk());
  // A caches the ACTIVE record for its CallLeyr hot path; the revoke reaches A's cache through
  // LISTEN/NOTIFY, and within a second at the latest. Ask A until it refuses, for at most 1 s.
  const absl::Time revoked = absl::Now();
  absl::StatusOr<broker::v1::CallLeyrResponse> after = a_->CallLeyr(CareUnits(name));
  while (after.ok() && absl::Now() - revoked < absl::Seconds(1)) {
    after = a_->CallLeyr(CareUnits(name));
  }
  EXPECT_THAT(after,
              StatusIs(absl::StatusCode::kFailedPrecondition, reason::kAuthorizationNotActive));
  EXPECT_LT(absl::Now() - revoked, absl::Seconds(1));
  EXPECT_EQ(a_->Get(name)->state(), Authorization::STATE_REVOKED);
}

}  // namespace
}  // namespace leyr
