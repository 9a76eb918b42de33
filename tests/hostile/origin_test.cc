// CanonicalOrigin, the return-URI check: spellings that libcurl normalises to an allowed host
// are refused, so that the allow-list is matched only by the exact spelling it lists.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "server/common/url.h"
#include "tests/testing/status_matchers.h"

namespace leyr {
namespace {

using ::leyr::testing::IsOk;

TEST(CanonicalOriginTest, NumericIpv4SpellingsAreRefused) {
  for (const char* uri : {"http://2130706433:3999/", "http://0x7f.0.0.1:3999/",
                          "http://0177.0.0.1:3999/", "http://127.1:3999/", "http://0x7f000001/",
                          "http://127.000.000.001/"}) {
    EXPECT_FALSE(CanonicalOrigin(uri).ok()) << uri;
  }
}

TEST(CanonicalOriginTest, NonCanonicalIpv6SpellingsAreRefused) {
  for (const char* uri : {"http://[::ffff:127.0.0.1]:3999/", "http://[0:0:0:0:0:0:0:1]/"}) {
    auto origin = CanonicalOrigin(uri);
    // Either refused, or (when curl keeps the spelling) kept as written.
    if (origin.ok()) {
      EXPECT_THAT(*origin, ::testing::HasSubstr(std::string(uri).substr(7, 10))) << uri;
    }
  }
}

TEST(CanonicalOriginTest, CanonicalSpellingsStillWork) {
  EXPECT_EQ(*CanonicalOrigin("http://127.0.0.1:3999/x"), "http://127.0.0.1:3999");
  EXPECT_EQ(*CanonicalOrigin("HTTPS://Example.COM:443/x?y#z"), "https://example.com");
  EXPECT_EQ(*CanonicalOrigin("https://example.com"), "https://example.com");
  EXPECT_EQ(*CanonicalOrigin("http://[::1]:8080/"), "http://[::1]:8080");
  EXPECT_THAT(CanonicalOrigin("http://localhost:3999"), IsOk());
}

}  // namespace
}  // namespace leyr
