#ifndef LEYR_SERVER_SANDBOX_SANDBOX_H_
#define LEYR_SERVER_SANDBOX_SANDBOX_H_

// leyr-sandbox: a loopback stand-in for athena's authorize endpoint and for the Leyr API.
// Development and tests only, never production.
//
// Endpoints (all on one HTTP listener):
//   athena side
//     GET  /oauth2/authorize?client_id&redirect_uri&aud&response_type=code&scope&state
//          Each parameter exactly once. A bad one answers 400 with an HTML page naming it (and
//          the header X-Sandbox-Bad-Parameter). Success answers a consent page with two forms
//          that POST to the redirect URI: <form id="approve"> (code, state, id_token) and
//          <form id="deny"> (error=access_denied, error_description, state). With
//          "Accept: application/json" the same as JSON:
//          {"action", "approve": {"code","state","id_token"}, "deny": {"error",
//           "error_description","state"}}.
//   Leyr side, under /api/emrs/athenapractice/ (needs x-leyr-client-id, x-leyr-client-secret,
//   x-leyr-emr-oauth-code; errors are Leyr error JSON {"code","type","title","status","detail",
//   "instance","errors"})
//     GET  care-units, patients, patients/{id}, appointments[?date=YYYY-MM-DD]  sample JSON
//     ANY  echo[/...]  {"method","path","query":[{"name","value"}],"headers":{...},
//          "content_type","body"}; x-leyr-* headers are never echoed.
//   test and admin tools (loopback only)
//     GET  /sandbox/requests        {"count", "requests":[{"method","path","query","status",
//          "client_id_ok","client_secret_ok","code_ok"}]} for the Leyr-side requests so far
//     POST /sandbox/requests/reset  clears that list
//     POST /sandbox/codes/revoke    revokes every code issued so far
//     GET  /healthz                 200 "ok"

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/random/random.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "config/config.pb.h"
#include "server/common/clock.h"
#include "server/common/random.h"
#include "server/http/http_server.h"
#include "server/sandbox/scheduler.h"

namespace leyr::sandbox {

// The validated configuration.
struct SandboxOptions {
  // client_id -> the exact registered redirect URI.
  std::map<std::string, std::string> clients;
  std::vector<std::string> required_scopes;
  std::string leyr_client_id;
  std::string leyr_client_secret;
  absl::Duration code_lifetime = absl::Seconds(300);
  absl::Duration leyr_latency = absl::ZeroDuration();
  double leyr_failure_rate = 0;
  // The "aud" the authorize endpoint expects; empty until known (see SetPublicBaseUri).
  std::string public_base_uri;
};

// The EMR slug the Leyr side serves.
inline constexpr char kLeyrPrefix[] = "/api/emrs/athenapractice/";

// Validates `config` (errors name the key) and reads the secret file. `listen` and `log_level`
// are checked too but are the caller's to use.
absl::StatusOr<SandboxOptions> OptionsFromConfig(const config::SandboxConfig& config);

// Logic of the sandbox behind an HTTP server. Thread-safe.
class Sandbox {
 public:
  // `clock`, `random` and `scheduler` must outlive the sandbox.
  Sandbox(SandboxOptions options, Clock* clock, Random* random, Scheduler* scheduler);

  // Handles one request; `respond` is called exactly once, possibly later from the scheduler's
  // thread (Leyr-side latency).
  void Handle(HttpRequest request, HttpResponder respond);

  // Sets the expected "aud" once the listener is bound (when the configuration gave none).
  void SetPublicBaseUri(std::string uri);
  std::string public_base_uri() const;

 private:
  struct CodeRecord {
    absl::Time issued;
    bool redeemed = false;
  };
  struct LoggedRequest {
    std::string method;
    std::string path;
    std::string query;
    int status = 0;
    bool client_id_ok = false;
    bool client_secret_ok = false;
    bool code_ok = false;
  };

  HttpResponse Authorize(const HttpRequest& request);
  // Answers a Leyr-side request (the caller applies latency).
  HttpResponse Leyr(const HttpRequest& request);
  HttpResponse LeyrResource(const HttpRequest& request, const std::string& resource);
  HttpResponse Admin(const HttpRequest& request);

  // Checks a code; with `redeem`, a fresh code becomes redeemed. Never logs the code.
  bool CheckCode(const std::string& code, bool redeem, std::string* why);
  absl::StatusOr<std::string> IssueCode();
  std::string FakeIdToken(const std::string& client_id);
  bool InjectFailure();

  const SandboxOptions options_;
  Clock* const clock_;
  Random* const random_;
  Scheduler* const scheduler_;

  mutable absl::Mutex mu_;
  std::string public_base_uri_ ABSL_GUARDED_BY(mu_);
  // Keyed by the SHA-256 of the code (the codes themselves are not kept).
  std::map<std::string, CodeRecord> codes_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> revoked_ ABSL_GUARDED_BY(mu_);
  std::vector<LoggedRequest> requests_ ABSL_GUARDED_BY(mu_);
  int64_t request_count_ ABSL_GUARDED_BY(mu_) = 0;
  absl::BitGen bitgen_ ABSL_GUARDED_BY(mu_);
};

}  // namespace leyr::sandbox

#endif  // LEYR_SERVER_SANDBOX_SANDBOX_H_
