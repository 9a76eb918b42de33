#include "server/broker/oauth.h"

#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "server/common/url.h"
#include "tests/testing/fake_random.h"
#include "tests/testing/status_matchers.h"

namespace leyr {
namespace {

using ::leyr::testing::FakeRandom;
using ::leyr::testing::IsOk;
using ::testing::ElementsAre;
using ::testing::Pair;
using ::testing::StartsWith;

ConnectionSettings Connection() {
  ConnectionSettings c;
  c.name = "athena";
  c.emr = "athenapractice";
  c.base_uri = "https://athena.example.com:8443/sandbox";
  c.client_id = "0oa1b2c3+d4/e5 f6";
  c.redirect_uri = "http://127.0.0.1:8081/athena/callback?x=1&y=2";
  c.scopes = {"openid", "profile", "user/*.*", "offline_access"};
  return c;
}

TEST(BuildAuthorizeUriTest, ExactStringInTheGuidesOrder) {
  const std::string state = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
  EXPECT_EQ(BuildAuthorizeUri(Connection(), state),
            "https://athena.example.com:8443/sandbox/oauth2/authorize"
            "?state=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
            "&scope=openid%20profile%20user%2F%2A.%2A%20offline_access"
            "&response_type=code"
            "&redirect_uri=http%3A%2F%2F127.0.0.1%3A8081%2Fathena%2Fcallback%3Fx%3D1%26y%3D2"
            "&aud=https%3A%2F%2Fathena.example.com%3A8443%2Fsandbox"
            "&client_id=0oa1b2c3%2Bd4%2Fe5%20f6");
}

TEST(BuildAuthorizeUriTest, DecodesBackToExactlyTheSixParameters) {
  const ConnectionSettings c = Connection();
  const std::string state = "state-with_chars-AAAAAAAAAAAAAAAAAAAAAAAAAA";
  std::string uri = BuildAuthorizeUri(c, state);
  ASSERT_THAT(uri, StartsWith(c.base_uri + "/oauth2/authorize?"));
  std::string query = uri.substr(uri.find('?') + 1);
  // Every character of the query is unreserved, a separator, or part of an escape.
  for (char ch : query) {
    EXPECT_TRUE(absl::ascii_isalnum(ch) || absl::StrContains("-._~%=&", ch)) << ch;
  }
  EXPECT_EQ(uri.find('#'), std::string::npos);
  EXPECT_EQ(uri.find('+'), std::string::npos);
  auto fields = ParseFormUrlEncoded(query);
  ASSERT_THAT(fields, IsOk());
  EXPECT_THAT(*fields, ElementsAre(Pair("state", state),
                                   Pair("scope", "openid profile user/*.* offline_access"),
                                   Pair("response_type", "code"),
                                   Pair("redirect_uri", c.redirect_uri),
                                   Pair("aud", c.base_uri),
                                   Pair("client_id", c.client_id)));
}

TEST(BuildAuthorizeUriTest, SingleScopeAndPlainBase) {
  ConnectionSettings c = Connection();
  c.base_uri = "https://api.preview.platform.athenahealth.com";
  c.scopes = {"openid"};
  c.client_id = "abc";
  c.redirect_uri = "https://shim.example.org/cb";
  EXPECT_EQ(BuildAuthorizeUri(c, "s"),
            "https://api.preview.platform.athenahealth.com/oauth2/authorize?state=s&scope=openid"
            "&response_type=code&redirect_uri=https%3A%2F%2Fshim.example.org%2Fcb"
            "&aud=https%3A%2F%2Fapi.preview.platform.athenahealth.com&client_id=abc");
}

TEST(NewStateTest, ThirtyTwoBytesAsFortyThreeBase64UrlChars) {
  FakeRandom random;
  std::string bytes;
  for (int i = 0; i < 32; ++i) bytes.push_back(static_cast<char>(i));
  random.Queue(bytes);
  auto state = NewState(random);
  ASSERT_THAT(state, IsOk());
  EXPECT_EQ(*state, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8");
  EXPECT_EQ(state->size(), 43u);
  EXPECT_THAT(random.sizes(), ElementsAre(32u));
  EXPECT_TRUE(IsWellFormedState(*state));
}

TEST(NewStateTest, RealRandomStatesDifferAndAreWellFormed) {
  SecureRandom random;
  auto a = NewState(random);
  auto b = NewState(random);
  ASSERT_THAT(a, IsOk());
  ASSERT_THAT(b, IsOk());
  EXPECT_NE(*a, *b);
  EXPECT_EQ(a->size(), 43u);
  EXPECT_TRUE(IsWellFormedState(*a));
  EXPECT_TRUE(IsWellFormedState(*b));
}

TEST(NewStateTest, RandomFailureIsAnError) {
  FakeRandom random;
  random.set_fail(true);
  EXPECT_THAT(NewState(random), ::testing::Not(IsOk()));
}

TEST(HashStateTest, HexSha256AndNeverTheState) {
  EXPECT_EQ(HashState("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const std::string state = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
  std::string hash = HashState(state);
  EXPECT_EQ(hash, "ea866a757e4c38babfa8127cbe9a409d3e1f93a00ff1488ff735fcf917afffd0");
  EXPECT_EQ(hash.size(), 64u);
  EXPECT_NE(hash, state);
  EXPECT_FALSE(absl::StrContains(hash, state));
  EXPECT_NE(HashState(state), HashState(state.substr(0, 42) + "g"));
}

TEST(IsWellFormedStateTest, Shape) {
  const std::string good(43, 'A');
  EXPECT_TRUE(IsWellFormedState(good));
  EXPECT_TRUE(IsWellFormedState("abcdefghijklmnopqrstuvwxyz0123456789-_ABCDE"));
  EXPECT_FALSE(IsWellFormedState(""));
  EXPECT_FALSE(IsWellFormedState(std::string(42, 'A')));
  EXPECT_FALSE(IsWellFormedState(std::string(44, 'A')));
  for (char bad : {'+', '/', '=', ' ', '.', '%', '\0', '\n'}) {
    std::string s = good;
    s[10] = bad;
    EXPECT_FALSE(IsWellFormedState(s)) << static_cast<int>(bad);
  }
  std::string non_ascii = good;
  non_ascii[0] = '\xC3';
  EXPECT_FALSE(IsWellFormedState(non_ascii));
}

}  // namespace
}  // namespace leyr
