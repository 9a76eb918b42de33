#include "server/broker/pg_events.h"

#include <poll.h>
#include <unistd.h>

#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/broker/pg_connection.h"
#include "server/common/log.h"

namespace leyr {
namespace {

std::string RandomInstance() {
  std::random_device rd;
  return absl::StrFormat("%08x%08x", rd(), rd());
}

}  // namespace

PostgresEventBridge::PostgresEventBridge(const PostgresOptions& options,
                                         AuthorizationEvents* events)
    : options_(options), events_(events), instance_(RandomInstance()) {
  if (pipe(wake_) != 0) wake_[0] = wake_[1] = -1;
  events_->SetPublisher([this](absl::string_view id) { Publish(id); });
  listener_ = std::thread([this] { ListenLoop(); });
  publisher_ = std::thread([this] { PublishLoop(); });
}

PostgresEventBridge::~PostgresEventBridge() {
  Stop();
  if (wake_[0] >= 0) close(wake_[0]);
  if (wake_[1] >= 0) close(wake_[1]);
}

void PostgresEventBridge::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  if (wake_[1] >= 0) (void)!write(wake_[1], "x", 1);
  if (listener_.joinable()) listener_.join();
  if (publisher_.joinable()) publisher_.join();
}

bool PostgresEventBridge::listening() {
  absl::MutexLock lock(&mu_);
  return listening_;
}

void PostgresEventBridge::Publish(absl::string_view id) {
  absl::MutexLock lock(&mu_);
  if (stopping_ || outbox_.size() > 10000) return;  // bounded: waiters have their own timers
  outbox_.emplace_back(id);
}

bool PostgresEventBridge::Pause(absl::Duration d) {
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(&stopping_), d);
  return !stopping_;
}

void PostgresEventBridge::PublishLoop() {
  PGconn* conn = nullptr;
  for (;;) {
    std::string id;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
        return stopping_ || !outbox_.empty();
      };
      mu_.Await(absl::Condition(&ready));
      if (stopping_) break;
      id = std::move(outbox_.front());
      outbox_.pop_front();
    }
    const std::string payload = absl::StrCat(instance_, ":", id);
    for (int attempt = 0; attempt < 2; ++attempt) {
      if (conn == nullptr) {
        auto opened = ConnectPostgres(options_);
        if (!opened.ok()) break;
        conn = *opened;
      }
      const char* values[] = {kChannel, payload.c_str()};
      PGresult* r = PQexecParams(conn, "SELECT pg_notify($1, $2)", 2, nullptr, values, nullptr,
                                 nullptr, 0);
      const bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
      PQclear(r);
      if (ok) break;
      PQfinish(conn);
      conn = nullptr;
    }
  }
  if (conn != nullptr) PQfinish(conn);
}

void PostgresEventBridge::ListenLoop() {
  PGconn* conn = nullptr;
  bool ever_listened = false;
  auto set_listening = [this](bool v) {
    absl::MutexLock lock(&mu_);
    listening_ = v;
  };
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) break;
    }
    if (conn == nullptr) {
      auto opened = ConnectPostgres(options_);
      if (!opened.ok()) {
        if (!Pause(absl::Seconds(1))) break;
        continue;
      }
      conn = *opened;
      PGresult* r = PQexec(conn, absl::StrCat("LISTEN ", kChannel).c_str());
      const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
      PQclear(r);
      if (!ok) {
        PQfinish(conn);
        conn = nullptr;
        if (!Pause(absl::Seconds(1))) break;
        continue;
      }
      set_listening(true);
      LEYR_LOG(Info, "store_listening").Field("store", "postgres").Field("channel", kChannel);
      // Changes made while we were not listening were not announced to us: re-check them all.
      if (ever_listened) events_->NotifyAllLocal();
      ever_listened = true;
    }
    pollfd fds[2] = {{PQsocket(conn), POLLIN, 0}, {wake_[0], POLLIN, 0}};
    if (poll(fds, wake_[0] >= 0 ? 2 : 1, wake_[0] >= 0 ? -1 : 1000) < 0) continue;
    if (fds[1].revents != 0) break;  // Stop()
    if (PQconsumeInput(conn) == 0 || PQstatus(conn) != CONNECTION_OK) {
      LEYR_LOG(Warn, "store_listen_lost").Field("store", "postgres");
      set_listening(false);
      PQfinish(conn);
      conn = nullptr;
      continue;
    }
    while (PGnotify* n = PQnotifies(conn)) {
      absl::string_view payload(n->extra);
      size_t colon = payload.find(':');
      if (colon != absl::string_view::npos && payload.substr(0, colon) != instance_) {
        events_->NotifyLocal(payload.substr(colon + 1));
      }
      PQfreemem(n);
    }
  }
  set_listening(false);
  if (conn != nullptr) PQfinish(conn);
}

}  // namespace leyr
