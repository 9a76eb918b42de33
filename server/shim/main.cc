// leyr-callback-shim: receives athena's form POST at the registered redirect URI and hands it
// to the broker's CompleteAuthorization. Usage: leyr-callback-shim --config=shim.json
#include <signal.h>

#include <cstdio>
#include <memory>
#include <string>

#include <grpcpp/create_channel.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "config/config.pb.h"
#include "absl/strings/str_join.h"
#include "server/common/config_util.h"
#include "server/common/env_overrides.h"
#include "server/common/flag_spelling.h"
#include "server/common/log.h"
#include "server/common/metrics.h"
#include "server/http/metrics_endpoint.h"
#include "server/shim/callback_shim.h"

ABSL_FLAG(std::string, config, "", "Path of the shim's JSON configuration file (ShimConfig).");
ABSL_FLAG(bool, check_config, false,
          "Validate the configuration (and LEYR_SHIM_* overrides), print the problem, and exit.");
ABSL_FLAG(absl::Duration, shutdown_delay, absl::ZeroDuration(),
          "On SIGTERM, how long the shim keeps serving (with /healthz answering 503) before it "
          "stops accepting connections; answers in progress then finish.");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("leyr-callback-shim --config=FILE [--check-config]");
  leyr::AcceptHyphenatedFlags(argc, argv);
  absl::ParseCommandLine(argc, argv);
  leyr::SetLogComponent("shim");

  // SIGTERM and SIGINT are taken by sigwait below; block them before any thread starts.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  const std::string path = absl::GetFlag(FLAGS_config);
  if (path.empty()) {
    LEYR_LOG(Error, "bad configuration").Field("error", "--config is required");
    return 2;
  }
  // A configuration that does not load or validate: logged, also printed plainly for
  // --check-config, exit 2.
  auto bad_configuration = [](const absl::Status& status) {
    LEYR_LOG(Error, "bad configuration").Field("error", status.message());
    if (absl::GetFlag(FLAGS_check_config)) {
      std::fprintf(stderr, "%s\n", std::string(status.message()).c_str());
    }
    return 2;
  };
  leyr::config::ShimConfig config;
  auto overrides = leyr::LoadConfigWithEnvOverrides(path, "LEYR_SHIM_", &config);
  if (!overrides.ok()) return bad_configuration(overrides.status());
  absl::StatusOr<leyr::shim::ShimSettings> settings = leyr::shim::ValidateShimConfig(config);
  if (!settings.ok()) return bad_configuration(settings.status());
  if (absl::GetFlag(FLAGS_check_config)) {
    std::printf("configuration '%s' is valid\n", path.c_str());
    return 0;
  }
  if (!overrides->empty()) {
    LEYR_LOG(Info, "environment_overrides").Field("variables", absl::StrJoin(*overrides, ","));
  }
  leyr::SetLogLevel(settings->log_level);

  auto channel = leyr::CreateBrokerChannel(settings->broker_target, settings->broker_tls);
  if (!channel.ok()) {
    LEYR_LOG(Error, "bad configuration").Field("error", channel.status().message());
    return 2;
  }
  std::shared_ptr<leyr::broker::v1::BrokerService::StubInterface> stub =
      leyr::broker::v1::BrokerService::NewStub(*channel);
  leyr::Metrics metrics;
  leyr::shim::ShimMetrics shim_metrics(&metrics);
  auto shim = leyr::shim::CallbackShim::Start(*settings, stub, &shim_metrics);
  if (!shim.ok()) {
    LEYR_LOG(Error, "could not start").Field("error", shim.status().message());
    return 1;
  }
  LEYR_LOG(Info, "listening")
      .Field("address", (*shim)->address())
      .Field("tls", !settings->http.tls_cert_pem.empty());

  std::unique_ptr<leyr::HttpServer> admin;
  if (!settings->admin_listen.empty()) {
    auto started = leyr::StartMetricsEndpoint(settings->admin_listen, &metrics);
    if (!started.ok()) {
      LEYR_LOG(Error, "could not start").Field("error", started.status().message());
      return 1;
    }
    admin = std::move(*started);
    LEYR_LOG(Info, "admin_listening").Field("address", admin->address());
  }

  // Graceful stop: /healthz says 503 at once, callbacks are served through the delay (a second
  // signal ends it early), then the server stops accepting and finishes what is in progress.
  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  const absl::Duration delay = absl::GetFlag(FLAGS_shutdown_delay);
  // Draining first, so that whoever reads the "stopping" line already sees /healthz at 503.
  (*shim)->StartDraining();
  LEYR_LOG(Info, "stopping")
      .Field("signal", signal_number)
      .Field("delay_ms", absl::ToInt64Milliseconds(delay));
  if (delay > absl::ZeroDuration()) {
    timespec wait = absl::ToTimespec(delay);
    (void)sigtimedwait(&stop_signals, nullptr, &wait);
  }
  (*shim)->Stop();
  shim->reset();
  if (admin) admin->Stop();
  LEYR_LOG(Info, "stopped");
  return 0;
}
