#include "server/leyr/call_policy.h"

#include <string>
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "server/common/status_util.h"
#include "tests/testing/status_matchers.h"

namespace leyr {
namespace {

using ::leyr::testing::IsOk;
using ::leyr::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr absl::string_view kEmr = "athenapractice";
constexpr absl::string_view kCanaryValue = "CANARY-VALUE-7f3a";

broker::v1::CallLeyrRequest Good() {
  broker::v1::CallLeyrRequest request;
  request.set_authorization("authorizations/abc");
  request.set_method("GET");
  request.set_path("/api/emrs/athenapractice/care-units");
  return request;
}

void AddHeader(broker::v1::CallLeyrRequest* request, std::string name, std::string value) {
  auto* header = request->add_headers();
  header->set_name(std::move(name));
  header->set_value(std::move(value));
}

void AddQuery(broker::v1::CallLeyrRequest* request, std::string name, std::string value) {
  auto* param = request->add_query();
  param->set_name(std::move(name));
  param->set_value(std::move(value));
}

struct BadCase {
  std::string label;
  std::function<void(broker::v1::CallLeyrRequest*)> mutate;
  absl::string_view reason;
};

std::function<void(broker::v1::CallLeyrRequest*)> Path(std::string path) {
  return [path](broker::v1::CallLeyrRequest* r) { r->set_path(path); };
}
std::function<void(broker::v1::CallLeyrRequest*)> Method(std::string method) {
  return [method](broker::v1::CallLeyrRequest* r) { r->set_method(method); };
}
std::function<void(broker::v1::CallLeyrRequest*)> Header(std::string name,
                                                         std::string value = "CANARY-VALUE-7f3a") {
  return [name, value](broker::v1::CallLeyrRequest* r) { AddHeader(r, name, value); };
}
std::function<void(broker::v1::CallLeyrRequest*)> Query(std::string name, std::string value) {
  return [name, value](broker::v1::CallLeyrRequest* r) { AddQuery(r, name, value); };
}

std::vector<BadCase> BadCases() {
  using namespace ::leyr::reason;  // NOLINT
  return {
      {"empty method", Method(""), kMethodNotAllowed},
      {"lower-case method", Method("get"), kMethodNotAllowed},
      {"HEAD", Method("HEAD"), kMethodNotAllowed},
      {"OPTIONS", Method("OPTIONS"), kMethodNotAllowed},
      {"CONNECT", Method("CONNECT"), kMethodNotAllowed},
      {"method with CRLF", Method("GET\r\nX: y"), kMethodNotAllowed},
      {"empty path", Path(""), kPathNotAllowed},
      {"prefix only", Path("/api/emrs/athenapractice/"), kPathNotAllowed},
      {"prefix without slash", Path("/api/emrs/athenapractice"), kPathNotAllowed},
      {"other EMR", Path("/api/emrs/epic/patients"), kPathNotAllowed},
      {"EMR as prefix of another", Path("/api/emrs/athenapracticex/patients"), kPathNotAllowed},
      {"absolute URL", Path("https://evil.example/api/emrs/athenapractice/x"), kPathNotAllowed},
      {"scheme-relative", Path("//evil.example/api/emrs/athenapractice/x"), kPathNotAllowed},
      {"relative path", Path("api/emrs/athenapractice/x"), kPathNotAllowed},
      {"dot-dot", Path("/api/emrs/athenapractice/../admin"), kPathNotAllowed},
      {"trailing dot-dot", Path("/api/emrs/athenapractice/x/.."), kPathNotAllowed},
      {"dot", Path("/api/emrs/athenapractice/./x"), kPathNotAllowed},
      {"encoded dot-dot lower", Path("/api/emrs/athenapractice/%2e%2e/x"), kPathNotAllowed},
      {"encoded dot-dot upper", Path("/api/emrs/athenapractice/%2E%2E/x"), kPathNotAllowed},
      {"half-encoded dot-dot", Path("/api/emrs/athenapractice/.%2e/x"), kPathNotAllowed},
      {"half-encoded dot-dot 2", Path("/api/emrs/athenapractice/%2e./x"), kPathNotAllowed},
      {"encoded dot", Path("/api/emrs/athenapractice/%2e/x"), kPathNotAllowed},
      // Servlet containers drop ";params" before resolving dot segments.
      {"dot-dot with params", Path("/api/emrs/athenapractice/..;/epic/patients"), kPathNotAllowed},
      {"dot-dot with params 2", Path("/api/emrs/athenapractice/..;x=1/epic"), kPathNotAllowed},
      {"encoded dot-dot with params", Path("/api/emrs/athenapractice/%2e%2e;/epic"),
       kPathNotAllowed},
      {"dot with params", Path("/api/emrs/athenapractice/.;/x"), kPathNotAllowed},
      {"encoded semicolon dot-dot", Path("/api/emrs/athenapractice/..%3b/epic"), kPathNotAllowed},
      {"encoded slash", Path("/api/emrs/athenapractice/a%2fb"), kPathNotAllowed},
      {"encoded slash upper", Path("/api/emrs/athenapractice/a%2Fb"), kPathNotAllowed},
      {"encoded backslash", Path("/api/emrs/athenapractice/a%5cb"), kPathNotAllowed},
      {"encoded NUL", Path("/api/emrs/athenapractice/a%00b"), kPathNotAllowed},
      {"encoded CR", Path("/api/emrs/athenapractice/a%0db"), kPathNotAllowed},
      {"malformed escape", Path("/api/emrs/athenapractice/a%zzb"), kPathNotAllowed},
      {"truncated escape", Path("/api/emrs/athenapractice/a%2"), kPathNotAllowed},
      {"escape at end", Path("/api/emrs/athenapractice/a%"), kPathNotAllowed},
      {"double slash", Path("/api/emrs/athenapractice//x"), kPathNotAllowed},
      {"backslash", Path("/api/emrs/athenapractice/a\\b"), kPathNotAllowed},
      {"query in path", Path("/api/emrs/athenapractice/x?a=b"), kPathNotAllowed},
      {"fragment in path", Path("/api/emrs/athenapractice/x#f"), kPathNotAllowed},
      {"at sign", Path("/api/emrs/athenapractice/user@host"), kPathNotAllowed},
      {"space", Path("/api/emrs/athenapractice/a b"), kPathNotAllowed},
      {"tab", Path("/api/emrs/athenapractice/a\tb"), kPathNotAllowed},
      {"CRLF", Path("/api/emrs/athenapractice/x\r\nHost: evil"), kPathNotAllowed},
      {"NUL", Path(std::string("/api/emrs/athenapractice/a\0b", 28)), kPathNotAllowed},
      {"DEL", Path("/api/emrs/athenapractice/a\x7f"), kPathNotAllowed},
      {"non-ASCII", Path("/api/emrs/athenapractice/caf\xc3\xa9"), kPathNotAllowed},
      {"angle bracket", Path("/api/emrs/athenapractice/<x>"), kPathNotAllowed},
      {"double quote", Path("/api/emrs/athenapractice/\"x\""), kPathNotAllowed},
      {"too long", Path("/api/emrs/athenapractice/" + std::string(3000, 'a')), kPathNotAllowed},
      {"empty query name", Query("", "v"), kQueryNotAllowed},
      {"query name with CR", Query("a\rb", "v"), kQueryNotAllowed},
      {"query value with LF", Query("a", "x\ny"), kQueryNotAllowed},
      {"query value with NUL", Query("a", std::string("x\0y", 3)), kQueryNotAllowed},
      {"too many query params",
       [](broker::v1::CallLeyrRequest* r) {
         for (int i = 0; i < 65; ++i) AddQuery(r, "p", "v");
       },
       kQueryNotAllowed},
      {"query too long", Query("a", std::string(20000, 'v')), kQueryNotAllowed},
      {"x-leyr-client-id", Header("X-Leyr-Client-Id"), kHeaderNotAllowed},
      {"x-leyr-client-secret", Header("x-leyr-client-secret"), kHeaderNotAllowed},
      {"x-leyr-emr-oauth-code", Header("X-LEYR-EMR-OAUTH-CODE"), kHeaderNotAllowed},
      {"x-leyr-anything", Header("x-leyr-future"), kHeaderNotAllowed},
      {"host", Header("Host"), kHeaderNotAllowed},
      {"content-length", Header("Content-Length", "5"), kHeaderNotAllowed},
      {"transfer-encoding", Header("Transfer-Encoding", "chunked"), kHeaderNotAllowed},
      {"connection", Header("Connection", "close"), kHeaderNotAllowed},
      {"keep-alive", Header("Keep-Alive"), kHeaderNotAllowed},
      {"te", Header("TE", "trailers"), kHeaderNotAllowed},
      {"trailer", Header("Trailer"), kHeaderNotAllowed},
      {"upgrade", Header("Upgrade", "h2c"), kHeaderNotAllowed},
      {"proxy-authorization", Header("Proxy-Authorization"), kHeaderNotAllowed},
      {"expect", Header("Expect", "100-continue"), kHeaderNotAllowed},
      {"cookie", Header("Cookie"), kHeaderNotAllowed},
      {"empty header name", Header(""), kHeaderNotAllowed},
      {"header name with space", Header("X Custom"), kHeaderNotAllowed},
      {"header name with colon", Header("X-A:b"), kHeaderNotAllowed},
      {"header name with CRLF", Header("X-A\r\nHost"), kHeaderNotAllowed},
      {"header name non-ASCII", Header("X-\xc3\xa9"), kHeaderNotAllowed},
      {"header value with CRLF", Header("X-Trace", "CANARY-VALUE-7f3a\r\nHost: evil"),
       kHeaderNotAllowed},
      {"header value with LF", Header("X-Trace", "CANARY-VALUE-7f3a\nx"), kHeaderNotAllowed},
      {"header value with NUL", Header("X-Trace", std::string("CANARY-VALUE-7f3a\0", 18)),
       kHeaderNotAllowed},
      {"header value with BEL", Header("X-Trace", "CANARY-VALUE-7f3a\a"), kHeaderNotAllowed},
      {"header too long", Header("X-Big", "CANARY-VALUE-7f3a" + std::string(9000, 'a')),
       kHeaderNotAllowed},
      {"too many headers",
       [](broker::v1::CallLeyrRequest* r) {
         for (int i = 0; i < 33; ++i) AddHeader(r, absl::StrCat("X-H", i), "v");
       },
       kHeaderNotAllowed},
      {"body too large",
       [](broker::v1::CallLeyrRequest* r) {
         r->set_method("POST");
         r->set_body("CANARY-VALUE-7f3a" + std::string(1 << 20, 'b'));
       },
       kBodyTooLarge},
      {"body with GET",
       [](broker::v1::CallLeyrRequest* r) { r->set_body("CANARY-VALUE-7f3a"); },
       kInvalidArgument},
      {"body with DELETE",
       [](broker::v1::CallLeyrRequest* r) {
         r->set_method("DELETE");
         r->set_body("CANARY-VALUE-7f3a");
       },
       kInvalidArgument},
  };
}

TEST(CallPolicyTest, RefusesBadInputsWithSpecificReasons) {
  const std::vector<BadCase> cases = BadCases();
  ASSERT_GE(cases.size(), 25u);
  for (const BadCase& bad : cases) {
    SCOPED_TRACE(bad.label);
    broker::v1::CallLeyrRequest request = Good();
    bad.mutate(&request);
    absl::StatusOr<LeyrRequest> result = CheckLeyrCall(request, kEmr);
    EXPECT_THAT(result, StatusIs(absl::StatusCode::kInvalidArgument, bad.reason));
    // Never repeats a header value or the body.
    EXPECT_THAT(std::string(result.status().message()), Not(HasSubstr(kCanaryValue)));
    EXPECT_THAT(std::string(result.status().message()), Not(HasSubstr("\r")));
    EXPECT_THAT(std::string(result.status().message()), Not(HasSubstr("\n")));
  }
}

TEST(CallPolicyTest, MessageNamesTheField) {
  broker::v1::CallLeyrRequest request = Good();
  AddHeader(&request, "Accept", "application/json");
  AddHeader(&request, "X-Trace", "t1");
  AddHeader(&request, "X-Leyr-Client-Id", "CANARY-VALUE-7f3a");
  absl::StatusOr<LeyrRequest> result = CheckLeyrCall(request, kEmr);
  ASSERT_THAT(result, StatusIs(absl::StatusCode::kInvalidArgument, reason::kHeaderNotAllowed));
  EXPECT_EQ(result.status().message(),
            "headers[2].name 'X-Leyr-Client-Id' is set by the broker");

  request = Good();
  AddQuery(&request, "ok", "1");
  AddQuery(&request, "", "x");
  result = CheckLeyrCall(request, kEmr);
  EXPECT_THAT(std::string(result.status().message()), HasSubstr("query[1].name"));

  request = Good();
  AddHeader(&request, "X-Trace", "a\r\nb");
  result = CheckLeyrCall(request, kEmr);
  EXPECT_THAT(std::string(result.status().message()), HasSubstr("headers[0].value"));
}

TEST(CallPolicyTest, AcceptsGoodRequestsAndCopiesThem) {
  broker::v1::CallLeyrRequest request = Good();
  request.set_method("POST");
  request.set_path("/api/emrs/athenapractice/patients/123/appointments");
  AddQuery(&request, "date", "2024-01-01");
  AddQuery(&request, "name", "a b&c=d\xc3\xa9");  // encoded later by the client
  AddQuery(&request, "empty", "");
  AddHeader(&request, "Content-Type", "application/json");
  AddHeader(&request, "Accept", "application/json");
  AddHeader(&request, "X-Request-Id", "r-1\twith tab");
  AddHeader(&request, "X-Empty", "");
  request.set_body("{\"a\":1}");
  absl::StatusOr<LeyrRequest> result = CheckLeyrCall(request, kEmr);
  ASSERT_THAT(result, IsOk());
  EXPECT_EQ(result->method, "POST");
  EXPECT_EQ(result->path, "/api/emrs/athenapractice/patients/123/appointments");
  EXPECT_EQ(result->body, "{\"a\":1}");
  EXPECT_EQ(result->code, "");
  EXPECT_EQ(result->deadline, absl::InfiniteFuture());
  ASSERT_EQ(result->query.size(), 3u);
  EXPECT_EQ(result->query[1], (std::pair<std::string, std::string>("name", "a b&c=d\xc3\xa9")));
  ASSERT_EQ(result->headers.size(), 4u);
  EXPECT_EQ(result->headers[2].first, "X-Request-Id");
  EXPECT_EQ(result->headers[2].second, "r-1\twith tab");
}

TEST(CallPolicyTest, AcceptsOtherGoodShapes) {
  const std::vector<std::pair<std::string, std::string>> good = {
      {"GET", "/api/emrs/athenapractice/care-units"},
      {"GET", "/api/emrs/athenapractice/care-units/"},
      {"DELETE", "/api/emrs/athenapractice/patients/1"},
      {"PUT", "/api/emrs/athenapractice/patients/1"},
      {"PATCH", "/api/emrs/athenapractice/patients/1"},
      {"GET", "/api/emrs/athenapractice/a%20b/c%C3%A9"},
      {"GET", "/api/emrs/athenapractice/x.json"},
      {"GET", "/api/emrs/athenapractice/...x/.hidden/..."},
      {"GET", "/api/emrs/athenapractice/a:b;c=d,e!f$g&h'i(j)k*l+m~n_o-p"},
      {"GET", "/api/emrs/athenapractice/%2e%2ex"},
      {"GET", "/api/emrs/athenapractice/x;..;y"},
  };
  for (const auto& [method, path] : good) {
    SCOPED_TRACE(method + " " + path);
    broker::v1::CallLeyrRequest request = Good();
    request.set_method(method);
    request.set_path(path);
    if (method == "PUT") request.set_body("");  // an empty body is fine
    EXPECT_THAT(CheckLeyrCall(request, kEmr), IsOk());
  }
}

TEST(CallPolicyTest, BoundsComeFromOptions) {
  CallPolicyOptions options;
  options.max_body_bytes = 4;
  broker::v1::CallLeyrRequest request = Good();
  request.set_method("POST");
  request.set_body("1234");
  EXPECT_THAT(CheckLeyrCall(request, kEmr, options), IsOk());
  request.set_body("12345");
  EXPECT_THAT(CheckLeyrCall(request, kEmr, options),
              StatusIs(absl::StatusCode::kInvalidArgument, reason::kBodyTooLarge));

  options.max_headers = 1;
  request = Good();
  AddHeader(&request, "A", "1");
  EXPECT_THAT(CheckLeyrCall(request, kEmr, options), IsOk());
  AddHeader(&request, "B", "2");
  EXPECT_THAT(CheckLeyrCall(request, kEmr, options),
              StatusIs(absl::StatusCode::kInvalidArgument, reason::kHeaderNotAllowed));
}

TEST(CallPolicyTest, InvalidEmrSlugIsInternal) {
  EXPECT_THAT(CheckLeyrCall(Good(), ""), StatusIs(absl::StatusCode::kInternal));
  broker::v1::CallLeyrRequest request = Good();
  request.set_path("/api/emrs/a/../x/y");
  EXPECT_THAT(CheckLeyrCall(request, "a/../x"), StatusIs(absl::StatusCode::kInternal));
}

}  // namespace
}  // namespace leyr
