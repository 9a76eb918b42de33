// leyr-bench: load generator for scripts/bench.sh (benchmarks only, not a test).
//
// Targets (--target):
//   echo      leyr.bench.v1.EchoService/Echo on --address (leyr-bench-echo): the gRPC floor
//   begin     BrokerService/BeginAuthorization(--connection) on --address
//   callleyr  BrokerService/CallLeyr(GET --path) on --address, on an ACTIVE authorization that
//             it obtains through the real flow first: BeginAuthorization, the sandbox's authorize
//             page with "Accept: application/json", the approve form POSTed to the shim (as a
//             browser does), WaitAuthorization. --authorization=NAME skips the flow.
//   http      GET --url with libcurl multi, keep-alive, the headers of --header_file ("Name: value"
//             lines): the direct Leyr call, or nginx in front of it
// gRPC targets use the callback client API (stub->async()->Method); every call has a deadline.
//
// Modes (--mode):
//   closed    --concurrency calls in flight; each completion starts the next
//   rate      open loop at --rate calls per second; latency counts from the scheduled start
//             (no coordinated omission); at most --max_in_flight outstanding
// The run lasts --warmup + --duration (or stops after --requests calls); only calls started
// after the warm-up count. Output: requests, errors, throughput, p50/p90/p99/max latency; with
// --json one JSON object on stdout. For http, "new_connections" is libcurl's count of
// connections opened by the calls of the measured part (CURLINFO_NUM_CONNECTS).

#include <curl/curl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <deque>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench_echo.grpc.pb.h"
#include "leyr/broker/v1/broker_service.grpc.pb.h"
#include "server/leyr/curl_epoll.h"

ABSL_FLAG(std::string, target, "echo", "echo, begin, callleyr or http.");
ABSL_FLAG(std::string, mode, "closed", "closed (concurrency) or rate (fixed rate, open loop).");
ABSL_FLAG(int, concurrency, 1, "Closed loop: calls in flight.");
ABSL_FLAG(double, rate, 100, "Rate mode: calls started per second.");
ABSL_FLAG(int, max_in_flight, 20000, "Rate mode: most calls outstanding (later ones are errors).");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(10), "Measured time.");
ABSL_FLAG(absl::Duration, warmup, absl::Seconds(1), "Time before measuring (calls not counted).");
ABSL_FLAG(int64_t, requests, 0, "When > 0: stop after this many calls (warm-up included).");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(30), "Deadline of each call.");
ABSL_FLAG(std::string, address, "", "gRPC target (host:port) of the broker or echo server.");
ABSL_FLAG(int, channels, 1, "gRPC channels (each its own connection); calls spread over them.");
ABSL_FLAG(std::string, connection, "athena-sandbox", "begin/callleyr: the broker connection.");
ABSL_FLAG(std::string, path, "/api/emrs/athenapractice/care-units", "callleyr: Leyr path.");
ABSL_FLAG(std::string, authorization, "", "callleyr: an ACTIVE authorization (skips the flow).");
ABSL_FLAG(int, payload_bytes, 64, "echo: payload size.");
ABSL_FLAG(std::string, url, "", "http: the URL to GET.");
ABSL_FLAG(std::string, header_file, "", "http: file of 'Name: value' request header lines.");
ABSL_FLAG(bool, json, false, "Print one JSON object instead of text.");
ABSL_FLAG(std::string, label, "", "Free text copied into the output (e.g. broker-c64).");

namespace leyr::bench {
namespace {

using Clock = std::chrono::steady_clock;
// `new_connections`: connections the call had to open (http only; 0 for gRPC).
using Done = std::function<void(bool ok, int64_t new_connections)>;

// One kind of call. Issue starts one call and returns at once; `done` runs exactly once, on
// any thread, when it finishes.
class Target {
 public:
  virtual ~Target() = default;
  virtual void Issue(int slot, Done done) = 0;
  virtual void Stop() {}
  // Whether new_connections is counted (http only).
  virtual bool CountsConnections() const { return false; }
};

// ---- gRPC targets -------------------------------------------------------------------------

std::vector<std::shared_ptr<grpc::Channel>> MakeChannels(const std::string& address, int n) {
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int i = 0; i < n; ++i) {
    grpc::ChannelArguments args;
    // Separate subchannels, hence separate TCP connections, per channel.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt("leyr.bench.channel", i);
    channels.push_back(
        grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args));
  }
  return channels;
}

std::chrono::system_clock::time_point DeadlineIn(absl::Duration d) {
  return std::chrono::system_clock::now() + absl::ToChronoNanoseconds(d);
}

class EchoTarget : public Target {
 public:
  EchoTarget(const std::vector<std::shared_ptr<grpc::Channel>>& channels, int payload_bytes,
             absl::Duration timeout)
      : timeout_(timeout) {
    for (const auto& c : channels) stubs_.push_back(v1::EchoService::NewStub(c));
    request_.set_payload(std::string(payload_bytes, 'x'));
  }
  void Issue(int slot, Done done) override {
    struct Call {
      grpc::ClientContext context;
      v1::EchoResponse response;
    };
    auto* call = new Call;
    call->context.set_deadline(DeadlineIn(timeout_));
    stubs_[slot % stubs_.size()]->async()->Echo(
        &call->context, &request_, &call->response,
        [call, done = std::move(done)](grpc::Status status) {
          delete call;
          done(status.ok(), 0);
        });
  }

 private:
  absl::Duration timeout_;
  std::vector<std::unique_ptr<v1::EchoService::Stub>> stubs_;
  v1::EchoRequest request_;
};

using BrokerStub = broker::v1::BrokerService::Stub;

class BeginTarget : public Target {
 public:
  BeginTarget(const std::vector<std::shared_ptr<grpc::Channel>>& channels,
              const std::string& connection, absl::Duration timeout)
      : timeout_(timeout) {
    for (const auto& c : channels) stubs_.push_back(broker::v1::BrokerService::NewStub(c));
    request_.set_connection(connection);
  }
  void Issue(int slot, Done done) override {
    struct Call {
      grpc::ClientContext context;
      broker::v1::BeginAuthorizationResponse response;
    };
    auto* call = new Call;
    call->context.set_deadline(DeadlineIn(timeout_));
    stubs_[slot % stubs_.size()]->async()->BeginAuthorization(
        &call->context, &request_, &call->response,
        [call, done = std::move(done)](grpc::Status status) {
          bool ok = status.ok() && !call->response.authorize_uri().empty();
          delete call;
          done(ok, 0);
        });
  }

 private:
  absl::Duration timeout_;
  std::vector<std::unique_ptr<BrokerStub>> stubs_;
  broker::v1::BeginAuthorizationRequest request_;
};

class CallLeyrTarget : public Target {
 public:
  CallLeyrTarget(const std::vector<std::shared_ptr<grpc::Channel>>& channels,
                 const std::string& authorization, const std::string& path,
                 absl::Duration timeout)
      : timeout_(timeout) {
    for (const auto& c : channels) stubs_.push_back(broker::v1::BrokerService::NewStub(c));
    request_.set_authorization(authorization);
    request_.set_method("GET");
    request_.set_path(path);
  }
  void Issue(int slot, Done done) override {
    struct Call {
      grpc::ClientContext context;
      broker::v1::CallLeyrResponse response;
    };
    auto* call = new Call;
    call->context.set_deadline(DeadlineIn(timeout_));
    stubs_[slot % stubs_.size()]->async()->CallLeyr(
        &call->context, &request_, &call->response,
        [this, call, done = std::move(done)](grpc::Status status) {
          bool ok = status.ok() && call->response.status_code() == 200;
          if (!ok) NoteFailure(status, call->response.status_code());
          delete call;
          done(ok, 0);
        });
  }

 private:
  // The first failure is printed once, so that a broken set-up is visible.
  void NoteFailure(const grpc::Status& status, int http_status) {
    if (reported_.exchange(true)) return;
    std::fprintf(stderr, "leyr-bench: CallLeyr failed: grpc %d %s, http %d\n",
                 static_cast<int>(status.error_code()), status.error_message().c_str(),
                 http_status);
  }
  absl::Duration timeout_;
  std::vector<std::unique_ptr<BrokerStub>> stubs_;
  broker::v1::CallLeyrRequest request_;
  std::atomic<bool> reported_{false};
};

// ---- libcurl ------------------------------------------------------------------------------

size_t AppendBody(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}
size_t DiscardBody(char*, size_t size, size_t n, void*) { return size * n; }

// One blocking request for the set-up flow. Returns the HTTP status (0 on a transport error).
long BlockingRequest(const std::string& url, const std::vector<std::string>& headers,
                     const std::string* form_body, std::string* body) {
  CURL* curl = curl_easy_init();
  curl_slist* list = nullptr;
  for (const auto& h : headers) list = curl_slist_append(list, h.c_str());
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, AppendBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, body);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  if (form_body != nullptr) {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, form_body->c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(form_body->size()));
  }
  long status = 0;
  if (curl_easy_perform(curl) == CURLE_OK) {
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  }
  curl_slist_free_all(list);
  curl_easy_cleanup(curl);
  return status;
}

std::string FormEscape(const std::string& value) {
  char* escaped = curl_easy_escape(nullptr, value.data(), static_cast<int>(value.size()));
  std::string out(escaped);
  curl_free(escaped);
  return out;
}

// GET --url with a multi handle on one thread; idle easy handles are kept and reused, and the
// multi handle's connection cache keeps connections open (keep-alive).
// libcurl's multi socket interface on an epoll loop of its own (as the broker's Leyr client
// drives it), so that the cost per request does not grow with the concurrency: curl_multi_perform
// and curl_multi_poll walk every transfer and socket on every wakeup, which at c=64 made this
// client, not the proxy under test, the bottleneck of the nginx and direct runs.
class HttpTarget : public Target {
 public:
  HttpTarget(std::string url, std::vector<std::string> headers, absl::Duration timeout)
      : url_(std::move(url)), timeout_ms_(absl::ToInt64Milliseconds(timeout)) {
    for (const auto& h : headers) headers_ = curl_slist_append(headers_, h.c_str());
    multi_ = curl_multi_init();
    // Never close a cached connection because the cache is full.
    curl_multi_setopt(multi_, CURLMOPT_MAXCONNECTS, 100000L);
    curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &HttpTarget::OnSocket);
    curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
    curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &HttpTarget::OnTimer);
    curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    epoll_event wake{};
    wake.events = EPOLLIN;
    wake.data.fd = wake_fd_;
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &wake);
    thread_ = std::thread([this] { Loop(); });
  }
  ~HttpTarget() override {
    Stop();
    for (CURL* easy : idle_) curl_easy_cleanup(easy);
    curl_multi_cleanup(multi_);
    curl_slist_free_all(headers_);
    close(wake_fd_);
    close(epoll_fd_);
  }
  void Issue(int slot, Done done) override {
    {
      absl::MutexLock lock(&mu_);
      queue_.push_back(std::move(done));
    }
    // A call finished on the loop thread starts the next one there: the loop reads the queue
    // before it waits again, so no wakeup is needed.
    if (std::this_thread::get_id() != thread_.get_id()) Wake();
  }
  void Stop() override {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      stopping_ = true;
    }
    Wake();
    thread_.join();
  }
  bool CountsConnections() const override { return true; }

 private:
  struct Transfer {
    Done done;
  };

  void Wake() {
    const uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof(one));
  }

  static int OnSocket(CURL*, curl_socket_t fd, int what, void* self_ptr, void* socketp) {
    auto* self = static_cast<HttpTarget*>(self_ptr);
    MirrorCurlSocket(self->epoll_fd_, self->multi_, fd, what, socketp, self);
    return 0;
  }

  static int OnTimer(CURLM*, long timeout_ms, void* self_ptr) {
    auto* self = static_cast<HttpTarget*>(self_ptr);
    self->timer_due_ = timeout_ms < 0 ? Clock::time_point::max()
                                      : Clock::now() + std::chrono::milliseconds(timeout_ms);
    return 0;
  }

  CURL* TakeHandle() {
    if (!idle_.empty()) {
      CURL* easy = idle_.back();
      idle_.pop_back();
      return easy;
    }
    CURL* easy = curl_easy_init();
    curl_easy_setopt(easy, CURLOPT_URL, url_.c_str());
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers_);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, DiscardBody);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, timeout_ms_);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_TCP_NODELAY, 1L);
    return easy;
  }

  void Collect() {
    int queued = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi_, &queued)) {
      if (msg->msg != CURLMSG_DONE) continue;
      CURL* easy = msg->easy_handle;
      Transfer* transfer = nullptr;
      curl_easy_getinfo(easy, CURLINFO_PRIVATE, &transfer);
      long status = 0;
      curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
      long connects = 0;
      curl_easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &connects);
      bool ok = msg->data.result == CURLE_OK && status == 200;
      if (!ok && !reported_) {
        reported_ = true;
        std::fprintf(stderr, "leyr-bench: GET %s failed: %s, http %ld\n", url_.c_str(),
                     curl_easy_strerror(msg->data.result), status);
      }
      curl_multi_remove_handle(multi_, easy);
      idle_.push_back(easy);
      --running_;
      Done done = std::move(transfer->done);
      delete transfer;
      done(ok, connects);  // May Issue again: queued for the next turn of the loop.
    }
  }

  void Loop() {
    constexpr int kMaxEvents = 256;
    epoll_event events[kMaxEvents];
    int still = 0;
    for (;;) {
      std::deque<Done> starts;
      bool stopping;
      {
        absl::MutexLock lock(&mu_);
        starts.swap(queue_);
        stopping = stopping_;
      }
      for (Done& done : starts) {
        CURL* easy = TakeHandle();
        auto* transfer = new Transfer{std::move(done)};
        curl_easy_setopt(easy, CURLOPT_PRIVATE, transfer);
        curl_multi_add_handle(multi_, easy);
        ++running_;
      }
      if (stopping && running_ == 0) return;
      if (Clock::now() >= timer_due_) {
        timer_due_ = Clock::time_point::max();
        curl_multi_socket_action(multi_, CURL_SOCKET_TIMEOUT, 0, &still);
        Collect();
        continue;  // the callbacks may have queued starts
      }
      {
        absl::MutexLock lock(&mu_);
        if (!queue_.empty()) continue;
      }
      int wait_ms = 100;
      if (timer_due_ != Clock::time_point::max()) {
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(timer_due_ - Clock::now());
        wait_ms = static_cast<int>(std::clamp<int64_t>(left.count(), 0, 100));
      }
      const int n = epoll_wait(epoll_fd_, events, kMaxEvents, wait_ms);
      for (int i = 0; i < n; ++i) {
        const int fd = events[i].data.fd;
        if (fd == wake_fd_) {
          uint64_t count;
          (void)!read(wake_fd_, &count, sizeof(count));
          continue;
        }
        curl_multi_socket_action(multi_, fd, CurlSelectBits(events[i].events), &still);
      }
      Collect();
    }
  }

  const std::string url_;
  const long timeout_ms_;
  curl_slist* headers_ = nullptr;
  CURLM* multi_;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  std::thread thread_;
  Clock::time_point timer_due_ = Clock::time_point::max();  // loop thread only
  // Loop thread only:
  std::vector<CURL*> idle_;
  int running_ = 0;
  bool reported_ = false;

  absl::Mutex mu_;
  std::deque<Done> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

// ---- The callleyr set-up flow -------------------------------------------------------------

// Begin → sandbox authorize page as JSON → approve form POSTed to the shim → Wait until ACTIVE.
bool ObtainActiveAuthorization(const std::shared_ptr<grpc::Channel>& channel,
                               const std::string& connection, std::string* name) {
  auto stub = broker::v1::BrokerService::NewStub(channel);
  broker::v1::BeginAuthorizationRequest begin;
  begin.set_connection(connection);
  broker::v1::BeginAuthorizationResponse begun;
  {
    grpc::ClientContext context;
    context.set_deadline(DeadlineIn(absl::Seconds(30)));
    grpc::Status status = stub->BeginAuthorization(&context, begin, &begun);
    if (!status.ok()) {
      std::fprintf(stderr, "leyr-bench: BeginAuthorization: %s\n", status.error_message().c_str());
      return false;
    }
  }
  std::string page;
  long http = BlockingRequest(begun.authorize_uri(), {"Accept: application/json"}, nullptr, &page);
  google::protobuf::Struct form;
  if (http != 200 || !google::protobuf::util::JsonStringToMessage(page, &form).ok()) {
    std::fprintf(stderr, "leyr-bench: authorize page: HTTP %ld\n", http);
    return false;
  }
  const auto& fields = form.fields();
  const std::string action = fields.at("action").string_value();
  std::string body;
  for (const auto& [key, value] : fields.at("approve").struct_value().fields()) {
    absl::StrAppend(&body, body.empty() ? "" : "&", key, "=", FormEscape(value.string_value()));
  }
  std::string answer;
  http = BlockingRequest(action, {"Content-Type: application/x-www-form-urlencoded"}, &body,
                         &answer);
  if (http != 200 && http != 303) {
    std::fprintf(stderr, "leyr-bench: shim answered HTTP %ld\n", http);
    return false;
  }
  broker::v1::WaitAuthorizationRequest wait;
  wait.set_name(begun.authorization().name());
  wait.mutable_timeout()->set_seconds(30);
  broker::v1::WaitAuthorizationResponse waited;
  grpc::ClientContext context;
  context.set_deadline(DeadlineIn(absl::Seconds(40)));
  grpc::Status status = stub->WaitAuthorization(&context, wait, &waited);
  if (!status.ok() || waited.authorization().state() != broker::v1::Authorization::STATE_ACTIVE) {
    std::fprintf(stderr, "leyr-bench: WaitAuthorization: %s, state %d\n",
                 status.error_message().c_str(), static_cast<int>(waited.authorization().state()));
    return false;
  }
  *name = waited.authorization().name();
  return true;
}

// ---- The run ------------------------------------------------------------------------------

struct Sample {
  Clock::time_point start;
  int64_t latency_ns;
  bool ok;
  int64_t new_connections;
};

class Runner {
 public:
  Runner(Target* target) : target_(target) {}

  void Run() {
    const absl::Duration warmup = absl::GetFlag(FLAGS_warmup);
    const absl::Duration duration = absl::GetFlag(FLAGS_duration);
    limit_ = absl::GetFlag(FLAGS_requests);
    begin_ = Clock::now();
    measure_from_ = begin_ + absl::ToChronoNanoseconds(warmup);
    stop_at_ = measure_from_ + absl::ToChronoNanoseconds(duration);
    if (absl::GetFlag(FLAGS_mode) == "rate") {
      RunRate(absl::GetFlag(FLAGS_rate), absl::GetFlag(FLAGS_max_in_flight));
    } else {
      RunClosed(std::max(1, absl::GetFlag(FLAGS_concurrency)));
    }
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](int64_t* n) { return *n == 0; }, &outstanding_));
    end_ = Clock::now();
  }

  void Report() {
    absl::MutexLock lock(&mu_);
    // Calls started in the measured window count; with --requests, every call does.
    std::vector<int64_t> latencies;
    int64_t errors = 0, new_connections = 0;
    Clock::time_point first = Clock::time_point::max(), last = Clock::time_point::min();
    for (const Sample& s : samples_) {
      if (limit_ == 0 && (s.start < measure_from_ || s.start >= stop_at_)) continue;
      if (!s.ok) ++errors;
      new_connections += s.new_connections;
      latencies.push_back(s.latency_ns);
      first = std::min(first, s.start);
      last = std::max(last, s.start + std::chrono::nanoseconds(s.latency_ns));
    }
    std::sort(latencies.begin(), latencies.end());
    auto pct = [&](double p) -> double {
      if (latencies.empty()) return 0;
      size_t i = static_cast<size_t>(p * (latencies.size() - 1) + 0.5);
      return latencies[std::min(i, latencies.size() - 1)] / 1e3;
    };
    double mean = 0;
    for (int64_t l : latencies) mean += l / 1e3;
    if (!latencies.empty()) mean /= latencies.size();
    // Throughput over the measured window (closed loop: window = started..finished).
    double window_s =
        latencies.empty() ? 0
        : limit_ > 0      ? std::chrono::duration<double>(last - first).count()
                          : std::chrono::duration<double>(stop_at_ - measure_from_).count();
    double throughput = window_s > 0 ? (latencies.size() - errors) / window_s : 0;
    if (!target_->CountsConnections()) new_connections = -1;

    const std::string mode = absl::GetFlag(FLAGS_mode);
    const std::string target = absl::GetFlag(FLAGS_target);
    if (absl::GetFlag(FLAGS_json)) {
      std::printf(
          "{\"label\":\"%s\",\"target\":\"%s\",\"mode\":\"%s\",\"concurrency\":%d,\"rate\":%.1f,"
          "\"duration_s\":%.3f,\"requests\":%zu,\"errors\":%lld,\"throughput_rps\":%.1f,"
          "\"latency_us\":{\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"max\":%.1f,\"mean\":%.1f},"
          "\"new_connections\":%lld,\"max_in_flight_seen\":%lld}\n",
          absl::GetFlag(FLAGS_label).c_str(), target.c_str(), mode.c_str(),
          absl::GetFlag(FLAGS_concurrency), mode == "rate" ? absl::GetFlag(FLAGS_rate) : 0.0,
          window_s, latencies.size(), static_cast<long long>(errors), throughput, pct(0.50),
          pct(0.90), pct(0.99), latencies.empty() ? 0 : latencies.back() / 1e3, mean,
          static_cast<long long>(new_connections), static_cast<long long>(max_outstanding_));
    } else {
      std::printf("%s %s mode=%s concurrency=%d%s\n", absl::GetFlag(FLAGS_label).c_str(),
                  target.c_str(), mode.c_str(), absl::GetFlag(FLAGS_concurrency),
                  mode == "rate" ? absl::StrFormat(" rate=%.0f/s", absl::GetFlag(FLAGS_rate)).c_str()
                                 : "");
      std::printf("  requests %zu  errors %lld  window %.2f s  throughput %.1f/s\n",
                  latencies.size(), static_cast<long long>(errors), window_s, throughput);
      std::printf("  latency ms  p50 %.3f  p90 %.3f  p99 %.3f  max %.3f  mean %.3f\n",
                  pct(0.50) / 1e3, pct(0.90) / 1e3, pct(0.99) / 1e3,
                  latencies.empty() ? 0 : latencies.back() / 1e6, mean / 1e3);
      if (new_connections >= 0) {
        std::printf("  new connections %lld\n", static_cast<long long>(new_connections));
      }
      std::printf("  most calls in flight %lld\n", static_cast<long long>(max_outstanding_));
    }
  }

 private:
  // Whether another call may start now (time and --requests).
  bool MayStart(Clock::time_point now) {
    if (limit_ > 0) return issued_.fetch_add(1) < limit_;
    return now < stop_at_;
  }

  // Starts one call. `counted`: the slot of a call that just finished is handed over, so the
  // in-flight count neither drops to zero nor overshoots the concurrency in between.
  void Start(int slot, Clock::time_point scheduled, bool closed, bool counted = false) {
    if (!counted) {
      absl::MutexLock lock(&mu_);
      ++outstanding_;
      max_outstanding_ = std::max(max_outstanding_, outstanding_);
    }
    target_->Issue(slot, [this, slot, scheduled, closed](bool ok, int64_t connects) {
      Clock::time_point now = Clock::now();
      bool next = closed && MayStart(now);
      {
        absl::MutexLock lock(&mu_);
        samples_.push_back(Sample{
            scheduled,
            std::chrono::duration_cast<std::chrono::nanoseconds>(now - scheduled).count(), ok,
            connects});
        if (!next) --outstanding_;
      }
      if (next) Start(slot, Clock::now(), true, /*counted=*/true);
    });
  }

  void RunClosed(int concurrency) {
    for (int slot = 0; slot < concurrency; ++slot) {
      if (!MayStart(Clock::now())) break;
      Start(slot, Clock::now(), true);
    }
  }

  void RunRate(double rate, int max_in_flight) {
    const auto interval = std::chrono::nanoseconds(static_cast<int64_t>(1e9 / rate));
    Clock::time_point next = Clock::now();
    int slot = 0;
    while (MayStart(next)) {
      std::this_thread::sleep_until(next);
      bool full;
      {
        absl::MutexLock lock(&mu_);
        full = outstanding_ >= max_in_flight;
        if (full) samples_.push_back(Sample{next, 0, false, 0});
      }
      if (!full) Start(slot++, next, false);
      next += interval;
    }
  }

  Target* target_;
  int64_t limit_ = 0;
  std::atomic<int64_t> issued_{0};
  Clock::time_point begin_, measure_from_, stop_at_, end_;
  absl::Mutex mu_;
  std::vector<Sample> samples_ ABSL_GUARDED_BY(mu_);
  int64_t outstanding_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t max_outstanding_ ABSL_GUARDED_BY(mu_) = 0;
};

std::vector<std::string> ReadHeaderFile(const std::string& path) {
  std::vector<std::string> headers;
  if (path.empty()) return headers;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    line = std::string(absl::StripAsciiWhitespace(line));
    if (!line.empty()) headers.push_back(line);
  }
  return headers;
}

int Main() {
  const std::string kind = absl::GetFlag(FLAGS_target);
  const absl::Duration timeout = absl::GetFlag(FLAGS_timeout);
  std::unique_ptr<Target> target;
  if (kind == "http") {
    if (absl::GetFlag(FLAGS_url).empty()) {
      std::fprintf(stderr, "leyr-bench: --url is required for --target=http\n");
      return 2;
    }
    target = std::make_unique<HttpTarget>(absl::GetFlag(FLAGS_url),
                                          ReadHeaderFile(absl::GetFlag(FLAGS_header_file)),
                                          timeout);
  } else {
    const std::string address = absl::GetFlag(FLAGS_address);
    if (address.empty()) {
      std::fprintf(stderr, "leyr-bench: --address is required for --target=%s\n", kind.c_str());
      return 2;
    }
    auto channels = MakeChannels(address, std::max(1, absl::GetFlag(FLAGS_channels)));
    for (const auto& c : channels) {
      if (!c->WaitForConnected(DeadlineIn(absl::Seconds(10)))) {
        std::fprintf(stderr, "leyr-bench: cannot connect to %s\n", address.c_str());
        return 1;
      }
    }
    if (kind == "echo") {
      target = std::make_unique<EchoTarget>(channels, absl::GetFlag(FLAGS_payload_bytes), timeout);
    } else if (kind == "begin") {
      target = std::make_unique<BeginTarget>(channels, absl::GetFlag(FLAGS_connection), timeout);
    } else if (kind == "callleyr") {
      std::string name = absl::GetFlag(FLAGS_authorization);
      if (name.empty() &&
          !ObtainActiveAuthorization(channels[0], absl::GetFlag(FLAGS_connection), &name)) {
        return 1;
      }
      target = std::make_unique<CallLeyrTarget>(channels, name, absl::GetFlag(FLAGS_path), timeout);
    } else {
      std::fprintf(stderr, "leyr-bench: unknown --target=%s\n", kind.c_str());
      return 2;
    }
  }
  Runner runner(target.get());
  runner.Run();
  target->Stop();
  runner.Report();
  return 0;
}

}  // namespace
}  // namespace leyr::bench

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "leyr-bench --target=echo|begin|callleyr|http [--mode=closed|rate] [--concurrency=N] "
      "[--rate=R] [--duration=10s] [--warmup=1s] [--requests=N] [--json]");
  absl::ParseCommandLine(argc, argv);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  int rc = leyr::bench::Main();
  curl_global_cleanup();
  return rc;
}
