#ifndef LEYR_TESTS_STORE_PG_TEST_DATABASE_H_
#define LEYR_TESTS_STORE_PG_TEST_DATABASE_H_

// A private schema in the throw-away PostgreSQL cluster that the CTest fixture `postgres`
// (scripts/pg-test-cluster.sh) started: each test gets its own schema, so tests running in
// parallel processes do not see each other's rows.

#include <libpq-fe.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "server/broker/postgres_store.h"

namespace leyr::testing {

class PgTestDatabase {
 public:
  // Reads $LEYR_PG_INFO_DIR/{conninfo,password}. available() is false when they are absent.
  PgTestDatabase() {
    const char* dir = std::getenv("LEYR_PG_INFO_DIR");
    if (dir == nullptr) return;
    conninfo_ = ReadFile(absl::StrCat(dir, "/conninfo"));
    password_ = ReadFile(absl::StrCat(dir, "/password"));
    if (conninfo_.empty()) return;
    static std::atomic<int> counter{0};
    schema_ = absl::StrCat("t_", getpid(), "_", counter.fetch_add(1));
    error_ = Exec(absl::StrCat("DROP SCHEMA IF EXISTS ", schema_, " CASCADE; CREATE SCHEMA ",
                               schema_));
  }
  ~PgTestDatabase() {
    if (!schema_.empty()) Exec(absl::StrCat("DROP SCHEMA IF EXISTS ", schema_, " CASCADE"));
  }

  // True when the fixture's cluster is there and the schema was created.
  bool available() const { return !conninfo_.empty() && error_.empty(); }
  // Under ctest (LEYR_PG_INFO_DIR set) a missing cluster is a failure, not a skip.
  static bool required() { return std::getenv("LEYR_PG_INFO_DIR") != nullptr; }
  const std::string& error() const { return error_; }
  const std::string& schema() const { return schema_; }

  // Options for a store that lives in this test's schema.
  PostgresOptions Options() const {
    PostgresOptions o;
    o.conninfo = absl::StrCat(conninfo_, " options='-c search_path=", schema_, "'");
    o.password = password_;
    o.application_name = absl::StrCat("leyr-test-", schema_);
    return o;
  }

  // Runs SQL in the schema; returns "" or the error message.
  std::string Exec(const std::string& sql, std::string* first_value = nullptr) const {
    const char* keys[] = {"dbname", "password", nullptr};
    const char* values[] = {conninfo_.c_str(), password_.c_str(), nullptr};
    PGconn* conn = PQconnectdbParams(keys, values, 1);
    PQsetNoticeProcessor(conn, [](void*, const char*) {}, nullptr);
    std::string err;
    if (PQstatus(conn) != CONNECTION_OK) {
      err = PQerrorMessage(conn);
    } else {
      std::string full = schema_.empty() ? sql : absl::StrCat("SET search_path = ", schema_,
                                                              "; ", sql);
      PGresult* r = PQexec(conn, full.c_str());
      ExecStatusType st = PQresultStatus(r);
      if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        err = PQresultErrorMessage(r);
      } else if (first_value != nullptr && PQntuples(r) > 0) {
        *first_value = PQgetvalue(r, 0, 0);
      }
      PQclear(r);
    }
    PQfinish(conn);
    return err;
  }

 private:
  static std::string ReadFile(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string s = ss.str();
    absl::StripTrailingAsciiWhitespace(&s);
    return s;
  }

  std::string conninfo_;
  std::string password_;
  std::string schema_;
  std::string error_;
};

}  // namespace leyr::testing

#endif  // LEYR_TESTS_STORE_PG_TEST_DATABASE_H_
