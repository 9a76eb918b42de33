#ifndef LEYR_TESTS_TESTING_STACK_H_
#define LEYR_TESTS_TESTING_STACK_H_

// The three real binaries (sandbox, shim, one or more brokers on the memory store) started on
// port 0 for operational tests, and the browser's part of the flow (consent page, form POST).

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/broker_client.h"
#include "server/common/url.h"
#include "tests/testing/consent_form.h"
#include "tests/testing/http_client.h"
#include "tests/testing/process.h"

namespace leyr::testing {

inline constexpr char kStackLeyrSecret[] = "canary-LEYR-SECRET-51c0ffee";
inline constexpr char kStackReturnOrigin[] = "http://127.0.0.1:3999";

struct StackOptions {
  // Extra JSON members for each configuration, e.g. R"("admin_listen":"127.0.0.1:0")".
  std::string broker_json;
  std::string shim_json;
  std::string sandbox_json;  // e.g. R"("leyr_latency":"1s")"
  std::vector<std::string> broker_flags;
  std::vector<std::string> shim_flags;
  // Brokers on separate memory stores; the shim reaches broker 0 only.
  int brokers = 1;
};

class Stack {
 public:
  static absl::StatusOr<std::unique_ptr<Stack>> Start(const StackOptions& options);

  Process& sandbox() { return *sandbox_; }
  Process& shim() { return *shim_; }
  Process& broker(int i = 0) { return *brokers_[i]; }
  int broker_count() const { return static_cast<int>(brokers_.size()); }
  const std::string& sandbox_url() const { return sandbox_url_; }
  const std::string& shim_address() const { return shim_address_; }
  const std::string& redirect_uri() const { return redirect_uri_; }
  // "127.0.0.1:PORT" of broker i's gRPC port.
  const std::string& broker_address(int i = 0) const { return broker_addresses_[i]; }
  // The address on the line `msg` ("admin_listening", "health_listening") of `process`.
  static absl::StatusOr<std::string> AddressOn(Process& process, const std::string& msg);

  // BeginAuthorization on `client` for the stack's connection, with a return URI.
  absl::StatusOr<broker::v1::BeginAuthorizationResponse> Begin(BrokerClient& client,
                                                               const CallOptions& options = {});
  // Opens the authorize URI as the clinician's browser does and reads form `form_id`
  // ("approve" or "deny"); remembers the code, state and id_token as secrets.
  absl::StatusOr<Form> OpenConsentPage(const std::string& authorize_uri,
                                       const std::string& form_id = "approve");
  // Posts the form to the shim as a browser does (redirects not followed).
  absl::StatusOr<HttpResult> Submit(const Form& form);
  // Begin on broker 0 → consent page → approve → shim → 303; the authorization's name.
  absl::StatusOr<std::string> Authorize(BrokerClient& client);

  // Every secret the stack has seen: the Leyr secret, codes, states, id tokens.
  const std::set<std::string>& secrets() const { return secrets_; }

 private:
  Stack() = default;
  TempDir dir_;
  std::unique_ptr<Process> sandbox_, shim_;
  std::vector<std::unique_ptr<Process>> brokers_;
  std::string sandbox_url_, shim_address_, redirect_uri_;
  std::vector<std::string> broker_addresses_;
  std::set<std::string> secrets_ = {kStackLeyrSecret};
};

// A care-units CallLeyr request for `name`.
broker::v1::CallLeyrRequest CareUnitsRequest(const std::string& name);

}  // namespace leyr::testing

#endif  // LEYR_TESTS_TESTING_STACK_H_
