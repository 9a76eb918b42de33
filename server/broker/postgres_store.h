#ifndef LEYR_SERVER_BROKER_POSTGRES_STORE_H_
#define LEYR_SERVER_BROKER_POSTGRES_STORE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/broker/sealer.h"
#include "server/broker/store.h"
#include "server/common/clock.h"

namespace leyr {

// How PostgresStore reaches its database.
struct PostgresOptions {
  // libpq connection string ("host=db.example.com port=5432 dbname=leyr user=leyr" or a
  // postgresql:// URI) WITHOUT the password.
  std::string conninfo;
  // The password (read from a mounted file by the caller); "" = none or libpq's own sources
  // (PGPASSFILE, certificates).
  std::string password;
  // libpq sslmode ("disable", "require", "verify-ca", "verify-full"); "" = whatever `conninfo`
  // says (libpq's default is "prefer").
  std::string sslmode;
  // libpq sslrootcert (CA file for verify-ca / verify-full); "" = libpq's default.
  std::string sslrootcert;
  // Connections kept open; each runs one statement at a time.
  int pool_size = 4;
  // How long a call waits for a free connection.
  absl::Duration acquire_timeout = absl::Seconds(1);
  // How long opening one connection may take in all (TCP, TLS, authentication), enforced by the
  // store itself around libpq's non-blocking connect, so an address that never answers fails
  // after this long (libpq's own connect_timeout has whole seconds and a 2 s minimum).
  absl::Duration connect_timeout = absl::Milliseconds(900);
  // Shown in pg_stat_activity.
  std::string application_name = "leyr-broker";
  // Server-side bound on one statement.
  absl::Duration statement_timeout = absl::Seconds(5);
  // Seals codes before they are written (aad = the authorization id). nullptr = stored as is
  // (identity), until a key ring is configured. Not owned; must outlive the store.
  Sealer* sealer = nullptr;
};

// Stores sealed-code bytes unchanged. The seam for KeyRingSealer.
class IdentitySealer final : public Sealer {
 public:
  absl::StatusOr<std::string> Seal(absl::string_view plaintext, absl::string_view aad) override {
    return std::string(plaintext);
  }
  absl::StatusOr<std::string> Open(absl::string_view sealed, absl::string_view aad) override {
    return std::string(sealed);
  }
};

// The store for several replicas: one PostgreSQL database (schema in docs/postgres.md).
// Same semantics as MemoryStore; every read applies expiry at the injected clock's time, passed
// to the database as a parameter. Thread-safe. When the database cannot be reached every
// operation answers UNAVAILABLE (STORE_UNAVAILABLE) and the next one tries to reconnect.
class PostgresStore final : public Store {
 public:
  // Connects once, applies the schema migrations (under a PostgreSQL advisory lock, so several
  // replicas may start at once) and returns the store. UNAVAILABLE (STORE_UNAVAILABLE) when the
  // database cannot be reached; INTERNAL when a migration fails.
  static absl::StatusOr<std::unique_ptr<PostgresStore>> Create(const PostgresOptions& options,
                                                               Clock* clock);
  ~PostgresStore() override;

  absl::Status Insert(const AuthorizationRecord& record, const std::string& state_hash) override;
  absl::StatusOr<AuthorizationRecord> Get(absl::string_view id) override;
  absl::StatusOr<AuthorizationRecord> Complete(const std::string& state_hash,
                                               const Completion& completion) override;
  absl::StatusOr<AuthorizationRecord> Update(absl::string_view id,
                                             const Transition& transition) override;
  absl::StatusOr<std::vector<AuthorizationRecord>> List(const ListQuery& query) override;
  absl::StatusOr<int> Sweep(absl::Time cutoff) override;
  absl::StatusOr<std::map<AuthState, int64_t>> CountByState() override;

  // Highest schema version this build applies.
  static int LatestSchemaVersion();

  // Removes every table of the store (tests only).
  absl::Status DropSchemaForTesting();

  class Pool;  // the connection pool (postgres_store.cc)

 private:
  PostgresStore(std::unique_ptr<Pool> pool, Clock* clock, Sealer* sealer);

  std::unique_ptr<Pool> pool_;
  Clock* clock_;
  Sealer* sealer_;
};

}  // namespace leyr

#endif  // LEYR_SERVER_BROKER_POSTGRES_STORE_H_
