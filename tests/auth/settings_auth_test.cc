// ValidateBrokerConfig's transport and caller-identity keys: tls, policy_file, tokens_file.
#include <unistd.h>

#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "server/broker/auth.h"
#include "server/broker/settings.h"
#include "server/common/random.h"
#include "tests/testing/status_matchers.h"

namespace leyr {
namespace {

using ::leyr::testing::IsOk;
using ::leyr::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kToken[] = "CANARY-settings-token-77e1";

std::string WriteTemp(const std::string& name, const std::string& content) {
  std::string path = ::testing::TempDir() + "/settings_auth_test_" + std::to_string(::getpid()) +
                     "_" + name;
  std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
  return path;
}

config::BrokerConfig DevConfig() {
  config::BrokerConfig c;
  c.add_listen("127.0.0.1:0");
  c.set_plaintext_development(true);
  c.mutable_leyr()->set_base_uri("http://127.0.0.1:9000/");
  c.mutable_leyr()->set_client_id("leyr-client");
  c.mutable_leyr()->set_client_secret_file(WriteTemp("secret", "CANARY-secret\n"));
  auto* conn = c.add_connections();
  conn->set_name("athena");
  conn->set_emr("athenapractice");
  conn->set_base_uri("http://127.0.0.1:9000/athena/");
  conn->set_client_id("athena-client");
  conn->set_redirect_uri("http://127.0.0.1:8081/athena/callback");
  return c;
}

TEST(SettingsAuthTest, DevelopmentWithoutPolicyIsAnonymousFullAccess) {
  auto s = ValidateBrokerConfig(DevConfig());
  ASSERT_THAT(s, IsOk());
  EXPECT_EQ(s->policy, nullptr);
  EXPECT_EQ(s->tokens, nullptr);
  EXPECT_FALSE(s->tls.enabled());
}

TEST(SettingsAuthTest, WithoutPlaintextTlsAndPolicyAreRequired) {
  config::BrokerConfig c = DevConfig();
  c.set_plaintext_development(false);
  auto s = ValidateBrokerConfig(c);
  ASSERT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(s.status().message(), HasSubstr("tls: required"));
  EXPECT_THAT(s.status().message(), HasSubstr("policy_file: required"));
}

TEST(SettingsAuthTest, BadTlsFilesAndPolicyAreNamed) {
  config::BrokerConfig c = DevConfig();
  c.set_plaintext_development(false);
  c.mutable_tls()->set_cert_file("/nonexistent/cert.pem");
  c.mutable_tls()->set_key_file(WriteTemp("not-a-key", "CANARY-not-a-key\n"));
  c.mutable_tls()->set_client_auth("sometimes");
  c.set_policy_file(WriteTemp("policy.json", R"({"callers":[{"caller":"a","use":["nope"]}]})"));
  c.set_tokens_file(WriteTemp("tokens.json", std::string(R"({"tokens":[{"sha256":")") + kToken +
                                                 R"(","caller":"a"}]})"));
  auto s = ValidateBrokerConfig(c);
  ASSERT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument));
  const std::string message(s.status().message());
  EXPECT_THAT(message, HasSubstr("tls.cert_file: cannot be read"));
  EXPECT_THAT(message, HasSubstr("tls.client_auth: must be"));
  EXPECT_THAT(message, HasSubstr("policy_file: "));
  EXPECT_THAT(message, HasSubstr("names no configured connection ('nope')"));
  EXPECT_THAT(message, HasSubstr("tokens_file: "));
  EXPECT_THAT(message, Not(HasSubstr("CANARY")));
}

TEST(SettingsAuthTest, PolicyAndTokensLoad) {
  config::BrokerConfig c = DevConfig();
  c.set_policy_file(WriteTemp("policy-ok.json",
                              R"({"callers":[{"caller":"app","begin":["athena"],"use":["*"]}]})"));
  c.set_tokens_file(WriteTemp("tokens-ok.json", R"({"tokens":[{"sha256":")" +
                                                    Hex(Sha256(kToken)) + R"(","caller":"app"}]})"));
  auto s = ValidateBrokerConfig(c);
  ASSERT_THAT(s, IsOk());
  ASSERT_NE(s->policy, nullptr);
  EXPECT_NE(s->policy->Find("app"), nullptr);
  ASSERT_NE(s->tokens, nullptr);
  EXPECT_EQ(s->tokens->Lookup(kToken), "app");
}

TEST(SettingsAuthTest, TokensNeedAPolicy) {
  config::BrokerConfig c = DevConfig();
  c.set_tokens_file(WriteTemp("tokens-alone.json", R"({"tokens":[]})"));
  EXPECT_THAT(ValidateBrokerConfig(c).status().message(),
              HasSubstr("tokens_file: needs a policy_file"));
}

}  // namespace
}  // namespace leyr
