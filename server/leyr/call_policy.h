#ifndef LEYR_SERVER_LEYR_CALL_POLICY_H_
#define LEYR_SERVER_LEYR_CALL_POLICY_H_

#include <cstddef>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "leyr/broker/v1/broker_service.pb.h"
#include "server/leyr/leyr_client.h"

namespace leyr {

struct CallPolicyOptions {
  size_t max_body_bytes = 1 << 20;
  size_t max_path_bytes = 2048;
  size_t max_headers = 32;
  size_t max_header_bytes = 8192;  // one name plus value
  size_t max_query_params = 64;
  size_t max_query_bytes = 16384;  // all names plus values, before encoding
};

// Checks a CallLeyr request against what the broker will send for an authorization whose EMR
// slug is `emr`, and turns it into a LeyrRequest (without code or deadline). Every refusal is
// INVALID_ARGUMENT with a specific reason (PATH_NOT_ALLOWED, METHOD_NOT_ALLOWED,
// HEADER_NOT_ALLOWED, QUERY_NOT_ALLOWED, BODY_TOO_LARGE) and a message that never repeats a
// header value or the body.
// Also refused: the headers `cookie` and `expect` (Leyr authenticates by headers only, and
// set-cookie is dropped from answers, so a cookie has no use; expect is the broker's business),
// and a body with GET or DELETE (INVALID_ARGUMENT, reason INVALID_ARGUMENT).
absl::StatusOr<LeyrRequest> CheckLeyrCall(const broker::v1::CallLeyrRequest& request,
                                          absl::string_view emr,
                                          const CallPolicyOptions& options = {});

}  // namespace leyr

#endif  // LEYR_SERVER_LEYR_CALL_POLICY_H_
