#include "server/common/config_util.h"

#include <fstream>
#include <sstream>

#include <google/protobuf/util/json_util.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace leyr {

absl::StatusOr<std::string> ReadFile(absl::string_view path) {
  std::ifstream in{std::string(path), std::ios::binary};
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open file '", path, "'"));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat("cannot read file '", path, "'"));
  return buffer.str();
}

absl::Status LoadJsonConfig(absl::string_view path, google::protobuf::Message* message) {
  auto text = ReadFile(path);
  if (!text.ok()) return text.status();
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  auto status = google::protobuf::util::JsonStringToMessage(*text, message, options);
  if (!status.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("configuration file '", path, "': ", status.message().as_string()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadSecretFile(absl::string_view key, absl::string_view path) {
  if (path.empty()) return absl::InvalidArgumentError(absl::StrCat(key, ": required"));
  auto text = ReadFile(path);
  if (!text.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(key, ": cannot read secret file '", path, "'"));
  }
  absl::string_view value = *text;
  while (absl::ConsumeSuffix(&value, "\n") || absl::ConsumeSuffix(&value, "\r")) {
  }
  if (value.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(key, ": secret file '", path, "' is empty"));
  }
  return std::string(value);
}

absl::Duration DurationOr(const google::protobuf::Duration& d, absl::Duration fallback) {
  if (d.seconds() == 0 && d.nanos() == 0) return fallback;
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

absl::StatusOr<absl::Duration> DurationKey(const google::protobuf::Duration& d,
                                           absl::string_view key, absl::Duration fallback,
                                           int64_t max_seconds) {
  if (d.seconds() < 0 || d.nanos() < 0) {
    return absl::InvalidArgumentError(absl::StrCat(key, ": must be positive"));
  }
  if (max_seconds >= 0 && d.seconds() > max_seconds) {
    return absl::InvalidArgumentError(absl::StrCat(key, ": must be at most ", max_seconds, "s"));
  }
  return DurationOr(d, fallback);
}

}  // namespace leyr
