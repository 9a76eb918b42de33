// leyr-sandbox --config=FILE [--check-config]
// Serves the sandbox (see sandbox.h for the endpoints) until SIGTERM or SIGINT. With
// --check-config (or --check_config) it validates the configuration and LEYR_SANDBOX_*
// overrides, prints the verdict, and exits.
// Exit codes: 0 after a signal (or a valid configuration with --check-config), 1 when the
// listener cannot start, 2 for bad flags or configuration.

#include <signal.h>
#include <sys/resource.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "config/config.pb.h"
#include "server/common/clock.h"
#include "server/common/config_util.h"
#include "server/common/env_overrides.h"
#include "server/common/log.h"
#include "server/common/random.h"
#include "server/http/http_server.h"
#include "server/sandbox/sandbox.h"
#include "server/sandbox/scheduler.h"

namespace {

constexpr char kUsage[] = "usage: leyr-sandbox --config=FILE [--check-config]\n";

int Fail(const std::string& message) {
  LEYR_LOG(Error, "cannot start").Field("error", message);
  return 2;
}

// Delayed answers each hold a connection: allow as many descriptors as the hard limit does.
void RaiseFileLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

}  // namespace

int main(int argc, char** argv) {
  leyr::SetLogComponent("sandbox");
  std::string config_path;
  bool check_config = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (absl::StartsWith(arg, "--config=")) {
      config_path = arg.substr(strlen("--config="));
    } else if (arg == "--config" && i + 1 < argc) {
      config_path = argv[++i];
    } else if (arg == "--check-config" || arg == "--check_config") {
      check_config = true;
    } else if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else {
      std::fputs(kUsage, stderr);
      return Fail(absl::StrCat("unknown argument '", arg, "'"));
    }
  }
  if (config_path.empty()) {
    std::fputs(kUsage, stderr);
    return Fail("--config: required");
  }

  // A configuration that does not load or validate: logged, also printed plainly for
  // --check-config, exit 2.
  auto bad_configuration = [check_config](const absl::Status& status) {
    if (check_config) std::fprintf(stderr, "%s\n", std::string(status.message()).c_str());
    return Fail(std::string(status.message()));
  };
  leyr::config::SandboxConfig config;
  auto overrides = leyr::LoadConfigWithEnvOverrides(config_path, "LEYR_SANDBOX_", &config);
  if (!overrides.ok()) return bad_configuration(overrides.status());
  auto options = leyr::sandbox::OptionsFromConfig(config);
  if (!options.ok()) return bad_configuration(options.status());
  if (!config.listen().empty()) {
    if (absl::Status valid = leyr::ValidateListenAddress(config.listen()); !valid.ok()) {
      return bad_configuration(
          absl::InvalidArgumentError(absl::StrCat("listen: ", valid.message())));
    }
  }
  if (check_config) {
    std::printf("configuration '%s' is valid\n", config_path.c_str());
    return 0;
  }
  auto level = leyr::ParseLogLevel(config.log_level());
  if (level.ok()) leyr::SetLogLevel(*level);

  // Signals are taken by sigwait below: block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  RaiseFileLimit();

  leyr::RealClock clock;
  leyr::SecureRandom random;
  leyr::sandbox::TimerThread timers;
  leyr::sandbox::Sandbox sandbox(*std::move(options), &clock, &random, &timers);

  leyr::HttpServerOptions server_options;
  server_options.listen = config.listen().empty() ? "127.0.0.1:0" : config.listen();
  server_options.max_connections = config.max_connections() > 0 ? config.max_connections() : 4096;
  server_options.max_body_bytes = 1024 * 1024;
  auto server = leyr::HttpServer::Start(
      server_options, [&sandbox](leyr::HttpRequest request, leyr::HttpResponder respond) {
        sandbox.Handle(std::move(request), std::move(respond));
      });
  if (!server.ok()) {
    LEYR_LOG(Error, "cannot listen")
        .Field("listen", server_options.listen)
        .Field("error", server.status().ToString());
    return 1;
  }
  if (sandbox.public_base_uri().empty()) {
    sandbox.SetPublicBaseUri(absl::StrCat("http://", (*server)->address()));
  }
  LEYR_LOG(Info, "listening").Field("address", (*server)->address());
  LEYR_LOG(Info, "public base uri").Field("uri", sandbox.public_base_uri());

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  LEYR_LOG(Info, "stopping").Field("signal", signal_number);
  // Answer delayed requests now, so that the server has nothing left to wait for.
  timers.Shutdown();
  (*server)->Stop();
  LEYR_LOG(Info, "stopped");
  return 0;
}
