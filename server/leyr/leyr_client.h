#ifndef LEYR_SERVER_LEYR_LEYR_CLIENT_H_
#define LEYR_SERVER_LEYR_LEYR_CLIENT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/common/url.h"
#include "server/http/http_server.h"

namespace leyr {

// One request to Leyr, already validated (see call_policy.h).
struct LeyrRequest {
  std::string method;   // "GET", "POST", ...
  std::string path;     // "/api/emrs/athenapractice/care-units", no query
  FormFields query;     // encoded by the client
  HttpFields headers;   // the caller's headers (never x-leyr-*, host, ...)
  std::string body;
  std::string code;     // athena code, sent as x-leyr-emr-oauth-code; never logged
  absl::Time deadline = absl::InfiniteFuture();  // the caller's deadline
};

struct LeyrResponse {
  int status_code = 0;
  HttpFields headers;  // lower-case names; hop-by-hop, set-cookie, x-leyr-client-*/emr-oauth-code
                       // removed; values UTF-8 (others read as ISO-8859-1)
  std::string body;
  bool new_connection = false;  // true when this transfer had to open a new connection
};

// Called exactly once, on the client's event-loop thread; must not block. (Only a Send that
// races with the client's destruction is answered, SHUTTING_DOWN, on the caller's thread.)
using LeyrCallback = std::function<void(absl::StatusOr<LeyrResponse>)>;

// Counters of a client since it was created, for metrics and benchmarks.
struct LeyrClientStats {
  int64_t requests_started = 0;     // transfers handed to the network
  int64_t requests_completed = 0;   // callbacks called (any outcome)
  int64_t connections_opened = 0;   // new TCP (or TLS) connections opened
};

// Sends requests to Leyr with the three x-leyr-* headers added. Asynchronous: no thread is
// blocked per request in flight.
class LeyrClient {
 public:
  virtual ~LeyrClient() = default;
  // Errors: UNAVAILABLE (reason LEYR_UNAVAILABLE) when Leyr cannot be reached,
  // DEADLINE_EXCEEDED (LEYR_TIMEOUT), RESOURCE_EXHAUSTED (LEYR_RESPONSE_TOO_LARGE).
  // Messages never contain the code or the secret.
  virtual void Send(LeyrRequest request, LeyrCallback done) = 0;
  // Counters; thread-safe. Implementations without counters return zeros.
  virtual LeyrClientStats Stats() const { return {}; }
};

struct CurlLeyrClientOptions {
  std::string base_uri;        // "https://api.leyr.io", no trailing slash needed
  std::string client_id;
  std::string client_secret;   // from a mounted file
  absl::Duration default_timeout = absl::Seconds(30);  // when the request has no deadline
  size_t max_response_bytes = 16 << 20;
  int max_idle_connections = 64;
  std::string ca_file;         // "" = the system's bundle
  std::string proxy;           // "" = no proxy; http_proxy and friends are always ignored
};

// A LeyrClient on libcurl's multi interface, driven by one event-loop thread.
// Connections are kept alive and reused; redirects are not followed; TLS is verified.
// The timeout of each request is min(deadline - now, default_timeout); a deadline already past
// fails with DEADLINE_EXCEEDED (LEYR_TIMEOUT) without sending anything. The destructor fails the
// requests not yet answered with UNAVAILABLE (SHUTTING_DOWN), on the event-loop thread, and joins
// it. Callbacks may call Send again. Stats().connections_opened counts new connections.
std::unique_ptr<LeyrClient> MakeCurlLeyrClient(const CurlLeyrClientOptions& options);

}  // namespace leyr

#endif  // LEYR_SERVER_LEYR_LEYR_CLIENT_H_
