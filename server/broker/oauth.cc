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

std::string HashState(absl::string_view state) { return Hex(Sha256(std::string(state))); }

bool IsWellFormedState(absl::string_view state) {
  if (state.size() != 43) return false;
  for (char c : state) {
    if (!(absl::ascii_isalnum(c) || c == '-' || c == '_')) return false;
  }
  return true;
}

std::string BuildAuthorizeUri(const ConnectionSettings& connection, absl::string_view state) {
  return absl::StrCat(connection.base_uri, "/oauth2/authorize",
                      "?state=", PercentEncode(state),
                      "&scope=", PercentEncode(absl::StrJoin(connection.scopes, " ")),
                      "&response_type=code",
                      "&redirect_uri=", PercentEncode(connection.redirect_uri),
                      "&aud=", PercentEncode(connection.base_uri),
                      "&client_id=", PercentEncode(connection.client_id));
}

}  // namespace leyr
