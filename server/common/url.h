#ifndef LEYR_SERVER_COMMON_URL_H_
#define LEYR_SERVER_COMMON_URL_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace leyr {

using FormFields = std::vector<std::pair<std::string, std::string>>;

// Percent-encodes every byte except RFC 3986's unreserved characters (A-Z a-z 0-9 - . _ ~);
// a space becomes %20.
std::string PercentEncode(absl::string_view text);

// Decodes %XX escapes; with `plus_as_space`, '+' becomes ' ' (form encoding). A malformed
// escape is an error.
absl::StatusOr<std::string> PercentDecode(absl::string_view text, bool plus_as_space);

// Parses an application/x-www-form-urlencoded body into its fields, in order. Fields may
// repeat; the caller decides what a repeat means. Errors name the problem, never a value.
absl::StatusOr<FormFields> ParseFormUrlEncoded(absl::string_view body);

// Builds "k1=v1&k2=v2" with both sides percent-encoded.
std::string EncodeQuery(const FormFields& fields);

// The origin of an absolute http(s) URI, canonical: lower-case scheme and host, the port only
// when it is not the scheme's default ("https://app.example.com", "http://127.0.0.1:8080").
// Strict: refuses anything but printable ASCII, backslashes, user information, hosts with a
// trailing dot, and schemes other than http and https.
absl::StatusOr<std::string> CanonicalOrigin(absl::string_view uri);

// Returns `uri` with `params` appended to its query (percent-encoded).
absl::StatusOr<std::string> AppendQuery(absl::string_view uri, const FormFields& params);

}  // namespace leyr

#endif  // LEYR_SERVER_COMMON_URL_H_
