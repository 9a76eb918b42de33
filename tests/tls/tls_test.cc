// TLS, mTLS, bearer tokens and the caller policy over the real binaries:
//   - a broker on 127.0.0.1:0 with TLS (client certificates requested and verified), a policy
//     file, a tokens file and a sealing key; a fake Leyr (HttpServer) behind it;
//   - callers: spiffe://leyr/app-a (certificate), app-b (bearer token), spiffe://leyr/shim
//     (certificate, CompleteAuthorization only), spiffe://leyr/app-b's certificate (not in the
//     policy), and app-a's SAN from another CA;
//   - certificate reload: the server's files are replaced and new connections see the new serial;
//   - the shim with HTTPS on its port and mTLS to the broker;
//   - after every test: no token, Leyr secret or code in any log line, error or response.
#include <curl/curl.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <grpc/grpc_security_constants.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "client/broker_client.h"
#include "leyr/broker/v1/broker_service.grpc.pb.h"
#include "server/broker/tls.h"
#include "server/common/config_util.h"
#include "server/common/random.h"
#include "server/common/status_util.h"
#include "server/common/url.h"
#include "server/http/http_server.h"
#include "tests/testing/process.h"
#include "tests/testing/status_matchers.h"

namespace leyr {
namespace {

using broker::v1::Authorization;
using ::leyr::testing::IsOk;
using ::leyr::testing::Process;
using ::leyr::testing::StatusIs;
using ::leyr::testing::TempDir;
using ::testing::HasSubstr;

constexpr char kToken[] = "CANARY-bearer-token-9d1f4c2e77a0";
constexpr char kWrongToken[] = "CANARY-wrong-token-31b8";
constexpr char kLeyrSecret[] = "CANARY-leyr-secret-5a0c9e";
constexpr char kCode[] = "CANARY-athena-code-e41d7b";

// Runs a shell command; true on exit 0.
bool Shell(const std::string& command) { return std::system(command.c_str()) == 0; }

std::string StateOf(const std::string& authorize_uri) {
  auto fields = ParseFormUrlEncoded(authorize_uri.substr(authorize_uri.find('?') + 1));
  if (!fields.ok()) return "";
  for (const auto& [k, v] : *fields) {
    if (k == "state") return v;
  }
  return "";
}

// One HTTPS (or HTTP) request with libcurl, trusting `ca_file`.
struct CurlResult {
  CURLcode code = CURLE_OK;
  long status = 0;
  std::string body;
};
size_t Collect(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}
CurlResult Post(const std::string& url, const std::string& ca_file, const std::string& body) {
  CurlResult result;
  CURL* curl = curl_easy_init();
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_CAINFO, ca_file.c_str());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &Collect);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &result.body);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 20L);
  result.code = curl_easy_perform(curl);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &result.status);
  curl_easy_cleanup(curl);
  return result;
}

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    certs_ = dir_.path() + "/certs";
    other_ = dir_.path() + "/other-ca";
    ASSERT_TRUE(Shell(absl::StrCat("bash ", LEYR_CERT_SCRIPT, " ", certs_, " shim app-a app-b 2>/dev/null")));
    ASSERT_TRUE(Shell(absl::StrCat("bash ", LEYR_CERT_SCRIPT, " ", other_, " app-a 2>/dev/null")));

    // A fake Leyr over HTTPS (the broker wants https outside development) that answers 200 and
    // remembers whether the secret and the code reached it.
    HttpServerOptions options;
    auto cert = ReadFile(certs_ + "/server.pem");
    auto key = ReadFile(certs_ + "/server.key");
    ASSERT_THAT(cert, IsOk());
    ASSERT_THAT(key, IsOk());
    options.tls_cert_pem = *cert;
    options.tls_key_pem = *key;
    auto leyr = HttpServer::Start(options, [this](HttpRequest request, HttpResponder respond) {
      {
        absl::MutexLock lock(&mu_);
        if (request.Header("x-leyr-client-secret") == kLeyrSecret &&
            request.Header("x-leyr-emr-oauth-code") == kCode) {
          ++leyr_calls_with_credentials_;
        }
      }
      respond(HttpResponse{200, {{"Content-Type", "application/json"}}, "[{\"id\":\"cu-1\"}]"});
    });
    ASSERT_THAT(leyr, IsOk());
    leyr_ = std::move(*leyr);
    StartBroker("request");
  }

  void TearDown() override {
    // The canary: nothing secret in any process's output or in anything a caller received.
    std::string everything = seen_;
    for (Process* p : {broker_.get(), shim_.get()}) {
      if (p != nullptr) everything += p->Output();
    }
    for (const char* secret : {kToken, kWrongToken, kLeyrSecret, kCode}) {
      EXPECT_THAT(everything, ::testing::Not(HasSubstr(secret))) << "leaked: " << secret;
    }
    // States appear in authorize URIs (that is their purpose) but in no log line.
    std::string logs = broker_ ? broker_->Output() : "";
    if (shim_) logs += shim_->Output();
    for (const auto& state : states_) {
      EXPECT_THAT(logs, ::testing::Not(HasSubstr(state))) << "a state reached a log line";
    }
    if (leyr_) leyr_->Stop();
  }

  void StartBroker(const std::string& client_auth) {
    std::string secret = dir_.WriteFile("leyr-secret", std::string(kLeyrSecret) + "\n");
    dir_.WriteFile("app-b.token", std::string(kToken) + "\n");
    dir_.WriteFile("wrong.token", std::string(kWrongToken) + "\n");
    std::string tokens = dir_.WriteFile(
        "tokens.json", absl::StrCat(R"({"tokens":[{"sha256":")", Hex(Sha256(kToken)),
                                    R"(","caller":"app-b"}]})"));
    std::string policy = dir_.WriteFile("policy.json", R"({"callers":[
      {"caller":"spiffe://leyr/app-a","begin":["athena"],"use":["athena"],"revoke":["athena"],
       "return_uri_origins":["https://app-a.example.com"]},
      {"caller":"app-b","begin":["other"],"use":["other"],"revoke":["other"]},
      {"caller":"spiffe://leyr/shim","shim":true}]})");
    std::string key(32, '\0');
    for (size_t i = 0; i < key.size(); ++i) key[i] = static_cast<char>(i * 7 + 1);
    std::string sealing = dir_.WriteFile(
        "sealing.json", absl::StrCat(R"({"primary":"k1","keys":[{"id":"k1","key_base64":")",
                                     absl::Base64Escape(key), R"("}]})"));
    std::string connections;
    for (const char* name : {"athena", "other"}) {
      absl::StrAppend(&connections, connections.empty() ? "" : ",", R"({"name":")", name,
                      R"(","emr":"athenapractice","base_uri":"https://athena.example.com",)",
                      R"("client_id":"athena-client","redirect_uri":"https://127.0.0.1:1/oauth/callback"})");
    }
    std::string config = dir_.WriteFile(
        "broker.json",
        absl::StrCat(R"({"listen":["127.0.0.1:0"],)",
                     R"("tls":{"cert_file":")", certs_, R"(/server.pem","key_file":")", certs_,
                     R"(/server.key","client_ca_file":")", certs_, R"(/ca.pem","client_auth":")",
                     client_auth, R"(","refresh_interval":"1s"},)",
                     R"("policy_file":")", policy, R"(","tokens_file":")", tokens, R"(",)",
                     R"("sealing_key_file":")", sealing, R"(",)",
                     R"("leyr":{"base_uri":"https://)", leyr_->address(),
                     R"(","client_id":"leyr-client","client_secret_file":")", secret,
                     R"(","ca_file":")", certs_, R"(/ca.pem"},)",
                     R"("connections":[)", connections, R"(],)",
                     R"("return_uri_origins":["https://app-a.example.com","https://app-b.example.com"]})"));
    auto broker = Process::Start({LEYR_BROKER_BIN, "--config=" + config});
    ASSERT_THAT(broker, IsOk());
    broker_ = std::move(*broker);
    auto listening = broker_->WaitForListening();
    ASSERT_THAT(listening, IsOk()) << broker_->Output();
    target_ = *listening;
  }

  ClientTlsSettings Cert(const std::string& name, const std::string& dir = "") const {
    ClientTlsSettings tls;
    tls.ca_file = certs_ + "/ca.pem";
    tls.cert_file = (dir.empty() ? certs_ : dir) + "/" + name + ".pem";
    tls.key_file = (dir.empty() ? certs_ : dir) + "/" + name + ".key";
    return tls;
  }
  ClientTlsSettings Token(const std::string& file = "app-b.token") const {
    ClientTlsSettings tls;
    tls.ca_file = certs_ + "/ca.pem";
    tls.token_file = dir_.path() + "/" + file;
    return tls;
  }

  std::unique_ptr<broker::v1::BrokerService::Stub> Stub(const ClientTlsSettings& tls,
                                                        bool local = false) {
    auto channel = CreateBrokerChannel(target_, tls, local);
    EXPECT_THAT(channel, IsOk());
    return broker::v1::BrokerService::NewStub(*channel);
  }

  // Records what a caller received (message or error) for the canary check.
  template <typename T>
  absl::StatusOr<T> Seen(const grpc::Status& status, const T& response) {
    if (!status.ok()) {
      absl::StrAppend(&seen_, status.error_message(), "\n", status.error_details(), "\n");
      return FromGrpcStatus(status);
    }
    absl::StrAppend(&seen_, response.DebugString(), "\n");
    return response;
  }

  static void Deadline(grpc::ClientContext& context) {
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
  }

  absl::StatusOr<broker::v1::BeginAuthorizationResponse> Begin(const ClientTlsSettings& tls,
                                                              const std::string& connection,
                                                              const std::string& return_uri = "") {
    broker::v1::BeginAuthorizationRequest request;
    request.set_connection(connection);
    request.set_return_uri(return_uri);
    grpc::ClientContext context;
    Deadline(context);
    broker::v1::BeginAuthorizationResponse response;
    grpc::Status status = Stub(tls)->BeginAuthorization(&context, request, &response);
    if (status.ok()) {
      states_.push_back(StateOf(response.authorize_uri()));
      // The authorize URI carries the state by design; keep the rest for the canary.
      broker::v1::BeginAuthorizationResponse copy = response;
      copy.clear_authorize_uri();
      Seen(status, copy).IgnoreError();
      return response;
    }
    return Seen(status, response);
  }

  absl::StatusOr<broker::v1::CompleteAuthorizationResponse> Complete(const ClientTlsSettings& tls,
                                                                    const std::string& state) {
    broker::v1::CompleteAuthorizationRequest request;
    request.set_state(state);
    request.set_code(kCode);
    grpc::ClientContext context;
    Deadline(context);
    broker::v1::CompleteAuthorizationResponse response;
    return Seen(Stub(tls)->CompleteAuthorization(&context, request, &response), response);
  }

  absl::StatusOr<Authorization> Get(const ClientTlsSettings& tls, const std::string& name) {
    broker::v1::GetAuthorizationRequest request;
    request.set_name(name);
    grpc::ClientContext context;
    Deadline(context);
    broker::v1::GetAuthorizationResponse response;
    auto r = Seen(Stub(tls)->GetAuthorization(&context, request, &response), response);
    if (!r.ok()) return r.status();
    return r->authorization();
  }

  absl::StatusOr<Authorization> Wait(const ClientTlsSettings& tls, const std::string& name) {
    broker::v1::WaitAuthorizationRequest request;
    request.set_name(name);
    request.mutable_timeout()->set_seconds(1);
    grpc::ClientContext context;
    Deadline(context);
    broker::v1::WaitAuthorizationResponse response;
    auto r = Seen(Stub(tls)->WaitAuthorization(&context, request, &response), response);
    if (!r.ok()) return r.status();
    return r->authorization();
  }

  absl::StatusOr<Authorization> Revoke(const ClientTlsSettings& tls, const std::string& name) {
    broker::v1::RevokeAuthorizationRequest request;
    request.set_name(name);
    grpc::ClientContext context;
    Deadline(context);
    broker::v1::RevokeAuthorizationResponse response;
    auto r = Seen(Stub(tls)->RevokeAuthorization(&context, request, &response), response);
    if (!r.ok()) return r.status();
    return r->authorization();
  }

  absl::StatusOr<std::vector<std::string>> List(const ClientTlsSettings& tls,
                                                const std::string& connection = "") {
    broker::v1::ListAuthorizationsRequest request;
    request.set_connection(connection);
    request.set_page_size(1);  // page through, so that filtering works across store pages
    std::vector<std::string> names;
    do {
      grpc::ClientContext context;
      Deadline(context);
      broker::v1::ListAuthorizationsResponse response;
      auto r = Seen(Stub(tls)->ListAuthorizations(&context, request, &response), response);
      if (!r.ok()) return r.status();
      for (const auto& a : r->authorizations()) names.push_back(a.name());
      request.set_page_token(r->next_page_token());
    } while (!request.page_token().empty());
    return names;
  }

  absl::StatusOr<broker::v1::CallLeyrResponse> Call(const ClientTlsSettings& tls,
                                                    const std::string& name) {
    broker::v1::CallLeyrRequest request;
    request.set_authorization(name);
    request.set_method("GET");
    request.set_path("/api/emrs/athenapractice/care-units");
    grpc::ClientContext context;
    Deadline(context);
    broker::v1::CallLeyrResponse response;
    return Seen(Stub(tls)->CallLeyr(&context, request, &response), response);
  }

  // The serial of the certificate the broker presents to a new connection.
  absl::StatusOr<std::string> ServerSerial() {
    auto stub = Stub(Cert("app-a"), /*local=*/true);
    grpc::ClientContext context;
    Deadline(context);
    broker::v1::ListAuthorizationsRequest request;
    broker::v1::ListAuthorizationsResponse response;
    grpc::Status status = stub->ListAuthorizations(&context, request, &response);
    if (!status.ok()) return FromGrpcStatus(status);
    auto pem = context.auth_context()->FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME);
    if (pem.empty()) return absl::NotFoundError("no peer certificate");
    return CertificateSerial(std::string(pem[0].data(), pem[0].size()));
  }

  // Begins with app-a and completes with the shim: an ACTIVE authorization of app-a.
  std::string ActiveOfAppA() {
    auto begun = Begin(Cert("app-a"), "athena");
    EXPECT_THAT(begun, IsOk());
    if (!begun.ok()) return "";
    auto done = Complete(Cert("shim"), StateOf(begun->authorize_uri()));
    EXPECT_THAT(done, IsOk());
    return begun->authorization().name();
  }

  TempDir dir_;
  std::string certs_, other_, target_;
  std::unique_ptr<HttpServer> leyr_;
  std::unique_ptr<Process> broker_, shim_;
  std::string seen_;
  std::vector<std::string> states_;
  absl::Mutex mu_;
  int leyr_calls_with_credentials_ ABSL_GUARDED_BY(mu_) = 0;
};

TEST_F(TlsTest, TwoCallersEachSeeOnlyTheirConnectionsAndAuthorizations) {
  const std::string a = ActiveOfAppA();
  auto b = Begin(Token(), "other");
  ASSERT_THAT(b, IsOk());
  const std::string b_name = b->authorization().name();

  // Beginning on a connection the policy does not give.
  EXPECT_THAT(Begin(Cert("app-a"), "other"),
              StatusIs(absl::StatusCode::kPermissionDenied, "CONNECTION_NOT_ALLOWED"));
  EXPECT_THAT(Begin(Token(), "athena"),
              StatusIs(absl::StatusCode::kPermissionDenied, "CONNECTION_NOT_ALLOWED"));

  // Another caller's authorization answers exactly like one that does not exist.
  const std::string missing = "authorizations/AAAAAAAAAAAAAAAAAAAAAA";
  auto absent = Get(Cert("app-a"), missing);
  ASSERT_THAT(absent, StatusIs(absl::StatusCode::kNotFound, "AUTHORIZATION_NOT_FOUND"));
  for (const auto& [who, name] :
       std::vector<std::pair<ClientTlsSettings, std::string>>{{Cert("app-a"), b_name},
                                                              {Token(), a}}) {
    auto got = Get(who, name);
    EXPECT_THAT(got, StatusIs(absl::StatusCode::kNotFound, "AUTHORIZATION_NOT_FOUND"));
    EXPECT_EQ(got.status().message(), absent.status().message());
    EXPECT_THAT(Wait(who, name), StatusIs(absl::StatusCode::kNotFound, "AUTHORIZATION_NOT_FOUND"));
    EXPECT_THAT(Revoke(who, name), StatusIs(absl::StatusCode::kNotFound, "AUTHORIZATION_NOT_FOUND"));
    EXPECT_THAT(Call(who, name), StatusIs(absl::StatusCode::kNotFound, "AUTHORIZATION_NOT_FOUND"));
  }

  // Each sees its own.
  EXPECT_THAT(Get(Cert("app-a"), a), IsOk());
  EXPECT_THAT(Get(Token(), b_name), IsOk());
  auto a_list = List(Cert("app-a"));
  ASSERT_THAT(a_list, IsOk());
  EXPECT_EQ(*a_list, std::vector<std::string>{a});
  auto b_list = List(Token());
  ASSERT_THAT(b_list, IsOk());
  EXPECT_EQ(*b_list, std::vector<std::string>{b_name});
  auto filtered = List(Cert("app-a"), "other");
  ASSERT_THAT(filtered, IsOk());
  EXPECT_TRUE(filtered->empty());

  // app-a uses its ACTIVE authorization: the broker sent the secret and the code to Leyr.
  auto called = Call(Cert("app-a"), a);
  ASSERT_THAT(called, IsOk());
  EXPECT_EQ(called->status_code(), 200);
  {
    absl::MutexLock lock(&mu_);
    EXPECT_GE(leyr_calls_with_credentials_, 1);
  }
  auto revoked = Revoke(Token(), b_name);
  ASSERT_THAT(revoked, IsOk());
  EXPECT_EQ(revoked->state(), Authorization::STATE_REVOKED);
}

TEST_F(TlsTest, ShimIdentityMayOnlyComplete) {
  auto begun = Begin(Cert("app-a"), "athena");
  ASSERT_THAT(begun, IsOk());
  const std::string name = begun->authorization().name();
  EXPECT_THAT(Begin(Cert("shim"), "athena"),
              StatusIs(absl::StatusCode::kPermissionDenied, "RPC_NOT_ALLOWED"));
  EXPECT_THAT(Get(Cert("shim"), name),
              StatusIs(absl::StatusCode::kPermissionDenied, "RPC_NOT_ALLOWED"));
  EXPECT_THAT(List(Cert("shim")), StatusIs(absl::StatusCode::kPermissionDenied, "RPC_NOT_ALLOWED"));
  EXPECT_THAT(Revoke(Cert("shim"), name),
              StatusIs(absl::StatusCode::kPermissionDenied, "RPC_NOT_ALLOWED"));
  EXPECT_THAT(Call(Cert("shim"), name),
              StatusIs(absl::StatusCode::kPermissionDenied, "RPC_NOT_ALLOWED"));
  // Applications may not complete (only athena's callback through the shim does).
  EXPECT_THAT(Complete(Cert("app-a"), StateOf(begun->authorize_uri())),
              StatusIs(absl::StatusCode::kPermissionDenied, "RPC_NOT_ALLOWED"));
  EXPECT_THAT(Complete(Token(), StateOf(begun->authorize_uri())),
              StatusIs(absl::StatusCode::kPermissionDenied, "RPC_NOT_ALLOWED"));
  auto done = Complete(Cert("shim"), StateOf(begun->authorize_uri()));
  ASSERT_THAT(done, IsOk());
  EXPECT_EQ(done->authorization().state(), Authorization::STATE_ACTIVE);
}

TEST_F(TlsTest, WrongMissingOrForeignCredentialsAreRefused) {
  EXPECT_THAT(List(Token("wrong.token")),
              StatusIs(absl::StatusCode::kUnauthenticated, "TOKEN_INVALID"));
  // A wrong token is not rescued by a valid certificate.
  ClientTlsSettings both = Cert("app-a");
  both.token_file = dir_.path() + "/wrong.token";
  EXPECT_THAT(List(both), StatusIs(absl::StatusCode::kUnauthenticated, "TOKEN_INVALID"));
  // TLS without a certificate or token.
  ClientTlsSettings anonymous;
  anonymous.ca_file = certs_ + "/ca.pem";
  EXPECT_THAT(List(anonymous), StatusIs(absl::StatusCode::kUnauthenticated, "CREDENTIALS_MISSING"));
  // A certificate of the right CA whose identity the policy does not name.
  auto unknown = List(Cert("app-b"));
  EXPECT_THAT(unknown, StatusIs(absl::StatusCode::kPermissionDenied, "CALLER_NOT_IN_POLICY"));
  EXPECT_THAT(std::string(unknown.status().message()), HasSubstr("spiffe://leyr/app-b"));
  // app-a's SAN on a certificate from another CA: the handshake fails.
  EXPECT_THAT(List(Cert("app-a", other_)), StatusIs(absl::StatusCode::kUnavailable));
  // A client that trusts another CA refuses the broker.
  ClientTlsSettings distrust = Cert("app-a");
  distrust.ca_file = other_ + "/ca.pem";
  EXPECT_THAT(List(distrust), StatusIs(absl::StatusCode::kUnavailable));
  // Plaintext to the TLS port.
  EXPECT_THAT(List(ClientTlsSettings{}), StatusIs(absl::StatusCode::kUnavailable));
}

TEST_F(TlsTest, ReturnUriOriginsAreIntersectedPerCaller) {
  EXPECT_THAT(Begin(Cert("app-a"), "athena", "https://app-a.example.com/done"), IsOk());
  // On the broker's list, but not app-a's.
  EXPECT_THAT(Begin(Cert("app-a"), "athena", "https://app-b.example.com/done"),
              StatusIs(absl::StatusCode::kInvalidArgument, "RETURN_URI_NOT_ALLOWED"));
  // app-b's policy names no origin at all.
  EXPECT_THAT(Begin(Token(), "other", "https://app-b.example.com/done"),
              StatusIs(absl::StatusCode::kInvalidArgument, "RETURN_URI_NOT_ALLOWED"));
}

TEST_F(TlsTest, NewConnectionsGetTheReplacedCertificate) {
  auto before = ServerSerial();
  ASSERT_THAT(before, IsOk());
  // A new server certificate from the same CA, moved over the old files.
  const std::string next = dir_.path() + "/next";
  ASSERT_TRUE(Shell(absl::StrCat("mkdir -p ", next, " && cp ", certs_, "/ca.pem ", certs_,
                               "/ca.key ", next, " && bash ", LEYR_CERT_SCRIPT, " ", next,
                               " none 2>/dev/null")));
  auto expected = ReadFile(next + "/server.pem");
  ASSERT_THAT(expected, IsOk());
  auto expected_serial = CertificateSerial(*expected);
  ASSERT_THAT(expected_serial, IsOk());
  ASSERT_NE(*expected_serial, *before);
  ASSERT_TRUE(Shell(absl::StrCat("mv ", next, "/server.key ", certs_, "/server.key && mv ", next,
                               "/server.pem ", certs_, "/server.pem")));
  // The broker re-reads the files every second (refresh_interval); wait for a new connection to
  // present the new serial.
  absl::Time deadline = absl::Now() + absl::Seconds(30);
  std::string serial = *before;
  absl::Status last = absl::OkStatus();
  while (serial != *expected_serial && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(200));  // polling interval of the condition, not a sync
    // The two files cannot change at the same instant: a handshake that meets the new key with
    // the old certificate fails; the next one gets the new pair.
    auto now = ServerSerial();
    if (now.ok()) {
      serial = *now;
    } else {
      last = now.status();
    }
  }
  EXPECT_EQ(serial, *expected_serial) << "last error: " << last;
  // Calls keep working on the new certificate.
  EXPECT_THAT(List(Cert("app-a")), IsOk());
}

TEST_F(TlsTest, ShimServesHttpsAndCompletesOverMutualTls) {
  std::string config = dir_.WriteFile(
      "shim.json",
      absl::StrCat(R"({"listen":"127.0.0.1:0","broker_target":")", target_, R"(",)",
                   R"("tls":{"cert_file":")", certs_, R"(/server.pem","key_file":")", certs_,
                   R"(/server.key"},)",
                   R"("broker_tls":{"ca_file":")", certs_, R"(/ca.pem","cert_file":")", certs_,
                   R"(/shim.pem","key_file":")", certs_, R"(/shim.key"}})"));
  auto shim = Process::Start({LEYR_SHIM_BIN, "--config=" + config});
  ASSERT_THAT(shim, IsOk());
  shim_ = std::move(*shim);
  auto address = shim_->WaitForListening();
  ASSERT_THAT(address, IsOk()) << shim_->Output();

  auto begun = Begin(Cert("app-a"), "athena");
  ASSERT_THAT(begun, IsOk());
  const std::string body = absl::StrCat("state=", PercentEncode(StateOf(begun->authorize_uri())),
                                        "&code=", kCode);
  // Plain HTTP to the HTTPS port gets no answer.
  CurlResult plain = Post(absl::StrCat("http://", *address, "/oauth/callback"),
                          certs_ + "/ca.pem", "state=x&code=y");
  EXPECT_TRUE(plain.code != CURLE_OK || plain.status == 400) << plain.code << " " << plain.status;
  CurlResult result =
      Post(absl::StrCat("https://", *address, "/oauth/callback"), certs_ + "/ca.pem", body);
  ASSERT_EQ(result.code, CURLE_OK) << curl_easy_strerror(result.code);
  EXPECT_EQ(result.status, 200) << result.body;
  seen_ += result.body;
  auto got = Get(Cert("app-a"), begun->authorization().name());
  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(got->state(), Authorization::STATE_ACTIVE);
}

TEST_F(TlsTest, RequireModeRefusesConnectionsWithoutACertificate) {
  broker_.reset();
  StartBroker("require");
  EXPECT_THAT(List(Token()), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(List(Cert("app-a")), IsOk());
  // With a certificate, a token still decides the identity.
  ClientTlsSettings both = Cert("app-a");
  both.token_file = dir_.path() + "/app-b.token";
  auto begun = Begin(both, "other");
  EXPECT_THAT(begun, IsOk());
}

}  // namespace
}  // namespace leyr
