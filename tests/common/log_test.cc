#include "server/common/log.h"

#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "tests/testing/status_matchers.h"

namespace leyr {
namespace {

using ::leyr::testing::IsOk;
using ::leyr::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::StartsWith;

TEST(ParseLogLevelTest, KnownNamesAndDefault) {
  EXPECT_EQ(*ParseLogLevel(""), LogLevel::kInfo);
  EXPECT_EQ(*ParseLogLevel("info"), LogLevel::kInfo);
  EXPECT_EQ(*ParseLogLevel("debug"), LogLevel::kDebug);
  EXPECT_EQ(*ParseLogLevel("warn"), LogLevel::kWarn);
  EXPECT_EQ(*ParseLogLevel("error"), LogLevel::kError);
  EXPECT_THAT(ParseLogLevel("INFO"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseLogLevel("verbose"), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(AppendJsonEscapedTest, EscapesQuotesBackslashesAndControls) {
  std::string out;
  AppendJsonEscaped("a\"b\\c\nd\re\tf\x01g\x7fh", &out);
  EXPECT_EQ(out, "a\\\"b\\\\c\\nd\\re\\tf\\u0001g\\u007fh");
  std::string utf8;
  AppendJsonEscaped("\xE2\x9C\x93", &utf8);
  EXPECT_EQ(utf8, "\xE2\x9C\x93");
}

TEST(LogLineTest, WritesOneJsonLineOnStderr) {
  SetLogComponent("unit");
  SetLogLevel(LogLevel::kInfo);
  ::testing::internal::CaptureStderr();
  LEYR_LOG(Info, "listening")
      .Field("address", "127.0.0.1:1234")
      .Field("port", 1234)
      .Field("ok", true)
      .Field("quote", "say \"hi\"\n");
  LEYR_LOG(Debug, "hidden").Field("x", "y");
  std::string out = ::testing::internal::GetCapturedStderr();
  EXPECT_THAT(out, StartsWith("{\"time\":\""));
  // RFC 3339 in UTC with milliseconds, and the current time.
  EXPECT_THAT(out, ::testing::ContainsRegex(
                       "^\\{\"time\":\"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\."
                       "[0-9]{3}Z\""));
  absl::Time logged;
  std::string error;
  ASSERT_TRUE(absl::ParseTime("%Y-%m-%dT%H:%M:%E3SZ", out.substr(9, 24), absl::UTCTimeZone(),
                              &logged, &error))
      << error;
  EXPECT_LT(absl::AbsDuration(absl::Now() - logged), absl::Seconds(5));
  EXPECT_THAT(out, HasSubstr("\"level\":\"info\",\"component\":\"unit\",\"msg\":\"listening\","
                             "\"address\":\"127.0.0.1:1234\",\"port\":1234,\"ok\":true,"
                             "\"quote\":\"say \\\"hi\\\"\\n\"}\n"));
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
  EXPECT_THAT(out, ::testing::Not(HasSubstr("hidden")));

  SetLogLevel(LogLevel::kDebug);
  EXPECT_TRUE(LogEnabled(LogLevel::kDebug));
  SetLogLevel(LogLevel::kError);
  EXPECT_FALSE(LogEnabled(LogLevel::kWarn));
  SetLogLevel(LogLevel::kInfo);
}

}  // namespace
}  // namespace leyr
