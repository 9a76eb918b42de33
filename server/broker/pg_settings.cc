#include "server/broker/pg_settings.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/common/config_util.h"

namespace leyr {

PostgresSettings ValidatePostgresConfig(const config::Postgres& config,
                                        bool plaintext_development,
                                        std::vector<std::string>& problems) {
  auto add = [&](absl::string_view key, absl::string_view problem) {
    problems.push_back(absl::StrCat("postgres.", key, ": ", problem));
  };
  PostgresSettings s;
  s.conninfo = config.conninfo();
  const std::string lower = absl::AsciiStrToLower(s.conninfo);
  if (s.conninfo.empty()) {
    add("conninfo", "required when store is \"postgres\" (for example \"host=db port=5432 "
                    "dbname=leyr user=leyr_broker\")");
  } else if (absl::StrContains(lower, "password")) {
    add("conninfo", "must not contain a password; put it in the file named by password_file");
  } else if (absl::StartsWith(lower, "postgres")) {
    // postgresql://user:secret@host/db: a ':' in the user information is a password.
    size_t scheme = lower.find("://");
    size_t at = lower.find('@');
    if (scheme != std::string::npos && at != std::string::npos &&
        lower.substr(scheme + 3, at - scheme - 3).find(':') != std::string::npos) {
      add("conninfo", "must not contain a password; put it in the file named by password_file");
    }
  }
  if (!config.password_file().empty()) {
    auto password = ReadSecretFile("postgres.password_file", config.password_file());
    if (!password.ok()) {
      add("password_file",
          absl::StrCat("cannot be read or is empty ('", config.password_file(), "')"));
    } else {
      s.password = *password;
    }
  }
  s.sslmode = config.sslmode();
  if (s.sslmode.empty() && !plaintext_development) s.sslmode = "verify-full";
  if (!s.sslmode.empty() && s.sslmode != "disable" && s.sslmode != "allow" &&
      s.sslmode != "prefer" && s.sslmode != "require" && s.sslmode != "verify-ca" &&
      s.sslmode != "verify-full") {
    add("sslmode", "must be disable, allow, prefer, require, verify-ca or verify-full");
  }
  if (!plaintext_development && s.sslmode != "verify-ca" && s.sslmode != "verify-full" &&
      s.sslmode != "require") {
    add("sslmode", "must be require, verify-ca or verify-full unless plaintext_development");
  }
  s.ca_file = config.ca_file();
  s.pool_size = config.pool_size() == 0 ? 8 : config.pool_size();
  if (s.pool_size < 1 || s.pool_size > 100) add("pool_size", "must be between 1 and 100");
  s.statement_timeout = DurationOr(config.statement_timeout(), absl::Seconds(5));
  if (s.statement_timeout < absl::Milliseconds(100) || s.statement_timeout > absl::Minutes(1)) {
    add("statement_timeout", "must be between 0.1s and 60s");
  }
  s.acquire_timeout = DurationOr(config.acquire_timeout(), absl::Seconds(1));
  if (s.acquire_timeout < absl::Milliseconds(10) || s.acquire_timeout > absl::Seconds(30)) {
    add("acquire_timeout", "must be between 0.01s and 30s");
  }
  s.connect_timeout = DurationOr(config.connect_timeout(), absl::Milliseconds(900));
  if (s.connect_timeout < absl::Milliseconds(100) || s.connect_timeout > absl::Seconds(60)) {
    add("connect_timeout", "must be between 0.1s and 60s");
  }
  return s;
}

}  // namespace leyr
