#include "server/leyr/leyr_error.h"

#include "absl/strings/ascii.h"
#include "google/protobuf/util/json_util.h"

namespace leyr {
namespace {

// Leyr's error JSON is small; anything larger is not treated as one.
constexpr size_t kMaxErrorJsonBytes = 64 * 1024;

}  // namespace

std::optional<broker::v1::LeyrError> ParseLeyrError(absl::string_view body) {
  if (body.size() > kMaxErrorJsonBytes) return std::nullopt;
  const absl::string_view trimmed = absl::StripAsciiWhitespace(body);
  // Only an object: the parser would accept other shapes for some messages.
  if (trimmed.empty() || trimmed.front() != '{' || trimmed.back() != '}') return std::nullopt;
  broker::v1::LeyrError error;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  if (!google::protobuf::util::JsonStringToMessage(
           google::protobuf::StringPiece(trimmed.data(), trimmed.size()), &error, options)
           .ok()) {
    return std::nullopt;
  }
  if (error.code().empty() && error.status() == 0) return std::nullopt;
  return error;
}

bool IsGrantRejected(int http_status, const std::optional<broker::v1::LeyrError>& error) {
  if (!error.has_value()) return false;
  if (error->code() == "UNAUTHORIZED") return true;
  if (error->code() == "EMR_ERROR") {
    const int status = error->status() != 0 ? error->status() : http_status;
    return status == 401;
  }
  return false;
}

}  // namespace leyr
