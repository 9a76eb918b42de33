#include "server/http/http_server.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>
#include <thread>
#include <unordered_map>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "server/common/log.h"
#include "server/common/status_util.h"

namespace leyr {

std::string HttpRequest::Header(absl::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (absl::EqualsIgnoreCase(key, name)) return value;
  }
  return "";
}

size_t HttpRequest::QueryCount(absl::string_view name) const {
  size_t n = 0;
  for (const auto& [key, value] : query) {
    if (key == name) ++n;
  }
  return n;
}

std::string HttpRequest::QueryValue(absl::string_view name) const {
  for (const auto& [key, value] : query) {
    if (key == name) return value;
  }
  return "";
}

namespace {

// A parsed listen address.
struct ListenAddress {
  bool ipv6 = false;
  std::string host;  // without brackets
  int port = 0;
  sockaddr_storage addr{};
};

absl::StatusOr<ListenAddress> ParseListen(absl::string_view text) {
  ListenAddress out;
  absl::string_view host, port;
  if (absl::StartsWith(text, "[")) {
    size_t close = text.find(']');
    if (close == absl::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return absl::InvalidArgumentError("listen address must look like [::1]:PORT");
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
    out.ipv6 = true;
  } else {
    size_t colon = text.rfind(':');
    if (colon == absl::string_view::npos) {
      return absl::InvalidArgumentError("listen address must look like HOST:PORT");
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != absl::string_view::npos) {
      return absl::InvalidArgumentError("an IPv6 listen address must be in brackets: [::1]:PORT");
    }
  }
  int port_number = 0;
  if (!absl::SimpleAtoi(port, &port_number) || port_number < 0 || port_number > 65535) {
    return absl::InvalidArgumentError("listen port must be a number from 0 to 65535");
  }
  out.port = port_number;
  out.host = std::string(host);
  if (out.host == "localhost") out.host = "127.0.0.1";
  if (out.ipv6) {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&out.addr);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(static_cast<uint16_t>(port_number));
    if (inet_pton(AF_INET6, out.host.c_str(), &sin6->sin6_addr) != 1) {
      return absl::InvalidArgumentError("listen host is not an IPv6 address");
    }
  } else {
    auto* sin = reinterpret_cast<sockaddr_in*>(&out.addr);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(static_cast<uint16_t>(port_number));
    if (inet_pton(AF_INET, out.host.c_str(), &sin->sin_addr) != 1) {
      return absl::InvalidArgumentError("listen host must be an IPv4 address, localhost, or [IPv6]");
    }
  }
  return out;
}

std::string FormatPeer(const sockaddr* sa) {
  if (sa == nullptr) return "";
  char buf[INET6_ADDRSTRLEN] = {0};
  if (sa->sa_family == AF_INET) {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(sa);
    inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf));
    return absl::StrCat(buf, ":", ntohs(sin->sin_port));
  }
  if (sa->sa_family == AF_INET6) {
    const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(sa);
    inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof(buf));
    return absl::StrCat("[", buf, "]:", ntohs(sin6->sin6_port));
  }
  return "";
}

struct Exchange;

// State shared by the server and every outstanding responder; outlives the server object so
// that a late responder never touches freed memory.
struct Shared {
  absl::Mutex mu;
  // Exchanges handed to the handler whose response has not been sent yet (removed when
  // libmicrohttpd reports the request complete).
  std::map<Exchange*, std::shared_ptr<Exchange>> in_flight ABSL_GUARDED_BY(mu);
  // Set by Stop() once it starts forcing answers: no connection may be suspended after it.
  bool forcing ABSL_GUARDED_BY(mu) = false;
};

// One request/response exchange. Owned jointly by the connection (MHD's con_cls) and the
// responder, so either may go first.
struct Exchange {
  std::shared_ptr<Shared> shared;

  // Touched only by the MHD thread that owns the connection.
  HttpRequest request;
  bool too_large = false;
  size_t discarded = 0;
  bool dispatched = false;

  absl::Mutex mu;
  MHD_Connection* conn ABSL_GUARDED_BY(mu) = nullptr;  // valid while suspended
  bool suspended ABSL_GUARDED_BY(mu) = false;
  bool responded ABSL_GUARDED_BY(mu) = false;
  bool closed ABSL_GUARDED_BY(mu) = false;  // MHD is done with the connection
  std::optional<HttpResponse> response ABSL_GUARDED_BY(mu);

  // Stores the response; resumes the connection when it waits. Later calls are ignored.
  void Respond(HttpResponse r) {
    absl::MutexLock lock(&mu);
    if (responded) return;
    responded = true;
    if (closed) return;  // the client went away or the server stopped: drop it
    response = std::move(r);
    if (suspended) {
      suspended = false;
      // Safe: a suspended connection is only freed after it is resumed, and only the
      // holder of `mu` that flips `suspended` resumes it.
      MHD_resume_connection(conn);
    }
  }
};

// Calls Respond with a 500 if the handler drops its responder without calling it.
struct ResponderGuard {
  std::shared_ptr<Exchange> exchange;
  ~ResponderGuard() {
    HttpResponse r;
    r.status = 500;
    r.headers = {{"Content-Type", "text/plain; charset=utf-8"}};
    r.body = "internal error\n";
    exchange->Respond(std::move(r));
  }
};

HttpResponse ShuttingDown() {
  HttpResponse r;
  r.status = 503;
  r.headers = {{"Content-Type", "text/plain; charset=utf-8"}};
  r.body = "server shutting down\n";
  return r;
}

MHD_Result Queue(MHD_Connection* conn, const HttpResponse& r) {
  MHD_Response* response = MHD_create_response_from_buffer(
      r.body.size(), const_cast<char*>(r.body.data()), MHD_RESPMEM_MUST_COPY);
  if (response == nullptr) return MHD_NO;
  for (const auto& [key, value] : r.headers) {
    if (absl::EqualsIgnoreCase(key, "content-length")) continue;
    MHD_add_response_header(response, key.c_str(), value.c_str());
  }
  MHD_Result result = MHD_queue_response(conn, static_cast<unsigned int>(r.status), response);
  MHD_destroy_response(response);
  return result;
}

MHD_Result CollectHeader(void* cls, MHD_ValueKind, const char* key, size_t key_size,
                         const char* value, size_t value_size) {
  auto* fields = static_cast<HttpFields*>(cls);
  std::string name(key, key_size);
  absl::AsciiStrToLower(&name);
  fields->emplace_back(std::move(name), value ? std::string(value, value_size) : "");
  return MHD_YES;
}

MHD_Result CollectArgument(void* cls, MHD_ValueKind, const char* key, size_t key_size,
                           const char* value, size_t value_size) {
  auto* fields = static_cast<HttpFields*>(cls);
  fields->emplace_back(std::string(key, key_size),
                       value ? std::string(value, value_size) : "");
  return MHD_YES;
}

void MhdLogger(void*, const char* fmt, va_list ap) {
  char buf[512];
  vsnprintf(buf, sizeof(buf), fmt, ap);
  std::string text(buf);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  LEYR_LOG(Debug, "http server").Field("detail", text);
}

class MhdHttpServer final : public HttpServer {
 public:
  MhdHttpServer(const HttpServerOptions& options, HttpHandler handler)
      : options_(options), handler_(std::move(handler)), shared_(std::make_shared<Shared>()) {
    too_large_ = options.too_large_response;
    too_large_.status = 413;
    // Bodies over the limit are read and dropped up to this much, so the client reads a clean
    // 413; beyond it the connection is closed.
    discard_limit_ = std::max<size_t>(64 * 1024, options.max_body_bytes);
  }

  ~MhdHttpServer() override { Stop(); }

  absl::Status Init() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    LEYR_ASSIGN_OR_RETURN(ListenAddress listen, ParseListen(options_.listen));
    unsigned int flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME |
                         MHD_USE_ERROR_LOG;
    if (listen.ipv6) flags |= MHD_USE_IPv6;
    unsigned int timeout_s = static_cast<unsigned int>(
        std::max<int64_t>(1, absl::ToInt64Seconds(options_.read_timeout + absl::Milliseconds(999))));
    unsigned int threads = static_cast<unsigned int>(std::max(1, options_.threads));
    unsigned int max_conn = static_cast<unsigned int>(std::max(1, options_.max_connections));
    MHD_OptionItem ops[] = {
        {MHD_OPTION_SOCK_ADDR, 0, &listen.addr},
        {MHD_OPTION_CONNECTION_TIMEOUT, timeout_s, nullptr},
        // libmicrohttpd divides its limit among the pool's threads, and a thread that has
        // accepted its share refuses more even while others are idle; so each thread may hold
        // the whole limit and Accept() below enforces it across threads.
        {MHD_OPTION_CONNECTION_LIMIT, max_conn * threads, nullptr},
        {MHD_OPTION_THREAD_POOL_SIZE, threads > 1 ? threads : 0, nullptr},
        {MHD_OPTION_END, 0, nullptr},
    };
    if (threads <= 1) ops[3].option = MHD_OPTION_END;
    // HTTPS: libmicrohttpd copies neither string, so they live in options_ until Stop.
    const bool tls = !options_.tls_cert_pem.empty() || !options_.tls_key_pem.empty();
    MHD_OptionItem tls_ops[] = {
        {MHD_OPTION_HTTPS_MEM_CERT, 0, const_cast<char*>(options_.tls_cert_pem.c_str())},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, const_cast<char*>(options_.tls_key_pem.c_str())},
        {MHD_OPTION_END, 0, nullptr},
    };
    if (tls) {
      if (options_.tls_cert_pem.empty() || options_.tls_key_pem.empty()) {
        return absl::InvalidArgumentError("HTTPS needs both a certificate and a key");
      }
      if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
        return absl::UnimplementedError("this libmicrohttpd is built without TLS");
      }
      flags |= MHD_USE_TLS;
    } else {
      tls_ops[0].option = MHD_OPTION_END;
    }
    daemon_ = MHD_start_daemon(
        flags, static_cast<uint16_t>(listen.port), &MhdHttpServer::Accept, this,
        &MhdHttpServer::Access, this,
        MHD_OPTION_EXTERNAL_LOGGER, &MhdLogger, nullptr,
        MHD_OPTION_NOTIFY_COMPLETED, &MhdHttpServer::Completed, this,
        MHD_OPTION_NOTIFY_CONNECTION, &MhdHttpServer::ConnectionEvent, this,
        MHD_OPTION_ARRAY, ops, MHD_OPTION_ARRAY, tls_ops, MHD_OPTION_END);
    if (daemon_ == nullptr) {
      return absl::UnavailableError(
          absl::StrCat("could not listen on ", options_.listen, ": ", std::strerror(errno)));
    }
    watchdog_ = std::thread([this] { Watch(); });
    const MHD_DaemonInfo* info = MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_BIND_PORT);
    port_ = info != nullptr ? info->port : listen.port;
    address_ = listen.ipv6 ? absl::StrCat("[", listen.host, "]:", port_)
                           : absl::StrCat(listen.host, ":", port_);
    return absl::OkStatus();
  }

  int port() const override { return port_; }
  std::string address() const override { return address_; }

  void Stop() override {
    absl::MutexLock stop_lock(&stop_mu_);
    if (daemon_ == nullptr) return;
    // Stop accepting; in-flight exchanges go on.
    MHD_socket listen_fd = MHD_quiesce_daemon(daemon_);
    Shared& shared = *shared_;
    auto drained = [&shared]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(shared.mu) {
      return shared.in_flight.empty();
    };
    // Give exchanges in progress a chance to be answered and sent.
    std::map<Exchange*, std::shared_ptr<Exchange>> rest;
    {
      absl::MutexLock lock(&shared.mu);
      shared.mu.AwaitWithTimeout(absl::Condition(&drained), options_.stop_grace);
      shared.forcing = true;
      rest = shared.in_flight;
    }
    // Answer the rest with 503 so that no connection stays suspended (libmicrohttpd refuses
    // to stop with suspended connections), and give those answers a moment to go out.
    for (auto& [ptr, ex] : rest) ex->Respond(ShuttingDown());
    rest.clear();
    {
      absl::MutexLock lock(&shared.mu);
      shared.mu.AwaitWithTimeout(absl::Condition(&drained), absl::Seconds(1));
    }
    MHD_stop_daemon(daemon_);
    daemon_ = nullptr;
    if (listen_fd != MHD_INVALID_SOCKET) close(listen_fd);
    {
      absl::MutexLock lock(&watch_mu_);
      watch_stop_ = true;
    }
    if (watchdog_.joinable()) watchdog_.join();
  }

 private:
  static MHD_Result Access(void* cls, MHD_Connection* conn, const char* url, const char* method,
                           const char* version, const char* upload_data,
                           size_t* upload_data_size, void** con_cls) {
    return static_cast<MhdHttpServer*>(cls)->OnAccess(conn, url, method, upload_data,
                                                      upload_data_size, con_cls);
  }

  // What the request-timeout watchdog knows of one open connection.
  struct Watched {
    int fd = -1;
    bool receiving = true;  // between opening (or an answer) and a whole request
    absl::Time since;       // when `receiving` last became true
    bool closed_by_us = false;
  };

  // Refuses a connection while max_connections are open. Two threads accepting at the same
  // instant may both pass, so the limit can be exceeded by at most threads - 1.
  static MHD_Result Accept(void* cls, const sockaddr*, socklen_t) {
    auto* self = static_cast<MhdHttpServer*>(cls);
    absl::MutexLock lock(&self->watch_mu_);
    return self->watched_.size() < static_cast<size_t>(std::max(1, self->options_.max_connections))
               ? MHD_YES
               : MHD_NO;
  }

  static void ConnectionEvent(void* cls, MHD_Connection* conn, void**,
                              MHD_ConnectionNotificationCode code) {
    auto* self = static_cast<MhdHttpServer*>(cls);
    absl::MutexLock lock(&self->watch_mu_);
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
      const MHD_ConnectionInfo* info =
          MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
      if (info == nullptr) return;
      self->watched_[conn] = Watched{info->connect_fd, true, absl::Now(), false};
    } else {
      // libmicrohttpd tells of the close before it closes the socket, so no fd in watched_
      // can belong to another connection.
      self->watched_.erase(conn);
    }
  }

  // Marks the connection as having a whole request (true) or waiting for the next (false).
  void SetReceiving(MHD_Connection* conn, bool receiving) {
    absl::MutexLock lock(&watch_mu_);
    auto it = watched_.find(conn);
    if (it == watched_.end()) return;
    it->second.receiving = receiving;
    it->second.since = absl::Now();
  }

  // Closes, from outside libmicrohttpd's threads, connections that took longer than
  // request_timeout to send a request: shutdown() makes the event loop see the end of the
  // stream and clean the connection up on its own thread.
  void Watch() {
    const absl::Duration timeout = std::max(options_.request_timeout, absl::Milliseconds(1));
    const absl::Duration tick =
        std::clamp(timeout / 4, absl::Milliseconds(20), absl::Seconds(1));
    absl::MutexLock lock(&watch_mu_);
    auto stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(watch_mu_) { return watch_stop_; };
    while (!watch_mu_.AwaitWithTimeout(absl::Condition(&stop), tick)) {
      const absl::Time now = absl::Now();
      for (auto& [conn, w] : watched_) {
        if (!w.receiving || w.closed_by_us || now - w.since < timeout) continue;
        w.closed_by_us = true;
        LEYR_LOG(Info, "request_timeout")
            .Field("detail", "closing a connection that did not send a whole request in time");
        shutdown(w.fd, SHUT_RDWR);
      }
    }
  }

  static void Completed(void* cls, MHD_Connection* conn, void** con_cls,
                        MHD_RequestTerminationCode) {
    static_cast<MhdHttpServer*>(cls)->SetReceiving(conn, true);
    auto* holder = static_cast<std::shared_ptr<Exchange>*>(*con_cls);
    if (holder == nullptr) return;
    Exchange* ex = holder->get();
    {
      absl::MutexLock lock(&ex->mu);
      ex->closed = true;
      ex->conn = nullptr;
    }
    {
      absl::MutexLock lock(&ex->shared->mu);
      ex->shared->in_flight.erase(ex);
    }
    delete holder;
    *con_cls = nullptr;
  }

  MHD_Result OnAccess(MHD_Connection* conn, const char* url, const char* method,
                      const char* upload_data, size_t* upload_data_size, void** con_cls) {
    auto* holder = static_cast<std::shared_ptr<Exchange>*>(*con_cls);
    if (holder == nullptr) {
      auto ex = std::make_shared<Exchange>();
      ex->shared = shared_;
      HttpRequest& r = ex->request;
      r.method = method;
      r.path = url;
      MHD_get_connection_values_n(conn, MHD_HEADER_KIND, &CollectHeader, &r.headers);
      MHD_get_connection_values_n(conn, MHD_GET_ARGUMENT_KIND, &CollectArgument, &r.query);
      const MHD_ConnectionInfo* ci =
          MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
      if (ci != nullptr) r.peer = FormatPeer(ci->client_addr);
      std::string length_text = r.Header("content-length");
      uint64_t length = 0;
      if (!length_text.empty() && absl::SimpleAtoi(length_text, &length) &&
          length > options_.max_body_bytes) {
        ex->too_large = true;
        if (length - options_.max_body_bytes > discard_limit_) {
          SetReceiving(conn, false);
          return TooLarge(conn, ex->request);
        }
      }
      *con_cls = new std::shared_ptr<Exchange>(std::move(ex));
      return MHD_YES;
    }
    Exchange& ex = **holder;
    if (*upload_data_size != 0) {
      size_t n = *upload_data_size;
      *upload_data_size = 0;
      if (!ex.too_large && ex.request.body.size() + n <= options_.max_body_bytes) {
        ex.request.body.append(upload_data, n);
        return MHD_YES;
      }
      if (!ex.too_large) {
        ex.too_large = true;
        ex.discarded = ex.request.body.size();
        std::string().swap(ex.request.body);
      }
      ex.discarded += n;
      // Past the discard allowance, close the connection instead of reading on. (`discarded`
      // may still be below max_body_bytes when a declared length was too large.)
      return ex.discarded > options_.max_body_bytes + discard_limit_ ? MHD_NO : MHD_YES;
    }
    SetReceiving(conn, false);  // the whole request is in; the answer may take its time
    if (ex.too_large) return TooLarge(conn, ex.request);
    if (ex.dispatched) {
      // Called again after a resume: send the stored response.
      absl::MutexLock lock(&ex.mu);
      if (ex.response.has_value()) return Queue(conn, *ex.response);
      return MHD_NO;  // cannot happen: resumed without a response
    }
    ex.dispatched = true;
    std::shared_ptr<Exchange> self = *holder;
    {
      absl::MutexLock lock(&shared_->mu);
      shared_->in_flight.emplace(&ex, self);
    }
    {
      auto guard = std::make_shared<ResponderGuard>();
      guard->exchange = self;
      HttpResponder respond = [guard](HttpResponse r) { guard->exchange->Respond(std::move(r)); };
      handler_(std::move(ex.request), std::move(respond));
    }
    absl::MutexLock lock(&ex.mu);
    if (ex.response.has_value()) return Queue(conn, *ex.response);
    {
      // Stop() may already have answered everything in flight: never suspend after that.
      absl::MutexLock shared_lock(&shared_->mu);
      if (shared_->forcing) {
        ex.responded = true;
        return Queue(conn, ShuttingDown());
      }
    }
    ex.conn = conn;
    ex.suspended = true;
    MHD_suspend_connection(conn);
    return MHD_YES;
  }

  MHD_Result TooLarge(MHD_Connection* conn, const HttpRequest& request) {
    if (options_.on_too_large) options_.on_too_large(request);
    return Queue(conn, too_large_);
  }

  const HttpServerOptions options_;
  const HttpHandler handler_;
  std::shared_ptr<Shared> shared_;
  HttpResponse too_large_;
  size_t discard_limit_ = 0;
  absl::Mutex stop_mu_;
  MHD_Daemon* daemon_ ABSL_GUARDED_BY(stop_mu_) = nullptr;
  int port_ = 0;
  std::string address_;

  absl::Mutex watch_mu_;
  std::unordered_map<MHD_Connection*, Watched> watched_ ABSL_GUARDED_BY(watch_mu_);
  bool watch_stop_ ABSL_GUARDED_BY(watch_mu_) = false;
  std::thread watchdog_;
};

}  // namespace

absl::Status ValidateListenAddress(absl::string_view listen) {
  return ParseListen(listen).status();
}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const HttpServerOptions& options,
                                                              HttpHandler handler) {
  if (!handler) return absl::InvalidArgumentError("an HTTP handler is required");
  auto server = std::make_unique<MhdHttpServer>(options, std::move(handler));
  absl::Status status = server->Init();
  if (!status.ok()) return status;
  return std::unique_ptr<HttpServer>(std::move(server));
}

}  // namespace leyr
