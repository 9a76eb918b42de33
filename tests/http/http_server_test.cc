#include "server/http/http_server.h"
#include "tests/testing/http_client.h"

#include <curl/curl.h>

#include <future>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace leyr {
namespace {

using ::leyr::testing::IsOk;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::Gt;
using ::testing::HasSubstr;
using ::testing::Pair;
using ::testing::StartsWith;

using ::leyr::testing::CurlResult;
using ::leyr::testing::Fetch;

std::string HeaderOf(const CurlResult& r, const std::string& name) {
  for (const auto& [k, v] : r.headers) {
    if (k == name) return v;
  }
  return "";
}

// Records the last request and answers with its own echo.
class RecordingHandler {
 public:
  HttpHandler AsHandler() {
    return [this](HttpRequest request, HttpResponder respond) {
      HttpResponse response;
      response.headers = {{"Content-Type", "text/plain"}, {"X-Test", "yes"}};
      response.body = absl::StrCat(request.method, " ", request.path, " ", request.body);
      {
        absl::MutexLock lock(&mu_);
        last_ = std::move(request);
        ++calls_;
      }
      respond(std::move(response));
    };
  }
  HttpRequest last() {
    absl::MutexLock lock(&mu_);
    return last_;
  }
  int calls() {
    absl::MutexLock lock(&mu_);
    return calls_;
  }

 private:
  absl::Mutex mu_;
  HttpRequest last_ ABSL_GUARDED_BY(mu_);
  int calls_ ABSL_GUARDED_BY(mu_) = 0;
};

class HttpServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { curl_global_init(CURL_GLOBAL_DEFAULT); }

  void StartServer(HttpServerOptions options, HttpHandler handler) {
    auto server = HttpServer::Start(options, std::move(handler));
    ASSERT_THAT(server.status(), IsOk());
    server_ = std::move(*server);
  }
  std::string Url(const std::string& path_and_query) {
    return absl::StrCat("http://", server_->address(), path_and_query);
  }

  std::unique_ptr<HttpServer> server_;
};

TEST_F(HttpServerTest, PortZeroIsReadBack) {
  RecordingHandler handler;
  StartServer(HttpServerOptions{}, handler.AsHandler());
  EXPECT_THAT(server_->port(), Gt(0));
  EXPECT_EQ(server_->address(), absl::StrCat("127.0.0.1:", server_->port()));
  CurlResult r = Fetch("GET", Url("/ping"), nullptr);
  ASSERT_EQ(r.code, CURLE_OK);
  EXPECT_EQ(r.status, 200);
}

TEST_F(HttpServerTest, GetPassesMethodPathHeadersAndPeer) {
  RecordingHandler handler;
  StartServer(HttpServerOptions{}, handler.AsHandler());
  CurlResult r = Fetch("GET", Url("/a/b"), nullptr, {"X-Custom-Header: Value1"});
  ASSERT_EQ(r.code, CURLE_OK);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "GET /a/b ");
  EXPECT_EQ(HeaderOf(r, "x-test"), "yes");
  EXPECT_EQ(HeaderOf(r, "content-length"), "9");
  HttpRequest req = handler.last();
  EXPECT_EQ(req.method, "GET");
  EXPECT_EQ(req.path, "/a/b");
  EXPECT_THAT(req.headers, Contains(Pair("x-custom-header", "Value1")));
  EXPECT_EQ(req.Header("X-CUSTOM-HEADER"), "Value1");
  EXPECT_THAT(req.peer, StartsWith("127.0.0.1:"));
}

TEST_F(HttpServerTest, PostDeliversWholeBody) {
  RecordingHandler handler;
  StartServer(HttpServerOptions{}, handler.AsHandler());
  std::string body = "a=1&b=" + std::string(5000, 'x');
  CurlResult r = Fetch("POST", Url("/form"), &body,
                       {"Content-Type: application/x-www-form-urlencoded"});
  ASSERT_EQ(r.code, CURLE_OK);
  EXPECT_EQ(r.status, 200);
  HttpRequest req = handler.last();
  EXPECT_EQ(req.method, "POST");
  EXPECT_EQ(req.body, body);
  EXPECT_EQ(req.Header("content-type"), "application/x-www-form-urlencoded");
}

TEST_F(HttpServerTest, QueryArgumentsAreDecodedInOrder) {
  RecordingHandler handler;
  StartServer(HttpServerOptions{}, handler.AsHandler());
  CurlResult r = Fetch("GET", Url("/q?x=a%20b&y=%2F%3D%26&x=2&empty="), nullptr);
  ASSERT_EQ(r.code, CURLE_OK);
  HttpRequest req = handler.last();
  EXPECT_EQ(req.path, "/q");
  EXPECT_THAT(req.query, ElementsAre(Pair("x", "a b"), Pair("y", "/=&"), Pair("x", "2"),
                                     Pair("empty", "")));
  EXPECT_EQ(req.QueryCount("x"), 2u);
  EXPECT_EQ(req.QueryValue("x"), "a b");
  EXPECT_EQ(req.QueryValue("missing"), "");
}

TEST_F(HttpServerTest, OversizedBodyGets413WithoutHandler) {
  RecordingHandler handler;
  HttpServerOptions options;
  options.max_body_bytes = 1024;
  options.too_large_response.headers = {{"Content-Type", "text/html"}, {"X-Mine", "1"}};
  options.too_large_response.body = "<p>too big</p>";
  StartServer(options, handler.AsHandler());
  std::string body(2000, 'z');
  CurlResult r = Fetch("POST", Url("/form"), &body);
  ASSERT_EQ(r.code, CURLE_OK);
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(r.body, "<p>too big</p>");
  EXPECT_EQ(HeaderOf(r, "x-mine"), "1");
  EXPECT_EQ(handler.calls(), 0);

  // Exactly at the limit is fine.
  std::string fits(1024, 'y');
  r = Fetch("POST", Url("/form"), &fits);
  ASSERT_EQ(r.code, CURLE_OK);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(handler.calls(), 1);
}

TEST_F(HttpServerTest, OversizedChunkedBodyGets413WithoutHandler) {
  RecordingHandler handler;
  HttpServerOptions options;
  options.max_body_bytes = 100;
  StartServer(options, handler.AsHandler());
  std::string body(500, 'z');
  CurlResult r = Fetch("POST", Url("/form"), &body, {"Transfer-Encoding: chunked"});
  ASSERT_EQ(r.code, CURLE_OK);
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(handler.calls(), 0);
}

// A declared length just over a large limit: libmicrohttpd hands the body over in pieces
// smaller than the limit, and the server must still read them off and answer 413 (it used to
// close the connection without an answer).
TEST_F(HttpServerTest, BodyJustOverALargeLimitGets413) {
  RecordingHandler handler;
  HttpServerOptions options;
  options.max_body_bytes = 100000;
  StartServer(options, handler.AsHandler());
  std::string body(100001, 'z');
  CurlResult r = Fetch("POST", Url("/form"), &body);
  ASSERT_EQ(r.code, CURLE_OK) << curl_easy_strerror(r.code);
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(handler.calls(), 0);
}

TEST_F(HttpServerTest, AsyncResponderFromAnotherThread) {
  std::promise<HttpResponder> got_responder;
  StartServer(HttpServerOptions{}, [&](HttpRequest request, HttpResponder respond) {
    got_responder.set_value(std::move(respond));
  });
  auto client = std::async(std::launch::async, [&] { return Fetch("GET", Url("/slow"), nullptr); });
  auto responder_future = got_responder.get_future();
  ASSERT_EQ(responder_future.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  HttpResponder respond = responder_future.get();
  // While the first request waits, the server still answers others (no thread blocked).
  std::thread answerer([respond] {
    HttpResponse response;
    response.status = 201;
    response.body = "later";
    respond(response);
    respond(response);  // A second call is ignored.
  });
  answerer.join();
  CurlResult r = client.get();
  ASSERT_EQ(r.code, CURLE_OK);
  EXPECT_EQ(r.status, 201);
  EXPECT_EQ(r.body, "later");
}

TEST_F(HttpServerTest, SlowAnswerIsNotCutByTheRequestTimeout) {
  // The request timeout bounds how long a client takes to send; a handler that answers after
  // three times that long still gets its answer through.
  HttpServerOptions options;
  options.request_timeout = absl::Milliseconds(200);
  std::promise<HttpResponder> got_responder;
  StartServer(options, [&](HttpRequest request, HttpResponder respond) {
    got_responder.set_value(std::move(respond));
  });
  auto client = std::async(std::launch::async, [&] { return Fetch("GET", Url("/slow"), nullptr); });
  auto responder_future = got_responder.get_future();
  ASSERT_EQ(responder_future.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  HttpResponder respond = responder_future.get();
  absl::SleepFor(absl::Milliseconds(600));  // the slow answer under test, not a synchronisation
  HttpResponse response;
  response.body = "late but whole";
  respond(response);
  CurlResult r = client.get();
  ASSERT_EQ(r.code, CURLE_OK);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "late but whole");
}

TEST_F(HttpServerTest, OtherRequestsProceedWhileOneIsSuspended) {
  std::promise<HttpResponder> parked;
  StartServer(HttpServerOptions{}, [&](HttpRequest request, HttpResponder respond) {
    if (request.path == "/park") {
      parked.set_value(std::move(respond));
      return;
    }
    respond(HttpResponse{200, {}, "quick"});
  });
  auto slow = std::async(std::launch::async, [&] { return Fetch("GET", Url("/park"), nullptr); });
  auto parked_future = parked.get_future();
  ASSERT_EQ(parked_future.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  HttpResponder respond = parked_future.get();
  for (int i = 0; i < 5; ++i) {
    CurlResult quick = Fetch("GET", Url("/quick"), nullptr);
    ASSERT_EQ(quick.code, CURLE_OK);
    EXPECT_EQ(quick.body, "quick");
  }
  respond(HttpResponse{200, {}, "parked"});
  EXPECT_EQ(slow.get().body, "parked");
}

TEST_F(HttpServerTest, ConnectionLimitHoldsAcrossWorkerThreads) {
  // Four worker threads and room for four connections. libmicrohttpd on its own gives each
  // thread a quarter of the limit, so a thread refuses its second connection while others sit
  // idle: all four must be served however the accepts fall, and a fifth refused.
  HttpServerOptions options;
  options.threads = 4;
  options.max_connections = 4;
  absl::Mutex mu;
  std::vector<HttpResponder> parked;
  StartServer(options, [&](HttpRequest, HttpResponder respond) {
    absl::MutexLock lock(&mu);
    parked.push_back(std::move(respond));
  });
  std::vector<std::future<CurlResult>> held;
  for (int i = 0; i < 4; ++i) {
    held.push_back(std::async(std::launch::async, [&] { return Fetch("GET", Url("/hold"), nullptr); }));
  }
  {
    absl::MutexLock lock(&mu);
    auto all_four = [&parked] { return parked.size() == 4; };
    EXPECT_TRUE(mu.AwaitWithTimeout(absl::Condition(&all_four), absl::Seconds(30)))
        << parked.size() << " of 4 connections reached the handler";
  }
  CurlResult extra = Fetch("GET", Url("/extra"), nullptr);
  EXPECT_NE(extra.code, CURLE_OK) << "served beyond max_connections: " << extra.status;

  std::vector<HttpResponder> release;
  {
    absl::MutexLock lock(&mu);
    release.swap(parked);
  }
  for (HttpResponder& respond : release) respond(HttpResponse{200, {}, "held"});
  for (auto& f : held) {
    CurlResult r = f.get();
    EXPECT_EQ(r.code, CURLE_OK);
    EXPECT_EQ(r.body, "held");
  }
  absl::MutexLock lock(&mu);
  EXPECT_TRUE(parked.empty()) << "the refused connection reached the handler";
}

TEST_F(HttpServerTest, DroppedResponderAnswers500) {
  StartServer(HttpServerOptions{}, [](HttpRequest, HttpResponder) {});
  CurlResult r = Fetch("GET", Url("/x"), nullptr);
  ASSERT_EQ(r.code, CURLE_OK);
  EXPECT_EQ(r.status, 500);
}

TEST_F(HttpServerTest, StopWithSuspendedConnectionAnswers503AndLateResponseIsDropped) {
  std::promise<HttpResponder> parked;
  HttpServerOptions options;
  options.stop_grace = absl::Milliseconds(100);
  StartServer(options, [&](HttpRequest, HttpResponder respond) {
    parked.set_value(std::move(respond));
  });
  auto client = std::async(std::launch::async, [&] { return Fetch("GET", Url("/p"), nullptr); });
  auto parked_future = parked.get_future();
  ASSERT_EQ(parked_future.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  HttpResponder respond = parked_future.get();
  server_->Stop();
  server_->Stop();  // idempotent
  CurlResult r = client.get();
  // Stop answered the suspended request itself and let that answer go out.
  ASSERT_EQ(r.code, CURLE_OK);
  EXPECT_EQ(r.status, 503);
  server_.reset();
  respond(HttpResponse{200, {}, "too late"});  // must not crash
}

TEST_F(HttpServerTest, StopWaitsForResponsesInProgress) {
  std::promise<HttpResponder> parked;
  StartServer(HttpServerOptions{}, [&](HttpRequest, HttpResponder respond) {
    parked.set_value(std::move(respond));
  });
  auto client = std::async(std::launch::async, [&] { return Fetch("GET", Url("/p"), nullptr); });
  auto parked_future = parked.get_future();
  ASSERT_EQ(parked_future.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  HttpResponder respond = parked_future.get();
  std::thread stopper([this] { server_->Stop(); });
  respond(HttpResponse{200, {}, "finished"});
  stopper.join();
  CurlResult r = client.get();
  ASSERT_EQ(r.code, CURLE_OK);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "finished");
}

TEST_F(HttpServerTest, ListensOnIpv6Loopback) {
  RecordingHandler handler;
  HttpServerOptions options;
  options.listen = "[::1]:0";
  auto server = HttpServer::Start(options, handler.AsHandler());
  if (!server.ok()) {
    GTEST_SKIP() << "no IPv6 loopback here: " << server.status();
  }
  server_ = std::move(*server);
  EXPECT_EQ(server_->address(), absl::StrCat("[::1]:", server_->port()));
  CurlResult r = Fetch("GET", Url("/six"), nullptr);
  ASSERT_EQ(r.code, CURLE_OK);
  EXPECT_EQ(r.status, 200);
  EXPECT_THAT(handler.last().peer, StartsWith("[::1]:"));
}

TEST_F(HttpServerTest, ListensOnAnyAddress) {
  RecordingHandler handler;
  HttpServerOptions options;
  options.listen = "0.0.0.0:0";
  StartServer(options, handler.AsHandler());
  CurlResult r =
      Fetch("GET", absl::StrCat("http://127.0.0.1:", server_->port(), "/any"), nullptr);
  ASSERT_EQ(r.code, CURLE_OK);
  EXPECT_EQ(r.status, 200);
}

TEST_F(HttpServerTest, BadListenAddressIsRefused) {
  RecordingHandler handler;
  for (const char* bad : {"nonsense", "127.0.0.1:99999", "::1:80", "[::1]80", "example.com:80"}) {
    HttpServerOptions options;
    options.listen = bad;
    EXPECT_FALSE(HttpServer::Start(options, handler.AsHandler()).ok()) << bad;
  }
}

}  // namespace
}  // namespace leyr
