#include "server/leyr/leyr_error.h"

#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace leyr {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

// Leyr's error JSON is small; anything larger is not treated as one.
constexpr size_t kMaxErrorJsonBytes = 64 * 1024;

// A field as text: strings as they are, other JSON values as compact JSON, so that one field of
// an unexpected type does not hide the rest of the error.
std::string TextOf(const Struct& object, const std::string& key) {
  auto it = object.fields().find(key);
  if (it == object.fields().end()) return "";
  const Value& v = it->second;
  if (v.kind_case() == Value::kStringValue) return v.string_value();
  if (v.kind_case() == Value::kNullValue) return "";
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(v, &json);
  return json;
}

// "status": 401, "401" or "401 Unauthorized" → 401; anything else → 0.
int StatusOf(const Struct& object) {
  auto it = object.fields().find("status");
  if (it == object.fields().end()) return 0;
  const Value& v = it->second;
  if (v.kind_case() == Value::kNumberValue) {
    double d = v.number_value();
    return d >= 100 && d <= 599 && std::floor(d) == d ? static_cast<int>(d) : 0;
  }
  if (v.kind_case() == Value::kStringValue) {
    int status = 0;
    absl::string_view s = v.string_value();
    if (s.size() >= 3 && absl::SimpleAtoi(s.substr(0, 3), &status) && status >= 100 &&
        status <= 599) {
      return status;
    }
  }
  return 0;
}

}  // namespace

std::optional<broker::v1::LeyrError> ParseLeyrError(absl::string_view body) {
  if (body.size() > kMaxErrorJsonBytes) return std::nullopt;
  const absl::string_view trimmed = absl::StripAsciiWhitespace(body);
  if (trimmed.empty() || trimmed.front() != '{') return std::nullopt;
  // Parsed as a generic JSON object, then read field by field, leniently.
  Struct object;
  if (!google::protobuf::util::JsonStringToMessage(
           google::protobuf::StringPiece(trimmed.data(), trimmed.size()), &object)
           .ok()) {
    return std::nullopt;
  }
  broker::v1::LeyrError error;
  error.set_code(TextOf(object, "code"));
  error.set_type(TextOf(object, "type"));
  error.set_title(TextOf(object, "title"));
  error.set_status(StatusOf(object));
  error.set_detail(TextOf(object, "detail"));
  error.set_instance(TextOf(object, "instance"));
  auto errors = object.fields().find("errors");
  if (errors != object.fields().end()) {
    if (errors->second.kind_case() == Value::kListValue) {
      for (const Value& v : errors->second.list_value().values()) *error.add_errors() = v;
    } else if (errors->second.kind_case() != Value::kNullValue) {
      *error.add_errors() = errors->second;
    }
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
