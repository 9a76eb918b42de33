#ifndef LEYR_SERVER_COMMON_CONFIG_UTIL_H_
#define LEYR_SERVER_COMMON_CONFIG_UTIL_H_

#include <cstdint>
#include <string>

#include <google/protobuf/message.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/protobuf/duration.pb.h"

namespace leyr {

// Reads a whole file. Errors name the path, never the content.
absl::StatusOr<std::string> ReadFile(absl::string_view path);

// Parses a JSON configuration file into `message` (proto3 JSON mapping). Unknown keys and
// wrong types are errors that name the key.
absl::Status LoadJsonConfig(absl::string_view path, google::protobuf::Message* message);

// Reads a secret from a mounted file: trailing newlines removed; an empty file is an error.
// The error names `key` and the path, never the content.
absl::StatusOr<std::string> ReadSecretFile(absl::string_view key, absl::string_view path);

// A Duration field as absl::Duration; `fallback` when unset (zero).
absl::Duration DurationOr(const google::protobuf::Duration& d, absl::Duration fallback);

// A Duration key checked: unset gives `fallback`; a negative value is refused ("KEY: must be
// positive"), and so is one of more than `max_seconds` whole seconds when that is given.
absl::StatusOr<absl::Duration> DurationKey(const google::protobuf::Duration& d,
                                           absl::string_view key, absl::Duration fallback,
                                           int64_t max_seconds = -1);

}  // namespace leyr

#endif  // LEYR_SERVER_COMMON_CONFIG_UTIL_H_
