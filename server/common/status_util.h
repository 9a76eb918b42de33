#ifndef LEYR_SERVER_COMMON_STATUS_UTIL_H_
#define LEYR_SERVER_COMMON_STATUS_UTIL_H_

#include <string>

#include <grpcpp/support/status.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace leyr {

// The google.rpc.ErrorInfo domain of every error the broker returns.
inline constexpr absl::string_view kErrorDomain = "broker.leyr.v1";

// Stable error reasons (docs/errors.md documents each).
namespace reason {
inline constexpr absl::string_view kInvalidArgument = "INVALID_ARGUMENT";
inline constexpr absl::string_view kConnectionNotFound = "CONNECTION_NOT_FOUND";
inline constexpr absl::string_view kReturnUriNotAllowed = "RETURN_URI_NOT_ALLOWED";
inline constexpr absl::string_view kInvalidName = "INVALID_NAME";
inline constexpr absl::string_view kInvalidLabels = "INVALID_LABELS";
inline constexpr absl::string_view kStateMissing = "STATE_MISSING";
inline constexpr absl::string_view kStateNotFound = "STATE_NOT_FOUND";
inline constexpr absl::string_view kStateAlreadyUsed = "STATE_ALREADY_USED";
inline constexpr absl::string_view kInvalidCompletion = "INVALID_COMPLETION";
inline constexpr absl::string_view kAuthorizationNotFound = "AUTHORIZATION_NOT_FOUND";
inline constexpr absl::string_view kAuthorizationExpired = "AUTHORIZATION_EXPIRED";
inline constexpr absl::string_view kAuthorizationNotActive = "AUTHORIZATION_NOT_ACTIVE";
inline constexpr absl::string_view kReauthorizationRequired = "REAUTHORIZATION_REQUIRED";
inline constexpr absl::string_view kPathNotAllowed = "PATH_NOT_ALLOWED";
inline constexpr absl::string_view kMethodNotAllowed = "METHOD_NOT_ALLOWED";
inline constexpr absl::string_view kHeaderNotAllowed = "HEADER_NOT_ALLOWED";
inline constexpr absl::string_view kQueryNotAllowed = "QUERY_NOT_ALLOWED";
inline constexpr absl::string_view kBodyTooLarge = "BODY_TOO_LARGE";
inline constexpr absl::string_view kInvalidPageToken = "INVALID_PAGE_TOKEN";
inline constexpr absl::string_view kLeyrUnavailable = "LEYR_UNAVAILABLE";
inline constexpr absl::string_view kLeyrTimeout = "LEYR_TIMEOUT";
inline constexpr absl::string_view kLeyrResponseTooLarge = "LEYR_RESPONSE_TOO_LARGE";
inline constexpr absl::string_view kShuttingDown = "SHUTTING_DOWN";
inline constexpr absl::string_view kStoreUnavailable = "STORE_UNAVAILABLE";
// Caller identity and policy (UNAUTHENTICATED / PERMISSION_DENIED).
inline constexpr absl::string_view kCredentialsMissing = "CREDENTIALS_MISSING";
inline constexpr absl::string_view kTokenInvalid = "TOKEN_INVALID";
inline constexpr absl::string_view kCallerNotInPolicy = "CALLER_NOT_IN_POLICY";
inline constexpr absl::string_view kRpcNotAllowed = "RPC_NOT_ALLOWED";
inline constexpr absl::string_view kConnectionNotAllowed = "CONNECTION_NOT_ALLOWED";
inline constexpr absl::string_view kInternal = "INTERNAL";
}  // namespace reason

// Returns a status with `code`, a message, and `reason` attached as a payload. The message
// must never contain a code, a state, a token or a secret.
absl::Status MakeError(absl::StatusCode code, absl::string_view reason,
                       absl::string_view message);

// The reason attached by MakeError, or "" when there is none.
std::string ReasonOf(const absl::Status& status);

// Converts to a grpc::Status whose details are a google.rpc.Status with exactly one
// google.rpc.ErrorInfo (domain kErrorDomain). Statuses without a reason get one from their code.
grpc::Status ToGrpcStatus(const absl::Status& status);

// Converts back, keeping the ErrorInfo reason (used by the shim and the client library).
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace leyr

// Evaluates `expr` (an absl::Status) and returns it from the enclosing function if not OK.
#define LEYR_RETURN_IF_ERROR(expr)                  \
  do {                                              \
    const ::absl::Status leyr_status_ = (expr);     \
    if (!leyr_status_.ok()) return leyr_status_;    \
  } while (0)

#define LEYR_CONCAT_INNER_(a, b) a##b
#define LEYR_CONCAT_(a, b) LEYR_CONCAT_INNER_(a, b)
#define LEYR_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.ok()) return tmp.status();               \
  lhs = std::move(*tmp)
// Evaluates `expr` (an absl::StatusOr<T>); returns its status if not OK, else assigns to `lhs`.
#define LEYR_ASSIGN_OR_RETURN(lhs, expr) \
  LEYR_ASSIGN_OR_RETURN_IMPL_(LEYR_CONCAT_(leyr_statusor_, __LINE__), lhs, expr)

#endif  // LEYR_SERVER_COMMON_STATUS_UTIL_H_
