#ifndef LEYR_TESTS_SHIM_FAKE_BROKER_H_
#define LEYR_TESTS_SHIM_FAKE_BROKER_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "leyr/broker/v1/broker_service.grpc.pb.h"

namespace leyr::testing {

// An in-process BrokerService that records CompleteAuthorization requests and answers with a
// configured response or status, or holds the call until Release().
class FakeBroker final : public broker::v1::BrokerService::CallbackService {
 public:
  grpc::ServerUnaryReactor* CompleteAuthorization(
      grpc::CallbackServerContext* context,
      const broker::v1::CompleteAuthorizationRequest* request,
      broker::v1::CompleteAuthorizationResponse* response) override {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    absl::MutexLock lock(&mu_);
    received_.push_back(*request);
    if (hold_) {
      held_.push_back(reactor);
      return reactor;
    }
    if (status_.ok()) *response = response_;
    reactor->Finish(status_);
    return reactor;
  }

  void Answer(broker::v1::CompleteAuthorizationResponse response) {
    absl::MutexLock lock(&mu_);
    response_ = std::move(response);
    status_ = grpc::Status::OK;
  }
  void Fail(grpc::Status status) {
    absl::MutexLock lock(&mu_);
    status_ = std::move(status);
  }
  void Hold(bool hold) {
    absl::MutexLock lock(&mu_);
    hold_ = hold;
  }
  // Finishes every held call with CANCELLED.
  void Release() {
    absl::MutexLock lock(&mu_);
    for (auto* reactor : held_) reactor->Finish(grpc::Status(grpc::StatusCode::CANCELLED, "x"));
    held_.clear();
  }
  // Waits (up to a generous timeout) until `n` requests have arrived.
  bool WaitForReceived(size_t n) {
    absl::MutexLock lock(&mu_);
    auto arrived = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return received_.size() >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&arrived), absl::Seconds(30));
  }
  std::vector<broker::v1::CompleteAuthorizationRequest> received() {
    absl::MutexLock lock(&mu_);
    return received_;
  }

 private:
  absl::Mutex mu_;
  std::vector<broker::v1::CompleteAuthorizationRequest> received_ ABSL_GUARDED_BY(mu_);
  broker::v1::CompleteAuthorizationResponse response_ ABSL_GUARDED_BY(mu_);
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
  bool hold_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<grpc::ServerUnaryReactor*> held_ ABSL_GUARDED_BY(mu_);
};

// A FakeBroker served on 127.0.0.1, port chosen by the system.
struct FakeBrokerServer {
  FakeBroker service;
  std::unique_ptr<grpc::Server> server;
  int port = 0;

  bool Start() {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&service);
    server = builder.BuildAndStart();
    return server != nullptr && port > 0;
  }
  std::string target() const { return "127.0.0.1:" + std::to_string(port); }
  void Stop() {
    if (server == nullptr) return;
    service.Release();
    server->Shutdown();
    server->Wait();
    server.reset();
  }
  ~FakeBrokerServer() { Stop(); }
};

}  // namespace leyr::testing

#endif  // LEYR_TESTS_SHIM_FAKE_BROKER_H_
