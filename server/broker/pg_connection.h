#ifndef LEYR_SERVER_BROKER_PG_CONNECTION_H_
#define LEYR_SERVER_BROKER_PG_CONNECTION_H_

// Internal to the PostgreSQL store and its event bridge.

#include <libpq-fe.h>

#include "absl/status/statusor.h"
#include "server/broker/postgres_store.h"

namespace leyr {

// Opens one connection with `options` (password, sslmode, timeouts, application_name; server
// notices are dropped, statement_timeout set). UNAVAILABLE (STORE_UNAVAILABLE) on failure, logged
// as store_connect_failed. The caller PQfinish()es it.
absl::StatusOr<PGconn*> ConnectPostgres(const PostgresOptions& options);

}  // namespace leyr

#endif  // LEYR_SERVER_BROKER_PG_CONNECTION_H_
