#ifndef LEYR_SERVER_SHIM_CALLBACK_SHIM_H_
#define LEYR_SERVER_SHIM_CALLBACK_SHIM_H_

#include <atomic>
#include <memory>
#include <string>

#include <grpcpp/security/credentials.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "config/config.pb.h"
#include "leyr/broker/v1/broker_service.grpc.pb.h"
#include "server/broker/tls.h"
#include "server/common/log.h"
#include "server/common/metrics.h"
#include "server/http/http_server.h"

namespace leyr::shim {

// The shim's configuration, validated and with defaults filled in.
struct ShimSettings {
  HttpServerOptions http;  // listen, max_body_bytes, read_timeout, max_connections, HTTPS
  std::string broker_target;
  ClientTlsSettings broker_tls;  // TLS, mTLS and/or a bearer token to the broker
  std::string callback_path = "/oauth/callback";
  absl::Duration broker_timeout = absl::Seconds(10);
  LogLevel log_level = LogLevel::kInfo;
  std::string admin_listen;  // "" = no metrics endpoint
};

// The shim's Prometheus metrics (README "Metrics"); label values are outcomes and reasons chosen
// by the code.
struct ShimMetrics {
  explicit ShimMetrics(Metrics* registry);
  // leyr_shim_callbacks_total{outcome}: completed, denied, rejected, invalid_request,
  // broker_unavailable, broker_error.
  CounterFamily* callbacks;
  // leyr_shim_callback_duration_seconds: from the request to the answer.
  HistogramFamily* callback_duration;
};

// Validates a ShimConfig; errors name the bad key ("listen: ...").
absl::StatusOr<ShimSettings> ValidateShimConfig(const config::ShimConfig& config);

// Credentials of the channel to the broker: plaintext without broker_tls; with it TLS, the
// client certificate (the shim's identity in the broker's policy) and a bearer token. Use
// CreateBrokerChannel (server/broker/tls.h), which also sets the expected server name.
std::shared_ptr<grpc::ChannelCredentials> BrokerChannelCredentials(const ShimSettings& settings);

// The callback shim: an HTTP server that takes athena's form POST at the callback path,
// forwards state and code (or error) to BrokerService.CompleteAuthorization, and sends the
// browser on. Holds no secret and no state.
class CallbackShim {
 public:
  // Starts listening. `broker` is any BrokerService stub (a real channel's or a test's);
  // its callback API (`async()`) is used, so no thread waits on the broker.
  // `metrics` is optional and must outlive the shim.
  static absl::StatusOr<std::unique_ptr<CallbackShim>> Start(
      const ShimSettings& settings,
      std::shared_ptr<broker::v1::BrokerService::StubInterface> broker,
      ShimMetrics* metrics = nullptr);

  ~CallbackShim();
  CallbackShim(const CallbackShim&) = delete;
  CallbackShim& operator=(const CallbackShim&) = delete;

  int port() const;
  // "host:port" actually bound.
  std::string address() const;
  // Shutting down: /healthz answers 503 so that the load balancer moves away, while callbacks
  // are still served (the first step of a graceful stop; Stop() follows after a delay).
  void StartDraining();
  // Stops the HTTP server (answers in progress finish), then cancels and waits for any
  // broker call still running. Idempotent.
  void Stop();

  struct Tracker;

 private:
  CallbackShim(const ShimSettings& settings,
               std::shared_ptr<broker::v1::BrokerService::StubInterface> broker,
               ShimMetrics* metrics);
  void Handle(HttpRequest request, HttpResponder respond);
  void HandleCallback(HttpRequest request, HttpResponder respond);

  const ShimSettings settings_;
  const std::shared_ptr<broker::v1::BrokerService::StubInterface> broker_;
  ShimMetrics* const metrics_;
  std::atomic<bool> draining_{false};
  std::shared_ptr<Tracker> tracker_;
  std::unique_ptr<HttpServer> server_;
};

}  // namespace leyr::shim

#endif  // LEYR_SERVER_SHIM_CALLBACK_SHIM_H_
