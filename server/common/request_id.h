#ifndef LEYR_SERVER_COMMON_REQUEST_ID_H_
#define LEYR_SERVER_COMMON_REQUEST_ID_H_

#include <string>

#include "absl/strings/string_view.h"

namespace leyr {

// The metadata key (gRPC) and header (HTTP) that carry a request id between the shim, the broker
// and callers, and back in responses.
inline constexpr char kRequestIdKey[] = "x-request-id";

// `given` when it is a sensible id (1 to 64 of [A-Za-z0-9._-]), so that a caller's logs and
// ours join up; otherwise a fresh random one (16 hex digits). Request ids are not secrets.
std::string RequestIdOr(absl::string_view given);

}  // namespace leyr

#endif  // LEYR_SERVER_COMMON_REQUEST_ID_H_
