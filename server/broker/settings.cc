#include "server/broker/settings.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "server/broker/auth.h"
#include "server/common/config_util.h"
#include "server/common/url.h"
#include "server/http/http_server.h"

namespace leyr {
namespace {

constexpr size_t kDefaultLeyrMaxResponseBytes = (4u << 20) - (64u << 10);

// Collects "key: problem" lines.
class Problems {
 public:
  // A line already in "key: problem" form.
  void AddLine(std::string line) { lines_.push_back(std::move(line)); }
  void Add(absl::string_view key, absl::string_view problem) {
    lines_.push_back(absl::StrCat(key, ": ", problem));
  }
  bool empty() const { return lines_.empty(); }
  std::string Join() const { return absl::StrJoin(lines_, "\n"); }

 private:
  std::vector<std::string> lines_;
};

bool IsSlug(absl::string_view s, size_t max_len) {
  if (s.empty() || s.size() > max_len) return false;
  for (char c : s) {
    if (!(absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '-')) return false;
  }
  return s.front() != '-' && s.back() != '-';
}

// An absolute http(s) base URI; returns it without a trailing slash, or "" after adding a
// problem. A base may carry a path prefix but no query, fragment or user information.
std::string CheckBaseUri(absl::string_view key, absl::string_view value, Problems& problems) {
  if (value.empty()) {
    problems.Add(key, "required");
    return "";
  }
  auto origin = CanonicalOrigin(value);
  if (!origin.ok()) {
    problems.Add(key, absl::StrCat("must be an absolute http or https URI (",
                                   origin.status().message(), ")"));
    return "";
  }
  if (absl::StrContains(value, "?") || absl::StrContains(value, "#")) {
    problems.Add(key, "must not have a query or a fragment");
    return "";
  }
  absl::string_view trimmed = value;
  absl::ConsumeSuffix(&trimmed, "/");
  return std::string(trimmed);
}

bool IsPathSegmentChars(absl::string_view s) {
  for (char c : s) {
    if (!(absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.' || c == '/' || c == '~')) {
      return false;
    }
  }
  return !absl::StrContains(s, "..") && !absl::StrContains(s, "//");
}

}  // namespace

absl::StatusOr<BrokerSettings> ValidateBrokerConfig(const config::BrokerConfig& config) {
  Problems problems;
  BrokerSettings s;

  for (const auto& addr : config.listen()) s.listen.push_back(addr);
  if (s.listen.empty()) s.listen.push_back("127.0.0.1:50051");
  for (size_t i = 0; i < s.listen.size(); ++i) {
    if (s.listen[i].empty()) problems.Add(absl::StrCat("listen[", i, "]"), "must not be empty");
  }
  s.plaintext_development = config.plaintext_development();
  s.admin_listen = config.admin_listen();
  if (!s.admin_listen.empty()) {
    if (absl::Status valid = ValidateListenAddress(s.admin_listen); !valid.ok()) {
      problems.Add("admin_listen", valid.message());
    }
  }
  s.health_listen = config.health_listen();
  if (!s.health_listen.empty() && absl::StartsWith(s.health_listen, "unix:")) {
    problems.Add("health_listen", "must be a TCP address such as 0.0.0.0:8086 (kubelet probes)");
  }
  {
    std::vector<std::string> tls_problems;
    s.tls = ValidateServerTls(config.tls(), "tls", /*allow_client_auth=*/true, tls_problems);
    for (const auto& line : tls_problems) problems.AddLine(line);
  }
  if (!s.plaintext_development && !s.tls.enabled()) {
    problems.Add("tls", "required (cert_file and key_file) unless plaintext_development is true");
  }
  if (s.plaintext_development && s.tls.enabled()) {
    problems.Add("plaintext_development", "must be false when tls is configured");
  }


  const auto& leyr = config.leyr();
  s.leyr_base_uri = CheckBaseUri("leyr.base_uri", leyr.base_uri(), problems);
  // The Leyr secret and the codes travel in headers: plain http only for local development.
  if (absl::StartsWith(absl::AsciiStrToLower(s.leyr_base_uri), "http://") &&
      !s.plaintext_development) {
    problems.Add("leyr.base_uri", "must be https (http only with plaintext_development: true)");
  }
  s.leyr_client_id = leyr.client_id();
  if (s.leyr_client_id.empty()) problems.Add("leyr.client_id", "required");
  if (leyr.client_secret_file().empty()) {
    problems.Add("leyr.client_secret_file", "required (a file holding Leyr's client secret)");
  } else {
    auto secret = ReadSecretFile("leyr.client_secret_file", leyr.client_secret_file());
    if (!secret.ok()) {
      problems.Add("leyr.client_secret_file",
                   absl::StrCat("cannot be read or is empty ('", leyr.client_secret_file(), "')"));
    } else {
      s.leyr_client_secret = *secret;
    }
  }
  if (!leyr.disable_activation()) {
    std::string path = leyr.activation_path().empty() ? "care-units" : leyr.activation_path();
    absl::string_view p = path;
    absl::ConsumePrefix(&p, "/");
    if (p.empty() || !IsPathSegmentChars(p)) {
      problems.Add("leyr.activation_path",
                   "must be a relative path under /api/emrs/{emr}/ such as 'care-units'");
    }
    s.activation_path = std::string(p);
  }
  s.leyr_request_timeout = DurationOr(leyr.request_timeout(), absl::Seconds(30));
  if (s.leyr_request_timeout <= absl::ZeroDuration() ||
      s.leyr_request_timeout > absl::Minutes(5)) {
    problems.Add("leyr.request_timeout", "must be between 1ms and 300s");
  }
  // Default: what fits a CallLeyrResponse under gRPC's default 4 MiB receive limit of clients.
  s.leyr_max_response_bytes = leyr.max_response_bytes() == 0
                                  ? kDefaultLeyrMaxResponseBytes
                                  : static_cast<size_t>(leyr.max_response_bytes());
  if (leyr.max_response_bytes() < 0 || leyr.max_response_bytes() > (int64_t{1} << 30)) {
    problems.Add("leyr.max_response_bytes", "must be between 1 and 1073741824");
  }
  s.leyr_max_idle_connections =
      leyr.max_idle_connections() == 0 ? 2048 : leyr.max_idle_connections();
  if (s.leyr_max_idle_connections < 1 || s.leyr_max_idle_connections > 10000) {
    problems.Add("leyr.max_idle_connections", "must be between 1 and 10000");
  }
  s.leyr_ca_file = leyr.ca_file();

  if (config.connections().empty()) problems.Add("connections", "at least one is required");
  for (int i = 0; i < config.connections_size(); ++i) {
    const auto& c = config.connections(i);
    std::string key = absl::StrCat("connections[", i, "]");
    ConnectionSettings cs;
    cs.name = c.name();
    if (!IsSlug(cs.name, 63)) {
      problems.Add(key + ".name", "must be 1-63 characters of a-z, 0-9 and '-'");
    } else if (s.connections.count(cs.name)) {
      problems.Add(key + ".name", absl::StrCat("duplicate connection name '", cs.name, "'"));
    }
    cs.emr = c.emr();
    if (!IsSlug(cs.emr, 63)) {
      problems.Add(key + ".emr", "must be an EMR slug such as 'athenapractice'");
    }
    cs.base_uri = CheckBaseUri(key + ".base_uri", c.base_uri(), problems);
    cs.client_id = c.client_id();
    if (cs.client_id.empty()) problems.Add(key + ".client_id", "required");
    cs.redirect_uri = c.redirect_uri();
    if (cs.redirect_uri.empty()) {
      problems.Add(key + ".redirect_uri", "required (the callback shim's public URL)");
    } else if (!CanonicalOrigin(cs.redirect_uri).ok()) {
      problems.Add(key + ".redirect_uri", "must be an absolute http or https URI");
    }
    for (const auto& scope : c.scopes()) cs.scopes.push_back(scope);
    if (cs.scopes.empty()) cs.scopes = {"openid", "profile", "user/*.*", "offline_access"};
    for (size_t j = 0; j < cs.scopes.size(); ++j) {
      const auto& scope = cs.scopes[j];
      bool ok = !scope.empty();
      for (unsigned char ch : scope) ok = ok && ch > 0x20 && ch < 0x7f && ch != '"' && ch != '\\';
      if (!ok) problems.Add(absl::StrCat(key, ".scopes[", j, "]"), "must be a non-empty scope token");
    }
    if (!cs.name.empty()) s.connections.emplace(cs.name, std::move(cs));
  }

  for (int i = 0; i < config.return_uri_origins_size(); ++i) {
    const std::string& value = config.return_uri_origins(i);
    std::string key = absl::StrCat("return_uri_origins[", i, "]");
    auto origin = CanonicalOrigin(value);
    absl::string_view trimmed = value;
    absl::ConsumeSuffix(&trimmed, "/");
    if (!origin.ok()) {
      problems.Add(key, absl::StrCat("must be an origin such as https://app.example.com (",
                                     origin.status().message(), ")"));
    } else if (trimmed.substr(trimmed.find("://") + 3).find_first_of("/?#") !=
               absl::string_view::npos) {
      problems.Add(key, "must be an origin only: scheme, host and optional port, no path");
    } else {
      s.return_uri_origins.insert(*origin);
    }
  }

  // Who may do what: a policy file, and optionally bearer tokens. Without a policy only a
  // plaintext development broker starts (every caller anonymous with full access).
  std::set<std::string> connection_names;
  for (const auto& [name, unused] : s.connections) connection_names.insert(name);
  if (!config.policy_file().empty()) {
    auto policy = Policy::Load(config.policy_file(), connection_names);
    if (!policy.ok()) {
      problems.Add("policy_file", absl::StrCat("'", config.policy_file(), "' is not valid: ",
                                               policy.status().message()));
    } else {
      s.policy = std::make_shared<const Policy>(std::move(*policy));
    }
  } else if (!s.plaintext_development) {
    problems.Add("policy_file", "required unless plaintext_development is true");
  }
  if (!config.tokens_file().empty()) {
    if (config.policy_file().empty()) {
      problems.Add("tokens_file", "needs a policy_file that names the tokens' callers");
    }
    auto tokens = TokenTable::Load(config.tokens_file());
    if (!tokens.ok()) {
      problems.Add("tokens_file", absl::StrCat("'", config.tokens_file(), "' is not valid: ",
                                               tokens.status().message()));
    } else {
      s.tokens = std::make_shared<const TokenTable>(std::move(*tokens));
    }
  }

  s.state_ttl = DurationOr(config.state_ttl(), absl::Minutes(10));
  if (s.state_ttl < absl::Seconds(1) || s.state_ttl > absl::Hours(1)) {
    problems.Add("state_ttl", "must be between 1s and 3600s");
  }
  s.retention = DurationOr(config.retention(), absl::Hours(24));
  if (s.retention < absl::Seconds(1)) problems.Add("retention", "must be at least 1s");
  if (!config.sealing_key_file().empty()) {
    auto sealer = KeyRingSealer::FromFile(config.sealing_key_file());
    if (!sealer.ok()) {
      problems.Add("sealing_key_file", sealer.status().message());
    } else {
      s.sealer = std::move(*sealer);
    }
  } else if (!config.plaintext_development()) {
    problems.Add("sealing_key_file",
                 "required (a key ring file; only plaintext_development may go without one)");
  }
  s.store = config.store().empty() ? "memory" : config.store();
  if (s.store == "postgres") {
    std::vector<std::string> pg_problems;
    s.postgres = ValidatePostgresConfig(config.postgres(), s.plaintext_development, pg_problems);
    for (const auto& line : pg_problems) problems.Add(line.substr(0, line.find(": ")),
                                                      line.substr(line.find(": ") + 2));
    if (config.sealing_key_file().empty()) {
      problems.Add("sealing_key_file", "required with store \"postgres\": every replica, and the "
                                       "next start, must open the codes the others sealed");
    }
  } else if (s.store != "memory") {
    problems.Add("store",
                 absl::StrCat("unknown store '", s.store, "' (supported: memory, postgres)"));
  }
  auto level = ParseLogLevel(config.log_level());
  if (!level.ok()) {
    problems.Add("log_level", level.status().message());
  } else {
    s.log_level = *level;
  }

  if (!problems.empty()) return absl::InvalidArgumentError(problems.Join());
  return s;
}

}  // namespace leyr
