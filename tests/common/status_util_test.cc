#include "server/common/status_util.h"

#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "tests/testing/status_matchers.h"

namespace leyr {
namespace {

using ::leyr::testing::StatusIs;

// The ErrorInfo messages inside a grpc::Status's details.
std::vector<google::rpc::ErrorInfo> ErrorInfos(const grpc::Status& status,
                                               google::rpc::Status* rpc = nullptr) {
  google::rpc::Status parsed;
  EXPECT_TRUE(parsed.ParseFromString(status.error_details()));
  std::vector<google::rpc::ErrorInfo> out;
  for (const auto& any : parsed.details()) {
    google::rpc::ErrorInfo info;
    EXPECT_TRUE(any.UnpackTo(&info)) << any.type_url();
    out.push_back(info);
  }
  if (rpc) *rpc = parsed;
  return out;
}

TEST(MakeErrorTest, CarriesReason) {
  absl::Status s = MakeError(absl::StatusCode::kNotFound, reason::kStateNotFound, "unknown");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "unknown");
  EXPECT_EQ(ReasonOf(s), "STATE_NOT_FOUND");
  EXPECT_EQ(ReasonOf(absl::NotFoundError("x")), "");
  EXPECT_EQ(ReasonOf(absl::OkStatus()), "");
}

TEST(ToGrpcStatusTest, OkIsOk) { EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok()); }

TEST(ToGrpcStatusTest, ExactlyOneErrorInfoWithDomainAndReason) {
  grpc::Status g = ToGrpcStatus(MakeError(absl::StatusCode::kFailedPrecondition,
                                          reason::kReauthorizationRequired, "begin again"));
  EXPECT_EQ(g.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(g.error_message(), "begin again");
  google::rpc::Status rpc;
  auto infos = ErrorInfos(g, &rpc);
  ASSERT_EQ(rpc.details_size(), 1);
  ASSERT_EQ(infos.size(), 1u);
  EXPECT_EQ(infos[0].domain(), "broker.leyr.v1");
  EXPECT_EQ(infos[0].reason(), "REAUTHORIZATION_REQUIRED");
  EXPECT_EQ(rpc.code(), static_cast<int>(grpc::StatusCode::FAILED_PRECONDITION));
  EXPECT_EQ(rpc.message(), "begin again");
}

struct DefaultCase {
  absl::Status status;
  grpc::StatusCode code;
  std::string reason;
};

TEST(ToGrpcStatusTest, DefaultReasons) {
  for (const auto& c : std::vector<DefaultCase>{
           {absl::InvalidArgumentError("m"), grpc::StatusCode::INVALID_ARGUMENT, "INVALID_ARGUMENT"},
           {absl::NotFoundError("m"), grpc::StatusCode::NOT_FOUND, "NOT_FOUND"},
           {absl::UnavailableError("m"), grpc::StatusCode::UNAVAILABLE, "UNAVAILABLE"},
           {absl::DeadlineExceededError("m"), grpc::StatusCode::DEADLINE_EXCEEDED,
            "DEADLINE_EXCEEDED"},
           {absl::CancelledError("m"), grpc::StatusCode::CANCELLED, "CANCELLED"},
           {absl::PermissionDeniedError("m"), grpc::StatusCode::PERMISSION_DENIED,
            "PERMISSION_DENIED"},
           {absl::UnauthenticatedError("m"), grpc::StatusCode::UNAUTHENTICATED, "UNAUTHENTICATED"},
           {absl::FailedPreconditionError("m"), grpc::StatusCode::FAILED_PRECONDITION,
            "FAILED_PRECONDITION"},
           {absl::ResourceExhaustedError("m"), grpc::StatusCode::RESOURCE_EXHAUSTED,
            "RESOURCE_EXHAUSTED"},
           {absl::InternalError("m"), grpc::StatusCode::INTERNAL, "INTERNAL"},
           {absl::UnknownError("m"), grpc::StatusCode::UNKNOWN, "INTERNAL"},
           {absl::DataLossError("m"), grpc::StatusCode::DATA_LOSS, "INTERNAL"},
       }) {
    grpc::Status g = ToGrpcStatus(c.status);
    EXPECT_EQ(g.error_code(), c.code) << c.status;
    auto infos = ErrorInfos(g);
    ASSERT_EQ(infos.size(), 1u) << c.status;
    EXPECT_EQ(infos[0].reason(), c.reason) << c.status;
    EXPECT_EQ(infos[0].domain(), "broker.leyr.v1");
  }
}

TEST(FromGrpcStatusTest, RoundTrip) {
  absl::Status original =
      MakeError(absl::StatusCode::kInvalidArgument, reason::kPathNotAllowed, "path must be under");
  absl::Status back = FromGrpcStatus(ToGrpcStatus(original));
  EXPECT_THAT(back, StatusIs(absl::StatusCode::kInvalidArgument, "PATH_NOT_ALLOWED"));
  EXPECT_EQ(back.message(), "path must be under");

  absl::Status plain = FromGrpcStatus(ToGrpcStatus(absl::NotFoundError("gone")));
  EXPECT_THAT(plain, StatusIs(absl::StatusCode::kNotFound, "NOT_FOUND"));
  EXPECT_TRUE(FromGrpcStatus(grpc::Status::OK).ok());
}

TEST(FromGrpcStatusTest, WithoutOrWithBrokenDetails) {
  absl::Status none = FromGrpcStatus(grpc::Status(grpc::StatusCode::UNAVAILABLE, "down"));
  EXPECT_EQ(none.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(none.message(), "down");
  EXPECT_EQ(ReasonOf(none), "");

  absl::Status broken =
      FromGrpcStatus(grpc::Status(grpc::StatusCode::INTERNAL, "x", "\xff\xff\xff not a proto"));
  EXPECT_EQ(broken.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(ReasonOf(broken), "");
}

TEST(StatusMacrosTest, ReturnIfErrorAndAssignOrReturn) {
  auto fails = []() -> absl::Status {
    LEYR_RETURN_IF_ERROR(MakeError(absl::StatusCode::kAborted, "R", "m"));
    return absl::OkStatus();
  };
  EXPECT_THAT(fails(), StatusIs(absl::StatusCode::kAborted, "R"));
  auto assigns = [](absl::StatusOr<int> in) -> absl::StatusOr<int> {
    LEYR_ASSIGN_OR_RETURN(int v, in);
    return v + 1;
  };
  EXPECT_EQ(*assigns(41), 42);
  EXPECT_THAT(assigns(absl::NotFoundError("x")), StatusIs(absl::StatusCode::kNotFound));
}

}  // namespace
}  // namespace leyr
