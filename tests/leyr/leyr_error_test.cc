#include "server/leyr/leyr_error.h"

#include <string>

#include <gtest/gtest.h>

namespace leyr {
namespace {

TEST(LeyrErrorTest, ParsesLeyrErrorJson) {
  auto error = ParseLeyrError(R"({
    "code": "UNAUTHORIZED",
    "type": "https://api.leyr.io/errors/unauthorized",
    "title": "Unauthorized",
    "status": 401,
    "detail": "The EMR code is not valid.",
    "instance": "/api/emrs/athenapractice/care-units",
    "errors": [{"field": "x-leyr-emr-oauth-code", "message": "invalid"}, "plain"]
  })");
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->code(), "UNAUTHORIZED");
  EXPECT_EQ(error->type(), "https://api.leyr.io/errors/unauthorized");
  EXPECT_EQ(error->title(), "Unauthorized");
  EXPECT_EQ(error->status(), 401);
  EXPECT_EQ(error->detail(), "The EMR code is not valid.");
  EXPECT_EQ(error->instance(), "/api/emrs/athenapractice/care-units");
  ASSERT_EQ(error->errors_size(), 2);
  EXPECT_EQ(error->errors(0).struct_value().fields().at("field").string_value(),
            "x-leyr-emr-oauth-code");
  EXPECT_EQ(error->errors(1).string_value(), "plain");
}

TEST(LeyrErrorTest, IgnoresUnknownFields) {
  auto error = ParseLeyrError(R"({"code":"BAD_REQUEST","traceId":"t","nested":{"a":[1,2]}})");
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->code(), "BAD_REQUEST");
  EXPECT_EQ(error->status(), 0);
}

TEST(LeyrErrorTest, StatusAloneIsEnough) {
  auto error = ParseLeyrError(R"({"status": 503, "title": "Service Unavailable"})");
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->status(), 503);
}

TEST(LeyrErrorTest, RefusesWhatIsNotLeyrErrorJson) {
  EXPECT_FALSE(ParseLeyrError("").has_value());
  EXPECT_FALSE(ParseLeyrError("Internal Server Error").has_value());
  EXPECT_FALSE(ParseLeyrError("<html><body>502</body></html>").has_value());
  EXPECT_FALSE(ParseLeyrError(R"([{"code":"UNAUTHORIZED"}])").has_value());
  EXPECT_FALSE(ParseLeyrError(R"("UNAUTHORIZED")").has_value());
  EXPECT_FALSE(ParseLeyrError("42").has_value());
  EXPECT_FALSE(ParseLeyrError("null").has_value());
  EXPECT_FALSE(ParseLeyrError("{}").has_value());
  EXPECT_FALSE(ParseLeyrError(R"({"title":"no code","detail":"x"})").has_value());
  EXPECT_FALSE(ParseLeyrError(R"({"code":"UNAUTHORIZED")").has_value());  // truncated
  EXPECT_FALSE(ParseLeyrError(R"({"code":"UNAUTHORIZED"} trailing)").has_value());
}

TEST(LeyrErrorTest, IgnoresOversizedBodies) {
  std::string big = R"({"code":"UNAUTHORIZED","detail":")" + std::string(70 * 1024, 'x') + "\"}";
  EXPECT_FALSE(ParseLeyrError(big).has_value());
}

TEST(LeyrErrorTest, GrantRejectedForUnauthorized) {
  auto error = ParseLeyrError(R"({"code":"UNAUTHORIZED","status":401})");
  EXPECT_TRUE(IsGrantRejected(401, error));
  // The code decides, whatever the status.
  EXPECT_TRUE(IsGrantRejected(403, ParseLeyrError(R"({"code":"UNAUTHORIZED"})")));
}

TEST(LeyrErrorTest, GrantRejectedForEmrError401Only) {
  EXPECT_TRUE(IsGrantRejected(502, ParseLeyrError(R"({"code":"EMR_ERROR","status":401})")));
  EXPECT_FALSE(IsGrantRejected(500, ParseLeyrError(R"({"code":"EMR_ERROR","status":500})")));
  // No status in the JSON: the HTTP status decides.
  EXPECT_TRUE(IsGrantRejected(401, ParseLeyrError(R"({"code":"EMR_ERROR"})")));
  EXPECT_FALSE(IsGrantRejected(500, ParseLeyrError(R"({"code":"EMR_ERROR"})")));
  // The JSON's status wins over the HTTP status.
  EXPECT_FALSE(IsGrantRejected(401, ParseLeyrError(R"({"code":"EMR_ERROR","status":500})")));
}

TEST(LeyrErrorTest, OtherAnswersDoNotRejectTheGrant) {
  EXPECT_FALSE(IsGrantRejected(401, std::nullopt));
  EXPECT_FALSE(IsGrantRejected(400, ParseLeyrError(R"({"code":"BAD_REQUEST","status":400})")));
  EXPECT_FALSE(IsGrantRejected(401, ParseLeyrError(R"({"code":"UNKNOWN_ERROR","status":401})")));
  EXPECT_FALSE(IsGrantRejected(401, ParseLeyrError(R"({"status":401})")));
}

}  // namespace
}  // namespace leyr

namespace leyr {
namespace {

// One field of an unexpected type must not hide the rest of the error (and with it the
// re-authorization rule).
TEST(LeyrErrorTest, ReadsFieldsLenientlyWhenOneHasAnUnexpectedType) {
  auto error = ParseLeyrError(
      R"({"code":"UNAUTHORIZED","status":"401 Unauthorized","detail":{"why":"expired"},"errors":"one"})");
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->code(), "UNAUTHORIZED");
  EXPECT_EQ(error->status(), 401);
  EXPECT_EQ(error->detail(), R"({"why":"expired"})");
  ASSERT_EQ(error->errors_size(), 1);
  EXPECT_EQ(error->errors(0).string_value(), "one");
  EXPECT_TRUE(IsGrantRejected(401, error));

  auto emr = ParseLeyrError(R"({"code":"EMR_ERROR","status":"401","title":7})");
  ASSERT_TRUE(emr.has_value());
  EXPECT_EQ(emr->title(), "7");
  EXPECT_TRUE(IsGrantRejected(500, emr));
  EXPECT_EQ(ParseLeyrError(R"({"status":"soon"})"), std::nullopt);
  EXPECT_EQ(ParseLeyrError(R"({"status":4010})"), std::nullopt);
}

}  // namespace
}  // namespace leyr
