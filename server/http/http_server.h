#ifndef LEYR_SERVER_HTTP_HTTP_SERVER_H_
#define LEYR_SERVER_HTTP_HTTP_SERVER_H_

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace leyr {

using HttpFields = std::vector<std::pair<std::string, std::string>>;

// One complete HTTP request, as libmicrohttpd parsed it.
struct HttpRequest {
  std::string method;      // "GET", "POST", ...
  std::string path;        // the decoded path, without the query
  HttpFields query;        // decoded query arguments, in order
  HttpFields headers;      // header names in lower case, in order
  std::string body;        // the whole body (at most HttpServerOptions::max_body_bytes)
  std::string peer;        // "ip:port" of the client

  // The first value of header `name` (case-insensitive), or "" when absent.
  std::string Header(absl::string_view name) const;
  // Number of query arguments named `name`, and the first value ("" when absent).
  size_t QueryCount(absl::string_view name) const;
  std::string QueryValue(absl::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  HttpFields headers;  // sent as given; Content-Length is set by the server
  std::string body;
};

// Called exactly once per request, from any thread, to send the response.
using HttpResponder = std::function<void(HttpResponse)>;
// Handles one request. May call `respond` before returning or later from another thread;
// the connection waits (suspended, no thread blocked) until it is called.
using HttpHandler = std::function<void(HttpRequest request, HttpResponder respond)>;

struct HttpServerOptions {
  // "127.0.0.1:0", "[::1]:8080", "0.0.0.0:8080". Port 0 picks a free port.
  std::string listen = "127.0.0.1:0";
  // Requests with a larger body get 413 without reaching the handler.
  size_t max_body_bytes = 16 * 1024;
  // A connection that sends nothing for this long is closed (libmicrohttpd's inactivity
  // timeout, so a client that trickles a byte now and then is not closed by it).
  absl::Duration read_timeout = absl::Seconds(10);
  // A connection that has not delivered a whole request (headers and body) this long after it
  // was opened, or after its previous answer, is closed, however slowly it trickles. The time
  // the handler takes to answer does not count.
  absl::Duration request_timeout = absl::Seconds(30);
  // Connections beyond this many open at once are refused (closed on accept), whichever
  // worker thread accepts them.
  int max_connections = 256;
  // Worker threads of the event loop (libmicrohttpd's thread pool).
  int threads = 2;
  // What a request whose body is over max_body_bytes gets (the status is always 413), so a
  // server can send its own page and headers.
  HttpResponse too_large_response = {
      413, {{"Content-Type", "text/plain; charset=utf-8"}}, "request body too large\n"};
  // Called (on a server thread, before the 413 is sent) for each request refused for its size;
  // the request has no body. Optional, for logging.
  std::function<void(const HttpRequest&)> on_too_large;
  // How long Stop() waits for suspended requests to be answered before answering them 503.
  absl::Duration stop_grace = absl::Seconds(5);
  // HTTPS: PEM certificate chain and private key (both or neither; libmicrohttpd with GnuTLS).
  // Read once at start.
  std::string tls_cert_pem;
  std::string tls_key_pem;
};

// Checks the syntax of a listen address ("127.0.0.1:0", "[::1]:8080", "0.0.0.0:8080",
// "localhost:0"), so that configuration can be validated before starting.
absl::Status ValidateListenAddress(absl::string_view listen);

// An HTTP/1.1 server on libmicrohttpd (epoll, suspend/resume for asynchronous handlers).
class HttpServer {
 public:
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const HttpServerOptions& options,
                                                           HttpHandler handler);
  virtual ~HttpServer() = default;
  // The port actually bound.
  virtual int port() const = 0;
  // "host:port" actually bound, for the "listening" log line.
  virtual std::string address() const = 0;
  // Stops accepting, waits for responses in progress, and stops the threads. Idempotent.
  virtual void Stop() = 0;
};

}  // namespace leyr

#endif  // LEYR_SERVER_HTTP_HTTP_SERVER_H_
