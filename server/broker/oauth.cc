#include "server/broker/oauth.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/common/url.h"

namespace leyr {

absl::StatusOr<std::string> NewState(Random& random) {
  auto bytes = random.Bytes(kStateBytes);
  if (!bytes.ok()) return bytes.status();
  return Base64Url(*bytes);
}

std::string HashState(absl::string_view state) { return Hex(Sha256(state)); }

bool IsWellFormedState(absl::string_view state) {
  if (state.size() != 43) return false;
  for (char c : state) {
    if (!(absl::ascii_isalnum(c) || c == '-' || c == '_')) return false;
  }
  return true;
}

AuthorizeUriParts MakeAuthorizeUriParts(const ConnectionSettings& connection) {
  AuthorizeUriParts parts;
  parts.before_state = absl::StrCat(connection.base_uri, "/oauth2/authorize?state=");
  parts.after_state = absl::StrCat("&scope=", PercentEncode(absl::StrJoin(connection.scopes, " ")),
                                   "&response_type=code",
                                   "&redirect_uri=", PercentEncode(connection.redirect_uri),
                                   "&aud=", PercentEncode(connection.base_uri),
                                   "&client_id=", PercentEncode(connection.client_id));
  return parts;
}

std::string BuildAuthorizeUri(const AuthorizeUriParts& parts, absl::string_view state) {
  return absl::StrCat(parts.before_state, PercentEncode(state), parts.after_state);
}

std::string BuildAuthorizeUri(const ConnectionSettings& connection, absl::string_view state) {
  return BuildAuthorizeUri(MakeAuthorizeUriParts(connection), state);
}

}  // namespace leyr
