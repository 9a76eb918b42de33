#include "server/leyr/leyr_client.h"

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "server/common/log.h"
#include "server/common/status_util.h"
#include "server/leyr/curl_epoll.h"

namespace leyr {
namespace {

// Response header lines are bounded on their own, so that the body limit is exact.
constexpr size_t kMaxResponseHeaderBytes = 64 * 1024;

// Upper bound of one epoll_wait; wakeups and curl's own timers end it earlier.
constexpr int kMaxPollMs = 1000;

void GlobalInitCurl() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

bool HasControl(absl::string_view text) {
  return std::any_of(text.begin(), text.end(), [](unsigned char c) {
    return c < 0x20 || c == 0x7f;
  });
}

// Response headers the broker never passes on: hop-by-hop (RFC 7230 6.1), cookies, and the
// three credential headers (should Leyr or a proxy ever echo them, the caller must not read them).
bool IsDroppedResponseHeader(absl::string_view lower) {
  return lower == "connection" || lower == "keep-alive" || lower == "transfer-encoding" ||
         lower == "te" || lower == "trailer" || lower == "upgrade" || lower == "set-cookie" ||
         absl::StartsWith(lower, "proxy-") || lower == "x-leyr-client-id" ||
         lower == "x-leyr-client-secret" || lower == "x-leyr-emr-oauth-code";
}

// RFC 7230 tchar: header names go into proto `string` fields, so they must be ASCII.
bool IsTokenName(absl::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](unsigned char c) {
    return absl::ascii_isalnum(c) || absl::StrContains("!#$%&'*+-.^_`|~", static_cast<char>(c));
  });
}

// Well-formed UTF-8 (no overlong forms, surrogates or code points past U+10FFFF), as protobuf
// requires of `string` fields.
bool IsUtf8(absl::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      n = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 2;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 3;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;
    for (size_t k = 1; k <= n; ++k) {
      const unsigned char t = s[i + k];
      if (t < (k == 1 ? lo : 0x80) || t > (k == 1 ? hi : 0xBF)) return false;
    }
    i += n + 1;
  }
  return true;
}

// Reads bytes as ISO-8859-1 (what obs-text in HTTP/1.1 field values historically meant).
std::string Latin1ToUtf8(absl::string_view s) {
  std::string out;
  out.reserve(s.size() * 2);
  for (unsigned char c : s) {
    if (c < 0x80) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back(static_cast<char>(0xC0 | (c >> 6)));
      out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    }
  }
  return out;
}

// One request from Send until its callback is called.
struct Transfer {
  LeyrRequest request;  // owns the body curl reads from
  LeyrCallback done;
  CURL* easy = nullptr;
  // The request's header list for CURLOPT_HTTPHEADER, in memory the transfer owns (no
  // curl_slist_append allocation per line): `lines` holds the lines made for this request,
  // `nodes` links them and the client's constant lines. curl only reads the list.
  std::vector<std::string> lines;
  std::vector<curl_slist> nodes;
  std::string url;
  LeyrResponse response;
  size_t max_bytes = 0;       // of the body
  size_t header_bytes = 0;    // header lines received so far
  bool too_large = false;
  int64_t timeout_ms = 0;
};

size_t OnBody(char* data, size_t size, size_t count, void* user) {
  auto* transfer = static_cast<Transfer*>(user);
  const size_t n = size * count;
  if (transfer->response.body.size() + n > transfer->max_bytes) {
    transfer->too_large = true;
    return 0;  // Aborts the transfer with CURLE_WRITE_ERROR.
  }
  transfer->response.body.append(data, n);
  return n;
}

size_t OnHeader(char* data, size_t size, size_t count, void* user) {
  auto* transfer = static_cast<Transfer*>(user);
  const size_t n = size * count;
  transfer->header_bytes += n;
  if (transfer->header_bytes > kMaxResponseHeaderBytes) {
    transfer->too_large = true;
    return 0;
  }
  absl::string_view line(data, n);
  if (absl::StartsWith(line, "HTTP/")) {
    // A new response (after a 1xx): start over.
    transfer->response.headers.clear();
    return n;
  }
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  if (line.empty()) return n;
  HttpFields& headers = transfer->response.headers;
  if (line.front() == ' ' || line.front() == '\t') {
    // Obsolete line folding: continues the previous value.
    if (!headers.empty()) {
      absl::StrAppend(&headers.back().second, " ", absl::StripAsciiWhitespace(line));
    }
    return n;
  }
  const size_t colon = line.find(':');
  if (colon == absl::string_view::npos) return n;
  std::string name = absl::AsciiStrToLower(absl::StripAsciiWhitespace(line.substr(0, colon)));
  if (name.empty()) return n;
  headers.emplace_back(std::move(name),
                       std::string(absl::StripAsciiWhitespace(line.substr(colon + 1))));
  return n;
}

// Removes hop-by-hop headers, set-cookie, the credential headers, names that are not tokens, and
// the headers the Connection header names; reads values that are not UTF-8 as ISO-8859-1.
void FilterResponseHeaders(HttpFields* headers) {
  std::vector<std::string> named;
  for (const auto& [name, value] : *headers) {
    if (name != "connection") continue;
    for (absl::string_view token : absl::StrSplit(value, ',')) {
      token = absl::StripAsciiWhitespace(token);
      if (!token.empty()) named.push_back(absl::AsciiStrToLower(token));
    }
  }
  headers->erase(std::remove_if(headers->begin(), headers->end(),
                                [&](const auto& field) {
                                  return !IsTokenName(field.first) ||
                                         IsDroppedResponseHeader(field.first) ||
                                         std::find(named.begin(), named.end(), field.first) !=
                                             named.end();
                                }),
                 headers->end());
  // A value that is not UTF-8 would make the whole CallLeyr response unparseable for callers.
  for (auto& field : *headers) {
    if (!IsUtf8(field.second)) field.second = Latin1ToUtf8(field.second);
  }
}

absl::Status ErrorForCurlCode(CURLcode code, const Transfer& transfer) {
  if (transfer.too_large || code == CURLE_FILESIZE_EXCEEDED) {
    return MakeError(absl::StatusCode::kResourceExhausted, reason::kLeyrResponseTooLarge,
                     absl::StrCat("Leyr's response is larger than ", transfer.max_bytes,
                                  " bytes (or its headers than ", kMaxResponseHeaderBytes,
                                  ")"));
  }
  if (code == CURLE_OPERATION_TIMEDOUT) {
    return MakeError(absl::StatusCode::kDeadlineExceeded, reason::kLeyrTimeout,
                     absl::StrCat("Leyr did not answer within ", transfer.timeout_ms, " ms"));
  }
  // curl_easy_strerror is a fixed text per code: it never contains a URL or a header.
  return MakeError(absl::StatusCode::kUnavailable, reason::kLeyrUnavailable,
                   absl::StrCat("Leyr could not be reached: ", curl_easy_strerror(code)));
}

// "Name: value", or "Name;" which is how curl sends a header with an empty value.
std::string HeaderLine(absl::string_view name, absl::string_view value) {
  return value.empty() ? absl::StrCat(name, ";") : absl::StrCat(name, ": ", value);
}

// libcurl's multi interface driven through its socket API on an epoll loop of our own, so that
// the thread calling Send can hand the request to the network itself (no hop to the loop
// thread before the request goes out), while the loop thread only waits for answers. Every
// libcurl call happens under mu_; epoll_wait runs without it. When mu_ is held (the loop is
// answering, under load), Send hands the request to the loop rather than wait for the lock.
// Callbacks always run on the loop thread, outside mu_.
class CurlLeyrClient final : public LeyrClient {
 public:
  explicit CurlLeyrClient(const CurlLeyrClientOptions& options) : options_(options) {
    GlobalInitCurl();
    while (!options_.base_uri.empty() && options_.base_uri.back() == '/') {
      options_.base_uri.pop_back();
    }
    credentials_ok_ = !HasControl(options_.client_id) && !HasControl(options_.client_secret);
    id_line_ = HeaderLine("x-leyr-client-id", options_.client_id);
    secret_line_ = HeaderLine("x-leyr-client-secret", options_.client_secret);
    multi_ = curl_multi_init();
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (multi_ == nullptr || epoll_fd_ < 0 || wake_fd_ < 0) {
      LEYR_LOG(Error, "the Leyr client could not start its event loop");
      std::abort();
    }
    epoll_event wake{};
    wake.events = EPOLLIN;
    wake.data.fd = wake_fd_;
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &wake);
    curl_multi_setopt(multi_, CURLMOPT_MAXCONNECTS,
                      static_cast<long>(std::max(1, options_.max_idle_connections)));
    curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &CurlLeyrClient::OnSocket);
    curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
    curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &CurlLeyrClient::OnTimer);
    curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
    thread_ = std::thread([this] { Run(); });
  }

  ~CurlLeyrClient() override {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    Wake();
    thread_.join();
    for (CURL* easy : free_easy_) curl_easy_cleanup(easy);
    OPENSSL_cleanse(secret_line_.data(), secret_line_.size());
    curl_multi_cleanup(multi_);
    close(wake_fd_);
    close(epoll_fd_);
  }

  void Send(LeyrRequest request, LeyrCallback done) override {
    auto transfer = std::make_unique<Transfer>();
    transfer->request = std::move(request);
    transfer->done = std::move(done);
    if (!mu_.TryLock()) {
      // Another thread holds the client, usually the loop while it answers: hand the request
      // to the loop instead of sleeping on the lock (on a busy CPU that costs two context
      // switches and a futex wake per request). The loop starts it before it waits again.
      {
        absl::MutexLock lock(&handoff_mu_);
        if (!handoff_closed_) handed_.push_back(std::move(transfer));
      }
      if (transfer == nullptr) {
        Wake();
        return;
      }
      Complete(std::move(transfer), ShuttingDown());
      return;
    }
    bool wake = false;
    if (!stopping_) {
      Start(std::move(transfer));
      // Sends the request now, on this thread, as far as the socket takes it.
      Drive(CURL_SOCKET_TIMEOUT, 0);
      // Anything finished or refused is answered by the loop thread, and a timer earlier than
      // the one the loop waits for must reach it.
      wake = !finished_.empty() || timer_deadline_ < loop_wakes_at_;
    }
    mu_.Unlock();
    if (transfer != nullptr) {
      // The client is being destroyed: answer here.
      Complete(std::move(transfer), ShuttingDown());
      return;
    }
    if (wake) Wake();
  }

  LeyrClientStats Stats() const override {
    LeyrClientStats stats;
    stats.requests_started = requests_started_.load(std::memory_order_relaxed);
    stats.requests_completed = requests_completed_.load(std::memory_order_relaxed);
    stats.connections_opened = connections_opened_.load(std::memory_order_relaxed);
    return stats;
  }

 private:
  using Outcome = std::pair<std::unique_ptr<Transfer>, absl::StatusOr<LeyrResponse>>;

  static absl::Status ShuttingDown() {
    return MakeError(absl::StatusCode::kUnavailable, reason::kShuttingDown,
                     "the Leyr client is shutting down");
  }

  void Wake() {
    const uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof(one));
  }

  // CURLMOPT_SOCKETFUNCTION: mirrors what curl wants to wait for into the epoll set
  // (curl_epoll.h). Called inside libcurl calls, so under mu_.
  static int OnSocket(CURL*, curl_socket_t fd, int what, void* self_ptr, void* socketp) {
    auto* self = static_cast<CurlLeyrClient*>(self_ptr);
    MirrorCurlSocket(self->epoll_fd_, self->multi_, fd, what, socketp, self);
    return 0;
  }

  // CURLMOPT_TIMERFUNCTION: when curl wants Drive(CURL_SOCKET_TIMEOUT) next. Under mu_.
  static int OnTimer(CURLM*, long timeout_ms, void* self_ptr) {
    auto* self = static_cast<CurlLeyrClient*>(self_ptr);
    self->timer_deadline_ = timeout_ms < 0 ? absl::InfiniteFuture()
                                           : absl::Now() + absl::Milliseconds(timeout_ms);
    return 0;
  }

  // One step of curl's state machine for `fd` (or its timers), then collects what finished.
  void Drive(curl_socket_t fd, int events) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    int running = 0;
    curl_multi_socket_action(multi_, fd, events, &running);
    // The timer callback reports only changes; ask for the next expiry outright.
    long next_ms = -1;
    if (curl_multi_timeout(multi_, &next_ms) == CURLM_OK) OnTimer(multi_, next_ms, this);
    CollectFinished();
  }

  // The event loop: waits for sockets and timers, drives curl, answers finished transfers.
  void Run() {
    constexpr int kMaxEvents = 256;
    epoll_event events[kMaxEvents];
    for (;;) {
      int wait_ms;
      {
        absl::MutexLock lock(&mu_);
        if (stopping_) break;
        const absl::Time now = absl::Now();
        loop_wakes_at_ = std::min(timer_deadline_, now + absl::Milliseconds(kMaxPollMs));
        wait_ms = static_cast<int>(absl::ToInt64Milliseconds(
            absl::Ceil(std::max(loop_wakes_at_ - now, absl::ZeroDuration()),
                       absl::Milliseconds(1))));
      }
      const int n = epoll_wait(epoll_fd_, events, kMaxEvents, wait_ms);
      std::vector<Outcome> done;
      {
        absl::MutexLock lock(&mu_);
        loop_wakes_at_ = absl::InfinitePast();  // awake: Send need not wake the loop
        for (int i = 0; i < n; ++i) {
          const int fd = events[i].data.fd;
          if (fd == wake_fd_) {
            uint64_t count;
            (void)!read(wake_fd_, &count, sizeof(count));
            continue;
          }
          Drive(fd, CurlSelectBits(events[i].events));
        }
        StartHanded();
        if (timer_deadline_ <= absl::Now()) Drive(CURL_SOCKET_TIMEOUT, 0);
        done.swap(finished_);
      }
      for (auto& [transfer, result] : done) Complete(std::move(transfer), std::move(result));
    }
    // Stopping (no Send gets past mu_ any more, and none can hand a request over once the
    // hand-over is closed): fail what is in flight, what finished and what was handed over.
    std::vector<Outcome> rest;
    {
      absl::MutexLock lock(&mu_);
      rest.swap(finished_);
      {
        absl::MutexLock handoff(&handoff_mu_);
        handoff_closed_ = true;
        for (auto& transfer : handed_) rest.emplace_back(std::move(transfer), ShuttingDown());
        handed_.clear();
      }
      for (auto& [easy, transfer] : active_) {
        Release(transfer.get());
        rest.emplace_back(std::move(transfer), ShuttingDown());
      }
      active_.clear();
    }
    for (auto& [transfer, result] : rest) Complete(std::move(transfer), std::move(result));
  }

  // Starts the requests Send handed over while the client was busy.
  void StartHanded() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::vector<std::unique_ptr<Transfer>> handed;
    {
      absl::MutexLock lock(&handoff_mu_);
      handed.swap(handed_);
    }
    if (handed.empty()) return;
    for (auto& transfer : handed) Start(std::move(transfer));
    Drive(CURL_SOCKET_TIMEOUT, 0);
  }

  // Calls the callback exactly once, outside any lock.
  void Complete(std::unique_ptr<Transfer> transfer, absl::StatusOr<LeyrResponse> result) {
    requests_completed_.fetch_add(1, std::memory_order_relaxed);
    LeyrCallback done = std::move(transfer->done);
    transfer.reset();
    if (done) done(std::move(result));
  }

  // A handle from the free list, or a new one with the options every request shares. A reused
  // handle is not curl_easy_reset: Configure sets every per-request option each time, so
  // nothing of the previous request carries over (the test MethodsAndBodies checks it), and the
  // shared options need not be set again (a reset and twenty options cost about 5,000
  // instructions per CallLeyr).
  CURL* AcquireEasy() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!free_easy_.empty()) {
      CURL* easy = free_easy_.back();
      free_easy_.pop_back();
      return easy;
    }
    CURL* easy = curl_easy_init();
    if (easy == nullptr) return nullptr;
    bool ok = true;
    auto set = [&ok](CURLcode rc) { ok = ok && rc == CURLE_OK; };
    set(curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https"));
    set(curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L));
    set(curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L));
    set(curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L));
    set(curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L));
    if (!options_.ca_file.empty()) {
      set(curl_easy_setopt(easy, CURLOPT_CAINFO, options_.ca_file.c_str()));
    }
    // Only the configured proxy, never one from the environment (the headers carry secrets).
    set(curl_easy_setopt(easy, CURLOPT_PROXY, options_.proxy.c_str()));
    set(curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L));
    set(curl_easy_setopt(easy, CURLOPT_MAXFILESIZE_LARGE,
                         static_cast<curl_off_t>(options_.max_response_bytes)));
    set(curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &OnBody));
    set(curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, &OnHeader));
    if (!ok) {
      curl_easy_cleanup(easy);
      return nullptr;
    }
    return easy;
  }

  // Detaches the transfer from curl and keeps its easy handle for reuse.
  void Release(Transfer* transfer) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (transfer->easy != nullptr) {
      curl_multi_remove_handle(multi_, transfer->easy);
      if (free_easy_.size() <
          static_cast<size_t>(std::max(16, options_.max_idle_connections))) {
        free_easy_.push_back(transfer->easy);
      } else {
        curl_easy_cleanup(transfer->easy);
      }
      transfer->easy = nullptr;
    }
  }

  // The per-request options. Every one of them is set on every request, whatever the
  // previous request on this handle set.
  absl::Status Configure(Transfer* t) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const LeyrRequest& request = t->request;
    CURL* easy = t->easy;
    // Header lines: the code, the caller's, and for a body no "Expect: 100-continue" round trip
    // and no made-up form content type (without a body curl adds neither); then the client's
    // constant id and secret lines.
    const std::string& method = request.method;
    const bool has_body = method == "POST" || method == "PUT" || method == "PATCH";
    bool has_content_type = false;
    t->lines.reserve(request.headers.size() + 1);
    t->lines.push_back(HeaderLine("x-leyr-emr-oauth-code", request.code));
    for (const auto& [name, value] : request.headers) {
      if (absl::EqualsIgnoreCase(name, "content-type")) has_content_type = true;
      t->lines.push_back(HeaderLine(name, value));
    }
    const char* fixed[4];
    size_t n_fixed = 0;
    if (has_body) {
      fixed[n_fixed++] = "Expect:";
      if (!has_content_type) fixed[n_fixed++] = "Content-Type:";
    }
    fixed[n_fixed++] = id_line_.c_str();
    fixed[n_fixed++] = secret_line_.c_str();
    t->nodes.resize(t->lines.size() + n_fixed);
    size_t i = 0;
    for (std::string& line : t->lines) t->nodes[i++].data = line.data();
    for (size_t k = 0; k < n_fixed; ++k) t->nodes[i++].data = const_cast<char*>(fixed[k]);
    for (size_t k = 0; k < t->nodes.size(); ++k) {
      t->nodes[k].next = k + 1 < t->nodes.size() ? &t->nodes[k + 1] : nullptr;
    }

    t->url = absl::StrCat(options_.base_uri, request.path);
    if (!request.query.empty()) absl::StrAppend(&t->url, "?", EncodeQuery(request.query));

    bool ok = true;
    auto set = [&ok](CURLcode rc) { ok = ok && rc == CURLE_OK; };
    set(curl_easy_setopt(easy, CURLOPT_PRIVATE, t));
    set(curl_easy_setopt(easy, CURLOPT_URL, t->url.c_str()));
    set(curl_easy_setopt(easy, CURLOPT_HTTPHEADER, t->nodes.data()));
    set(curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(t->timeout_ms)));
    set(curl_easy_setopt(easy, CURLOPT_WRITEDATA, t));
    set(curl_easy_setopt(easy, CURLOPT_HEADERDATA, t));
    if (has_body) {
      set(curl_easy_setopt(easy, CURLOPT_POSTFIELDS, request.body.data()));
      set(curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
                           static_cast<curl_off_t>(request.body.size())));
    } else {
      // Drops the previous request's body pointer, then goes back to a GET.
      set(curl_easy_setopt(easy, CURLOPT_POSTFIELDS, nullptr));
      set(curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L));
    }
    const bool standard = method == (has_body ? "POST" : "GET");
    set(curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, standard ? nullptr : method.c_str()));
    if (!ok) {
      return MakeError(absl::StatusCode::kInternal, reason::kInternal,
                       "libcurl refused an option of the Leyr request");
    }
    return absl::OkStatus();
  }

  // Adds the transfer to curl, or queues its error for the loop thread.
  void Start(std::unique_ptr<Transfer> t) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const LeyrRequest& request = t->request;
    if (!credentials_ok_ || HasControl(request.code)) {
      finished_.emplace_back(std::move(t),
                             MakeError(absl::StatusCode::kInternal, reason::kInternal,
                                       "the Leyr credentials contain control characters"));
      return;
    }
    absl::Duration timeout = options_.default_timeout;
    if (request.deadline != absl::InfiniteFuture()) {
      const absl::Duration remaining = request.deadline - absl::Now();
      if (remaining <= absl::ZeroDuration()) {
        finished_.emplace_back(
            std::move(t), MakeError(absl::StatusCode::kDeadlineExceeded, reason::kLeyrTimeout,
                                    "the deadline passed before the Leyr request was sent"));
        return;
      }
      timeout = std::min(timeout, remaining);
    }
    t->timeout_ms = std::max<int64_t>(1, absl::ToInt64Milliseconds(absl::Ceil(
                                             timeout, absl::Milliseconds(1))));
    t->max_bytes = options_.max_response_bytes;
    t->easy = AcquireEasy();
    if (t->easy == nullptr) {
      finished_.emplace_back(std::move(t),
                             MakeError(absl::StatusCode::kInternal, reason::kInternal,
                                       "could not allocate a Leyr transfer"));
      return;
    }
    absl::Status configured = Configure(t.get());
    if (configured.ok() && curl_multi_add_handle(multi_, t->easy) != CURLM_OK) {
      configured = MakeError(absl::StatusCode::kInternal, reason::kInternal,
                             "could not start the Leyr transfer");
    }
    if (!configured.ok()) {
      // Not added to the multi handle, so Release's remove is a harmless no-op.
      Release(t.get());
      finished_.emplace_back(std::move(t), std::move(configured));
      return;
    }
    requests_started_.fetch_add(1, std::memory_order_relaxed);
    CURL* easy = t->easy;
    active_.emplace(easy, std::move(t));
  }

  // Moves finished transfers, with their outcome, to finished_.
  void CollectFinished() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
      if (msg->msg != CURLMSG_DONE) continue;
      auto it = active_.find(msg->easy_handle);
      if (it == active_.end()) continue;
      std::unique_ptr<Transfer> t = std::move(it->second);
      active_.erase(it);
      const CURLcode code = msg->data.result;  // read before the handle is removed
      long num_connects = 0;
      curl_easy_getinfo(t->easy, CURLINFO_NUM_CONNECTS, &num_connects);
      if (num_connects > 0) connections_opened_.fetch_add(num_connects);
      long status = 0;
      curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
      Release(t.get());
      if (code != CURLE_OK) {
        absl::Status error = ErrorForCurlCode(code, *t);
        finished_.emplace_back(std::move(t), std::move(error));
        continue;
      }
      LeyrResponse response = std::move(t->response);
      response.status_code = static_cast<int>(status);
      response.new_connection = num_connects > 0;
      FilterResponseHeaders(&response.headers);
      finished_.emplace_back(std::move(t), std::move(response));
    }
  }

  CurlLeyrClientOptions options_;
  bool credentials_ok_ = true;
  // "x-leyr-client-id: ..." and "x-leyr-client-secret: ...", made once; the second is cleansed
  // by the destructor.
  std::string id_line_;
  std::string secret_line_;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  std::thread thread_;

  absl::Mutex mu_;
  CURLM* multi_ ABSL_PT_GUARDED_BY(mu_) = nullptr;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;  // the destructor asked the loop to end
  absl::Time timer_deadline_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();  // curl's timer
  absl::Time loop_wakes_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();  // while it waits
  std::unordered_map<CURL*, std::unique_ptr<Transfer>> active_ ABSL_GUARDED_BY(mu_);
  std::vector<CURL*> free_easy_ ABSL_GUARDED_BY(mu_);
  std::vector<Outcome> finished_ ABSL_GUARDED_BY(mu_);  // answered by the loop thread

  // Requests Send could not start because mu_ was held; the loop starts them. Taken after mu_
  // when both are held.
  absl::Mutex handoff_mu_ ABSL_ACQUIRED_AFTER(mu_);
  std::vector<std::unique_ptr<Transfer>> handed_ ABSL_GUARDED_BY(handoff_mu_);
  bool handoff_closed_ ABSL_GUARDED_BY(handoff_mu_) = false;  // the loop has ended

  std::atomic<int64_t> requests_started_{0};
  std::atomic<int64_t> requests_completed_{0};
  std::atomic<int64_t> connections_opened_{0};
};

}  // namespace

std::unique_ptr<LeyrClient> MakeCurlLeyrClient(const CurlLeyrClientOptions& options) {
  return std::make_unique<CurlLeyrClient>(options);
}

}  // namespace leyr
