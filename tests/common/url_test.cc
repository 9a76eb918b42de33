#include "server/common/url.h"

#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "tests/testing/status_matchers.h"

namespace leyr {
namespace {

using ::leyr::testing::IsOk;
using ::leyr::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::Pair;

// --- PercentEncode / PercentDecode ---

TEST(PercentEncodeTest, KeepsExactlyTheUnreservedSet) {
  const std::string unreserved =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~";
  EXPECT_EQ(PercentEncode(unreserved), unreserved);
  // Every other byte is escaped with upper-case hex.
  for (int c = 0; c < 256; ++c) {
    std::string one(1, static_cast<char>(c));
    if (unreserved.find(static_cast<char>(c)) != std::string::npos) continue;
    static constexpr char kHex[] = "0123456789ABCDEF";
    std::string want = {'%', kHex[c >> 4], kHex[c & 0xf]};
    EXPECT_EQ(PercentEncode(one), want) << "byte " << c;
  }
}

TEST(PercentEncodeTest, ScopeExample) {
  EXPECT_EQ(PercentEncode("openid profile user/*.* offline_access"),
            "openid%20profile%20user%2F%2A.%2A%20offline_access");
  EXPECT_EQ(PercentEncode("a+b&c=d"), "a%2Bb%26c%3Dd");
  EXPECT_EQ(PercentEncode(""), "");
}

TEST(PercentDecodeTest, RoundTripsEveryByte) {
  std::string all;
  for (int c = 0; c < 256; ++c) all.push_back(static_cast<char>(c));
  auto decoded = PercentDecode(PercentEncode(all), /*plus_as_space=*/false);
  ASSERT_THAT(decoded, IsOk());
  EXPECT_EQ(*decoded, all);
}

TEST(PercentDecodeTest, PlusOnlyInFormMode) {
  EXPECT_EQ(*PercentDecode("a+b", true), "a b");
  EXPECT_EQ(*PercentDecode("a+b", false), "a+b");
  EXPECT_EQ(*PercentDecode("%2b%2B", true), "++");
  EXPECT_EQ(*PercentDecode("%41%7a", false), "Az");
}

TEST(PercentDecodeTest, RejectsMalformedEscapes) {
  EXPECT_THAT(PercentDecode("%", false), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(PercentDecode("%4", false), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(PercentDecode("ab%4", false), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(PercentDecode("%G1", false), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(PercentDecode("%1G", false), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(PercentDecode("%%41", false), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(PercentDecode("x%41", false), IsOk());  // escape exactly at the end is fine
}

// --- ParseFormUrlEncoded ---

TEST(ParseFormUrlEncodedTest, PlusIsSpaceAndEscapesDecode) {
  auto fields = ParseFormUrlEncoded("error_description=The+user+said+no%21&x=%E2%9C%93");
  ASSERT_THAT(fields, IsOk());
  EXPECT_THAT(*fields, ElementsAre(Pair("error_description", "The user said no!"),
                                   Pair("x", "\xE2\x9C\x93")));
}

TEST(ParseFormUrlEncodedTest, EncodedPlusStaysPlus) {
  auto fields = ParseFormUrlEncoded("code=a%2Bb+c");
  ASSERT_THAT(fields, IsOk());
  EXPECT_THAT(*fields, ElementsAre(Pair("code", "a+b c")));
}

TEST(ParseFormUrlEncodedTest, RepeatedFieldsKeptInOrder) {
  auto fields = ParseFormUrlEncoded("state=one&code=c&state=two&state=three");
  ASSERT_THAT(fields, IsOk());
  EXPECT_THAT(*fields, ElementsAre(Pair("state", "one"), Pair("code", "c"), Pair("state", "two"),
                                   Pair("state", "three")));
}

TEST(ParseFormUrlEncodedTest, EmptyValueAndMissingEquals) {
  auto fields = ParseFormUrlEncoded("a=&b&c=3");
  ASSERT_THAT(fields, IsOk());
  EXPECT_THAT(*fields, ElementsAre(Pair("a", ""), Pair("b", ""), Pair("c", "3")));
}

TEST(ParseFormUrlEncodedTest, ValueMayContainEquals) {
  auto fields = ParseFormUrlEncoded("id_token=aaa.bbb.ccc==&k=v=w");
  ASSERT_THAT(fields, IsOk());
  EXPECT_THAT(*fields, ElementsAre(Pair("id_token", "aaa.bbb.ccc=="), Pair("k", "v=w")));
}

TEST(ParseFormUrlEncodedTest, EmptyBodyAndEmptyPairs) {
  auto empty = ParseFormUrlEncoded("");
  ASSERT_THAT(empty, IsOk());
  EXPECT_THAT(*empty, IsEmpty());
  auto sparse = ParseFormUrlEncoded("&a=1&&b=2&");
  ASSERT_THAT(sparse, IsOk());
  EXPECT_THAT(*sparse, ElementsAre(Pair("a", "1"), Pair("b", "2")));
}

TEST(ParseFormUrlEncodedTest, EmptyNameRejected) {
  EXPECT_THAT(ParseFormUrlEncoded("=value"), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ParseFormUrlEncodedTest, BadEscapesRejectedWithoutEchoingTheValue) {
  const std::string secret = "SECRETCODE4711";
  for (const std::string& body : {
           "code=" + secret + "%G1",
           "code=" + secret + "%4",
           "code=" + secret + "%",
           "state=ok&code=%ZZ" + secret,
       }) {
    auto fields = ParseFormUrlEncoded(body);
    ASSERT_THAT(fields, StatusIs(absl::StatusCode::kInvalidArgument)) << body;
    EXPECT_THAT(std::string(fields.status().message()), Not(HasSubstr(secret))) << body;
    EXPECT_THAT(std::string(fields.status().message()), Not(HasSubstr("%G1"))) << body;
    // The field is named so that the problem can be found.
    EXPECT_THAT(std::string(fields.status().message()), HasSubstr("code")) << body;
  }
  // A bad name: the message must not repeat the name's bytes either.
  auto bad_name = ParseFormUrlEncoded(secret + "%G1=x");
  ASSERT_THAT(bad_name, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(std::string(bad_name.status().message()), Not(HasSubstr(secret)));
}

// --- EncodeQuery ---

TEST(EncodeQueryTest, EncodesBothSidesInOrder) {
  EXPECT_EQ(EncodeQuery({{"a b", "c&d"}, {"e", ""}, {"f", "g/h"}}), "a%20b=c%26d&e=&f=g%2Fh");
  EXPECT_EQ(EncodeQuery({}), "");
  auto back = ParseFormUrlEncoded(EncodeQuery({{"x+y", "1 2+3"}, {"x+y", "=&%"}}));
  ASSERT_THAT(back, IsOk());
  EXPECT_THAT(*back, ElementsAre(Pair("x+y", "1 2+3"), Pair("x+y", "=&%")));
}

// --- CanonicalOrigin ---

struct OriginCase {
  std::string uri;
  std::string origin;
};

class CanonicalOriginGoodTest : public ::testing::TestWithParam<OriginCase> {};

TEST_P(CanonicalOriginGoodTest, Canonicalises) {
  auto origin = CanonicalOrigin(GetParam().uri);
  ASSERT_THAT(origin, IsOk()) << GetParam().uri;
  EXPECT_EQ(*origin, GetParam().origin) << GetParam().uri;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, CanonicalOriginGoodTest,
    ::testing::Values(
        OriginCase{"https://app.example.com", "https://app.example.com"},
        OriginCase{"https://app.example.com/", "https://app.example.com"},
        OriginCase{"HTTPS://App.Example.COM/Path?q=1#frag", "https://app.example.com"},
        OriginCase{"https://app.example.com:443/done", "https://app.example.com"},
        OriginCase{"http://app.example.com:80/", "http://app.example.com"},
        OriginCase{"https://app.example.com:80/", "https://app.example.com:80"},
        OriginCase{"http://app.example.com:443/", "http://app.example.com:443"},
        OriginCase{"http://127.0.0.1:8080/x/y", "http://127.0.0.1:8080"},
        OriginCase{"https://app.example.com:8443?x=1", "https://app.example.com:8443"},
        OriginCase{"http://localhost:3000#x", "http://localhost:3000"},
        OriginCase{"http://[::1]:8080/cb", "http://[::1]:8080"}));

class CanonicalOriginBadTest : public ::testing::TestWithParam<std::string> {};

TEST_P(CanonicalOriginBadTest, Refuses) {
  EXPECT_THAT(CanonicalOrigin(GetParam()), StatusIs(absl::StatusCode::kInvalidArgument))
      << "accepted: " << GetParam();
}

INSTANTIATE_TEST_SUITE_P(
    Cases, CanonicalOriginBadTest,
    ::testing::Values(
        "",                                       // empty
        "https://user@app.example.com/",          // userinfo
        "https://user:pw@app.example.com/",       // userinfo with password
        "https://app.example.com@evil.com/",      // userinfo that looks like a host
        "https://:@app.example.com/",             // empty userinfo
        "https://app.example.com\\@evil.com/",    // backslash
        "https://app.example.com\\",              // backslash
        "https://app.example.com /",              // space
        " https://app.example.com",               // leading space
        "https://app.example.com\t",              // tab
        "https://app.example.com/\n",             // newline
        std::string("https://app.exa\x01mple.com"),  // control character
        "https://app.exa\x7fmple.com",            // DEL
        "https://\xC3\xA4pp.example.com/",        // non-ASCII (UTF-8)
        "https://app.example.com/\xFF",           // non-ASCII anywhere
        "javascript:alert(1)",                    // not http(s)
        "javascript://app.example.com/%0aalert(1)",
        "ftp://app.example.com/",
        "data:text/html,hi",
        "https://app.example.com./",              // trailing dot
        "https://",                               // no host
        "https:///path",                          // no host
        "https:/app.example.com",                 // one slash
        "https:app.example.com",                  // no slash
        "//app.example.com",                      // scheme-relative
        "/relative/path",
        "app.example.com"));

TEST(CanonicalOriginTest, RefusesOverlongUris) {
  EXPECT_THAT(CanonicalOrigin("https://app.example.com/" + std::string(3000, 'a')),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

// --- AppendQuery ---

TEST(AppendQueryTest, AddsEncodedParameters) {
  auto uri = AppendQuery("https://app.example.com/done",
                         {{"authorization", "authorizations/abc"}, {"result", "active"}});
  ASSERT_THAT(uri, IsOk());
  // libcurl may write the hex digits of escapes in lower case; both are the same URI.
  EXPECT_TRUE(absl::EqualsIgnoreCase(
      *uri, "https://app.example.com/done?authorization=authorizations%2Fabc&result=active"))
      << *uri;
  auto fields = ParseFormUrlEncoded(uri->substr(uri->find('?') + 1));
  ASSERT_THAT(fields, IsOk());
  EXPECT_THAT(*fields, ElementsAre(Pair("authorization", "authorizations/abc"),
                                   Pair("result", "active")));
}

TEST(AppendQueryTest, KeepsTheExistingQuery) {
  auto uri = AppendQuery("http://127.0.0.1:8080/cb?x=1&y=a%20b", {{"k", "v w"}});
  ASSERT_THAT(uri, IsOk());
  EXPECT_EQ(*uri, "http://127.0.0.1:8080/cb?x=1&y=a%20b&k=v%20w");
}

TEST(AppendQueryTest, QueryGoesBeforeTheFragment) {
  auto uri = AppendQuery("https://app.example.com/done#section", {{"a", "1"}});
  ASSERT_THAT(uri, IsOk());
  EXPECT_EQ(*uri, "https://app.example.com/done?a=1#section");
}

TEST(AppendQueryTest, DecodesBack) {
  auto uri = AppendQuery("https://app.example.com/", {{"n", "a&b=c +%"}});
  ASSERT_THAT(uri, IsOk());
  std::string query = uri->substr(uri->find('?') + 1);
  auto fields = ParseFormUrlEncoded(query);
  ASSERT_THAT(fields, IsOk());
  EXPECT_THAT(*fields, ElementsAre(Pair("n", "a&b=c +%")));
}

TEST(AppendQueryTest, RejectsInvalidUri) {
  EXPECT_THAT(AppendQuery("not a uri", {{"a", "1"}}),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace leyr
