#include "server/broker/policy.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "google/protobuf/util/json_util.h"
#include "server/common/status_util.h"
#include "tests/testing/status_matchers.h"

namespace leyr {
namespace {

using ::leyr::testing::IsOk;
using ::leyr::testing::StatusIs;
using ::testing::HasSubstr;

const std::set<std::string> kConnections = {"athena", "other"};

config::BrokerPolicy Parse(const std::string& json) {
  config::BrokerPolicy policy;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(json, &policy).ok()) << json;
  return policy;
}

TEST(PolicyTest, ParsesCallersAndSets) {
  auto policy = Policy::FromConfig(Parse(R"({"callers": [
      {"caller": "spiffe://leyr/app-a", "begin": ["athena"], "use": ["*"], "revoke": ["athena"],
       "return_uri_origins": ["HTTPS://App.Example.com:443"]},
      {"caller": "spiffe://leyr/shim", "shim": true}]})"),
                                   kConnections);
  ASSERT_THAT(policy, IsOk());
  EXPECT_EQ(policy->size(), 2u);
  auto a = policy->Find("spiffe://leyr/app-a");
  ASSERT_NE(a, nullptr);
  EXPECT_TRUE(a->begin.Contains("athena"));
  EXPECT_FALSE(a->begin.Contains("other"));
  EXPECT_TRUE(a->use.Contains("other"));
  EXPECT_TRUE(a->use.Contains("any-name"));  // "*"
  EXPECT_FALSE(a->revoke.Contains("other"));
  EXPECT_FALSE(a->all_owners);
  EXPECT_FALSE(a->shim);
  // Origins are kept canonical, so they compare with CanonicalOrigin of a return URI.
  EXPECT_EQ(a->return_uri_origins, std::set<std::string>{"https://app.example.com"});
  auto shim = policy->Find("spiffe://leyr/shim");
  ASSERT_NE(shim, nullptr);
  EXPECT_TRUE(shim->shim);
  EXPECT_EQ(policy->Find("spiffe://leyr/app-b"), nullptr);
  EXPECT_EQ(policy->Find("spiffe://leyr/app-"), nullptr);
  EXPECT_EQ(policy->Find(""), nullptr);
}

TEST(PolicyTest, RefusesBadFilesNamingEveryKey) {
  auto bad = Policy::FromConfig(Parse(R"({"callers": [
      {"caller": "a", "begin": ["athena", "typo"]},
      {"caller": "a"},
      {"caller": "", "use": ["*"]},
      {"caller": "s", "shim": true, "use": ["athena"]},
      {"caller": "o", "return_uri_origins": ["not a uri"]}]})"),
                                kConnections);
  ASSERT_THAT(bad, StatusIs(absl::StatusCode::kInvalidArgument));
  const std::string message(bad.status().message());
  EXPECT_THAT(message, HasSubstr("callers[0].begin[1]: names no configured connection ('typo')"));
  EXPECT_THAT(message, HasSubstr("callers[1].caller: duplicate caller 'a'"));
  EXPECT_THAT(message, HasSubstr("callers[2].caller: required"));
  EXPECT_THAT(message, HasSubstr("callers[3]: a shim may only complete"));
  EXPECT_THAT(message, HasSubstr("callers[4].return_uri_origins[0]"));
  EXPECT_THAT(Policy::FromConfig(Parse("{}"), kConnections),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(PolicyTest, LoadsJsonFileAndRefusesUnknownKeys) {
  std::string path = ::testing::TempDir() + "/policy-" + std::to_string(getpid()) + ".json";
  {
    std::ofstream(path) << R"({"callers": [{"caller": "x", "use": ["athena"], "sudo": true}]})";
  }
  EXPECT_THAT(Policy::Load(path, kConnections), StatusIs(absl::StatusCode::kInvalidArgument));
  {
    std::ofstream(path) << R"({"callers": [{"caller": "x", "use": ["athena"], "allOwners": true}]})";
  }
  auto policy = Policy::Load(path, kConnections);
  ASSERT_THAT(policy, IsOk());
  EXPECT_TRUE(policy->Find("x")->all_owners);
  std::remove(path.c_str());
}

TEST(PolicyTest, ShimMayOnlyCompleteAndOnlyShimMayComplete) {
  CallerPermissions shim;
  shim.shim = true;
  CallerPermissions app;
  app.use.all = true;
  for (Rpc rpc : {Rpc::kBegin, Rpc::kGet, Rpc::kWait, Rpc::kList, Rpc::kRevoke, Rpc::kCallLeyr}) {
    absl::Status denied = CheckRpcAllowed(&shim, rpc);
    EXPECT_THAT(denied, StatusIs(absl::StatusCode::kPermissionDenied, "RPC_NOT_ALLOWED"));
    EXPECT_THAT(CheckRpcAllowed(&app, rpc), IsOk());
  }
  EXPECT_THAT(CheckRpcAllowed(&shim, Rpc::kComplete), IsOk());
  EXPECT_THAT(CheckRpcAllowed(&app, Rpc::kComplete),
              StatusIs(absl::StatusCode::kPermissionDenied, "RPC_NOT_ALLOWED"));
  EXPECT_THAT(CheckRpcAllowed(&app, Rpc::kComplete).message(),
              HasSubstr("CompleteAuthorization"));
  // No policy: everything (development).
  EXPECT_THAT(CheckRpcAllowed(nullptr, Rpc::kComplete), IsOk());
}

}  // namespace
}  // namespace leyr
