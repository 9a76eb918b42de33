#ifndef LEYR_SERVER_LEYR_LEYR_ERROR_H_
#define LEYR_SERVER_LEYR_LEYR_ERROR_H_

#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "leyr/broker/v1/broker_service.pb.h"

namespace leyr {

// Parses Leyr's error JSON ({"code","type","title","status","detail","instance","errors"}).
// Returns nothing when `body` is not a JSON object with at least a "code" or a "status".
std::optional<broker::v1::LeyrError> ParseLeyrError(absl::string_view body);

// True when Leyr's answer means the grant is no longer good: code UNAUTHORIZED, or EMR_ERROR
// with status 401 (from the error JSON or, failing that, the HTTP status).
bool IsGrantRejected(int http_status, const std::optional<broker::v1::LeyrError>& error);

}  // namespace leyr

#endif  // LEYR_SERVER_LEYR_LEYR_ERROR_H_
