// leyr-bench-echo: a bare gRPC echo server on the broker's gRPC set-up (callback service,
// plaintext ServerBuilder, default health service), the floor the broker's gRPC leg is compared
// with in scripts/bench.sh. With --forward_to it is the "forwarder" instead: every Echo is a GET
// through the broker's Leyr client, answered with Leyr's body, and none of the broker's own work
// (what any broker on this gRPC and libcurl set-up costs at least). Benchmarks only.
//
//   leyr-bench-echo [--listen=127.0.0.1:0] [--forward_to=URL --forward_credentials_file=F]
// Logs {"msg":"listening","address":"127.0.0.1:PORT"} on stderr and serves until SIGTERM/SIGINT.

#include <signal.h>

#include <fstream>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "bench_echo.grpc.pb.h"
#include "server/common/log.h"
#include "server/leyr/leyr_client.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:0", "gRPC listen address (port 0 picks a free port).");
ABSL_FLAG(std::string, forward_to, "",
          "Forwarder mode: each Echo makes a GET of this URL with the broker's Leyr client "
          "and answers with its body (the floor of any broker on this gRPC and libcurl set-up).");
ABSL_FLAG(std::string, forward_credentials_file, "",
          "Forwarder mode: a file of three lines, Leyr client id, client secret and EMR code.");

namespace leyr::bench {
namespace {

class EchoServiceImpl final : public v1::EchoService::CallbackService {
  grpc::ServerUnaryReactor* Echo(grpc::CallbackServerContext* context,
                                 const v1::EchoRequest* request,
                                 v1::EchoResponse* response) override {
    response->set_payload(request->payload());
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
};

// Each Echo is a GET through the broker's Leyr client (the same class, options and thread model),
// answered with Leyr's body, without the broker's own work (caller identity, store, policy,
// log line, metrics).
class ForwardServiceImpl final : public v1::EchoService::CallbackService {
 public:
  ForwardServiceImpl(std::unique_ptr<LeyrClient> leyr, std::string path, std::string code)
      : leyr_(std::move(leyr)), path_(std::move(path)), code_(std::move(code)) {}

  grpc::ServerUnaryReactor* Echo(grpc::CallbackServerContext* context,
                                 const v1::EchoRequest* request,
                                 v1::EchoResponse* response) override {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    LeyrRequest get;
    get.method = "GET";
    get.path = path_;
    get.code = code_;
    leyr_->Send(std::move(get), [reactor, response](absl::StatusOr<LeyrResponse> result) {
      // Anything but Leyr's 200 is an error, so that a load generator counts it.
      if (!result.ok() || result->status_code != 200) {
        reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the Leyr call failed"));
        return;
      }
      response->set_payload(std::move(result->body));
      reactor->Finish(grpc::Status::OK);
    });
    return reactor;
  }

 private:
  std::unique_ptr<LeyrClient> leyr_;
  std::string path_;
  std::string code_;
};

int Run() {
  SetLogComponent("bench-echo");
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  EchoServiceImpl echo;
  std::unique_ptr<ForwardServiceImpl> forward;
  grpc::Service* service = &echo;
  if (const std::string to = absl::GetFlag(FLAGS_forward_to); !to.empty()) {
    const size_t scheme_end = to.find("://");
    const size_t path_at =
        scheme_end == std::string::npos ? std::string::npos : to.find('/', scheme_end + 3);
    if (!(absl::StartsWith(to, "http://") || absl::StartsWith(to, "https://")) ||
        path_at == std::string::npos || path_at == scheme_end + 3) {
      LEYR_LOG(Error, "start_failed")
          .Field("detail", "--forward_to must be an http(s) URL with a host and a path");
      return 1;
    }
    std::ifstream file(absl::GetFlag(FLAGS_forward_credentials_file));
    std::string code;
    CurlLeyrClientOptions options;
    if (!std::getline(file, options.client_id) || !std::getline(file, options.client_secret) ||
        !std::getline(file, code)) {
      LEYR_LOG(Error, "start_failed").Field("detail", "--forward_credentials_file unreadable");
      return 1;
    }
    options.base_uri = to.substr(0, path_at);
    options.max_idle_connections = 2048;  // the broker's default
    forward = std::make_unique<ForwardServiceImpl>(MakeCurlLeyrClient(options),
                                                   to.substr(path_at), std::move(code));
    service = forward.get();
  }
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  const std::string listen = absl::GetFlag(FLAGS_listen);
  int port = 0;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    LEYR_LOG(Error, "start_failed").Field("listen", listen);
    return 1;
  }
  LEYR_LOG(Info, "listening")
      .Field("address", absl::StrCat(listen.substr(0, listen.rfind(':')), ":", port));
  int signal_number = 0;
  sigwait(&signals, &signal_number);
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  server->Wait();
  return 0;
}

}  // namespace
}  // namespace leyr::bench

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return leyr::bench::Run();
}
