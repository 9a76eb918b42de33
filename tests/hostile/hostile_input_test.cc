// Hostile input against the real leyr-broker, leyr-callback-shim and leyr-sandbox binaries on
// port 0. Each bad input gets its specific error and changes nothing: the sandbox (as the canary
// upstream) receives no request, the broker stores no authorization, a pending state still
// works afterwards. Every error message and response is checked for canary values (the Leyr
// secret, a live code and state, and a marker put in the bad inputs' header values and bodies).

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <regex>
#include <set>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "client/broker_client.h"
#include "server/common/status_util.h"
#include "server/common/url.h"
#include "tests/testing/consent_form.h"
#include "tests/testing/http_client.h"
#include "tests/testing/process.h"
#include "tests/testing/status_matchers.h"

namespace leyr {
namespace {

using ::leyr::testing::HttpRequest;
using ::leyr::testing::HttpResult;
using ::leyr::testing::IsOk;
using ::leyr::testing::Process;
using ::leyr::testing::TempDir;
using broker::v1::Authorization;

constexpr char kLeyrSecret[] = "canary-LEYR-SECRET-hostile-41d0";
// Put into bad header values and bodies: no answer may repeat it.
constexpr char kInputCanary[] = "canary-INPUT-9e77b2";
constexpr char kAllowedOrigin[] = "https://example.com";
constexpr char kAllowedLocalOrigin[] = "http://127.0.0.1:3999";

// ---------------------------------------------------------------------------------------------
// Raw sockets, for what libcurl will not send (CR/LF in a request line) and for slow clients.

int ConnectTo(const std::string& address) {
  size_t colon = address.rfind(':');
  int port = 0;
  if (!absl::SimpleAtoi(address.substr(colon + 1), &port)) return -1;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, address.substr(0, colon).c_str(), &addr.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool SendAll(int fd, absl::string_view data) {
  while (!data.empty()) {
    ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

struct ReadResult {
  std::string data;
  bool closed = false;  // the peer closed (EOF or reset)
};

// Reads until the peer closes, `done(data)` is true, or `timeout` passes (poll-based waiting).
ReadResult ReadUntil(int fd, absl::Duration timeout,
                     const std::function<bool(const std::string&)>& done) {
  ReadResult out;
  const absl::Time deadline = absl::Now() + timeout;
  while (!done(out.data)) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) break;
    pollfd p{fd, POLLIN, 0};
    int ready = poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
    if (ready <= 0) continue;
    char buffer[4096];
    ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n <= 0) {
      out.closed = true;
      break;
    }
    out.data.append(buffer, static_cast<size_t>(n));
  }
  return out;
}

// True once `data` holds a whole response with a Content-Length body.
bool HasWholeResponse(const std::string& data) {
  size_t end = data.find("\r\n\r\n");
  if (end == std::string::npos) return false;
  std::smatch m;
  std::string head = data.substr(0, end);
  std::regex re("[Cc]ontent-[Ll]ength: *([0-9]+)");
  size_t length = 0;
  if (std::regex_search(head, m, re)) length = std::stoul(m[1]);
  return data.size() >= end + 4 + length;
}

int StatusOf(const std::string& response) {
  int status = 0;
  if (absl::StartsWith(response, "HTTP/1.")) {
    (void)absl::SimpleAtoi(response.substr(9, 3), &status);
  }
  return status;
}

// ---------------------------------------------------------------------------------------------

using ::leyr::testing::Form;
using ::leyr::testing::ParseForm;

// The three servers, started once for the whole suite (they are only read from or refused).
struct Stack {
  TempDir dir;
  std::unique_ptr<Process> shim, sandbox, broker;
  std::string shim_address, socket, redirect_uri, sandbox_url;
  std::unique_ptr<BrokerClient> client;
  std::string active_name;    // an ACTIVE authorization (its code is a canary)
  std::set<std::string> canaries = {kLeyrSecret, kInputCanary};
};

Stack* stack = nullptr;

class HostileInputTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    stack = new Stack;
    Stack& s = *stack;
    std::string secret_file = s.dir.WriteFile("leyr-secret", std::string(kLeyrSecret) + "\n");
    s.socket = s.dir.path() + "/broker.sock";
    // read_timeout 1s: the slow-client test waits for it.
    std::string shim_config = s.dir.WriteFile(
        "shim.json", absl::StrCat(R"({"listen":"127.0.0.1:0","broker_target":"unix:)", s.socket,
                                  R"(","callback_path":"/oauth/callback","read_timeout":"1s"})"));
    auto shim = Process::Start({LEYR_SHIM_BIN, "--config=" + shim_config});
    ASSERT_THAT(shim, IsOk());
    s.shim = std::move(*shim);
    auto shim_address = s.shim->WaitForListening();
    ASSERT_THAT(shim_address, IsOk());
    s.shim_address = *shim_address;
    s.redirect_uri = absl::StrCat("http://", s.shim_address, "/oauth/callback");

    std::string sandbox_config = s.dir.WriteFile(
        "sandbox.json",
        absl::StrCat(
            R"({"listen":"127.0.0.1:0","clients":[{"client_id":"athena-client","redirect_uri":")",
            s.redirect_uri, R"("}],"leyr_client_id":"leyr-client","leyr_client_secret_file":")",
            secret_file, R"("})"));
    auto sandbox = Process::Start({LEYR_SANDBOX_BIN, "--config=" + sandbox_config});
    ASSERT_THAT(sandbox, IsOk());
    s.sandbox = std::move(*sandbox);
    auto sandbox_address = s.sandbox->WaitForListening();
    ASSERT_THAT(sandbox_address, IsOk());
    s.sandbox_url = absl::StrCat("http://", *sandbox_address);

    std::string broker_config = s.dir.WriteFile(
        "broker.json",
        absl::StrCat(
            R"({"listen":["unix:)", s.socket, R"(","127.0.0.1:0"],"plaintext_development":true,)",
            R"("leyr":{"base_uri":")", s.sandbox_url,
            R"(","client_id":"leyr-client","client_secret_file":")", secret_file, R"("},)",
            R"("connections":[{"name":"athena-sandbox","emr":"athenapractice","base_uri":")",
            s.sandbox_url, R"(","client_id":"athena-client","redirect_uri":")", s.redirect_uri,
            R"("}],"return_uri_origins":[")", kAllowedOrigin, R"(",")", kAllowedLocalOrigin,
            R"("]})"));
    auto broker = Process::Start({LEYR_BROKER_BIN, "--config=" + broker_config});
    ASSERT_THAT(broker, IsOk());
    s.broker = std::move(*broker);
    auto tcp = s.broker->WaitForLine([](const std::string& l) {
      return absl::StrContains(l, "\"msg\":\"listening\"") && absl::StrContains(l, "127.0.0.1:");
    });
    ASSERT_THAT(tcp, IsOk());
    std::string key = "\"address\":\"";
    size_t start = tcp->find(key) + key.size();
    s.client = BrokerClient::ConnectInsecure(tcp->substr(start, tcp->find('"', start) - start));

    // One ACTIVE authorization, whose code and state become canaries.
    auto begun = Begin("");
    ASSERT_THAT(begun, IsOk());
    Form form = ConsentForm(begun->authorize_uri());
    ASSERT_FALSE(form.Field("code").empty());
    auto callback = HttpRequest("POST", form.action,
                                {"Content-Type: application/x-www-form-urlencoded"},
                                EncodeQuery(form.fields));
    ASSERT_THAT(callback, IsOk());
    ASSERT_EQ(callback->status, 200) << callback->body;
    s.active_name = begun->authorization().name();
    auto waited = s.client->Wait(s.active_name, absl::Seconds(20));
    ASSERT_THAT(waited, IsOk());
    ASSERT_EQ(waited->state(), Authorization::STATE_ACTIVE);
  }

  static void TearDownTestSuite() {
    if (stack == nullptr) return;
    stack->client.reset();
    delete stack;
    stack = nullptr;
  }

  // After every test: nothing any process logged carries a canary (ctest runs each test in its
  // own process, so each test checks the logs of its own stack).
  void TearDown() override {
    if (stack == nullptr) return;
    for (Process* p : {stack->shim.get(), stack->broker.get(), stack->sandbox.get()}) {
      if (p == nullptr) continue;
      const std::string output = p->Output();
      for (const std::string& canary : stack->canaries) {
        if (canary.empty()) continue;
        EXPECT_FALSE(absl::StrContains(output, canary)) << "a log of pid " << p->pid();
      }
    }
  }

  void SetUp() override {
    ASSERT_NE(stack, nullptr);
    ASSERT_FALSE(stack->active_name.empty()) << "the stack did not start";
  }

  static absl::StatusOr<broker::v1::BeginAuthorizationResponse> Begin(
      const std::string& return_uri) {
    broker::v1::BeginAuthorizationRequest request;
    request.set_connection("athena-sandbox");
    request.set_return_uri(return_uri);
    return stack->client->Begin(request);
  }

  // Opens the authorize URI and returns the approve form; its code and state become canaries.
  static Form ConsentForm(const std::string& authorize_uri) {
    auto page = HttpRequest("GET", authorize_uri);
    EXPECT_THAT(page, IsOk());
    if (!page.ok()) return {};
    auto form = ParseForm(page->body, "approve");
    EXPECT_THAT(form, IsOk()) << page->body;
    if (!form.ok()) return {};
    for (const char* field : {"code", "state", "id_token"}) {
      if (!form->Field(field).empty()) stack->canaries.insert(form->Field(field));
    }
    return *form;
  }

  static double SandboxRequestCount() {
    auto result = HttpRequest("GET", stack->sandbox_url + "/sandbox/requests");
    EXPECT_THAT(result, IsOk());
    google::protobuf::Struct out;
    if (!result.ok() ||
        !google::protobuf::util::JsonStringToMessage(result->body, &out).ok()) {
      ADD_FAILURE() << "sandbox request log unreadable";
      return -1;
    }
    return out.fields().at("count").number_value();
  }

  static int AuthorizationCount() {
    broker::v1::ListAuthorizationsRequest request;
    request.set_page_size(1000);
    auto list = stack->client->List(request);
    EXPECT_THAT(list, IsOk());
    return list.ok() ? list->authorizations_size() : -1;
  }

  // No canary in `text`, raw or percent-encoded.
  static void ExpectNoCanary(const std::string& text, const std::string& context) {
    for (const std::string& canary : stack->canaries) {
      if (canary.empty()) continue;
      EXPECT_FALSE(absl::StrContains(text, canary)) << context << " repeats a canary";
      EXPECT_FALSE(absl::StrContains(text, PercentEncode(canary)))
          << context << " repeats a canary (encoded)";
    }
  }
};

// ---------------------------------------------------------------------------------------------
// CallLeyr: each refused with its reason, and the sandbox receives nothing.

struct CallCase {
  std::string what;
  std::function<void(broker::v1::CallLeyrRequest&)> mutate;
  std::string reason;
};

void AddHeader(broker::v1::CallLeyrRequest& r, const std::string& name, const std::string& value) {
  auto* h = r.add_headers();
  h->set_name(name);
  h->set_value(value);
}

void AddQuery(broker::v1::CallLeyrRequest& r, const std::string& name, const std::string& value) {
  auto* q = r.add_query();
  q->set_name(name);
  q->set_value(value);
}

std::function<void(broker::v1::CallLeyrRequest&)> Path(std::string path) {
  return [path](broker::v1::CallLeyrRequest& r) { r.set_path(path); };
}
std::function<void(broker::v1::CallLeyrRequest&)> Header(std::string name, std::string value) {
  return [name, value](broker::v1::CallLeyrRequest& r) { AddHeader(r, name, value); };
}
std::function<void(broker::v1::CallLeyrRequest&)> Method(std::string method) {
  return [method](broker::v1::CallLeyrRequest& r) { r.set_method(method); };
}

const std::string kPrefix = "/api/emrs/athenapractice/";
const std::string kCanaryValue = std::string("x-") + kInputCanary;

std::vector<CallCase> CallCases() {
  return {
      {"absolute URL", Path("http://evil.example/api/emrs/athenapractice/x"), "PATH_NOT_ALLOWED"},
      {"absolute https URL", Path("https://127.0.0.1/api/emrs/athenapractice/care-units"),
       "PATH_NOT_ALLOWED"},
      {"scheme-relative", Path("//evil.example/api/emrs/athenapractice/x"), "PATH_NOT_ALLOWED"},
      {"empty segment", Path(kPrefix + "a//b"), "PATH_NOT_ALLOWED"},
      {"dot-dot", Path(kPrefix + "../otheremr/x"), "PATH_NOT_ALLOWED"},
      {"encoded dot-dot", Path(kPrefix + "%2e%2e/otheremr/x"), "PATH_NOT_ALLOWED"},
      {"upper-case encoded dot-dot", Path(kPrefix + "%2E%2E/x"), "PATH_NOT_ALLOWED"},
      {"half-encoded dot-dot", Path(kPrefix + ".%2e/x"), "PATH_NOT_ALLOWED"},
      {"encoded slash", Path(kPrefix + "..%2fotheremr"), "PATH_NOT_ALLOWED"},
      {"encoded backslash", Path(kPrefix + "..%5c..%5cx"), "PATH_NOT_ALLOWED"},
      {"backslash", Path(kPrefix + "..\\x"), "PATH_NOT_ALLOWED"},
      {"dot segment", Path(kPrefix + "./care-units"), "PATH_NOT_ALLOWED"},
      {"@ host trick", Path(kPrefix + "x@evil.example"), "PATH_NOT_ALLOWED"},
      {"@ before prefix", Path("@evil.example/api/emrs/athenapractice/x"), "PATH_NOT_ALLOWED"},
      {"userinfo in path", Path("/api/emrs/athenapractice@evil.example/x"), "PATH_NOT_ALLOWED"},
      {"CRLF in path", Path(kPrefix + "x\r\nHost: evil.example"), "PATH_NOT_ALLOWED"},
      {"encoded CRLF in path", Path(kPrefix + "x%0d%0aHost:%20evil"), "PATH_NOT_ALLOWED"},
      {"NUL in path", Path(kPrefix + std::string("x\0y", 3)), "PATH_NOT_ALLOWED"},
      {"tab in path", Path(kPrefix + "x\ty"), "PATH_NOT_ALLOWED"},
      {"space in path", Path(kPrefix + "x y"), "PATH_NOT_ALLOWED"},
      {"non-ASCII path", Path(kPrefix + "caf\xc3\xa9"), "PATH_NOT_ALLOWED"},
      {"malformed escape", Path(kPrefix + "%zz"), "PATH_NOT_ALLOWED"},
      {"query in path", Path(kPrefix + "x?y=1"), "PATH_NOT_ALLOWED"},
      {"fragment in path", Path(kPrefix + "x#y"), "PATH_NOT_ALLOWED"},
      {"other EMR", Path("/api/emrs/otheremr/patients"), "PATH_NOT_ALLOWED"},
      {"sandbox tool", Path("/sandbox/codes/revoke"), "PATH_NOT_ALLOWED"},
      {"prefix only", Path("/api/emrs/athenapractice"), "PATH_NOT_ALLOWED"},
      {"relative path", Path("api/emrs/athenapractice/x"), "PATH_NOT_ALLOWED"},
      {"CRLF in query value",
       [](auto& r) { AddQuery(r, "date", std::string("1\r\nX-Leyr-Client-Secret: ") + kInputCanary); },
       "QUERY_NOT_ALLOWED"},
      {"LF in query name", [](auto& r) { AddQuery(r, "a\nb", "1"); }, "QUERY_NOT_ALLOWED"},
      {"NUL in query value", [](auto& r) { AddQuery(r, "a", std::string("1\0", 2)); },
       "QUERY_NOT_ALLOWED"},
      {"CRLF in header value", Header("Accept", kCanaryValue + "\r\nX-Leyr-Client-Secret: y"),
       "HEADER_NOT_ALLOWED"},
      {"LF in header value", Header("Accept", kCanaryValue + "\nHost: evil"), "HEADER_NOT_ALLOWED"},
      {"NUL in header value", Header("Accept", kCanaryValue + std::string("\0", 1)),
       "HEADER_NOT_ALLOWED"},
      {"caller-set x-leyr-client-secret", Header("X-Leyr-Client-Secret", kCanaryValue),
       "HEADER_NOT_ALLOWED"},
      {"caller-set x-leyr-emr-oauth-code", Header("x-leyr-emr-oauth-code", kCanaryValue),
       "HEADER_NOT_ALLOWED"},
      {"caller-set x-leyr-client-id", Header("X-LEYR-CLIENT-ID", kCanaryValue),
       "HEADER_NOT_ALLOWED"},
      {"host", Header("Host", "evil.example"), "HEADER_NOT_ALLOWED"},
      {"content-length", Header("Content-Length", "0"), "HEADER_NOT_ALLOWED"},
      {"transfer-encoding", Header("Transfer-Encoding", "chunked"), "HEADER_NOT_ALLOWED"},
      {"connection", Header("Connection", "close"), "HEADER_NOT_ALLOWED"},
      {"cookie", Header("Cookie", kCanaryValue), "HEADER_NOT_ALLOWED"},
      {"expect", Header("Expect", "100-continue"), "HEADER_NOT_ALLOWED"},
      {"proxy-authorization", Header("Proxy-Authorization", kCanaryValue), "HEADER_NOT_ALLOWED"},
      {"header name with colon", Header("X-A: b", kCanaryValue), "HEADER_NOT_ALLOWED"},
      {"header name with CRLF", Header("X-A\r\nHost", kCanaryValue), "HEADER_NOT_ALLOWED"},
      {"empty header name", Header("", kCanaryValue), "HEADER_NOT_ALLOWED"},
      {"too many headers",
       [](auto& r) {
         for (int i = 0; i < 33; ++i) AddHeader(r, absl::StrCat("X-H", i), "v");
       },
       "HEADER_NOT_ALLOWED"},
      {"oversized body",
       [](auto& r) {
         r.set_method("POST");
         r.set_body(std::string(1 << 20, 'b') + "x" + kInputCanary);
       },
       "BODY_TOO_LARGE"},
      {"body with GET", [](auto& r) { r.set_body(kInputCanary); }, "INVALID_ARGUMENT"},
      {"TRACE", Method("TRACE"), "METHOD_NOT_ALLOWED"},
      {"CONNECT", Method("CONNECT"), "METHOD_NOT_ALLOWED"},
      {"OPTIONS", Method("OPTIONS"), "METHOD_NOT_ALLOWED"},
      {"HEAD", Method("HEAD"), "METHOD_NOT_ALLOWED"},
      {"lower-case get", Method("get"), "METHOD_NOT_ALLOWED"},
      {"method with CRLF", Method("GET /x HTTP/1.1\r\nHost: evil\r\n\r\nGET"),
       "METHOD_NOT_ALLOWED"},
      {"empty method", Method(""), "METHOD_NOT_ALLOWED"},
  };
}

int CountedCallCases() { return static_cast<int>(CallCases().size()); }

TEST_F(HostileInputTest, CallLeyrRefusesEveryBadRequestAndTheUpstreamReceivesNothing) {
  const double before = SandboxRequestCount();
  ASSERT_GE(before, 0);
  for (const CallCase& c : CallCases()) {
    SCOPED_TRACE(c.what);
    broker::v1::CallLeyrRequest request;
    request.set_authorization(stack->active_name);
    request.set_method("GET");
    request.set_path(kPrefix + "care-units");
    c.mutate(request);
    auto response = stack->client->CallLeyr(request);
    ASSERT_FALSE(response.ok()) << "accepted";
    EXPECT_EQ(response.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(ReasonOf(response.status()), c.reason) << response.status().message();
    ExpectNoCanary(std::string(response.status().message()), c.what);
  }
  EXPECT_EQ(SandboxRequestCount(), before) << "a refused call reached the upstream";
  // The authorization still works: the refusals changed nothing.
  broker::v1::CallLeyrRequest good;
  good.set_authorization(stack->active_name);
  good.set_method("GET");
  good.set_path(kPrefix + "care-units");
  auto response = stack->client->CallLeyr(good);
  ASSERT_THAT(response, IsOk());
  EXPECT_EQ(response->status_code(), 200);
}

// A double-encoded '..' is not a dot segment: it reaches Leyr still encoded ("%252e"), which
// any server decodes once to the literal text "%2e%2e". It is passed, not refused.
TEST_F(HostileInputTest, DoubleEncodedDotDotStaysEncoded) {
  broker::v1::CallLeyrRequest request;
  request.set_authorization(stack->active_name);
  request.set_method("GET");
  request.set_path(kPrefix + "%252e%252e/care-units");
  auto response = stack->client->CallLeyr(request);
  ASSERT_THAT(response, IsOk());
  EXPECT_GE(response->status_code(), 400);  // the sandbox has no such resource
}

// ---------------------------------------------------------------------------------------------
// Return URIs: an exact-origin allow-list (https://example.com, http://127.0.0.1:3999).

std::vector<std::string> BadReturnUris() {
  return {
      "https://evil.com/",
      "https://evil-example.com/",
      "https://notexample.com/",
      "https://example.com.evil.com/",
      "https://example.com.evil.com",
      "https://EXAMPLE.COM.evil.com/",
      "https://sub.example.com/",
      "https://example.com@evil.com/",
      "https://example.com:443@evil.com/",
      "https://evil.com@example.com/",
      "https://user:pass@example.com/",
      "https://example.com%2f@evil.com/",
      "https://example.com\\@evil.com/",
      "https:\\\\evil.com/",
      "https:/\\evil.com/",
      "https:\\/evil.com/",
      "/\\evil.com/",
      "\\\\evil.com",
      "https:// example.com/",
      "https:/ /example.com/",
      " https://example.com/",
      "https://example.com /",
      "https://example.com\t/",
      "https://example.com\r\nLocation: https://evil.com/",
      "https://example.com%0d%0a.evil.com/",
      "https://ex\xc3\xa0mple.com/",           // IDN look-alike, raw UTF-8
      "https://xn--exmple-qta.com/",           // its punycode
      "https://example\xe3\x80\x82""com/",     // ideographic full stop
      "https://example.com./",
      "https://example.com../",
      "javascript:alert(document.domain)",
      "JavaScript://example.com/%0aalert(1)",
      "javascript://https://example.com/%0aalert(1)",
      "data:text/html,<script>alert(1)</script>",
      "vbscript:msgbox(1)",
      "file:///etc/passwd",
      "ftp://example.com/",
      "http://example.com/",                   // other scheme
      "https://example.com:8443/",             // other port
      "https://example.com:80/",
      "https://example.com:0/",
      "//evil.com/",
      "//example.com/",
      "///evil.com/",
      "https:///evil.com/",
      "https:evil.com",
      "https:/evil.com",
      "evil.com",
      "/done",
      "https://[::1]/",
      "http://127.0.0.1:3998/",
      "http://localhost:3999/",
      "http://127.0.0.1:3999@evil.com/",
      "http://127.0.0.1:3999\\@evil.com/",
      "http://127.0.0.1.:3999/",
      std::string("https://example.com") + std::string(1, '\0') + ".evil.com/",
      "https://ExAmPlE.cOm.EvIl.CoM/",
      "http://2130706433:3999/",    // 127.0.0.1 as one number
      "http://0x7f.0.0.1:3999/",    // hexadecimal
      "http://0177.0.0.1:3999/",    // octal
      "http://127.1:3999/",         // short form
      "http://[::ffff:127.0.0.1]:3999/",
      std::string("https://") + std::string(3000, 'a') + ".example.com/",
  };
}

TEST_F(HostileInputTest, ReturnUriBypassStringsAreRefusedAndNothingIsStored) {
  const int before = AuthorizationCount();
  ASSERT_GE(before, 1);
  for (const std::string& uri : BadReturnUris()) {
    SCOPED_TRACE(uri);
    auto begun = Begin(uri);
    ASSERT_FALSE(begun.ok()) << "accepted";
    EXPECT_EQ(begun.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(ReasonOf(begun.status()), "RETURN_URI_NOT_ALLOWED") << begun.status().message();
    ExpectNoCanary(std::string(begun.status().message()), uri);
  }
  EXPECT_EQ(AuthorizationCount(), before) << "a refused BeginAuthorization stored something";
  // The allowed origins are still accepted, with case and default port normalised.
  for (const std::string& uri : {std::string("https://EXAMPLE.com:443/done?x=1"),
                                 std::string("http://127.0.0.1:3999/back")}) {
    EXPECT_THAT(Begin(uri), IsOk()) << uri;
  }
}

// ---------------------------------------------------------------------------------------------
// The shim: malformed callbacks, each its 4xx, nothing reaching the broker's state.

struct ShimCase {
  std::string what;
  std::string method;
  std::string path;  // relative to the shim
  std::vector<std::string> headers;
  std::string body;
  long status;
};

std::vector<ShimCase> ShimCases(const std::string& pending_state) {
  const std::string form = "Content-Type: application/x-www-form-urlencoded";
  const std::string st = "state=" + PercentEncode(pending_state);
  const std::string code = std::string("code=") + kInputCanary;
  return {
      {"GET", "GET", "/oauth/callback?" + st + "&" + code, {}, "", 405},
      {"PUT", "PUT", "/oauth/callback", {form}, st + "&" + code, 405},
      {"DELETE", "DELETE", "/oauth/callback", {}, "", 405},
      {"PATCH", "PATCH", "/oauth/callback", {form}, st + "&" + code, 405},
      {"OPTIONS", "OPTIONS", "/oauth/callback", {}, "", 405},
      {"text/plain", "POST", "/oauth/callback", {"Content-Type: text/plain"}, st + "&" + code, 415},
      {"JSON", "POST", "/oauth/callback", {"Content-Type: application/json"},
       R"({"state":"x","code":"y"})", 415},
      {"multipart", "POST", "/oauth/callback",
       {"Content-Type: multipart/form-data; boundary=x"}, "--x\r\n\r\n--x--", 415},
      {"no content type", "POST", "/oauth/callback", {"Content-Type:"}, st + "&" + code, 415},
      {"form look-alike type", "POST", "/oauth/callback",
       {"Content-Type: application/x-www-form-urlencoded-evil"}, st + "&" + code, 415},
      {"missing state", "POST", "/oauth/callback", {form}, code, 400},
      {"empty state", "POST", "/oauth/callback", {form}, "state=&" + code, 400},
      {"state in the query only", "POST", "/oauth/callback?" + st, {form}, code, 400},
      {"repeated state", "POST", "/oauth/callback", {form}, st + "&" + st + "&" + code, 400},
      {"repeated code", "POST", "/oauth/callback", {form}, st + "&" + code + "&" + code, 400},
      {"repeated error", "POST", "/oauth/callback", {form},
       st + "&error=access_denied&error=x", 400},
      {"code and error", "POST", "/oauth/callback", {form}, st + "&" + code + "&error=x", 400},
      {"neither code nor error", "POST", "/oauth/callback", {form}, st, 400},
      {"malformed escape", "POST", "/oauth/callback", {form}, st + "&" + code + "&x=%zz", 400},
      {"truncated escape", "POST", "/oauth/callback", {form}, st + "&" + code + "%", 400},
      {"huge field", "POST", "/oauth/callback", {form},
       st + "&code=" + std::string(20000, 'c') + kInputCanary, 413},
      {"huge declared length", "POST", "/oauth/callback",
       {form, "Content-Length: 10000000"}, st + "&" + code, 413},
      {"empty body", "POST", "/oauth/callback", {form}, "", 400},
      {"unknown path", "POST", "/oauth/callback/../admin", {form}, st + "&" + code, 404},
  };
}

TEST_F(HostileInputTest, ShimRefusesMalformedCallbacksAndTheBrokerIsUnchanged) {
  auto begun = Begin(std::string(kAllowedLocalOrigin) + "/back");
  ASSERT_THAT(begun, IsOk());
  Form form = ConsentForm(begun->authorize_uri());
  const std::string state = form.Field("state");
  ASSERT_FALSE(state.empty());
  const int before = AuthorizationCount();

  for (const ShimCase& c : ShimCases(state)) {
    SCOPED_TRACE(c.what);
    auto result = HttpRequest(c.method, absl::StrCat("http://", stack->shim_address, c.path),
                              c.headers, c.body);
    if (c.status == 413 && !result.ok()) continue;  // a closed connection is also a refusal
    ASSERT_THAT(result, IsOk());
    EXPECT_EQ(result->status, c.status) << result->body;
    EXPECT_EQ(result->Header("location"), "");
    ExpectNoCanary(result->body, c.what);
    for (const auto& [name, value] : result->headers) ExpectNoCanary(value, c.what + " " + name);
  }
  // Raw requests libcurl would not send: CR/LF and control characters in the request line
  // and in header values. libmicrohttpd refuses them (400) or drops the connection.
  const std::vector<std::pair<std::string, std::string>> raw = {
      {"CRLF in the request target",
       "POST /oauth/callback\r\nX: y HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"},
      {"NUL in a header value", std::string("POST /oauth/callback HTTP/1.1\r\nHost: a\r\nX: a") +
                                    std::string(1, '\0') + "b\r\nContent-Length: 0\r\n\r\n"},
      {"bare LF header folding",
       "POST /oauth/callback HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\n "
       "application/x-www-form-urlencoded\r\nContent-Length: 0\r\n\r\n"},
      {"two content lengths",
       "POST /oauth/callback HTTP/1.1\r\nHost: a\r\nContent-Type: application/x-www-form-urlencoded"
       "\r\nContent-Length: 5\r\nContent-Length: 50\r\n\r\nstate"},
      {"not HTTP", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n"},
  };
  for (const auto& [what, bytes] : raw) {
    SCOPED_TRACE(what);
    int fd = ConnectTo(stack->shim_address);
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(SendAll(fd, bytes));
    ReadResult r = ReadUntil(fd, absl::Seconds(10), HasWholeResponse);
    close(fd);
    const int status = StatusOf(r.data);
    EXPECT_TRUE((status >= 400 && status < 500) || (status == 0 && r.closed))
        << "answered " << r.data.substr(0, 200);
    ExpectNoCanary(r.data, what);
  }

  EXPECT_EQ(AuthorizationCount(), before);
  auto still = stack->client->Get(begun->authorization().name());
  ASSERT_THAT(still, IsOk());
  EXPECT_EQ(still->state(), Authorization::STATE_PENDING) << "a refused callback consumed the state";
  // The state still works once: the refusals consumed nothing.
  auto good = HttpRequest("POST", form.action, {"Content-Type: application/x-www-form-urlencoded"},
                          EncodeQuery(form.fields));
  ASSERT_THAT(good, IsOk());
  EXPECT_EQ(good->status, 303) << good->body;
  EXPECT_TRUE(absl::StartsWith(good->Header("location"), std::string(kAllowedLocalOrigin) + "/back?"));
  ExpectNoCanary(good->Header("location"), "next_uri");
}

// ---------------------------------------------------------------------------------------------
// Slow clients and the connection limit.

TEST_F(HostileInputTest, SlowClientIsClosedAfterTheReadTimeout) {
  // Headers, then silence: the shim's read_timeout is 1 s.
  for (const std::string& partial :
       {std::string("GET /healthz HTTP/1.1\r\nHost: a\r\n"),
        std::string("POST /oauth/callback HTTP/1.1\r\nHost: a\r\n"
                    "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n"
                    "state=")}) {
    int fd = ConnectTo(stack->shim_address);
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(SendAll(fd, partial));
    const absl::Time start = absl::Now();
    ReadResult r = ReadUntil(fd, absl::Seconds(20), [](const std::string&) { return false; });
    const absl::Duration took = absl::Now() - start;
    close(fd);
    EXPECT_TRUE(r.closed) << "still open after 20 s";
    EXPECT_GE(took, absl::Milliseconds(900));
    EXPECT_LT(took, absl::Seconds(10));
    EXPECT_FALSE(absl::StartsWith(r.data, "HTTP/1.1 2")) << r.data;
  }
  // The shim still serves others.
  auto health = HttpRequest("GET", absl::StrCat("http://", stack->shim_address, "/healthz"));
  ASSERT_THAT(health, IsOk());
  EXPECT_EQ(health->status, 200);
}

TEST_F(HostileInputTest, TricklingClientIsClosedAfterTheRequestTimeout) {
  // A second shim whose read_timeout (inactivity) is long and request_timeout short: a client
  // that sends a byte every 100 ms is never idle, yet must be closed after about 1 s.
  std::string config = stack->dir.WriteFile(
      "shim-trickle.json",
      absl::StrCat(R"({"listen":"127.0.0.1:0","broker_target":"unix:)", stack->socket,
                   R"(","read_timeout":"60s","request_timeout":"1s"})"));
  auto shim = Process::Start({LEYR_SHIM_BIN, "--config=" + config});
  ASSERT_THAT(shim, IsOk());
  auto address = (*shim)->WaitForListening();
  ASSERT_THAT(address, IsOk());

  int fd = ConnectTo(*address);
  ASSERT_GE(fd, 0);
  const std::string request =
      "POST /oauth/callback HTTP/1.1\r\nHost: a\r\n"
      "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n" +
      std::string(1000, 'x');
  const absl::Time start = absl::Now();
  bool closed = false;
  for (size_t i = 0; i < request.size() && absl::Now() - start < absl::Seconds(20); ++i) {
    if (!SendAll(fd, request.substr(i, 1))) {
      closed = true;
      break;
    }
    // The trickle itself (not a synchronisation): one byte, then 100 ms of waiting for the
    // server to close the connection.
    ReadResult r = ReadUntil(fd, absl::Milliseconds(100), [](const std::string&) { return false; });
    if (r.closed) {
      closed = true;
      EXPECT_FALSE(absl::StartsWith(r.data, "HTTP/1.1 2")) << r.data;
      break;
    }
  }
  const absl::Duration took = absl::Now() - start;
  close(fd);
  EXPECT_TRUE(closed) << "a trickling client was still connected after " << took;
  EXPECT_GE(took, absl::Milliseconds(900));
  EXPECT_LT(took, absl::Seconds(5));

  // A client that sends its request at once is served, also after a slow answer would have
  // passed the request timeout (the time the broker takes does not count).
  auto health = HttpRequest("GET", absl::StrCat("http://", *address, "/healthz"));
  ASSERT_THAT(health, IsOk());
  EXPECT_EQ(health->status, 200);
  EXPECT_THAT((*shim)->WaitForLine([](const std::string& line) {
    return absl::StrContains(line, "\"msg\":\"request_timeout\"");
  }),
              IsOk());
  EXPECT_EQ((*shim)->Stop(), 0);
}

TEST_F(HostileInputTest, ConnectionsBeyondTheLimitAreNotServedWhileExistingOnesWork) {
  // A second shim (same broker) with room for 4 connections and a long read timeout, so that
  // the held connections stay open for the whole test.
  std::string config = stack->dir.WriteFile(
      "shim-limit.json",
      absl::StrCat(R"({"listen":"127.0.0.1:0","broker_target":"unix:)", stack->socket,
                   R"(","max_connections":4,"read_timeout":"60s"})"));
  auto shim = Process::Start({LEYR_SHIM_BIN, "--config=" + config});
  ASSERT_THAT(shim, IsOk());
  auto address = (*shim)->WaitForListening();
  ASSERT_THAT(address, IsOk());

  const std::string health = "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n";
  std::vector<int> held;
  for (int i = 0; i < 4; ++i) {
    int fd = ConnectTo(*address);
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(SendAll(fd, health));
    ReadResult r = ReadUntil(fd, absl::Seconds(10), HasWholeResponse);
    ASSERT_EQ(StatusOf(r.data), 200) << "connection " << i << ": " << r.data;
    held.push_back(fd);  // kept open (HTTP/1.1 keep-alive)
  }

  // Over the limit: not served (refused, closed, or left unaccepted) while the four are open.
  int extra = ConnectTo(*address);
  if (extra >= 0) {
    SendAll(extra, health);
    // A bounded wait for an answer that must not come.
    ReadResult r = ReadUntil(extra, absl::Seconds(2), HasWholeResponse);
    EXPECT_NE(StatusOf(r.data), 200) << "served beyond max_connections";
  }

  // The existing connections still work.
  for (size_t i = 0; i < held.size(); ++i) {
    ASSERT_TRUE(SendAll(held[i], health));
    ReadResult r = ReadUntil(held[i], absl::Seconds(10), HasWholeResponse);
    EXPECT_EQ(StatusOf(r.data), 200) << "held connection " << i << ": " << r.data;
  }

  // Once one closes, a new connection is served again. The server counts the close when its
  // event loop has cleaned the connection up, a moment after the client sees the end of the
  // stream; until then a new connection is still refused at once, so a bounded number of
  // attempts (each refused immediately, no waiting in between) must end with one served.
  ASSERT_TRUE(SendAll(held.back(), "GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"));
  EXPECT_TRUE(ReadUntil(held.back(), absl::Seconds(10), [](const std::string&) { return false; })
                  .closed);
  close(held.back());
  held.pop_back();
  if (extra >= 0) close(extra);
  int served_after = -1;
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  for (int attempt = 1; served_after < 0 && absl::Now() < give_up; ++attempt) {
    int fresh = ConnectTo(*address);
    ASSERT_GE(fresh, 0);
    if (SendAll(fresh, health) &&
        StatusOf(ReadUntil(fresh, absl::Seconds(10), HasWholeResponse).data) == 200) {
      served_after = attempt;
    }
    close(fresh);
  }
  EXPECT_GT(served_after, 0) << "no new connection was served after one closed";
  for (int fd : held) close(fd);
  EXPECT_EQ((*shim)->Stop(), 0);
}

// ---------------------------------------------------------------------------------------------

TEST_F(HostileInputTest, AtLeastSixtyBadInputsInTotal) {
  const int calls = CountedCallCases();
  const int uris = static_cast<int>(BadReturnUris().size());
  const int shim = static_cast<int>(ShimCases("x").size()) + 5;  // + the raw requests
  std::printf("bad inputs: CallLeyr %d, return URIs %d, shim %d, total %d\n", calls, uris, shim,
              calls + uris + shim);
  EXPECT_GE(calls, 20);
  EXPECT_GE(uris, 30);
  EXPECT_GE(calls + uris + shim, 60);
}

}  // namespace
}  // namespace leyr
