#include "server/broker/auth.h"

#include <grpc/grpc_security_constants.h>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/common/config_util.h"
#include "server/common/random.h"
#include "server/common/status_util.h"

namespace leyr {
namespace {

constexpr size_t kMaxTokenBytes = 4096;

absl::Status Unauthenticated(absl::string_view reason, absl::string_view message) {
  return MakeError(absl::StatusCode::kUnauthenticated, reason, message);
}

bool IsLowerHex(absl::string_view s) {
  for (char c : s) {
    if (!(absl::ascii_isdigit(c) || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<TokenTable> TokenTable::FromConfig(const config::BearerTokens& config) {
  std::vector<std::string> problems;
  TokenTable table;
  for (int i = 0; i < config.tokens_size(); ++i) {
    const auto& t = config.tokens(i);
    std::string key = absl::StrCat("tokens[", i, "]");
    if (t.sha256().size() != 64 || !IsLowerHex(t.sha256())) {
      problems.push_back(key + ".sha256: must be 64 lower-case hex characters (the token's "
                               "SHA-256, never the token itself)");
      continue;
    }
    if (t.caller().empty()) {
      problems.push_back(key + ".caller: required");
      continue;
    }
    std::string hash = absl::HexStringToBytes(t.sha256());
    for (const auto& [h, c] : table.entries_) {
      if (h == hash) problems.push_back(key + ".sha256: duplicate token");
    }
    table.entries_.emplace_back(std::move(hash), t.caller());
  }
  if (!problems.empty()) return absl::InvalidArgumentError(absl::StrJoin(problems, "\n"));
  return table;
}

absl::StatusOr<TokenTable> TokenTable::Load(absl::string_view path) {
  config::BearerTokens config;
  LEYR_RETURN_IF_ERROR(LoadJsonConfig(path, &config));
  return FromConfig(config);
}

std::optional<std::string> TokenTable::Lookup(absl::string_view token) const {
  if (token.empty() || token.size() > kMaxTokenBytes) return std::nullopt;
  const std::string hash = Sha256(std::string(token));
  // Every entry is compared, each in constant time, so timing tells nothing about which (or
  // how much of a) hash matched.
  const std::string* found = nullptr;
  for (const auto& [h, caller] : entries_) {
    if (ConstantTimeEquals(h, hash)) found = &caller;
  }
  if (found == nullptr) return std::nullopt;
  return *found;
}

CallerAuthenticator::CallerAuthenticator(std::shared_ptr<const Policy> policy,
                                         std::shared_ptr<const TokenTable> tokens)
    : policy_(std::move(policy)), tokens_(std::move(tokens)) {}

absl::StatusOr<Caller> CallerAuthenticator::Authenticate(const CallCredentials& credentials) const {
  if (policy_ == nullptr) return Caller{};
  Caller caller;
  if (!credentials.authorization.empty()) {
    if (credentials.authorization.size() != 1) {
      return Unauthenticated(reason::kTokenInvalid, "send exactly one authorization header");
    }
    absl::string_view value = credentials.authorization[0];
    constexpr absl::string_view kScheme = "bearer ";
    if (value.size() <= kScheme.size() ||
        !absl::EqualsIgnoreCase(value.substr(0, kScheme.size()), kScheme)) {
      return Unauthenticated(reason::kTokenInvalid,
                             "the authorization header must be 'Bearer <token>'");
    }
    if (tokens_ == nullptr) {
      return Unauthenticated(reason::kTokenInvalid, "this broker accepts no bearer tokens");
    }
    auto name = tokens_->Lookup(absl::StripAsciiWhitespace(value.substr(kScheme.size())));
    if (!name) return Unauthenticated(reason::kTokenInvalid, "the bearer token is not valid");
    caller.identity = *name;
    caller.permissions = policy_->Find(*name);
    if (caller.permissions == nullptr) {
      return MakeError(absl::StatusCode::kPermissionDenied, reason::kCallerNotInPolicy,
                       absl::StrCat("caller '", *name, "' is not in the broker's policy"));
    }
    return caller;
  }
  for (const auto* sans : {&credentials.uri_sans, &credentials.dns_sans}) {
    for (const auto& san : *sans) {
      if (auto permissions = policy_->Find(san)) {
        caller.identity = san;
        caller.permissions = std::move(permissions);
        return caller;
      }
    }
  }
  if (credentials.uri_sans.empty() && credentials.dns_sans.empty()) {
    return Unauthenticated(reason::kCredentialsMissing,
                           "present a client certificate or a bearer token");
  }
  const std::string& first =
      credentials.uri_sans.empty() ? credentials.dns_sans[0] : credentials.uri_sans[0];
  return MakeError(absl::StatusCode::kPermissionDenied, reason::kCallerNotInPolicy,
                   absl::StrCat("certificate identity '", first, "' is not in the broker's policy"));
}

CallCredentials CredentialsOf(const grpc::ServerContextBase& context) {
  CallCredentials out;
  const auto& metadata = context.client_metadata();
  auto range = metadata.equal_range("authorization");
  for (auto it = range.first; it != range.second; ++it) {
    out.authorization.emplace_back(it->second.data(), it->second.size());
  }
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth != nullptr && auth->IsPeerAuthenticated()) {
    for (const auto& v : auth->FindPropertyValues(GRPC_PEER_URI_PROPERTY_NAME)) {
      out.uri_sans.emplace_back(v.data(), v.size());
    }
    for (const auto& v : auth->FindPropertyValues(GRPC_PEER_DNS_PROPERTY_NAME)) {
      out.dns_sans.emplace_back(v.data(), v.size());
    }
  }
  return out;
}

Authenticator MakeAuthenticator(std::shared_ptr<const CallerAuthenticator> authenticator) {
  return [authenticator](grpc::CallbackServerContext* context) {
    return authenticator->Authenticate(CredentialsOf(*context));
  };
}

}  // namespace leyr
