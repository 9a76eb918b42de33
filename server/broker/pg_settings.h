#ifndef LEYR_SERVER_BROKER_PG_SETTINGS_H_
#define LEYR_SERVER_BROKER_PG_SETTINGS_H_

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "config/config.pb.h"

namespace leyr {

// The `postgres` section of the broker's configuration, validated (used when store is
// "postgres"; see docs/postgres.md).
struct PostgresSettings {
  std::string conninfo;  // libpq connection string or URI, without a password
  std::string password;  // read from password_file; "" when none
  std::string sslmode;   // "" = as conninfo says
  std::string ca_file;   // sslrootcert
  int pool_size = 8;
  absl::Duration statement_timeout = absl::Seconds(5);
  absl::Duration acquire_timeout = absl::Seconds(1);
  absl::Duration connect_timeout = absl::Milliseconds(900);
};

// Validates `config` (the `postgres` key) for store "postgres". Appends "key: problem" lines to
// `problems`. sslmode defaults to "verify-full" unless `plaintext_development`.
PostgresSettings ValidatePostgresConfig(const config::Postgres& config,
                                        bool plaintext_development,
                                        std::vector<std::string>& problems);

}  // namespace leyr

#endif  // LEYR_SERVER_BROKER_PG_SETTINGS_H_
