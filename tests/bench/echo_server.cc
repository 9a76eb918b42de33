// leyr-bench-echo: a bare gRPC echo server on the broker's gRPC set-up (callback service,
// plaintext ServerBuilder, default health service), the floor the broker's gRPC leg is compared
// with in scripts/bench.sh. Benchmarks only.
//
//   leyr-bench-echo [--listen=127.0.0.1:0]
// Logs {"msg":"listening","address":"127.0.0.1:PORT"} on stderr and serves until SIGTERM/SIGINT.

#include <signal.h>

#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "bench_echo.grpc.pb.h"
#include "server/common/log.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:0", "gRPC listen address (port 0 picks a free port).");

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

int Run() {
  SetLogComponent("bench-echo");
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  EchoServiceImpl service;
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  const std::string listen = absl::GetFlag(FLAGS_listen);
  int port = 0;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
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
