#ifndef LEYR_SERVER_BROKER_AUTH_H_
#define LEYR_SERVER_BROKER_AUTH_H_

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "config/config.pb.h"
#include "server/broker/broker.h"
#include "server/broker/broker_service.h"
#include "server/broker/policy.h"

namespace leyr {

// What the transport tells about one call.
struct CallCredentials {
  std::vector<std::string> authorization;  // values of the "authorization" metadata
  std::vector<std::string> uri_sans;       // verified client certificate's URI SANs
  std::vector<std::string> dns_sans;       // ... and DNS SANs
};

// Accepted bearer tokens. Only SHA-256 hashes are kept (the file holds nothing else), and a
// token is compared with every entry in constant time.
class TokenTable {
 public:
  static absl::StatusOr<TokenTable> FromConfig(const config::BearerTokens& config);
  // Loads a JSON BearerTokens file.
  static absl::StatusOr<TokenTable> Load(absl::string_view path);

  // The caller `token` names, or nullopt.
  std::optional<std::string> Lookup(absl::string_view token) const;
  size_t size() const { return entries_.size(); }

 private:
  std::vector<std::pair<std::string, std::string>> entries_;  // raw 32-byte hash, caller
};

// Turns a call's credentials into a Caller under a policy.
//   - A bearer token ("authorization: Bearer ..."), when present, decides: it must be in the
//     tokens file (else UNAUTHENTICATED TOKEN_INVALID) and its caller in the policy.
//   - Otherwise the client certificate: the first URI SAN, then DNS SAN, that the policy names.
//   - Neither: UNAUTHENTICATED CREDENTIALS_MISSING. Known credentials whose caller the policy
//     does not name: PERMISSION_DENIED CALLER_NOT_IN_POLICY.
// Without a policy (development) every call is "anonymous" with full access.
class CallerAuthenticator {
 public:
  // `tokens` may be null (no bearer tokens accepted).
  CallerAuthenticator(std::shared_ptr<const Policy> policy,
                      std::shared_ptr<const TokenTable> tokens);

  absl::StatusOr<Caller> Authenticate(const CallCredentials& credentials) const;

 private:
  const std::shared_ptr<const Policy> policy_;
  const std::shared_ptr<const TokenTable> tokens_;
};

// Reads the call's credentials from a server context: "authorization" metadata and the
// peer_uri / peer_dns properties of the verified client certificate.
CallCredentials CredentialsOf(const grpc::ServerContextBase& context);

// The BrokerServiceImpl hook over `authenticator` (kept alive by the hook).
Authenticator MakeAuthenticator(std::shared_ptr<const CallerAuthenticator> authenticator);

}  // namespace leyr

#endif  // LEYR_SERVER_BROKER_AUTH_H_
