#ifndef LEYR_SERVER_BROKER_OAUTH_H_
#define LEYR_SERVER_BROKER_OAUTH_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/broker/settings.h"
#include "server/common/random.h"

namespace leyr {

// Bytes of entropy in a state parameter (256 bits).
inline constexpr size_t kStateBytes = 32;

// A new state parameter: kStateBytes from `random`, base64url without padding (43 characters).
absl::StatusOr<std::string> NewState(Random& random);

// What the store keeps instead of the state: hex SHA-256 of it.
std::string HashState(absl::string_view state);

// True when `state` has the shape NewState produces (so garbage is refused before any lookup).
bool IsWellFormedState(absl::string_view state);

// The athena authorize URI, as the setup guide gives it:
//   {base_uri}/oauth2/authorize?state=…&scope=…&response_type=code&redirect_uri=…&aud=…&client_id=…
// with every value percent-encoded (scopes joined by %20).
std::string BuildAuthorizeUri(const ConnectionSettings& connection, absl::string_view state);

// The same URI in two steps: everything but the state depends only on the connection, so a
// broker encodes it once per connection (MakeAuthorizeUriParts) and per Begin only the state.
struct AuthorizeUriParts {
  std::string before_state;  // {base_uri}/oauth2/authorize?state=
  std::string after_state;   // &scope=…&client_id=…
};
AuthorizeUriParts MakeAuthorizeUriParts(const ConnectionSettings& connection);
std::string BuildAuthorizeUri(const AuthorizeUriParts& parts, absl::string_view state);

}  // namespace leyr

#endif  // LEYR_SERVER_BROKER_OAUTH_H_
