#include "server/broker/auth.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "google/protobuf/util/json_util.h"
#include "server/common/random.h"
#include "server/common/status_util.h"
#include "tests/testing/status_matchers.h"

namespace leyr {
namespace {

using ::leyr::testing::IsOk;
using ::leyr::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kTokenA[] = "CANARY-token-a-6f1c0e9b";
constexpr char kTokenB[] = "CANARY-token-b-0d77aa21";

template <typename T>
T Parse(const std::string& json) {
  T message;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(json, &message).ok()) << json;
  return message;
}

std::string TokensJson() {
  return "{\"tokens\": [{\"sha256\": \"" + Hex(Sha256(kTokenA)) +
         "\", \"caller\": \"app-b\"}, {\"sha256\": \"" + Hex(Sha256(kTokenB)) +
         "\", \"caller\": \"nobody\"}]}";
}

TEST(TokenTableTest, LooksUpByHashOnly) {
  auto table = TokenTable::FromConfig(Parse<config::BearerTokens>(TokensJson()));
  ASSERT_THAT(table, IsOk());
  EXPECT_EQ(table->size(), 2u);
  EXPECT_EQ(table->Lookup(kTokenA), "app-b");
  EXPECT_EQ(table->Lookup(kTokenB), "nobody");
  EXPECT_EQ(table->Lookup(""), std::nullopt);
  EXPECT_EQ(table->Lookup(std::string(kTokenA) + "x"), std::nullopt);
  EXPECT_EQ(table->Lookup(std::string(kTokenA).substr(1)), std::nullopt);
  // The hash itself is not a token.
  EXPECT_EQ(table->Lookup(Hex(Sha256(kTokenA))), std::nullopt);
  EXPECT_EQ(table->Lookup(std::string(5000, 'a')), std::nullopt);
}

TEST(TokenTableTest, RefusesRawTokensAndBadHashesWithoutEchoingThem) {
  auto bad = TokenTable::FromConfig(Parse<config::BearerTokens>(
      std::string(R"({"tokens": [{"sha256": ")") + kTokenA + R"(", "caller": "a"},)" +
      R"({"sha256": ")" + std::string(64, 'A') + R"(", "caller": "a"},)" +
      R"({"sha256": ")" + Hex(Sha256("x")) + R"(", "caller": ""},)" +
      R"({"sha256": ")" + Hex(Sha256("y")) + R"(", "caller": "a"},)" +
      R"({"sha256": ")" + Hex(Sha256("y")) + R"(", "caller": "b"}]})"));
  ASSERT_THAT(bad, StatusIs(absl::StatusCode::kInvalidArgument));
  const std::string message(bad.status().message());
  EXPECT_THAT(message, HasSubstr("tokens[0].sha256: must be 64 lower-case hex"));
  EXPECT_THAT(message, HasSubstr("tokens[1].sha256"));
  EXPECT_THAT(message, HasSubstr("tokens[2].caller: required"));
  EXPECT_THAT(message, HasSubstr("tokens[4].sha256: duplicate token"));
  EXPECT_THAT(message, Not(HasSubstr(kTokenA)));
}

class AuthenticatorTest : public ::testing::Test {
 protected:
  AuthenticatorTest() {
    auto policy = Policy::FromConfig(Parse<config::BrokerPolicy>(R"({"callers": [
        {"caller": "spiffe://leyr/app-a", "use": ["athena"]},
        {"caller": "app-c.leyr.internal", "use": ["athena"]},
        {"caller": "app-b", "use": ["athena"]},
        {"caller": "spiffe://leyr/shim", "shim": true}]})"),
                                     {"athena"});
    EXPECT_THAT(policy, IsOk());
    policy_ = std::make_shared<const Policy>(std::move(*policy));
    auto tokens = TokenTable::FromConfig(Parse<config::BearerTokens>(TokensJson()));
    EXPECT_THAT(tokens, IsOk());
    tokens_ = std::make_shared<const TokenTable>(std::move(*tokens));
  }

  std::shared_ptr<const Policy> policy_;
  std::shared_ptr<const TokenTable> tokens_;
};

TEST_F(AuthenticatorTest, CertificateSanPicksThePolicyEntry) {
  CallerAuthenticator auth(policy_, tokens_);
  CallCredentials c;
  c.uri_sans = {"spiffe://leyr/unknown", "spiffe://leyr/app-a"};
  c.dns_sans = {"app-c.leyr.internal"};
  auto caller = auth.Authenticate(c);
  ASSERT_THAT(caller, IsOk());
  EXPECT_EQ(caller->identity, "spiffe://leyr/app-a");  // URI SANs before DNS SANs
  ASSERT_NE(caller->permissions, nullptr);
  EXPECT_TRUE(caller->permissions->use.Contains("athena"));

  c.uri_sans.clear();
  caller = auth.Authenticate(c);
  ASSERT_THAT(caller, IsOk());
  EXPECT_EQ(caller->identity, "app-c.leyr.internal");
}

TEST_F(AuthenticatorTest, UnknownCertificateIdentityIsPermissionDenied) {
  CallerAuthenticator auth(policy_, tokens_);
  CallCredentials c;
  c.uri_sans = {"spiffe://leyr/app-z"};
  EXPECT_THAT(auth.Authenticate(c),
              StatusIs(absl::StatusCode::kPermissionDenied, "CALLER_NOT_IN_POLICY"));
}

TEST_F(AuthenticatorTest, NoCredentialsIsUnauthenticated) {
  CallerAuthenticator auth(policy_, tokens_);
  EXPECT_THAT(auth.Authenticate({}),
              StatusIs(absl::StatusCode::kUnauthenticated, "CREDENTIALS_MISSING"));
}

TEST_F(AuthenticatorTest, BearerTokenDecidesOverTheCertificate) {
  CallerAuthenticator auth(policy_, tokens_);
  CallCredentials c;
  c.uri_sans = {"spiffe://leyr/app-a"};
  c.authorization = {std::string("Bearer ") + kTokenA};
  auto caller = auth.Authenticate(c);
  ASSERT_THAT(caller, IsOk());
  EXPECT_EQ(caller->identity, "app-b");
  c.authorization = {std::string("bearer ") + kTokenA};  // the scheme is case-insensitive
  EXPECT_THAT(auth.Authenticate(c), IsOk());
}

TEST_F(AuthenticatorTest, BadTokensAreUnauthenticatedAndNeverEchoed) {
  CallerAuthenticator auth(policy_, tokens_);
  for (const std::string& header :
       {std::string("Bearer CANARY-wrong-token-77"), std::string("Basic ") + kTokenA,
        std::string(kTokenA), std::string("Bearer "), std::string("Bearer") + kTokenA}) {
    CallCredentials c;
    c.uri_sans = {"spiffe://leyr/app-a"};  // a valid certificate does not rescue a bad token
    c.authorization = {header};
    auto caller = auth.Authenticate(c);
    EXPECT_THAT(caller, StatusIs(absl::StatusCode::kUnauthenticated, "TOKEN_INVALID")) << header;
    EXPECT_THAT(std::string(caller.status().message()), Not(HasSubstr("CANARY"))) << header;
  }
  CallCredentials twice;
  twice.authorization = {std::string("Bearer ") + kTokenA, std::string("Bearer ") + kTokenA};
  EXPECT_THAT(auth.Authenticate(twice),
              StatusIs(absl::StatusCode::kUnauthenticated, "TOKEN_INVALID"));
}

TEST_F(AuthenticatorTest, ValidTokenOfACallerOutsideThePolicyIsPermissionDenied) {
  CallerAuthenticator auth(policy_, tokens_);
  CallCredentials c;
  c.authorization = {std::string("Bearer ") + kTokenB};
  auto caller = auth.Authenticate(c);
  EXPECT_THAT(caller, StatusIs(absl::StatusCode::kPermissionDenied, "CALLER_NOT_IN_POLICY"));
  EXPECT_THAT(std::string(caller.status().message()), Not(HasSubstr(kTokenB)));
}

TEST_F(AuthenticatorTest, TokensRefusedWhenNoTokensFile) {
  CallerAuthenticator auth(policy_, nullptr);
  CallCredentials c;
  c.authorization = {std::string("Bearer ") + kTokenA};
  EXPECT_THAT(auth.Authenticate(c),
              StatusIs(absl::StatusCode::kUnauthenticated, "TOKEN_INVALID"));
}

TEST_F(AuthenticatorTest, NoPolicyMeansAnonymousWithFullAccess) {
  CallerAuthenticator auth(nullptr, nullptr);
  auto caller = auth.Authenticate({});
  ASSERT_THAT(caller, IsOk());
  EXPECT_EQ(caller->identity, "anonymous");
  EXPECT_EQ(caller->permissions, nullptr);
}

}  // namespace
}  // namespace leyr
