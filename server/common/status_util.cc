#include "server/common/status_util.h"



#include "absl/strings/cord.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace leyr {
namespace {

constexpr absl::string_view kReasonPayloadUrl = "type.leyr.io/leyr.ErrorReason";

// A reason for statuses that carry none (so every error has exactly one ErrorInfo).
absl::string_view DefaultReason(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kInvalidArgument: return reason::kInvalidArgument;
    case absl::StatusCode::kNotFound: return "NOT_FOUND";
    case absl::StatusCode::kUnavailable: return "UNAVAILABLE";
    case absl::StatusCode::kDeadlineExceeded: return "DEADLINE_EXCEEDED";
    case absl::StatusCode::kCancelled: return "CANCELLED";
    case absl::StatusCode::kPermissionDenied: return "PERMISSION_DENIED";
    case absl::StatusCode::kUnauthenticated: return "UNAUTHENTICATED";
    case absl::StatusCode::kFailedPrecondition: return "FAILED_PRECONDITION";
    case absl::StatusCode::kResourceExhausted: return "RESOURCE_EXHAUSTED";
    default: return reason::kInternal;
  }
}

}  // namespace

absl::Status MakeError(absl::StatusCode code, absl::string_view reason,
                       absl::string_view message) {
  absl::Status status(code, message);
  status.SetPayload(kReasonPayloadUrl, absl::Cord(reason));
  return status;
}

std::string ReasonOf(const absl::Status& status) {
  auto payload = status.GetPayload(kReasonPayloadUrl);
  return payload ? std::string(*payload) : std::string();
}

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  std::string reason = ReasonOf(status);
  if (reason.empty()) reason = std::string(DefaultReason(status.code()));
  google::rpc::ErrorInfo info;
  info.set_reason(reason);
  info.set_domain(std::string(kErrorDomain));
  google::rpc::Status rpc_status;
  rpc_status.set_code(static_cast<int>(status.code()));
  rpc_status.set_message(std::string(status.message()));
  rpc_status.add_details()->PackFrom(info);
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()), rpc_status.SerializeAsString());
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  auto code = static_cast<absl::StatusCode>(status.error_code());
  google::rpc::Status rpc_status;
  if (!status.error_details().empty() && rpc_status.ParseFromString(status.error_details())) {
    for (const auto& any : rpc_status.details()) {
      google::rpc::ErrorInfo info;
      if (any.UnpackTo(&info)) return MakeError(code, info.reason(), status.error_message());
    }
  }
  return absl::Status(code, status.error_message());
}

}  // namespace leyr
