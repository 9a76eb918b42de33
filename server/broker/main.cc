// leyr-broker: the gRPC service that holds Leyr's secret and athena's codes.
//
//   leyr-broker --config=/etc/leyr/broker.json [--check-config]

#include <signal.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/health_check_service_interface.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "grpc/health/v1/health.pb.h"
#include "server/broker/auth.h"
#include "server/broker/broker.h"
#include "server/broker/broker_service.h"
#include "server/broker/broker_metrics.h"
#include "server/broker/memory_store.h"
#include "server/broker/caching_store.h"
#include "server/broker/pg_events.h"
#include "server/broker/postgres_store.h"
#include "server/broker/sealer.h"
#include "server/broker/settings.h"
#include "server/broker/tls.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "server/common/config_util.h"
#include "server/common/env_overrides.h"
#include "server/common/flag_spelling.h"
#include "server/common/log.h"
#include "server/common/metrics.h"
#include "server/http/metrics_endpoint.h"
#include "server/common/status_util.h"
#include "server/reflection/reflection_service.h"

ABSL_FLAG(std::string, config, "", "Path of the broker's JSON configuration file (required).");
ABSL_FLAG(bool, check_config, false,
          "Validate the configuration, print every problem, and exit (0 when valid).");
ABSL_FLAG(absl::Duration, shutdown_delay, absl::ZeroDuration(),
          "On SIGTERM, how long the broker keeps serving (health NOT_SERVING) before it stops "
          "taking new calls, so that load balancers and clients move away first.");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(10),
          "After the delay, how long in-flight calls may take before they are cancelled.");

namespace leyr {
namespace {

// Replaces the port of "host:port" with `port` for the log line (port 0 → the one bound).
std::string BoundAddress(const std::string& listen, int port) {
  size_t colon = listen.rfind(':');
  return absl::StrCat(listen.substr(0, colon), ":", port);
}

int Run() {
  SetLogComponent("broker");
  const std::string path = absl::GetFlag(FLAGS_config);
  if (path.empty()) {
    std::fprintf(stderr, "leyr-broker: --config is required\n");
    return 2;
  }
  config::BrokerConfig config;
  auto overrides = LoadConfigWithEnvOverrides(path, "LEYR_BROKER_", &config);
  if (!overrides.ok()) {
    std::fprintf(stderr, "leyr-broker: %s\n", std::string(overrides.status().message()).c_str());
    return 2;
  }
  auto settings = ValidateBrokerConfig(config);
  if (!settings.ok()) {
    std::fprintf(stderr, "leyr-broker: configuration '%s' is not valid:\n", path.c_str());
    for (absl::string_view line : absl::StrSplit(settings.status().message(), '\n')) {
      std::fprintf(stderr, "  %s\n", std::string(line).c_str());
    }
    return 2;
  }
  if (absl::GetFlag(FLAGS_check_config)) {
    std::printf("configuration '%s' is valid\n", path.c_str());
    return 0;
  }
  SetLogLevel(settings->log_level);
  if (!overrides->empty()) {
    LEYR_LOG(Info, "environment_overrides").Field("variables", absl::StrJoin(*overrides, ","));
  }

  // Signals are taken by sigwait below, so block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  RealClock clock;
  SecureRandom random;
  // Codes are sealed at rest with the configured key ring, or, in development without one, with
  // a random key that lives only in this process.
  std::shared_ptr<Sealer> sealer = settings->sealer;
  if (!sealer) {
    sealer = KeyRingSealer::Ephemeral();
    LEYR_LOG(Warn, "ephemeral_sealing_key")
        .Field("detail", "no sealing_key_file: codes are sealed with a random in-memory key "
                         "(plaintext_development only)");
  } else {
    LEYR_LOG(Info, "sealing_key_ring")
        .Field("primary_key_id", settings->sealer->primary_key_id())
        .Field("keys", static_cast<int>(settings->sealer->key_ids().size()));
  }
  // The store: in memory (one process) or PostgreSQL (several replicas, survives restarts).
  std::unique_ptr<Store> store;
  PostgresOptions pg_options;
  if (settings->store == "postgres") {
    PostgresOptions& pg = pg_options;
    pg.conninfo = settings->postgres.conninfo;
    pg.password = settings->postgres.password;
    pg.sslmode = settings->postgres.sslmode;
    pg.sslrootcert = settings->postgres.ca_file;
    pg.pool_size = settings->postgres.pool_size;
    pg.statement_timeout = settings->postgres.statement_timeout;
    pg.acquire_timeout = settings->postgres.acquire_timeout;
    pg.connect_timeout = settings->postgres.connect_timeout;
    pg.sealer = sealer.get();
    auto created = PostgresStore::Create(pg, &clock);
    if (!created.ok()) {
      LEYR_LOG(Error, "store_start_failed")
          .Field("store", "postgres")
          .Field("reason", ReasonOf(created.status()))
          .Field("detail", std::string(created.status().message()));
      return 1;
    }
    store = std::move(*created);
    LEYR_LOG(Info, "store")
        .Field("store", "postgres")
        .Field("schema_version", PostgresStore::LatestSchemaVersion())
        .Field("pool_size", pg.pool_size);
  } else {
    store = std::make_unique<MemoryStore>(&clock, sealer.get());
  }
  AuthorizationEvents events;
  Scheduler scheduler;
  // With PostgreSQL, changes made on other replicas wake this replica's waiters (LISTEN/NOTIFY).
  std::unique_ptr<PostgresEventBridge> bridge;
  // And CallLeyr reads ACTIVE records from a short-lived cache, dropped on every change announced
  // by any replica and after at most 900 ms, and bypassed while the LISTEN connection is down.
  std::unique_ptr<CachingStore> cache;
  Store* broker_store = store.get();
  if (settings->store == "postgres") {
    cache = std::make_unique<CachingStore>(store.get(), &clock, absl::Milliseconds(900),
                                           [&bridge] { return bridge && bridge->listening(); });
    events.SetChangeListener([c = cache.get()](absl::string_view id) { c->Invalidate(id); });
    broker_store = cache.get();
    bridge = std::make_unique<PostgresEventBridge>(pg_options, &events);
  }
  // Metrics: store failures and Leyr requests are counted by decorators around the real ones.
  Metrics metrics;
  BrokerMetrics broker_metrics(&metrics);
  std::unique_ptr<Store> counted_store = InstrumentStore(broker_store, &broker_metrics);
  broker_store = counted_store.get();
  CurlLeyrClientOptions leyr_options;
  leyr_options.base_uri = settings->leyr_base_uri;
  leyr_options.client_id = settings->leyr_client_id;
  leyr_options.client_secret = settings->leyr_client_secret;
  leyr_options.default_timeout = settings->leyr_request_timeout;
  leyr_options.max_response_bytes = settings->leyr_max_response_bytes;
  leyr_options.max_idle_connections = settings->leyr_max_idle_connections;
  leyr_options.ca_file = settings->leyr_ca_file;
  std::unique_ptr<LeyrClient> leyr =
      InstrumentLeyrClient(MakeCurlLeyrClient(leyr_options), &broker_metrics);
  AddBrokerGauges(&metrics, broker_store, leyr.get());

  const std::vector<std::string> listen = settings->listen;
  const std::string admin_listen = settings->admin_listen;
  const std::string health_listen = settings->health_listen;
  const bool plaintext = settings->plaintext_development;
  const ServerTlsSettings tls = settings->tls;
  auto authenticator = std::make_shared<const CallerAuthenticator>(settings->policy, settings->tokens);
  const size_t policy_callers = settings->policy ? settings->policy->size() : 0;
  Broker broker(std::move(*settings),
                BrokerDeps{&clock, &random, broker_store, leyr.get(), &events, &scheduler,
                           &broker_metrics});
  BrokerServiceImpl service(&broker, MakeAuthenticator(authenticator), &broker_metrics);

  if (plaintext) {
    LEYR_LOG(Warn, "plaintext_development")
        .Field("detail", "gRPC is served WITHOUT TLS; development use only");
  } else {
    LEYR_LOG(Info, "tls")
        .Field("client_auth", tls.client_auth == ServerTlsSettings::ClientAuth::kRequire ? "require"
                              : tls.client_auth == ServerTlsSettings::ClientAuth::kRequest
                                  ? "request"
                                  : "none")
        .Field("refresh_interval_s", absl::ToInt64Seconds(tls.refresh_interval));
  }
  if (policy_callers == 0) {
    LEYR_LOG(Warn, "no_policy")
        .Field("detail", "no policy_file: every caller is anonymous with full access");
  } else {
    LEYR_LOG(Info, "policy").Field("callers", static_cast<int64_t>(policy_callers));
  }
  std::shared_ptr<grpc::ServerCredentials> credentials =
      plaintext ? grpc::InsecureServerCredentials() : MakeServerCredentials(tls);
  grpc::EnableDefaultHealthCheckService(true);
  // Server reflection with the API's comments (server/reflection/), in place of gRPC's
  // plugin, whose descriptors have none.
  auto reflection = ReflectionService::Create();
  if (!reflection.ok()) {
    LEYR_LOG(Error, "start_failed").Field("detail", std::string(reflection.status().message()));
    return 1;
  }
  grpc::ServerBuilder builder;
  std::vector<std::unique_ptr<int>> ports;
  for (const auto& address : listen) {
    ports.push_back(std::make_unique<int>(0));
    builder.AddListeningPort(address, credentials, ports.back().get());
  }
  builder.RegisterService(&service);
  builder.RegisterService(reflection->get());
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server) {
    LEYR_LOG(Error, "start_failed").Field("detail", "could not bind every listen address");
    return 1;
  }
  for (size_t i = 0; i < listen.size(); ++i) {
    std::string address =
        absl::StartsWith(listen[i], "unix:") ? listen[i] : BoundAddress(listen[i], *ports[i]);
    LEYR_LOG(Info, "listening").Field("address", address);
  }
  // kubelet's gRPC probes speak plaintext: with TLS on the main port they get a port of their
  // own that serves grpc.health.v1.Health and nothing else.
  // gRPC 1.51 refuses to build a server with no service of its own (the default health service
  // is added later, in Start): a generic service that answers UNIMPLEMENTED to every other
  // method fills that place.
  grpc::CallbackGenericService health_port_fallback;
  std::unique_ptr<grpc::Server> health_server;
  if (!health_listen.empty()) {
    grpc::ServerBuilder health_builder;
    int health_port = 0;
    health_builder.AddListeningPort(health_listen, grpc::InsecureServerCredentials(), &health_port);
    health_builder.RegisterCallbackGenericService(&health_port_fallback);
    health_server = health_builder.BuildAndStart();
    if (!health_server || health_port == 0) {
      LEYR_LOG(Error, "start_failed").Field("detail", "could not bind health_listen");
      return 1;
    }
    LEYR_LOG(Info, "health_listening").Field("address", BoundAddress(health_listen, health_port));
  }
  // Two health answers: the server as a whole ("", for liveness) is SERVING from start to
  // shutdown; leyr.broker.v1.BrokerService (readiness, and clients' health checking) is
  // NOT_SERVING as well while the store is away, so that a database outage takes replicas out
  // of rotation without making kubelet restart them.
  std::atomic<bool> serving_gauge{false};
  auto set_ready = [&](bool ready) {
    for (grpc::Server* s : {server.get(), health_server.get()}) {
      if (s != nullptr) {
        s->GetHealthCheckService()->SetServingStatus("leyr.broker.v1.BrokerService", ready);
      }
    }
    serving_gauge = ready;
  };
  auto set_serving = [&](bool serving) {
    for (grpc::Server* s : {server.get(), health_server.get()}) {
      if (s != nullptr) s->GetHealthCheckService()->SetServingStatus("", serving);
    }
    set_ready(serving);
  };
  set_serving(true);
  metrics.AddGauge("leyr_broker_serving",
                   "1 while leyr.broker.v1.BrokerService answers SERVING (ready).", {},
                   [&serving_gauge] { return Metrics::GaugeSamples{{{}, serving_gauge ? 1.0 : 0.0}}; });

  // Prometheus metrics on the admin port.
  std::unique_ptr<HttpServer> admin;
  if (!admin_listen.empty()) {
    auto started = StartMetricsEndpoint(admin_listen, &metrics);
    if (!started.ok()) {
      LEYR_LOG(Error, "start_failed")
          .Field("detail", absl::StrCat("admin_listen: ", started.status().message()));
      return 1;
    }
    admin = std::move(*started);
    LEYR_LOG(Info, "admin_listening").Field("address", admin->address());
  }

  // The sweeper removes ended authorizations after the retention period.
  std::function<void()> sweep;
  sweep = [&] {
    broker.Sweep();
    scheduler.After(absl::Minutes(1), sweep);
  };
  scheduler.After(absl::Minutes(1), sweep);

  // With PostgreSQL, readiness follows the database as the LISTEN connection sees it:
  // NOT_SERVING while it is away, SERVING again once the bridge has reconnected (it retries
  // every second).
  std::atomic<bool> stopping{false};
  bool store_serving = true;
  std::function<void()> watch_store;
  watch_store = [&] {
    const bool up = bridge->listening();
    if (up != store_serving && !stopping.load()) {
      store_serving = up;
      set_ready(up);
      LEYR_LOG(Warn, "health").Field("serving", up).Field("cause", "postgres");
    }
    scheduler.After(absl::Milliseconds(250), watch_store);
  };
  if (bridge) scheduler.After(absl::Seconds(1), watch_store);

  // Graceful shutdown: NOT_SERVING at once, so that probes and health-checking clients move
  // away; new calls are still served during the delay (endpoint lists take a moment to follow);
  // then no new calls, and those in flight get until the grace deadline. A second signal ends
  // the delay early.
  int signal_number = 0;
  sigwait(&signals, &signal_number);
  stopping = true;
  const absl::Duration delay = absl::GetFlag(FLAGS_shutdown_delay);
  const absl::Duration grace = absl::GetFlag(FLAGS_shutdown_grace);
  // NOT_SERVING first, so that whoever reads the "shutting_down" line already sees it.
  set_serving(false);
  LEYR_LOG(Info, "shutting_down")
      .Field("signal", signal_number)
      .Field("delay_ms", absl::ToInt64Milliseconds(delay))
      .Field("grace_ms", absl::ToInt64Milliseconds(grace));
  if (delay > absl::ZeroDuration()) {
    timespec wait = absl::ToTimespec(delay);
    (void)sigtimedwait(&signals, nullptr, &wait);
  }
  // Long waits would otherwise hold the grace period and then be cut off: end them now with
  // UNAVAILABLE so their callers retry elsewhere.
  broker.StartDraining();
  LEYR_LOG(Info, "draining");
  server->Shutdown(absl::ToChronoTime(absl::Now() + grace));
  server->Wait();
  if (health_server) health_server->Shutdown(absl::ToChronoTime(absl::Now()));
  if (admin) admin->Stop();  // its gauges read the store and the Leyr client, stopped below
  // No RPC is left. Stop the timers and the Leyr client before the objects their callbacks use
  // (the broker, the sweeper) are destroyed.
  scheduler.Stop();
  leyr.reset();
  bridge.reset();  // its thread feeds the cache's invalidations: stop it before the cache goes
  LEYR_LOG(Info, "stopped");
  return 0;
}

}  // namespace
}  // namespace leyr

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("leyr-broker --config=FILE [--check-config]");
  leyr::AcceptHyphenatedFlags(argc, argv);
  absl::ParseCommandLine(argc, argv);
  // Debian's Abseil is built without NDEBUG, so every Mutex lock walks the deadlock-detection
  // graph (about 5 % of a CallLeyr's instructions); release builds of Abseil skip it. The unit
  // tests keep it on.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  return leyr::Run();
}
