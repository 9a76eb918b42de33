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
#include "server/common/config_util.h"
#include "server/common/log.h"
#include "server/shim/callback_shim.h"

ABSL_FLAG(std::string, config, "", "Path of the shim's JSON configuration file (ShimConfig).");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("leyr-callback-shim --config=FILE");
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
  leyr::config::ShimConfig config;
  absl::Status loaded = leyr::LoadJsonConfig(path, &config);
  if (!loaded.ok()) {
    LEYR_LOG(Error, "bad configuration").Field("error", loaded.message());
    return 2;
  }
  absl::StatusOr<leyr::shim::ShimSettings> settings = leyr::shim::ValidateShimConfig(config);
  if (!settings.ok()) {
    LEYR_LOG(Error, "bad configuration").Field("error", settings.status().message());
    return 2;
  }
  leyr::SetLogLevel(settings->log_level);

  auto channel = leyr::CreateBrokerChannel(settings->broker_target, settings->broker_tls);
  if (!channel.ok()) {
    LEYR_LOG(Error, "bad configuration").Field("error", channel.status().message());
    return 2;
  }
  std::shared_ptr<leyr::broker::v1::BrokerService::StubInterface> stub =
      leyr::broker::v1::BrokerService::NewStub(*channel);
  auto shim = leyr::shim::CallbackShim::Start(*settings, stub);
  if (!shim.ok()) {
    LEYR_LOG(Error, "could not start").Field("error", shim.status().message());
    return 1;
  }
  LEYR_LOG(Info, "listening")
      .Field("address", (*shim)->address())
      .Field("tls", !settings->http.tls_cert_pem.empty());

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  LEYR_LOG(Info, "stopping").Field("signal", signal_number);
  (*shim)->Stop();
  shim->reset();
  LEYR_LOG(Info, "stopped");
  return 0;
}
