#include "server/leyr/leyr_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <deque>
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

namespace leyr {
namespace {

// Response header lines are bounded on their own, so that the body limit is exact.
constexpr size_t kMaxResponseHeaderBytes = 64 * 1024;

// Upper bound of one curl_multi_poll; wakeups and curl's own timers end it earlier.
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
  curl_slist* headers = nullptr;
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
curl_slist* AppendHeader(curl_slist* list, absl::string_view name, absl::string_view value,
                         bool* failed) {
  const std::string line =
      value.empty() ? absl::StrCat(name, ";") : absl::StrCat(name, ": ", value);
  curl_slist* appended = curl_slist_append(list, line.c_str());
  if (appended == nullptr) {
    *failed = true;
    return list;
  }
  return appended;
}

class CurlLeyrClient final : public LeyrClient {
 public:
  explicit CurlLeyrClient(const CurlLeyrClientOptions& options) : options_(options) {
    GlobalInitCurl();
    while (!options_.base_uri.empty() && options_.base_uri.back() == '/') {
      options_.base_uri.pop_back();
    }
    credentials_ok_ = !HasControl(options_.client_id) && !HasControl(options_.client_secret);
    multi_ = curl_multi_init();
    if (multi_ == nullptr) {
      LEYR_LOG(Error, "curl_multi_init failed");
      std::abort();
    }
    curl_multi_setopt(multi_, CURLMOPT_MAXCONNECTS,
                      static_cast<long>(std::max(1, options_.max_idle_connections)));
    thread_ = std::thread([this] { Run(); });
  }

  ~CurlLeyrClient() override {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    curl_multi_wakeup(multi_);
    thread_.join();
    for (CURL* easy : free_easy_) curl_easy_cleanup(easy);
    curl_multi_cleanup(multi_);
  }

  void Send(LeyrRequest request, LeyrCallback done) override {
    auto transfer = std::make_unique<Transfer>();
    transfer->request = std::move(request);
    transfer->done = std::move(done);
    {
      absl::MutexLock lock(&mu_);
      if (!stopped_) {
        queue_.push_back(std::move(transfer));
      }
    }
    if (transfer != nullptr) {
      // The loop has already ended (Send raced with the destructor): answer here.
      Complete(std::move(transfer), ShuttingDown());
      return;
    }
    curl_multi_wakeup(multi_);
  }

  LeyrClientStats Stats() const override {
    LeyrClientStats stats;
    stats.requests_started = requests_started_.load(std::memory_order_relaxed);
    stats.requests_completed = requests_completed_.load(std::memory_order_relaxed);
    stats.connections_opened = connections_opened_.load(std::memory_order_relaxed);
    return stats;
  }

 private:
  static absl::Status ShuttingDown() {
    return MakeError(absl::StatusCode::kUnavailable, reason::kShuttingDown,
                     "the Leyr client is shutting down");
  }

  // The event loop: starts queued requests, drives curl, completes finished transfers.
  void Run() {
    for (;;) {
      std::deque<std::unique_ptr<Transfer>> batch;
      bool stopping;
      {
        absl::MutexLock lock(&mu_);
        batch.swap(queue_);
        stopping = stopping_;
      }
      if (stopping) {
        for (auto& transfer : batch) Complete(std::move(transfer), ShuttingDown());
        break;
      }
      for (auto& transfer : batch) Start(std::move(transfer));
      int running = 0;
      curl_multi_perform(multi_, &running);
      CollectFinished();
      curl_multi_poll(multi_, nullptr, 0, kMaxPollMs, nullptr);
    }
    // Fail what is in flight, then whatever raced in before stopped_ was set.
    std::vector<std::unique_ptr<Transfer>> in_flight;
    for (auto& [easy, transfer] : active_) in_flight.push_back(std::move(transfer));
    active_.clear();
    for (auto& transfer : in_flight) {
      Release(transfer.get());
      Complete(std::move(transfer), ShuttingDown());
    }
    std::deque<std::unique_ptr<Transfer>> late;
    {
      absl::MutexLock lock(&mu_);
      stopped_ = true;
      late.swap(queue_);
    }
    for (auto& transfer : late) Complete(std::move(transfer), ShuttingDown());
  }

  // Calls the callback exactly once, outside any lock.
  void Complete(std::unique_ptr<Transfer> transfer, absl::StatusOr<LeyrResponse> result) {
    requests_completed_.fetch_add(1, std::memory_order_relaxed);
    LeyrCallback done = std::move(transfer->done);
    transfer.reset();
    if (done) done(std::move(result));
  }

  CURL* AcquireEasy() {
    if (!free_easy_.empty()) {
      CURL* easy = free_easy_.back();
      free_easy_.pop_back();
      curl_easy_reset(easy);
      return easy;
    }
    return curl_easy_init();
  }

  // Detaches the transfer from curl and keeps its easy handle for reuse.
  void Release(Transfer* transfer) {
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
    if (transfer->headers != nullptr) {
      curl_slist_free_all(transfer->headers);
      transfer->headers = nullptr;
    }
  }

  absl::Status Configure(Transfer* t) {
    const LeyrRequest& request = t->request;
    CURL* easy = t->easy;
    bool failed = false;
    curl_slist* headers = nullptr;
    headers = AppendHeader(headers, "x-leyr-client-id", options_.client_id, &failed);
    headers = AppendHeader(headers, "x-leyr-client-secret", options_.client_secret, &failed);
    headers = AppendHeader(headers, "x-leyr-emr-oauth-code", request.code, &failed);
    bool has_content_type = false;
    for (const auto& [name, value] : request.headers) {
      if (absl::EqualsIgnoreCase(name, "content-type")) has_content_type = true;
      headers = AppendHeader(headers, name, value, &failed);
    }
    // No "Expect: 100-continue" round trip, and no made-up form content type.
    headers = curl_slist_append(headers, "Expect:");
    if (!has_content_type) headers = curl_slist_append(headers, "Content-Type:");
    t->headers = headers;
    if (failed || headers == nullptr) {
      return MakeError(absl::StatusCode::kInternal, reason::kInternal,
                       "out of memory building the Leyr request");
    }

    t->url = absl::StrCat(options_.base_uri, request.path);
    if (!request.query.empty()) absl::StrAppend(&t->url, "?", EncodeQuery(request.query));

    bool ok = true;
    auto set = [&ok](CURLcode rc) { ok = ok && rc == CURLE_OK; };
    set(curl_easy_setopt(easy, CURLOPT_PRIVATE, t));
    set(curl_easy_setopt(easy, CURLOPT_URL, t->url.c_str()));
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
    set(curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers));
    set(curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(t->timeout_ms)));
    set(curl_easy_setopt(easy, CURLOPT_MAXFILESIZE_LARGE,
                         static_cast<curl_off_t>(options_.max_response_bytes)));
    set(curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &OnBody));
    set(curl_easy_setopt(easy, CURLOPT_WRITEDATA, t));
    set(curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, &OnHeader));
    set(curl_easy_setopt(easy, CURLOPT_HEADERDATA, t));
    const std::string& method = request.method;
    if (method == "POST" || method == "PUT" || method == "PATCH") {
      set(curl_easy_setopt(easy, CURLOPT_POSTFIELDS, request.body.data()));
      set(curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
                           static_cast<curl_off_t>(request.body.size())));
      if (method != "POST") set(curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, method.c_str()));
    } else {
      set(curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L));
      if (method != "GET") set(curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, method.c_str()));
    }
    if (!ok) {
      return MakeError(absl::StatusCode::kInternal, reason::kInternal,
                       "libcurl refused an option of the Leyr request");
    }
    return absl::OkStatus();
  }

  void Start(std::unique_ptr<Transfer> t) {
    const LeyrRequest& request = t->request;
    if (!credentials_ok_ || HasControl(request.code)) {
      Complete(std::move(t), MakeError(absl::StatusCode::kInternal, reason::kInternal,
                                       "the Leyr credentials contain control characters"));
      return;
    }
    absl::Duration timeout = options_.default_timeout;
    if (request.deadline != absl::InfiniteFuture()) {
      const absl::Duration remaining = request.deadline - absl::Now();
      if (remaining <= absl::ZeroDuration()) {
        Complete(std::move(t),
                 MakeError(absl::StatusCode::kDeadlineExceeded, reason::kLeyrTimeout,
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
      Complete(std::move(t), MakeError(absl::StatusCode::kInternal, reason::kInternal,
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
      Complete(std::move(t), configured);
      return;
    }
    requests_started_.fetch_add(1, std::memory_order_relaxed);
    CURL* easy = t->easy;
    active_.emplace(easy, std::move(t));
  }

  void CollectFinished() {
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
        Complete(std::move(t), std::move(error));
        continue;
      }
      LeyrResponse response = std::move(t->response);
      response.status_code = static_cast<int>(status);
      response.new_connection = num_connects > 0;
      FilterResponseHeaders(&response.headers);
      Complete(std::move(t), std::move(response));
    }
  }

  CurlLeyrClientOptions options_;
  bool credentials_ok_ = true;
  CURLM* multi_ = nullptr;
  std::thread thread_;

  absl::Mutex mu_;
  std::deque<std::unique_ptr<Transfer>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;  // the destructor asked the loop to end
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;   // the loop no longer takes requests

  // Used only on the event-loop thread.
  std::unordered_map<CURL*, std::unique_ptr<Transfer>> active_;
  std::vector<CURL*> free_easy_;

  std::atomic<int64_t> requests_started_{0};
  std::atomic<int64_t> requests_completed_{0};
  std::atomic<int64_t> connections_opened_{0};
};

}  // namespace

std::unique_ptr<LeyrClient> MakeCurlLeyrClient(const CurlLeyrClientOptions& options) {
  return std::make_unique<CurlLeyrClient>(options);
}

}  // namespace leyr
