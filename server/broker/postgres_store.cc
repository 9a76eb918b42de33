#include "server/broker/postgres_store.h"

#include "server/broker/pg_connection.h"

#include <libpq-fe.h>
#include <poll.h>

#include <cerrno>

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "server/common/log.h"
#include "server/common/status_util.h"

namespace leyr {
namespace {

using broker::v1::Authorization;

// Key of the session advisory lock that serialises migrations across replicas ("leyrmigr").
constexpr int64_t kMigrationLockKey = 0x6c6579726d696772;

// Versioned migrations, applied in order, each in its own transaction. Never edit one that has
// shipped: add the next version.
struct Migration {
  int version;
  const char* description;
  const char* sql;
};
const Migration kMigrations[] = {
    {1, "authorizations table",
     R"sql(
CREATE TABLE leyr_authorizations (
  id                 text COLLATE "C" PRIMARY KEY,
  state_hash         bytea   NOT NULL UNIQUE,
  state_consumed     boolean NOT NULL DEFAULT false,
  connection         text    NOT NULL,
  emr                text    NOT NULL,
  state              smallint NOT NULL,
  labels             jsonb   NOT NULL DEFAULT '{}',
  return_uri         text    NOT NULL DEFAULT '',
  owner              text    NOT NULL DEFAULT '',
  create_time_ns     bigint  NOT NULL,
  update_time_ns     bigint  NOT NULL,
  expire_time_ns     bigint  NOT NULL,
  code_sealed        bytea,
  denial_error       text    NOT NULL DEFAULT '',
  denial_description text    NOT NULL DEFAULT '',
  activated          boolean NOT NULL DEFAULT false
);
CREATE INDEX leyr_authorizations_newest_first
  ON leyr_authorizations (create_time_ns DESC, id DESC);
CREATE INDEX leyr_authorizations_sweep ON leyr_authorizations (update_time_ns);
)sql"},
};

// The record's columns as read at time `now` (a parameter placeholder such as "$2"): a PENDING
// record past its expire_time reads as EXPIRED, updated at its expire_time (MemoryStore's rule).
std::string Columns(absl::string_view now) {
  const std::string expired = absl::StrCat("(state = ", Authorization::STATE_PENDING,
                                           " AND expire_time_ns <= ", now, "::bigint)");
  return absl::StrCat("id, connection, emr, CASE WHEN ", expired, " THEN ",
                      Authorization::STATE_EXPIRED,
                      " ELSE state END, labels::text, return_uri, owner, create_time_ns, CASE WHEN ",
                      expired,
                      " THEN expire_time_ns ELSE update_time_ns END, expire_time_ns, code_sealed, "
                      "denial_error, denial_description, activated");
}
constexpr int kColumnCount = 14;

// The state a record has at `now` (a placeholder), in SQL.
std::string EffectiveState(absl::string_view now) {
  return absl::StrCat("(CASE WHEN state = ", Authorization::STATE_PENDING,
                      " AND expire_time_ns <= ", now, "::bigint THEN ",
                      Authorization::STATE_EXPIRED, " ELSE state END)");
}

// Prepared once per connection, by name.
struct Statement {
  const char* name;
  std::string sql;
};
std::vector<Statement> Statements() {
  std::vector<Statement> s;
  s.push_back({"insert",
               "INSERT INTO leyr_authorizations (id, state_hash, connection, emr, state, labels, "
               "return_uri, owner, create_time_ns, update_time_ns, expire_time_ns, code_sealed, "
               "denial_error, denial_description, activated) VALUES ($1::text, $2::bytea, $3::text, "
               "$4::text, $5::smallint, $6::jsonb, $7::text, $8::text, $9::bigint, $10::bigint, "
               "$11::bigint, $12::bytea, $13::text, $14::text, $15::boolean)"});
  s.push_back({"get", absl::StrCat("SELECT ", Columns("$2"),
                                   " FROM leyr_authorizations WHERE id = $1::text")});
  s.push_back({"state_lookup",
               "SELECT id, state_consumed FROM leyr_authorizations WHERE state_hash = $1::bytea"});
  // The single atomic statement of Complete: the row lock taken by FOR UPDATE and the
  // NOT state_consumed test (re-checked by PostgreSQL on the newest row version after a
  // concurrent update) let exactly one of several concurrent completions return a row. The
  // state is consumed whatever the outcome; the outcome is applied only when the record was
  // still PENDING and not expired. `old_state` / `old_expire` tell the caller which case it was.
  const std::string ok = absl::StrCat("(t.old_state = ", Authorization::STATE_PENDING,
                                      " AND $2::bigint < t.old_expire)");
  s.push_back(
      {"complete",
       absl::StrCat(
           "WITH t AS (SELECT id, state AS old_state, expire_time_ns AS old_expire "
           "FROM leyr_authorizations WHERE state_hash = $1::bytea AND id = $7::text "
           "AND NOT state_consumed FOR UPDATE) "
           "UPDATE leyr_authorizations a SET state_consumed = true, "
           "state = CASE WHEN ", ok, " THEN $3::smallint ELSE a.state END, "
           "code_sealed = CASE WHEN ", ok, " THEN $4::bytea ELSE a.code_sealed END, "
           "denial_error = CASE WHEN ", ok, " THEN $5::text ELSE a.denial_error END, "
           "denial_description = CASE WHEN ", ok, " THEN $6::text ELSE a.denial_description END, "
           "update_time_ns = CASE WHEN ", ok, " THEN $2::bigint ELSE a.update_time_ns END "
           "FROM t WHERE a.id = t.id RETURNING ",
           // RETURNING sees the new row; qualify the columns with `a.`.
           "a.id, a.connection, a.emr, a.state, a.labels::text, a.return_uri, a.owner, "
           "a.create_time_ns, a.update_time_ns, a.expire_time_ns, a.code_sealed, a.denial_error, "
           "a.denial_description, a.activated, t.old_state, t.old_expire")});
  s.push_back({"update",
               absl::StrCat("UPDATE leyr_authorizations SET state = COALESCE($4::smallint, ",
                            EffectiveState("$2"), "), activated = COALESCE($5::boolean, activated), "
                            "code_sealed = CASE WHEN $6::boolean THEN NULL ELSE code_sealed END, "
                            "update_time_ns = $2::bigint WHERE id = $1::text AND ",
                            EffectiveState("$2"), " = ANY($3::smallint[]) RETURNING ",
                            Columns("$2"))});
  s.push_back({"exists", "SELECT 1 FROM leyr_authorizations WHERE id = $1::text"});
  s.push_back(
      {"list",
       absl::StrCat("SELECT ", Columns("$1"),
                    " FROM leyr_authorizations WHERE ($2::text = '' OR connection = $2::text) "
                    "AND ($3::text = '' OR owner = $3::text) AND ($4::bigint IS NULL OR "
                    "create_time_ns < $4::bigint OR (create_time_ns = $4::bigint AND "
                    "id < $5::text COLLATE \"C\")) "
                    "ORDER BY create_time_ns DESC, id COLLATE \"C\" DESC LIMIT $6::bigint")});
  s.push_back({"sweep",
               absl::StrCat("DELETE FROM leyr_authorizations WHERE (state IN (",
                            Authorization::STATE_DENIED, ", ", Authorization::STATE_EXPIRED, ", ",
                            Authorization::STATE_REVOKED,
                            ") AND update_time_ns < $2::bigint) OR (state = ",
                            Authorization::STATE_PENDING,
                            " AND expire_time_ns <= $1::bigint AND expire_time_ns < $2::bigint)")});
  s.push_back({"count_by_state",
               absl::StrCat("SELECT ", EffectiveState("$1"),
                            ", count(*) FROM leyr_authorizations GROUP BY 1")});
  return s;
}

absl::Status Unavailable() {
  return MakeError(absl::StatusCode::kUnavailable, reason::kStoreUnavailable,
                   "the authorization store (PostgreSQL) cannot be reached; retry later");
}

absl::Status Internal(absl::string_view what) {
  return MakeError(absl::StatusCode::kInternal, reason::kInternal,
                   absl::StrCat("authorization store: ", what));
}

// One libpq result, cleared on destruction.
struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using Result = std::unique_ptr<PGresult, ResultDeleter>;

// One statement parameter: text unless `binary` (bytea), NULL when absent.
struct Param {
  std::optional<std::string> value;
  bool binary = false;
};
Param Text(std::string v) { return Param{std::move(v), false}; }
Param Bytes(std::string v) { return Param{std::move(v), true}; }
Param Int(int64_t v) { return Param{absl::StrCat(v), false}; }
Param Bool(bool v) { return Param{v ? "true" : "false", false}; }
Param Null() { return Param{std::nullopt, false}; }

int64_t Nanos(absl::Time t) { return absl::ToUnixNanos(t); }

// SQLSTATEs that mean "try again later" rather than a bug: connection exceptions (08),
// insufficient resources (53), operator intervention (57: shutdown, statement timeout),
// serialization failure and deadlock.
bool IsTransientSqlState(absl::string_view state) {
  return absl::StartsWith(state, "08") || absl::StartsWith(state, "53") ||
         absl::StartsWith(state, "57") || state == "40001" || state == "40P01";
}

std::string DecodeBytea(const char* text) {
  // Text output of bytea is "\x" followed by hex digits (bytea_output = hex, the default).
  absl::string_view s(text);
  if (!absl::ConsumePrefix(&s, "\\x")) return std::string(s);
  std::string out;
  out.reserve(s.size() / 2);
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return 0;
  };
  for (size_t i = 0; i + 1 < s.size(); i += 2) {
    out.push_back(static_cast<char>(nibble(s[i]) << 4 | nibble(s[i + 1])));
  }
  return out;
}

std::string LabelsToJson(const std::map<std::string, std::string>& labels) {
  std::string out = "{";
  bool first = true;
  for (const auto& [k, v] : labels) {
    if (!first) out += ",";
    first = false;
    out += "\"";
    AppendJsonEscaped(k, &out);
    out += "\":\"";
    AppendJsonEscaped(v, &out);
    out += "\"";
  }
  out += "}";
  return out;
}

absl::StatusOr<std::map<std::string, std::string>> LabelsFromJson(const char* json) {
  google::protobuf::Struct s;
  if (!google::protobuf::util::JsonStringToMessage(json, &s).ok()) {
    return Internal("labels column is not a JSON object");
  }
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : s.fields()) out[k] = v.string_value();
  return out;
}

}  // namespace

namespace {

// Waits until `events` are ready on `fd` or `deadline` passes: 1 ready, 0 the deadline passed,
// -1 poll failed.
int PollUntil(int fd, short events, absl::Time deadline) {
  for (;;) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return 0;
    pollfd p{};
    p.fd = fd;
    p.events = events;
    const int ms = static_cast<int>(
        absl::ToInt64Milliseconds(absl::Ceil(left, absl::Milliseconds(1))));
    const int ready = poll(&p, 1, ms);
    if (ready < 0 && errno == EINTR) continue;
    return ready < 0 ? -1 : (ready > 0 ? 1 : 0);
  }
}

// Drives libpq's non-blocking connect until it succeeds, fails, or `deadline` passes.
// Returns "" on success, otherwise what went wrong (libpq's message, never the password).
std::string FinishConnect(PGconn* conn, absl::Time deadline) {
  PostgresPollingStatusType state = PGRES_POLLING_WRITING;
  for (;;) {
    if (state == PGRES_POLLING_OK) return "";
    if (state == PGRES_POLLING_FAILED) return PQerrorMessage(conn);
    const int fd = PQsocket(conn);
    if (fd < 0) return PQerrorMessage(conn);
    const int ready = PollUntil(fd, state == PGRES_POLLING_READING ? POLLIN : POLLOUT, deadline);
    if (ready < 0) return "poll failed while connecting";
    if (ready == 0) return "connecting took longer than connect_timeout";
    state = PQconnectPoll(conn);
  }
}

}  // namespace

absl::StatusOr<PGconn*> ConnectPostgres(const PostgresOptions& options) {
  const absl::Time deadline = absl::Now() + options.connect_timeout;
  std::vector<const char*> keys;
  std::vector<const char*> values;
  auto add = [&](const char* k, const std::string& v) {
    if (!v.empty()) {
      keys.push_back(k);
      values.push_back(v.c_str());
    }
  };
  add("dbname", options.conninfo);  // expanded: a full connection string or URI
  add("password", options.password);
  add("sslmode", options.sslmode);
  add("sslrootcert", options.sslrootcert);
  add("application_name", options.application_name);
  keys.push_back(nullptr);
  values.push_back(nullptr);
  // Non-blocking, so that connect_timeout bounds the whole connect (libpq's blocking connect
  // would wait at least 2 s for an address that drops packets, or a server that never speaks).
  PGconn* conn = PQconnectStartParams(keys.data(), values.data(), /*expand_dbname=*/1);
  std::string detail;
  if (conn == nullptr) {
    detail = "out of memory";
  } else if (PQstatus(conn) == CONNECTION_BAD) {
    detail = PQerrorMessage(conn);
  } else {
    detail = FinishConnect(conn, deadline);
  }
  if (!detail.empty() || PQstatus(conn) != CONNECTION_OK) {
    if (detail.empty()) detail = PQerrorMessage(conn);
    if (conn) PQfinish(conn);
    absl::StripTrailingAsciiWhitespace(&detail);
    LEYR_LOG(Warn, "store_connect_failed").Field("store", "postgres").Field("detail", detail);
    return Unavailable();
  }
  // libpq prints server notices on stderr by default; the log has one JSON line per event.
  PQsetNoticeProcessor(conn, [](void*, const char*) {}, nullptr);
  // A bound on every statement, set per session so that `options` in the connection string
  // (search_path, for example) stays the caller's.
  Result r(PQexec(conn, absl::StrCat("SET statement_timeout = ",
                                     absl::ToInt64Milliseconds(options.statement_timeout))
                            .c_str()));
  if (PQresultStatus(r.get()) != PGRES_COMMAND_OK) {
    PQfinish(conn);
    return Unavailable();
  }
  return conn;
}

// How long past statement_timeout an answer is waited for: the server's own cancel answers
// within this on a healthy connection.
constexpr absl::Duration kAnswerGrace = absl::Seconds(1);

// Waits until the answer to a sent query can be read without blocking (or the connection
// broke, which PQgetResult then reports); false when `deadline` passed first.
bool AwaitAnswer(PGconn* conn, absl::Time deadline) {
  while (PQisBusy(conn)) {
    const int fd = PQsocket(conn);
    if (fd < 0) return true;
    const int ready = PollUntil(fd, POLLIN, deadline);
    if (ready == 0) return false;
    if (ready < 0 || PQconsumeInput(conn) != 1) return true;  // broken: PQgetResult says so
  }
  return true;
}

// A fixed set of connections, each opened on first use and reopened after it breaks. A caller
// leases one connection for one statement (or one short sequence).
class PostgresStore::Pool {
 public:
  explicit Pool(PostgresOptions options)
      : options_(std::move(options)), conns_(std::max(1, options_.pool_size), nullptr),
        free_(conns_.size()) {
    for (size_t i = 0; i < conns_.size(); ++i) free_[i] = i;
    statements_ = Statements();
  }
  ~Pool() {
    for (PGconn* c : conns_) {
      if (c != nullptr) PQfinish(c);
    }
  }

  // Opens a connection outside the pool (migrations, tests).
  absl::StatusOr<PGconn*> Connect() { return ConnectPostgres(options_); }

  class Lease {
   public:
    Lease(Pool* pool, size_t index) : pool_(pool), index_(index) {}
    Lease(Lease&& other) : pool_(other.pool_), index_(other.index_) { other.pool_ = nullptr; }
    Lease(const Lease&) = delete;
    ~Lease() {
      if (pool_) pool_->Release(index_);
    }
    // The open connection, connecting and preparing every statement if needed.
    absl::StatusOr<PGconn*> Get() { return pool_->Open(index_); }
    // Closes a connection that broke; the next lease reconnects.
    void Discard() { pool_->Close(index_); }

   private:
    Pool* pool_;
    size_t index_;
  };

  absl::StatusOr<Lease> Acquire() {
    absl::MutexLock lock(&mu_);
    auto has_free = [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return !free_.empty(); };
    if (!mu_.AwaitWithTimeout(absl::Condition(&has_free), options_.acquire_timeout)) {
      LEYR_LOG(Warn, "store_pool_exhausted").Field("store", "postgres");
      return Unavailable();
    }
    size_t index = free_.back();
    free_.pop_back();
    return Lease(this, index);
  }

  // Runs a prepared statement on a leased connection. A broken connection is discarded; when
  // `retry` the statement runs once more on a fresh connection (idempotent statements only).
  absl::StatusOr<Result> Exec(const char* name, const std::vector<Param>& params, bool retry) {
    LEYR_ASSIGN_OR_RETURN(Lease lease, Acquire());
    for (int attempt = 0;; ++attempt) {
      bool session_ended = false;
      auto result = ExecOn(lease, name, params, &session_ended);
      // A session the server ended (restart, failover, pg_terminate_backend) did not commit the
      // statement, so any statement may run again, once, on a new connection.
      if (result.ok() || attempt > 0 ||
          result.status().code() != absl::StatusCode::kUnavailable ||
          !(retry || session_ended)) {
        return result;
      }
    }
  }

  absl::StatusOr<Result> ExecOn(Lease& lease, const char* name, const std::vector<Param>& params,
                                bool* session_ended) {
    LEYR_ASSIGN_OR_RETURN(PGconn * conn, lease.Get());
    std::vector<const char*> values;
    std::vector<int> lengths;
    std::vector<int> formats;
    for (const Param& p : params) {
      values.push_back(p.value ? p.value->data() : nullptr);
      lengths.push_back(p.value ? static_cast<int>(p.value->size()) : 0);
      formats.push_back(p.binary ? 1 : 0);
    }
    // Sent, then waited for with a bound of our own: statement_timeout makes the server give up
    // on a slow statement, but a server that stops answering (a partition, a frozen host) would
    // otherwise hold this thread until TCP gives up, minutes later.
    const absl::Time deadline = absl::Now() + options_.statement_timeout + kAnswerGrace;
    if (PQsendQueryPrepared(conn, name, static_cast<int>(params.size()), values.data(),
                            lengths.data(), formats.data(), /*resultFormat=*/0) != 1) {
      LEYR_LOG(Warn, "store_unavailable").Field("store", "postgres").Field("statement", name);
      lease.Discard();
      return Unavailable();
    }
    // Every result up to the end of the query, and the last one is the outcome, as PQexec
    // reports it. The statement's own result is not enough: in the extended protocol the
    // implicit transaction commits at Sync, after the statement's CommandComplete, so a session
    // ended in between (a fast shutdown's FATAL 57P01) answers "INSERT 0 1" and then the error,
    // and the row is rolled back. Taking the first result acknowledged such writes.
    Result r;
    for (;;) {
      if (!AwaitAnswer(conn, deadline)) {
        LEYR_LOG(Warn, "store_unavailable")
            .Field("store", "postgres")
            .Field("statement", name)
            .Field("detail", "no answer within statement_timeout");
        lease.Discard();  // the answer may still come; this connection is not reused
        return Unavailable();
      }
      PGresult* next = PQgetResult(conn);
      if (next == nullptr) break;  // the query is over; the connection is idle
      r.reset(next);
    }
    ExecStatusType status = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return r;
    const char* sqlstate = r ? PQresultErrorField(r.get(), PG_DIAG_SQLSTATE) : nullptr;
    const std::string state = sqlstate ? sqlstate : "";
    // 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now.
    *session_ended = state == "57P01" || state == "57P02" || state == "57P03";
    if (PQstatus(conn) == CONNECTION_BAD || state.empty() || IsTransientSqlState(state)) {
      LEYR_LOG(Warn, "store_unavailable")
          .Field("store", "postgres")
          .Field("statement", name)
          .Field("sqlstate", state);
      if (PQstatus(conn) == CONNECTION_BAD) lease.Discard();
      return Unavailable();
    }
    if (state == "23505") {  // unique_violation
      return MakeError(absl::StatusCode::kAlreadyExists, reason::kInternal,
                       "authorization id or state collision");
    }
    // Only the primary message: DETAIL lines may quote values.
    const char* primary = PQresultErrorField(r.get(), PG_DIAG_MESSAGE_PRIMARY);
    LEYR_LOG(Error, "store_error")
        .Field("store", "postgres")
        .Field("statement", name)
        .Field("sqlstate", state)
        .Field("detail", primary ? primary : "");
    return Internal(absl::StrCat("statement '", name, "' failed (SQLSTATE ", state, ")"));
  }

 private:
  void Release(size_t index) {
    absl::MutexLock lock(&mu_);
    free_.push_back(index);
  }

  // Only the lease holder touches conns_[index], so no lock is needed for the slot itself.
  absl::StatusOr<PGconn*> Open(size_t index) {
    PGconn*& slot = conns_[index];
    if (slot != nullptr && PQstatus(slot) == CONNECTION_OK) {
      // A pooled connection (no LISTEN) receives nothing while idle unless the server ended
      // the session (restart, failover, pg_terminate_backend): then reconnect now rather than
      // fail the statement we are about to send.
      pollfd pfd{PQsocket(slot), POLLIN, 0};
      if (poll(&pfd, 1, 0) == 0) return slot;
      LEYR_LOG(Info, "store_reconnecting").Field("store", "postgres");
    }
    Close(index);
    LEYR_ASSIGN_OR_RETURN(PGconn * conn, Connect());
    for (const Statement& s : statements_) {
      Result r(PQprepare(conn, s.name, s.sql.c_str(), 0, nullptr));
      if (PQresultStatus(r.get()) != PGRES_COMMAND_OK) {
        const char* primary = PQresultErrorField(r.get(), PG_DIAG_MESSAGE_PRIMARY);
        bool broken = PQstatus(conn) == CONNECTION_BAD;
        LEYR_LOG(Error, "store_prepare_failed")
            .Field("store", "postgres")
            .Field("statement", s.name)
            .Field("detail", primary ? primary : "");
        PQfinish(conn);
        return broken ? Unavailable() : Internal("a statement could not be prepared");
      }
    }
    slot = conn;
    return conn;
  }

  void Close(size_t index) {
    if (conns_[index] != nullptr) {
      PQfinish(conns_[index]);
      conns_[index] = nullptr;
    }
  }

  const PostgresOptions options_;
  std::vector<Statement> statements_;
  std::vector<PGconn*> conns_;  // slot i is used only by the holder of a lease on i
  absl::Mutex mu_;
  std::vector<size_t> free_ ABSL_GUARDED_BY(mu_);
};

namespace {

// Runs `sql` (one or more statements, simple protocol) on `conn`.
absl::Status ExecSimple(PGconn* conn, const std::string& sql, Result* out = nullptr) {
  Result r(PQexec(conn, sql.c_str()));
  ExecStatusType status = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
    if (out) *out = std::move(r);
    return absl::OkStatus();
  }
  if (PQstatus(conn) == CONNECTION_BAD) return Unavailable();
  const char* sqlstate = r ? PQresultErrorField(r.get(), PG_DIAG_SQLSTATE) : nullptr;
  const char* primary = r ? PQresultErrorField(r.get(), PG_DIAG_MESSAGE_PRIMARY) : nullptr;
  LEYR_LOG(Error, "store_migration_error")
      .Field("store", "postgres")
      .Field("sqlstate", sqlstate ? sqlstate : "")
      .Field("detail", primary ? primary : "");
  return Internal("a schema statement failed");
}

// Applies every migration newer than the database's version, holding the advisory lock so that
// replicas starting together apply each one once.
absl::Status Migrate(PGconn* conn) {
  LEYR_RETURN_IF_ERROR(
      ExecSimple(conn, absl::StrCat("SELECT pg_advisory_lock(", kMigrationLockKey, ")")));
  auto body = [&]() -> absl::Status {
    LEYR_RETURN_IF_ERROR(ExecSimple(
        conn,
        "CREATE TABLE IF NOT EXISTS leyr_schema_migrations (version integer PRIMARY KEY, "
        "description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"));
    Result r;
    LEYR_RETURN_IF_ERROR(ExecSimple(
        conn, "SELECT COALESCE(max(version), 0) FROM leyr_schema_migrations", &r));
    int current = 0;
    if (!absl::SimpleAtoi(PQgetvalue(r.get(), 0, 0), &current)) {
      return Internal("unreadable schema version");
    }
    const int latest = PostgresStore::LatestSchemaVersion();
    if (current > latest) {
      // A newer build migrated the database (rolling upgrade); migrations only add, so go on.
      LEYR_LOG(Warn, "store_schema_newer")
          .Field("store", "postgres")
          .Field("database_version", current)
          .Field("build_version", latest);
    }
    for (const Migration& m : kMigrations) {
      if (m.version <= current) continue;
      LEYR_LOG(Info, "store_migrating")
          .Field("store", "postgres")
          .Field("version", m.version)
          .Field("description", m.description);
      absl::Status applied = ExecSimple(
          conn, absl::StrCat("BEGIN;", m.sql,
                             "INSERT INTO leyr_schema_migrations (version, description) VALUES (",
                             m.version, ", '", m.description, "');COMMIT;"));
      if (!applied.ok()) {
        (void)ExecSimple(conn, "ROLLBACK");
        return applied;
      }
    }
    return absl::OkStatus();
  };
  absl::Status status = body();
  (void)ExecSimple(conn, absl::StrCat("SELECT pg_advisory_unlock(", kMigrationLockKey, ")"));
  return status;
}

}  // namespace

int PostgresStore::LatestSchemaVersion() {
  return kMigrations[sizeof(kMigrations) / sizeof(kMigrations[0]) - 1].version;
}

absl::StatusOr<std::unique_ptr<PostgresStore>> PostgresStore::Create(
    const PostgresOptions& options, Clock* clock) {
  if (options.pool_size < 1 || options.pool_size > 100) {
    return MakeError(absl::StatusCode::kInvalidArgument, reason::kInvalidArgument,
                     "postgres pool_size must be between 1 and 100");
  }
  auto pool = std::make_unique<Pool>(options);
  LEYR_ASSIGN_OR_RETURN(PGconn * conn, pool->Connect());
  absl::Status migrated = Migrate(conn);
  PQfinish(conn);
  LEYR_RETURN_IF_ERROR(migrated);
  Sealer* sealer = options.sealer;
  return std::unique_ptr<PostgresStore>(new PostgresStore(std::move(pool), clock, sealer));
}

PostgresStore::PostgresStore(std::unique_ptr<Pool> pool, Clock* clock, Sealer* sealer)
    : pool_(std::move(pool)), clock_(clock), sealer_(sealer) {}

PostgresStore::~PostgresStore() = default;

absl::Status PostgresStore::DropSchemaForTesting() {
  LEYR_ASSIGN_OR_RETURN(PGconn * conn, pool_->Connect());
  absl::Status s =
      ExecSimple(conn, "DROP TABLE IF EXISTS leyr_authorizations, leyr_schema_migrations");
  PQfinish(conn);
  return s;
}

namespace {

// Reads row `row` of `r` (columns in Columns() order) into a record, opening the code.
absl::StatusOr<AuthorizationRecord> ReadRecord(const PGresult* r, int row, Sealer* sealer) {
  AuthorizationRecord rec;
  auto text = [&](int col) -> std::string {
    return PQgetisnull(r, row, col) ? std::string() : std::string(PQgetvalue(r, row, col));
  };
  auto number = [&](int col) -> int64_t {
    int64_t v = 0;
    (void)absl::SimpleAtoi(text(col), &v);
    return v;
  };
  rec.id = text(0);
  rec.connection = text(1);
  rec.emr = text(2);
  rec.state = static_cast<AuthState>(number(3));
  LEYR_ASSIGN_OR_RETURN(rec.labels, LabelsFromJson(PQgetvalue(r, row, 4)));
  rec.return_uri = text(5);
  rec.owner = text(6);
  rec.create_time = absl::FromUnixNanos(number(7));
  rec.update_time = absl::FromUnixNanos(number(8));
  rec.expire_time = absl::FromUnixNanos(number(9));
  if (!PQgetisnull(r, row, 10)) {
    std::string sealed = DecodeBytea(PQgetvalue(r, row, 10));
    if (sealer != nullptr) {
      auto opened = sealer->Open(sealed, rec.id);
      if (!opened.ok()) {
        LEYR_LOG(Error, "store_unseal_failed")
            .Field("store", "postgres")
            .Field("authorization", rec.id)
            .Field("detail", std::string(opened.status().message()));
        return Internal("a sealed code could not be opened");
      }
      rec.code = std::move(*opened);
    } else {
      rec.code = std::move(sealed);
    }
  }
  rec.denial_error = text(11);
  rec.denial_description = text(12);
  rec.activated = text(13) == "t";
  return rec;
}

}  // namespace

absl::Status PostgresStore::Insert(const AuthorizationRecord& record,
                                   const std::string& state_hash) {
  Param code = Null();
  if (!record.code.empty()) {
    if (sealer_ != nullptr) {
      LEYR_ASSIGN_OR_RETURN(std::string sealed, sealer_->Seal(record.code, record.id));
      code = Bytes(std::move(sealed));
    } else {
      code = Bytes(record.code);
    }
  }
  return pool_
      ->Exec("insert",
             {Text(record.id), Bytes(state_hash), Text(record.connection), Text(record.emr),
              Int(record.state), Text(LabelsToJson(record.labels)), Text(record.return_uri),
              Text(record.owner), Int(Nanos(record.create_time)), Int(Nanos(record.update_time)),
              Int(Nanos(record.expire_time)), code, Text(record.denial_error),
              Text(record.denial_description), Bool(record.activated)},
             /*retry=*/false)
      .status();
}

absl::StatusOr<AuthorizationRecord> PostgresStore::Get(absl::string_view id) {
  const int64_t now = Nanos(clock_->Now());
  LEYR_ASSIGN_OR_RETURN(Result r,
                        pool_->Exec("get", {Text(std::string(id)), Int(now)}, /*retry=*/true));
  if (PQntuples(r.get()) == 0) {
    return MakeError(absl::StatusCode::kNotFound, reason::kAuthorizationNotFound,
                     "authorization not found");
  }
  return ReadRecord(r.get(), 0, sealer_);
}

absl::StatusOr<AuthorizationRecord> PostgresStore::Complete(const std::string& state_hash,
                                                            const Completion& completion) {
  const absl::Time now = clock_->Now();
  auto not_found = [] {
    return MakeError(absl::StatusCode::kNotFound, reason::kStateNotFound,
                     "the state parameter is unknown");
  };
  auto already_used = [] {
    return MakeError(absl::StatusCode::kFailedPrecondition, reason::kStateAlreadyUsed,
                     "the state parameter was already used");
  };
  // The id is needed first: it is the code's sealing aad. A state hash always names the same id.
  LEYR_ASSIGN_OR_RETURN(Result found,
                        pool_->Exec("state_lookup", {Bytes(state_hash)}, /*retry=*/true));
  if (PQntuples(found.get()) == 0) return not_found();
  const std::string id = PQgetvalue(found.get(), 0, 0);
  if (std::string(PQgetvalue(found.get(), 0, 1)) == "t") return already_used();

  const bool granted = !completion.code.empty();
  Param code = Null();
  if (granted) {
    if (sealer_ != nullptr) {
      LEYR_ASSIGN_OR_RETURN(std::string sealed, sealer_->Seal(completion.code, id));
      code = Bytes(std::move(sealed));
    } else {
      code = Bytes(completion.code);
    }
  }
  const AuthState to = granted ? Authorization::STATE_ACTIVE : Authorization::STATE_DENIED;
  LEYR_ASSIGN_OR_RETURN(
      Result r, pool_->Exec("complete",
                            {Bytes(state_hash), Int(Nanos(now)), Int(to), code,
                             Text(granted ? "" : completion.error),
                             Text(granted ? "" : completion.error_description), Text(id)},
                            /*retry=*/false));
  if (PQntuples(r.get()) == 0) {
    // Another completion won, or the record was swept in between.
    LEYR_ASSIGN_OR_RETURN(Result again,
                          pool_->Exec("state_lookup", {Bytes(state_hash)}, /*retry=*/true));
    if (PQntuples(again.get()) == 0) return not_found();
    return already_used();
  }
  int64_t old_state = 0;
  int64_t old_expire = 0;
  (void)absl::SimpleAtoi(PQgetvalue(r.get(), 0, kColumnCount), &old_state);
  (void)absl::SimpleAtoi(PQgetvalue(r.get(), 0, kColumnCount + 1), &old_expire);
  if (old_state == Authorization::STATE_PENDING && Nanos(now) >= old_expire) {
    return MakeError(absl::StatusCode::kFailedPrecondition, reason::kAuthorizationExpired,
                     "the authorization expired before the callback arrived");
  }
  if (old_state != Authorization::STATE_PENDING) {
    return MakeError(absl::StatusCode::kFailedPrecondition, reason::kAuthorizationNotActive,
                     "the authorization was revoked before the callback arrived");
  }
  return ReadRecord(r.get(), 0, sealer_);
}

absl::StatusOr<AuthorizationRecord> PostgresStore::Update(absl::string_view id,
                                                          const Transition& transition) {
  const int64_t now = Nanos(clock_->Now());
  std::vector<std::string> from;
  for (AuthState s : transition.from) from.push_back(absl::StrCat(static_cast<int>(s)));
  LEYR_ASSIGN_OR_RETURN(
      Result r,
      pool_->Exec("update",
                  {Text(std::string(id)), Int(now),
                   Text(absl::StrCat("{", absl::StrJoin(from, ","), "}")),
                   transition.to ? Int(*transition.to) : Null(),
                   transition.activated ? Bool(*transition.activated) : Null(),
                   Bool(transition.clear_code)},
                  /*retry=*/false));
  if (PQntuples(r.get()) == 0) {
    LEYR_ASSIGN_OR_RETURN(Result exists,
                          pool_->Exec("exists", {Text(std::string(id))}, /*retry=*/true));
    if (PQntuples(exists.get()) == 0) {
      return MakeError(absl::StatusCode::kNotFound, reason::kAuthorizationNotFound,
                       "authorization not found");
    }
    return MakeError(absl::StatusCode::kFailedPrecondition, reason::kAuthorizationNotActive,
                     "the authorization is not in a state that allows this change");
  }
  return ReadRecord(r.get(), 0, sealer_);
}

absl::StatusOr<std::vector<AuthorizationRecord>> PostgresStore::List(const ListQuery& query) {
  const int64_t now = Nanos(clock_->Now());
  std::vector<Param> params = {Int(now), Text(query.connection), Text(query.owner)};
  if (query.after) {
    params.push_back(Int(Nanos(query.after->first)));
    params.push_back(Text(query.after->second));
  } else {
    params.push_back(Null());
    params.push_back(Null());
  }
  params.push_back(query.page_size >= 0 ? Int(query.page_size) : Null());  // NULL: no limit
  LEYR_ASSIGN_OR_RETURN(Result r, pool_->Exec("list", params, /*retry=*/true));
  std::vector<AuthorizationRecord> out;
  out.reserve(PQntuples(r.get()));
  for (int i = 0; i < PQntuples(r.get()); ++i) {
    LEYR_ASSIGN_OR_RETURN(AuthorizationRecord rec, ReadRecord(r.get(), i, sealer_));
    out.push_back(std::move(rec));
  }
  return out;
}

absl::StatusOr<int> PostgresStore::Sweep(absl::Time cutoff) {
  const int64_t now = Nanos(clock_->Now());
  LEYR_ASSIGN_OR_RETURN(Result r,
                        pool_->Exec("sweep", {Int(now), Int(Nanos(cutoff))}, /*retry=*/true));
  int removed = 0;
  (void)absl::SimpleAtoi(PQcmdTuples(r.get()), &removed);
  return removed;
}

absl::StatusOr<std::map<AuthState, int64_t>> PostgresStore::CountByState() {
  LEYR_ASSIGN_OR_RETURN(Result r, pool_->Exec("count_by_state", {Int(Nanos(clock_->Now()))},
                                              /*retry=*/true));
  std::map<AuthState, int64_t> counts;
  for (int i = 0; i < PQntuples(r.get()); ++i) {
    int state = 0;
    int64_t count = 0;
    if (!absl::SimpleAtoi(PQgetvalue(r.get(), i, 0), &state) ||
        !absl::SimpleAtoi(PQgetvalue(r.get(), i, 1), &count) ||
        !broker::v1::Authorization::State_IsValid(state)) {
      return Internal("unexpected state count row");
    }
    counts[static_cast<AuthState>(state)] = count;
  }
  return counts;
}

}  // namespace leyr
