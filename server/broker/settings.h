#ifndef LEYR_SERVER_BROKER_SETTINGS_H_
#define LEYR_SERVER_BROKER_SETTINGS_H_

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "config/config.pb.h"
#include "server/broker/pg_settings.h"
#include "server/broker/sealer.h"
#include "server/broker/policy.h"
#include "server/broker/tls.h"
#include "server/common/log.h"

namespace leyr {

class TokenTable;  // server/broker/auth.h

// One configured connection, validated.
struct ConnectionSettings {
  std::string name;
  std::string emr;
  std::string base_uri;  // no trailing slash
  std::string client_id;
  std::string redirect_uri;
  std::vector<std::string> scopes;
};

// The broker's configuration, validated once at start into typed values (Envoy's FilterConfig
// habit: no raw protos passed around).
struct BrokerSettings {
  std::vector<std::string> listen;
  bool plaintext_development = false;
  ServerTlsSettings tls;                      // disabled only with plaintext_development
  std::shared_ptr<const Policy> policy;       // null only with plaintext_development
  std::shared_ptr<const TokenTable> tokens;   // null when no tokens_file
  std::string leyr_base_uri;  // no trailing slash
  std::string leyr_client_id;
  std::string leyr_client_secret;  // read from leyr.client_secret_file
  std::string activation_path;     // relative to /api/emrs/{emr}/; "" when disabled
  absl::Duration leyr_request_timeout;
  size_t leyr_max_response_bytes;
  int leyr_max_idle_connections;
  std::string leyr_ca_file;
  std::map<std::string, ConnectionSettings> connections;  // by name
  std::set<std::string> return_uri_origins;               // canonical origins
  absl::Duration state_ttl;
  absl::Duration retention;
  std::string store;
  PostgresSettings postgres;  // when store == "postgres"
  // The key ring read from sealing_key_file; null when none is configured (allowed only with
  // plaintext_development: the binary then uses KeyRingSealer::Ephemeral() and logs a warning).
  std::shared_ptr<KeyRingSealer> sealer;
  LogLevel log_level = LogLevel::kInfo;
  std::string admin_listen;   // "" = no metrics endpoint
  std::string health_listen;  // "" = no plaintext health port
};

// Validates `config`. On failure, the error message lists every bad key, one per line, each as
// "key: what is wrong" (for example "connections[0].redirect_uri: must be an absolute http or
// https URI"). Reads the secret file named in the configuration.
absl::StatusOr<BrokerSettings> ValidateBrokerConfig(const config::BrokerConfig& config);

}  // namespace leyr

#endif  // LEYR_SERVER_BROKER_SETTINGS_H_
