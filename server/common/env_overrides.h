#ifndef LEYR_SERVER_COMMON_ENV_OVERRIDES_H_
#define LEYR_SERVER_COMMON_ENV_OVERRIDES_H_

#include <string>
#include <vector>

#include <google/protobuf/message.h>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace leyr {

// Applies environment overrides to a configuration message that LoadJsonConfig filled, so that
// a pod can change a few settings without editing the ConfigMap.
//
// A variable PREFIX + FIELD_PATH sets one field. FIELD_PATH is the field names in upper case,
// joined by "__" through nested messages. With prefix "LEYR_BROKER_":
//   LEYR_BROKER_LOG_LEVEL=debug                        -> log_level
//   LEYR_BROKER_POSTGRES__CONNINFO=host=db dbname=leyr -> postgres.conninfo
//   LEYR_BROKER_LISTEN=0.0.0.0:50051,unix:/run/x.sock  -> listen (the whole list is replaced)
//   LEYR_BROKER_STATE_TTL=300s                         -> state_ttl
// Values:
//   string               as is; an empty value sets "".
//   bool                 true, false, 1 or 0.
//   int32, int64         decimal.
//   double               decimal; NaN and infinities are refused (they defeat range checks).
//   Duration             the JSON syntax: "300s", "1.5s", "-2s" (seconds, up to 9 decimals).
//   repeated string      comma-separated, surrounding spaces trimmed, no empty element; the list
//                        replaces the file's. An empty value empties the list. (So an element
//                        cannot contain a comma.)
//   singular message     only as a step of a path, never set directly (Duration excepted).
// Repeated messages, maps and every other type are refused with an error naming the variable.
//
// The prefix should end with "_": it is matched literally and case-sensitively, so that with
// "LEYR_BROKER_" a variable LEYR_BROKERX_LOG_LEVEL is not an override.
//
// A variable that starts with the prefix but names no field is an error (it is most likely a
// typo that would otherwise be silently ignored), EXCEPT the variables Kubernetes itself sets
// for every Service of the namespace (enableServiceLinks, on by default): a Service named
// "leyr-broker" gives every pod LEYR_BROKER_SERVICE_HOST, LEYR_BROKER_SERVICE_PORT[_NAME],
// LEYR_BROKER_PORT and LEYR_BROKER_PORT_50051_TCP[_PROTO|_PORT|_ADDR]. Those shapes (suffix
// "SERVICE_HOST", "SERVICE_PORT", "SERVICE_PORT_*", "PORT" or "PORT_<digit>*"), when they name no
// field, are skipped; otherwise every pod would fail to start.
//
// `environment` holds "NAME=VALUE" strings (ProcessEnvironment() in main; tests pass their own);
// entries without "=" are skipped. A name given twice is an error.
//
// Returns the names of the applied variables, sorted (for a log line; the values are NEVER
// returned or logged: a conninfo or a path may be sensitive). On any error nothing is applied
// (the overrides are applied to a copy first) and the InvalidArgument status lists every
// problem, one per line, each naming the variable and, when there is one, the field (never the
// value), so that --check-config shows them all at once.
absl::StatusOr<std::vector<std::string>> ApplyEnvOverrides(
    absl::string_view prefix, const std::vector<std::string>& environment,
    google::protobuf::Message* message);

// The process's environment as "NAME=VALUE" strings, for ApplyEnvOverrides.
std::vector<std::string> ProcessEnvironment();

// What every server's main does: LoadJsonConfig(path), then the environment's overrides with
// `prefix` ("LEYR_BROKER_", "LEYR_SHIM_", "LEYR_SANDBOX_"). Returns the names of the variables
// applied, for a log line.
absl::StatusOr<std::vector<std::string>> LoadConfigWithEnvOverrides(
    absl::string_view path, absl::string_view prefix, google::protobuf::Message* message);

}  // namespace leyr

#endif  // LEYR_SERVER_COMMON_ENV_OVERRIDES_H_
