#include "server/leyr/leyr_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <future>
#include <thread>
#include <atomic>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/common/status_util.h"
#include "server/http/http_server.h"
#include "tests/testing/status_matchers.h"

namespace leyr {
namespace {

using ::leyr::testing::IsOk;
using ::leyr::testing::StatusIs;
using ::testing::Contains;
using ::testing::Each;
using ::testing::Key;
using ::testing::Le;
using ::testing::Not;
using ::testing::Pair;

// Canaries: must never show up in an error message.
constexpr char kClientId[] = "client-id-1";
constexpr char kSecret[] = "SECRET-CANARY-5b1e9d";
constexpr char kCode[] = "CODE-CANARY-c0ffee";

// Generous: only reached when something is broken.
constexpr auto kWait = std::chrono::seconds(30);

constexpr char kPrefix[] = "/api/emrs/athenapractice";

// A local "Leyr": records requests, answers by path, and can hold answers until told.
class FakeLeyr {
 public:
  FakeLeyr() {
    HttpServerOptions options;
    options.max_body_bytes = 1 << 20;
    auto server = HttpServer::Start(
        options, [this](HttpRequest request, HttpResponder respond) {
          Handle(std::move(request), std::move(respond));
        });
    EXPECT_THAT(server, IsOk());
    if (server.ok()) server_ = std::move(*server);
  }
  ~FakeLeyr() {
    ReleaseHeld();
    if (server_) server_->Stop();
  }

  std::string base_uri() const { return absl::StrCat("http://127.0.0.1:", server_->port()); }

  std::vector<HttpRequest> requests() {
    absl::MutexLock lock(&mu_);
    return requests_;
  }

  // Waits until `n` answers are held; false after a generous timeout.
  bool WaitForHeld(size_t n) {
    std::pair<FakeLeyr*, size_t> arg(this, n);
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(
                                    +[](std::pair<FakeLeyr*, size_t>* a) {
                                      a->first->mu_.AssertHeld();
                                      return a->first->held_.size() >= a->second;
                                    },
                                    &arg),
                                absl::Seconds(30));
  }

  // Answers every held request (from the calling thread).
  void ReleaseHeld() {
    std::vector<HttpResponder> held;
    {
      absl::MutexLock lock(&mu_);
      held.swap(held_);
    }
    for (auto& respond : held) respond(HttpResponse{200, {}, "late"});
  }

 private:
  void Handle(HttpRequest request, HttpResponder respond) {
    const std::string path = request.path;
    const std::string query_i = request.QueryValue("i");
    {
      absl::MutexLock lock(&mu_);
      requests_.push_back(request);
      if (path == absl::StrCat(kPrefix, "/slow")) {
        held_.push_back(std::move(respond));
        return;
      }
    }
    HttpResponse response;
    if (path == absl::StrCat(kPrefix, "/big")) {
      size_t size = 0;
      if (!absl::SimpleAtoi(request.QueryValue("size"), &size)) size = 0;
      response.body = std::string(size, 'b');
    } else if (path == absl::StrCat(kPrefix, "/redirect")) {
      response.status = 302;
      response.headers = {{"Location", absl::StrCat(kPrefix, "/echo")}};
    } else if (path == absl::StrCat(kPrefix, "/odd-headers")) {
      // Echoes the credentials back and sends values that are not UTF-8.
      response.headers = {{"X-Leyr-Client-Id", request.Header("x-leyr-client-id")},
                          {"X-Leyr-Client-Secret", request.Header("x-leyr-client-secret")},
                          {"X-Leyr-Emr-Oauth-Code", request.Header("x-leyr-emr-oauth-code")},
                          {"X-Leyr-Request-Id", "r-1"},
                          {"X-Latin1", "caf\xe9"},
                          {"X-Utf8", "caf\xc3\xa9 \xf0\x9f\x98\x80"},
                          {"X-Overlong", "\xc0\xaf"}};
      response.body = "odd";
    } else if (path == absl::StrCat(kPrefix, "/unauthorized")) {
      response.status = 401;
      response.headers = {{"Content-Type", "application/json"}};
      response.body = R"({"code":"UNAUTHORIZED","status":401})";
    } else {
      response.headers = {{"Content-Type", "text/plain"},
                          {"X-Custom-Header", "custom"},
                          {"Set-Cookie", "session=abc"},
                          {"Keep-Alive", "timeout=5"},
                          {"Proxy-Authenticate", "Basic"},
                          {"Trailer", "X-Checksum"}};
      response.body = absl::StrCat("echo ", query_i);
    }
    respond(std::move(response));
  }

  std::unique_ptr<HttpServer> server_;
  absl::Mutex mu_;
  std::vector<HttpRequest> requests_ ABSL_GUARDED_BY(mu_);
  std::vector<HttpResponder> held_ ABSL_GUARDED_BY(mu_);
};

void ExpectNoCanary(const absl::Status& status) {
  const std::string text = status.ToString();
  EXPECT_EQ(text.find(kSecret), std::string::npos) << text;
  EXPECT_EQ(text.find(kCode), std::string::npos) << text;
}

// Sends and waits for the callback.
absl::StatusOr<LeyrResponse> Call(LeyrClient& client, LeyrRequest request) {
  auto promise = std::make_shared<std::promise<absl::StatusOr<LeyrResponse>>>();
  auto future = promise->get_future();
  client.Send(std::move(request),
              [promise](absl::StatusOr<LeyrResponse> result) { promise->set_value(result); });
  if (future.wait_for(kWait) != std::future_status::ready) {
    ADD_FAILURE() << "no callback";
    return absl::InternalError("no callback");
  }
  absl::StatusOr<LeyrResponse> result = future.get();
  ExpectNoCanary(result.status());
  return result;
}

LeyrRequest Get(std::string path) {
  LeyrRequest request;
  request.method = "GET";
  request.path = absl::StrCat(kPrefix, path);
  request.code = kCode;
  return request;
}

std::string HeaderOf(const HttpFields& headers, absl::string_view name) {
  for (const auto& [k, v] : headers) {
    if (absl::EqualsIgnoreCase(k, name)) return v;
  }
  return "<absent>";
}

class LeyrClientTest : public ::testing::Test {
 protected:
  CurlLeyrClientOptions Options() {
    CurlLeyrClientOptions options;
    options.base_uri = leyr_.base_uri() + "/";  // a trailing slash is fine
    options.client_id = kClientId;
    options.client_secret = kSecret;
    return options;
  }

  FakeLeyr leyr_;
};

TEST_F(LeyrClientTest, SendsTheThreeHeadersAndPassesEverythingThrough) {
  auto client = MakeCurlLeyrClient(Options());
  LeyrRequest request;
  request.method = "POST";
  request.path = absl::StrCat(kPrefix, "/patients");
  request.query = {{"i", "7"}, {"name", "a b&c=d"}, {"empty", ""}};
  request.headers = {{"Content-Type", "application/json"},
                     {"X-Trace", "trace-1"},
                     {"X-Empty", ""}};
  request.body = R"({"given":"Ann"})";
  request.code = kCode;
  absl::StatusOr<LeyrResponse> response = Call(*client, request);
  ASSERT_THAT(response, IsOk());
  EXPECT_EQ(response->status_code, 200);
  EXPECT_EQ(response->body, "echo 7");
  EXPECT_TRUE(response->new_connection);
  EXPECT_THAT(response->headers, Contains(Pair("x-custom-header", "custom")));
  EXPECT_THAT(response->headers, Contains(Pair("content-type", "text/plain")));
  for (const char* dropped : {"set-cookie", "keep-alive", "proxy-authenticate", "trailer",
                              "connection", "transfer-encoding"}) {
    EXPECT_THAT(response->headers, Not(Contains(Key(dropped)))) << dropped;
  }
  for (const auto& [name, value] : response->headers) {
    EXPECT_EQ(name, absl::AsciiStrToLower(name));
  }

  std::vector<HttpRequest> seen = leyr_.requests();
  ASSERT_EQ(seen.size(), 1u);
  const HttpRequest& got = seen[0];
  EXPECT_EQ(got.method, "POST");
  EXPECT_EQ(got.path, absl::StrCat(kPrefix, "/patients"));
  EXPECT_EQ(got.Header("x-leyr-client-id"), kClientId);
  EXPECT_EQ(got.Header("x-leyr-client-secret"), kSecret);
  EXPECT_EQ(got.Header("x-leyr-emr-oauth-code"), kCode);
  EXPECT_EQ(got.Header("content-type"), "application/json");
  EXPECT_EQ(got.Header("x-trace"), "trace-1");
  EXPECT_EQ(HeaderOf(got.headers, "x-empty"), "");
  EXPECT_EQ(HeaderOf(got.headers, "expect"), "<absent>");
  EXPECT_EQ(got.body, R"({"given":"Ann"})");
  EXPECT_EQ(got.query, (HttpFields{{"i", "7"}, {"name", "a b&c=d"}, {"empty", ""}}));
}

TEST_F(LeyrClientTest, CredentialHeadersAreNeverPassedBackAndValuesAreUtf8) {
  auto client = MakeCurlLeyrClient(Options());
  absl::StatusOr<LeyrResponse> response = Call(*client, Get("/odd-headers"));
  ASSERT_THAT(response, IsOk());
  EXPECT_EQ(response->status_code, 200);
  for (const char* dropped : {"x-leyr-client-id", "x-leyr-client-secret", "x-leyr-emr-oauth-code"}) {
    EXPECT_THAT(response->headers, Not(Contains(Key(dropped)))) << dropped;
  }
  for (const auto& [name, value] : response->headers) {
    EXPECT_EQ(value.find(kSecret), std::string::npos) << name;
    EXPECT_EQ(value.find(kCode), std::string::npos) << name;
  }
  EXPECT_THAT(response->headers, Contains(Pair("x-leyr-request-id", "r-1")));
  // Not UTF-8: read as ISO-8859-1. UTF-8 stays as it is.
  EXPECT_THAT(response->headers, Contains(Pair("x-latin1", "caf\xc3\xa9")));
  EXPECT_THAT(response->headers, Contains(Pair("x-utf8", "caf\xc3\xa9 \xf0\x9f\x98\x80")));
  EXPECT_THAT(response->headers, Contains(Pair("x-overlong", "\xc3\x80\xc2\xaf")));
}

TEST_F(LeyrClientTest, MethodsAndBodies) {
  auto client = MakeCurlLeyrClient(Options());
  LeyrRequest put = Get("/patients/1");
  put.method = "PUT";  // empty body, no content type given
  ASSERT_THAT(Call(*client, put), IsOk());
  LeyrRequest patch = Get("/patients/1");
  patch.method = "PATCH";
  patch.body = "p";
  ASSERT_THAT(Call(*client, patch), IsOk());
  LeyrRequest del = Get("/patients/1");
  del.method = "DELETE";
  ASSERT_THAT(Call(*client, del), IsOk());
  ASSERT_THAT(Call(*client, Get("/care-units")), IsOk());
  // The same easy handle serves the next requests: nothing of a POST (body, method, caller
  // header) may carry over to the GET after it.
  LeyrRequest post = Get("/patients");
  post.method = "POST";
  post.body = "q=1";
  post.headers = {{"x-only-on-the-post", "1"}};
  ASSERT_THAT(Call(*client, post), IsOk());
  ASSERT_THAT(Call(*client, Get("/care-units")), IsOk());

  std::vector<HttpRequest> seen = leyr_.requests();
  ASSERT_EQ(seen.size(), 6u);
  EXPECT_EQ(seen[0].method, "PUT");
  EXPECT_EQ(seen[0].body, "");
  EXPECT_EQ(seen[0].Header("content-length"), "0");
  EXPECT_EQ(HeaderOf(seen[0].headers, "content-type"), "<absent>");
  EXPECT_EQ(seen[1].method, "PATCH");
  EXPECT_EQ(seen[1].body, "p");
  EXPECT_EQ(seen[2].method, "DELETE");
  EXPECT_EQ(seen[3].method, "GET");
  EXPECT_EQ(seen[3].body, "");
  EXPECT_EQ(seen[4].method, "POST");
  EXPECT_EQ(seen[4].body, "q=1");
  EXPECT_EQ(seen[4].Header("x-only-on-the-post"), "1");
  EXPECT_EQ(seen[5].method, "GET");
  EXPECT_EQ(seen[5].body, "");
  EXPECT_EQ(HeaderOf(seen[5].headers, "content-length"), "<absent>");
  EXPECT_EQ(HeaderOf(seen[5].headers, "x-only-on-the-post"), "<absent>");
  for (const HttpRequest& r : seen) {
    EXPECT_EQ(r.Header("x-leyr-client-id"), kClientId) << r.method;
  }
  for (const HttpRequest& r : seen) {
    EXPECT_EQ(HeaderOf(r.headers, "expect"), "<absent>") << r.method;
    EXPECT_EQ(HeaderOf(r.headers, "content-type"), "<absent>") << r.method;
  }
}

TEST_F(LeyrClientTest, ErrorStatusesAreResponsesAndRedirectsAreNotFollowed) {
  auto client = MakeCurlLeyrClient(Options());
  absl::StatusOr<LeyrResponse> unauthorized = Call(*client, Get("/unauthorized"));
  ASSERT_THAT(unauthorized, IsOk());
  EXPECT_EQ(unauthorized->status_code, 401);
  EXPECT_EQ(unauthorized->body, R"({"code":"UNAUTHORIZED","status":401})");

  absl::StatusOr<LeyrResponse> redirect = Call(*client, Get("/redirect"));
  ASSERT_THAT(redirect, IsOk());
  EXPECT_EQ(redirect->status_code, 302);
  EXPECT_EQ(leyr_.requests().size(), 2u);
}

TEST_F(LeyrClientTest, DeadlineWhileLeyrHoldsTheAnswer) {
  auto client = MakeCurlLeyrClient(Options());
  LeyrRequest request = Get("/slow");
  request.deadline = absl::Now() + absl::Milliseconds(300);
  absl::StatusOr<LeyrResponse> response = Call(*client, request);
  EXPECT_THAT(response, StatusIs(absl::StatusCode::kDeadlineExceeded, reason::kLeyrTimeout));
  // Not given up much before the deadline (curl's timers have millisecond granularity).
  EXPECT_GE(absl::Now(), request.deadline - absl::Milliseconds(20));
  EXPECT_EQ(leyr_.requests().size(), 1u);  // it was sent, then given up
  leyr_.ReleaseHeld();
}

TEST_F(LeyrClientTest, DefaultTimeoutAppliesWithoutDeadline) {
  CurlLeyrClientOptions options = Options();
  options.default_timeout = absl::Milliseconds(300);
  auto client = MakeCurlLeyrClient(options);
  LeyrRequest request = Get("/slow");
  request.deadline = absl::Now() + absl::Hours(1);  // the shorter of the two applies
  EXPECT_THAT(Call(*client, request),
              StatusIs(absl::StatusCode::kDeadlineExceeded, reason::kLeyrTimeout));
  leyr_.ReleaseHeld();
}

TEST_F(LeyrClientTest, PastDeadlineIsNotSent) {
  auto client = MakeCurlLeyrClient(Options());
  LeyrRequest request = Get("/care-units");
  request.deadline = absl::Now() - absl::Seconds(1);
  EXPECT_THAT(Call(*client, request),
              StatusIs(absl::StatusCode::kDeadlineExceeded, reason::kLeyrTimeout));
  // A later request goes through, and it is the only one Leyr saw.
  ASSERT_THAT(Call(*client, Get("/care-units")), IsOk());
  EXPECT_EQ(leyr_.requests().size(), 1u);
}

TEST_F(LeyrClientTest, ConnectionRefusedIsUnavailable) {
  // A bound socket that does not listen: connecting to it is refused.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  CurlLeyrClientOptions options = Options();
  options.base_uri = absl::StrCat("http://127.0.0.1:", ntohs(addr.sin_port));
  auto client = MakeCurlLeyrClient(options);
  absl::StatusOr<LeyrResponse> response = Call(*client, Get("/care-units"));
  EXPECT_THAT(response, StatusIs(absl::StatusCode::kUnavailable, reason::kLeyrUnavailable));
  EXPECT_EQ(response.status().message(), "Leyr could not be reached: Couldn't connect to server");
  close(fd);
}

TEST_F(LeyrClientTest, OnlyHttpAndHttpsAreSpoken) {
  CurlLeyrClientOptions options = Options();
  options.base_uri = "file:///etc";
  auto client = MakeCurlLeyrClient(options);
  EXPECT_THAT(Call(*client, Get("/passwd")),
              StatusIs(absl::StatusCode::kUnavailable, reason::kLeyrUnavailable));
}

TEST_F(LeyrClientTest, TlsIsVerifiedAndFailsAgainstPlainHttp) {
  CurlLeyrClientOptions options = Options();
  options.base_uri = "https://" + leyr_.base_uri().substr(strlen("http://"));
  auto client = MakeCurlLeyrClient(options);
  EXPECT_THAT(Call(*client, Get("/care-units")),
              StatusIs(absl::StatusCode::kUnavailable, reason::kLeyrUnavailable));
}

TEST_F(LeyrClientTest, ResponseTooLarge) {
  CurlLeyrClientOptions options = Options();
  options.max_response_bytes = 4096;
  auto client = MakeCurlLeyrClient(options);
  LeyrRequest request = Get("/big");
  request.query = {{"size", "100000"}};
  EXPECT_THAT(Call(*client, request), StatusIs(absl::StatusCode::kResourceExhausted,
                                               reason::kLeyrResponseTooLarge));
  request.query = {{"size", "4097"}};
  EXPECT_THAT(Call(*client, request), StatusIs(absl::StatusCode::kResourceExhausted,
                                               reason::kLeyrResponseTooLarge));
  request.query = {{"size", "4096"}};  // exactly the limit
  absl::StatusOr<LeyrResponse> small = Call(*client, request);
  ASSERT_THAT(small, IsOk());
  EXPECT_EQ(small->body.size(), 4096u);
}

TEST_F(LeyrClientTest, SequentialRequestsReuseTheConnection) {
  auto client = MakeCurlLeyrClient(Options());
  int new_connections = 0;
  for (int i = 0; i < 100; ++i) {
    LeyrRequest request = Get("/care-units");
    request.query = {{"i", absl::StrCat(i)}};
    absl::StatusOr<LeyrResponse> response = Call(*client, request);
    ASSERT_THAT(response, IsOk());
    EXPECT_EQ(response->body, absl::StrCat("echo ", i));
    if (response->new_connection) ++new_connections;
  }
  EXPECT_THAT(client->Stats().connections_opened, Le(2));
  EXPECT_EQ(client->Stats().connections_opened, new_connections);
  EXPECT_EQ(client->Stats().requests_completed, 100);
}

TEST_F(LeyrClientTest, ConcurrentRequestsAllComplete) {
  auto client = MakeCurlLeyrClient(Options());
  constexpr int kRequests = 200;
  std::vector<std::future<absl::StatusOr<LeyrResponse>>> futures;
  for (int i = 0; i < kRequests; ++i) {
    auto promise = std::make_shared<std::promise<absl::StatusOr<LeyrResponse>>>();
    futures.push_back(promise->get_future());
    LeyrRequest request = Get("/care-units");
    request.query = {{"i", absl::StrCat(i)}};
    client->Send(std::move(request), [promise](absl::StatusOr<LeyrResponse> r) {
      promise->set_value(std::move(r));
    });
  }
  for (int i = 0; i < kRequests; ++i) {
    ASSERT_EQ(futures[i].wait_for(kWait), std::future_status::ready) << i;
    absl::StatusOr<LeyrResponse> response = futures[i].get();
    ASSERT_THAT(response, IsOk()) << i;
    EXPECT_EQ(response->body, absl::StrCat("echo ", i));
  }
  EXPECT_EQ(leyr_.requests().size(), static_cast<size_t>(kRequests));
  EXPECT_EQ(client->Stats().requests_completed, kRequests);
}

// Senders on many threads contend for the client with its loop; a Send that finds the client
// busy hands its request to the loop instead of waiting. Every request must still be sent once
// and answered once, with its own answer.
TEST_F(LeyrClientTest, RequestsFromManyThreadsAllCompleteOnce) {
  auto client = MakeCurlLeyrClient(Options());
  constexpr int kThreads = 8;
  constexpr int kPerThread = 25;  // 200 in flight: within the fake's 256 connections
  std::vector<std::vector<std::future<absl::StatusOr<LeyrResponse>>>> futures(kThreads);
  std::atomic<int> calls{0};
  std::vector<std::thread> senders;
  for (int t = 0; t < kThreads; ++t) {
    senders.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        auto promise = std::make_shared<std::promise<absl::StatusOr<LeyrResponse>>>();
        futures[t].push_back(promise->get_future());
        LeyrRequest request = Get("/care-units");
        request.query = {{"i", absl::StrCat(t * kPerThread + i)}};
        client->Send(std::move(request), [promise, &calls](absl::StatusOr<LeyrResponse> r) {
          calls.fetch_add(1);
          promise->set_value(std::move(r));  // a second call would throw
        });
      }
    });
  }
  for (auto& sender : senders) sender.join();
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) {
      ASSERT_EQ(futures[t][i].wait_for(kWait), std::future_status::ready) << t << "/" << i;
      absl::StatusOr<LeyrResponse> response = futures[t][i].get();
      ASSERT_THAT(response, IsOk());
      EXPECT_EQ(response->body, absl::StrCat("echo ", t * kPerThread + i));
    }
  }
  EXPECT_EQ(calls.load(), kThreads * kPerThread);
  EXPECT_EQ(leyr_.requests().size(), static_cast<size_t>(kThreads * kPerThread));
  EXPECT_EQ(client->Stats().requests_started, kThreads * kPerThread);
}

TEST_F(LeyrClientTest, CallbackMaySendAgain) {
  auto client = MakeCurlLeyrClient(Options());
  std::promise<absl::StatusOr<LeyrResponse>> second;
  auto future = second.get_future();
  LeyrClient* raw = client.get();
  raw->Send(Get("/care-units"), [raw, &second](absl::StatusOr<LeyrResponse> first) {
    EXPECT_THAT(first, IsOk());
    raw->Send(Get("/patients"), [&second](absl::StatusOr<LeyrResponse> r) {
      second.set_value(std::move(r));
    });
  });
  ASSERT_EQ(future.wait_for(kWait), std::future_status::ready);
  EXPECT_THAT(future.get(), IsOk());
  EXPECT_EQ(leyr_.requests().size(), 2u);
}

TEST_F(LeyrClientTest, DestructorFailsRequestsInFlight) {
  auto client = MakeCurlLeyrClient(Options());
  constexpr int kInFlight = 5;
  std::vector<std::future<absl::StatusOr<LeyrResponse>>> futures;
  for (int i = 0; i < kInFlight; ++i) {
    auto promise = std::make_shared<std::promise<absl::StatusOr<LeyrResponse>>>();
    futures.push_back(promise->get_future());
    client->Send(Get("/slow"), [promise](absl::StatusOr<LeyrResponse> r) {
      promise->set_value(std::move(r));
    });
  }
  ASSERT_TRUE(leyr_.WaitForHeld(kInFlight));
  client.reset();  // joins the loop; every callback has run by now
  for (auto& future : futures) {
    ASSERT_EQ(future.wait_for(std::chrono::seconds(0)), std::future_status::ready);
    absl::StatusOr<LeyrResponse> result = future.get();
    EXPECT_THAT(result, StatusIs(absl::StatusCode::kUnavailable, reason::kShuttingDown));
    ExpectNoCanary(result.status());
  }
  leyr_.ReleaseHeld();
}

TEST_F(LeyrClientTest, DestructorFailsQueuedRequests) {
  // Requests sent just before destruction are answered too, whether or not they started.
  auto client = MakeCurlLeyrClient(Options());
  constexpr int kRequests = 50;
  std::vector<std::future<absl::StatusOr<LeyrResponse>>> futures;
  for (int i = 0; i < kRequests; ++i) {
    auto promise = std::make_shared<std::promise<absl::StatusOr<LeyrResponse>>>();
    futures.push_back(promise->get_future());
    client->Send(Get("/slow"), [promise](absl::StatusOr<LeyrResponse> r) {
      promise->set_value(std::move(r));
    });
  }
  client.reset();
  for (auto& future : futures) {
    ASSERT_EQ(future.wait_for(std::chrono::seconds(0)), std::future_status::ready);
    EXPECT_THAT(future.get(), StatusIs(absl::StatusCode::kUnavailable, reason::kShuttingDown));
  }
  leyr_.ReleaseHeld();
}

TEST_F(LeyrClientTest, ControlCharactersInCredentialsAreRefused) {
  CurlLeyrClientOptions options = Options();
  options.client_secret = std::string(kSecret) + "\r\nX-Injected: 1";
  auto client = MakeCurlLeyrClient(options);
  absl::StatusOr<LeyrResponse> response = Call(*client, Get("/care-units"));
  EXPECT_THAT(response, StatusIs(absl::StatusCode::kInternal, reason::kInternal));
  EXPECT_TRUE(leyr_.requests().empty());
}

}  // namespace
}  // namespace leyr
