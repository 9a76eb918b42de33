#include "server/broker/settings.h"

#include <unistd.h>

#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_split.h"
#include "tests/testing/status_matchers.h"

namespace leyr {
namespace {

using ::leyr::testing::IsOk;
using ::leyr::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kSecret[] = "CANARY-leyr-secret-9d1f0c";

std::string WriteTemp(const std::string& name, const std::string& content) {
  std::string path = ::testing::TempDir() + "/broker_settings_test_" +
                     std::to_string(::getpid()) + "_" + name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  return path;
}

config::BrokerConfig GoodConfig() {
  config::BrokerConfig c;
  c.add_listen("127.0.0.1:0");
  c.set_plaintext_development(true);
  c.mutable_leyr()->set_base_uri("http://127.0.0.1:9000/");
  c.mutable_leyr()->set_client_id("leyr-client");
  c.mutable_leyr()->set_client_secret_file(WriteTemp("secret", std::string(kSecret) + "\n"));
  auto* conn = c.add_connections();
  conn->set_name("athena");
  conn->set_emr("athenapractice");
  conn->set_base_uri("http://127.0.0.1:9000/athena/");
  conn->set_client_id("athena-client");
  conn->set_redirect_uri("http://127.0.0.1:8081/athena/callback");
  c.add_return_uri_origins("https://App.Example.com:443/");
  c.add_return_uri_origins("http://127.0.0.1:8080");
  return c;
}

TEST(ValidateBrokerConfigTest, GoodConfigWithDefaults) {
  auto s = ValidateBrokerConfig(GoodConfig());
  ASSERT_THAT(s, IsOk());
  EXPECT_THAT(s->listen, ElementsAre("127.0.0.1:0"));
  EXPECT_TRUE(s->plaintext_development);
  EXPECT_EQ(s->leyr_base_uri, "http://127.0.0.1:9000");
  EXPECT_EQ(s->leyr_client_id, "leyr-client");
  EXPECT_EQ(s->leyr_client_secret, kSecret);  // trailing newline removed
  EXPECT_EQ(s->activation_path, "care-units");
  EXPECT_EQ(s->leyr_request_timeout, absl::Seconds(30));
  EXPECT_EQ(s->state_ttl, absl::Minutes(10));
  EXPECT_EQ(s->retention, absl::Hours(24));
  EXPECT_EQ(s->store, "memory");
  EXPECT_EQ(s->log_level, LogLevel::kInfo);
  ASSERT_EQ(s->connections.count("athena"), 1u);
  const ConnectionSettings& c = s->connections.at("athena");
  EXPECT_EQ(c.emr, "athenapractice");
  EXPECT_EQ(c.base_uri, "http://127.0.0.1:9000/athena");
  EXPECT_EQ(c.redirect_uri, "http://127.0.0.1:8081/athena/callback");
  EXPECT_THAT(c.scopes, ElementsAre("openid", "profile", "user/*.*", "offline_access"));
  EXPECT_THAT(s->return_uri_origins,
              ElementsAre("http://127.0.0.1:8080", "https://app.example.com"));
}

TEST(ValidateBrokerConfigTest, ExplicitValues) {
  config::BrokerConfig c = GoodConfig();
  c.mutable_leyr()->set_activation_path("/patients/search");
  c.mutable_state_ttl()->set_seconds(60);
  c.set_log_level("debug");
  c.mutable_connections(0)->add_scopes("openid");
  auto s = ValidateBrokerConfig(c);
  ASSERT_THAT(s, IsOk());
  EXPECT_EQ(s->activation_path, "patients/search");
  EXPECT_EQ(s->state_ttl, absl::Minutes(1));
  EXPECT_EQ(s->log_level, LogLevel::kDebug);
  EXPECT_THAT(s->connections.at("athena").scopes, ElementsAre("openid"));

  c.mutable_leyr()->set_disable_activation(true);
  auto disabled = ValidateBrokerConfig(c);
  ASSERT_THAT(disabled, IsOk());
  EXPECT_EQ(disabled->activation_path, "");
}

struct BadCase {
  std::string key;  // must appear in the error
  std::function<void(config::BrokerConfig&)> mutate;
};

std::vector<BadCase> BadCases() {
  return {
      {"listen[0]", [](auto& c) { c.set_listen(0, ""); }},
      {"plaintext_development", [](auto& c) { c.set_plaintext_development(false); }},
      {"leyr.base_uri", [](auto& c) { c.mutable_leyr()->clear_base_uri(); }},
      {"leyr.base_uri", [](auto& c) { c.mutable_leyr()->set_base_uri("ftp://leyr.example.com"); }},
      {"leyr.base_uri", [](auto& c) { c.mutable_leyr()->set_base_uri("https://api.leyr.io/?x=1"); }},
      {"leyr.client_id", [](auto& c) { c.mutable_leyr()->clear_client_id(); }},
      {"leyr.client_secret_file", [](auto& c) { c.mutable_leyr()->clear_client_secret_file(); }},
      {"leyr.client_secret_file",
       [](auto& c) { c.mutable_leyr()->set_client_secret_file("/nonexistent/secret"); }},
      {"leyr.client_secret_file",
       [](auto& c) { c.mutable_leyr()->set_client_secret_file(WriteTemp("empty", "\n")); }},
      {"leyr.activation_path", [](auto& c) { c.mutable_leyr()->set_activation_path("../x"); }},
      {"leyr.activation_path", [](auto& c) { c.mutable_leyr()->set_activation_path("a?b"); }},
      {"leyr.activation_path", [](auto& c) { c.mutable_leyr()->set_activation_path("/"); }},
      {"leyr.request_timeout",
       [](auto& c) { c.mutable_leyr()->mutable_request_timeout()->set_seconds(600); }},
      {"leyr.request_timeout",
       [](auto& c) { c.mutable_leyr()->mutable_request_timeout()->set_seconds(-1); }},
      {"leyr.max_response_bytes", [](auto& c) { c.mutable_leyr()->set_max_response_bytes(-1); }},
      {"leyr.max_response_bytes",
       [](auto& c) { c.mutable_leyr()->set_max_response_bytes(int64_t{1} << 31); }},
      {"leyr.max_idle_connections",
       [](auto& c) { c.mutable_leyr()->set_max_idle_connections(20000); }},
      {"connections", [](auto& c) { c.clear_connections(); }},
      {"connections[0].name", [](auto& c) { c.mutable_connections(0)->set_name("Bad_Name"); }},
      {"connections[0].name", [](auto& c) { c.mutable_connections(0)->set_name(""); }},
      {"connections[1].name", [](auto& c) { *c.add_connections() = c.connections(0); }},
      {"connections[0].emr", [](auto& c) { c.mutable_connections(0)->clear_emr(); }},
      {"connections[0].emr", [](auto& c) { c.mutable_connections(0)->set_emr("athena/../x"); }},
      {"connections[0].base_uri", [](auto& c) { c.mutable_connections(0)->clear_base_uri(); }},
      {"connections[0].base_uri",
       [](auto& c) { c.mutable_connections(0)->set_base_uri("https://athena.example.com#f"); }},
      {"connections[0].base_uri",
       [](auto& c) { c.mutable_connections(0)->set_base_uri("https://u@athena.example.com"); }},
      {"connections[0].client_id", [](auto& c) { c.mutable_connections(0)->clear_client_id(); }},
      {"connections[0].redirect_uri",
       [](auto& c) { c.mutable_connections(0)->clear_redirect_uri(); }},
      {"connections[0].redirect_uri",
       [](auto& c) { c.mutable_connections(0)->set_redirect_uri("/callback"); }},
      {"connections[0].scopes[1]",
       [](auto& c) {
         c.mutable_connections(0)->add_scopes("openid");
         c.mutable_connections(0)->add_scopes("two words");
       }},
      {"connections[0].scopes[0]", [](auto& c) { c.mutable_connections(0)->add_scopes(""); }},
      {"return_uri_origins[2]",
       [](auto& c) { c.add_return_uri_origins("https://app.example.com/path"); }},
      {"return_uri_origins[2]", [](auto& c) { c.add_return_uri_origins("javascript:alert(1)"); }},
      {"return_uri_origins[2]", [](auto& c) { c.add_return_uri_origins("https://app.example.com?x"); }},
      {"state_ttl", [](auto& c) { c.mutable_state_ttl()->set_seconds(7200); }},
      {"state_ttl", [](auto& c) { c.mutable_state_ttl()->set_nanos(500000000); }},
      {"retention", [](auto& c) { c.mutable_retention()->set_nanos(500000000); }},
      {"store", [](auto& c) { c.set_store("cassandra"); }},
      {"log_level", [](auto& c) { c.set_log_level("loud"); }},
  };
}

TEST(ValidateBrokerConfigTest, EachBadKeyIsNamed) {
  for (const BadCase& bad : BadCases()) {
    config::BrokerConfig c = GoodConfig();
    bad.mutate(c);
    auto s = ValidateBrokerConfig(c);
    ASSERT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument)) << bad.key;
    const std::string message(s.status().message());
    EXPECT_THAT(message, HasSubstr(bad.key + ": ")) << message;
    EXPECT_THAT(message, Not(HasSubstr(kSecret))) << message;
  }
}

TEST(ValidateBrokerConfigTest, EveryProblemListedOnePerLine) {
  config::BrokerConfig c = GoodConfig();
  c.mutable_leyr()->clear_client_id();
  c.set_store("redis");
  c.mutable_connections(0)->set_emr("");
  auto s = ValidateBrokerConfig(c);
  ASSERT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument));
  std::vector<std::string> lines = absl::StrSplit(s.status().message(), '\n');
  ASSERT_EQ(lines.size(), 3u) << s.status().message();
  EXPECT_THAT(lines[0], ::testing::StartsWith("leyr.client_id: "));
  EXPECT_THAT(lines[1], ::testing::StartsWith("connections[0].emr: "));
  EXPECT_THAT(lines[2], ::testing::StartsWith("store: "));
}

TEST(ValidateBrokerConfigTest, SecretContentNeverInAnyError) {
  // A readable secret while nearly everything else is wrong.
  config::BrokerConfig c;
  c.mutable_leyr()->set_client_secret_file(WriteTemp("secret2", kSecret));
  c.mutable_leyr()->set_base_uri("not a uri");
  c.mutable_leyr()->set_activation_path("..");
  c.set_store("x");
  c.add_return_uri_origins("nope");
  auto s = ValidateBrokerConfig(c);
  ASSERT_THAT(s, Not(IsOk()));
  std::string message(s.status().message());
  EXPECT_THAT(message, HasSubstr("leyr.base_uri: "));
  EXPECT_THAT(message, Not(HasSubstr("CANARY")));

  // A secret file whose path is fine but unreadable as a secret (only whitespace lines).
  config::BrokerConfig empty = GoodConfig();
  empty.mutable_leyr()->set_client_secret_file(WriteTemp("secret3", "\r\n"));
  auto e = ValidateBrokerConfig(empty);
  ASSERT_THAT(e, Not(IsOk()));
  EXPECT_THAT(std::string(e.status().message()), HasSubstr("leyr.client_secret_file"));

  // With many errors and a good secret file, the secret never appears.
  for (const BadCase& bad : BadCases()) {
    config::BrokerConfig all = GoodConfig();
    bad.mutate(all);
    auto r = ValidateBrokerConfig(all);
    if (!r.ok()) {
      EXPECT_THAT(std::string(r.status().message()), Not(HasSubstr(kSecret))) << bad.key;
      EXPECT_THAT(std::string(r.status().message()), Not(HasSubstr("CANARY"))) << bad.key;
    }
  }
}

}  // namespace
}  // namespace leyr
