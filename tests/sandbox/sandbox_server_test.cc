// The sandbox behind a real leyr::HttpServer on 127.0.0.1:0, driven with libcurl, and the
// leyr-sandbox binary itself (configuration errors, "listening" line, SIGTERM).

#include <curl/curl.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/common/clock.h"
#include "server/common/random.h"
#include "server/common/url.h"
#include "server/http/http_server.h"
#include "server/sandbox/sandbox.h"
#include "server/sandbox/scheduler.h"
#include "tests/sandbox/sandbox_test_util.h"
#include "tests/testing/status_matchers.h"

namespace leyr::sandbox {
namespace {

using ::leyr::sandbox::testing::Field;
using ::leyr::sandbox::testing::Form;
using ::leyr::sandbox::testing::ParseJson;
using ::leyr::sandbox::testing::ReadForm;
using ::leyr::testing::IsOk;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kClientId[] = "sandbox-client";
constexpr char kRedirect[] = "http://127.0.0.1:9/oauth/callback";
constexpr char kLeyrId[] = "leyr-client-id";
constexpr char kLeyrSecret[] = "leyr-secret-CANARY-1618";

struct CurlResult {
  long status = 0;
  std::string body;
  double seconds = 0;
};

size_t Append(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

// One easy handle with its headers and body; owned until the transfer ends.
struct Transfer {
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  std::string body;
  Transfer(const std::string& url, const std::vector<std::string>& header_lines) {
    easy = curl_easy_init();
    curl_easy_setopt(easy, CURLOPT_URL, url.c_str());
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &Append);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    for (const auto& line : header_lines) headers = curl_slist_append(headers, line.c_str());
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
  }
  ~Transfer() {
    curl_easy_cleanup(easy);
    curl_slist_free_all(headers);
  }
  CurlResult Result() {
    CurlResult r;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &r.status);
    curl_easy_getinfo(easy, CURLINFO_TOTAL_TIME, &r.seconds);
    r.body = body;
    return r;
  }
};

CurlResult Fetch(const std::string& url, const std::vector<std::string>& headers = {},
                 const char* method = nullptr) {
  Transfer t(url, headers);
  if (method != nullptr) curl_easy_setopt(t.easy, CURLOPT_CUSTOMREQUEST, method);
  CURLcode rc = curl_easy_perform(t.easy);
  EXPECT_EQ(rc, CURLE_OK) << curl_easy_strerror(rc) << " for " << url;
  return t.Result();
}

std::string AuthorizeUrl(const std::string& base) {
  return base + "/oauth2/authorize?" +
         EncodeQuery({{"state", "st-1"},
                      {"scope", "openid profile user/*.* offline_access"},
                      {"response_type", "code"},
                      {"redirect_uri", kRedirect},
                      {"aud", base},
                      {"client_id", kClientId}});
}

std::vector<std::string> LeyrHeaders(const std::string& code) {
  return {absl::StrCat("x-leyr-client-id: ", kLeyrId),
          absl::StrCat("x-leyr-client-secret: ", kLeyrSecret),
          absl::StrCat("x-leyr-emr-oauth-code: ", code)};
}

SandboxOptions TestOptions() {
  SandboxOptions options;
  options.clients = {{kClientId, kRedirect}};
  options.required_scopes = {"openid", "profile", "user/*.*", "offline_access"};
  options.leyr_client_id = kLeyrId;
  options.leyr_client_secret = kLeyrSecret;
  return options;
}

class SandboxServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { curl_global_init(CURL_GLOBAL_DEFAULT); }

  void Start(SandboxOptions options) {
    sandbox_ = std::make_unique<Sandbox>(std::move(options), &clock_, &random_, &timers_);
    HttpServerOptions server_options;
    server_options.listen = "127.0.0.1:0";
    server_options.max_connections = 4096;
    auto server = HttpServer::Start(server_options, [this](HttpRequest r, HttpResponder respond) {
      sandbox_->Handle(std::move(r), std::move(respond));
    });
    ASSERT_THAT(server, IsOk());
    server_ = *std::move(server);
    base_ = "http://" + server_->address();
    sandbox_->SetPublicBaseUri(base_);
  }

  void TearDown() override {
    timers_.Shutdown();
    if (server_ != nullptr) server_->Stop();
  }

  RealClock clock_;
  SecureRandom random_;
  TimerThread timers_;
  std::unique_ptr<Sandbox> sandbox_;
  std::unique_ptr<HttpServer> server_;
  std::string base_;
};

TEST_F(SandboxServerTest, AuthorizeThenCallLeyrOverHttp) {
  Start(TestOptions());
  // The HTML page, as a browser gets it.
  CurlResult page = Fetch(AuthorizeUrl(base_));
  ASSERT_EQ(page.status, 200) << page.body;
  Form approve = ReadForm(page.body, "approve");
  ASSERT_TRUE(approve.found);
  EXPECT_EQ(approve.action, kRedirect);
  EXPECT_EQ(approve.fields["state"], "st-1");

  // The JSON variant, as a test follows it.
  CurlResult json = Fetch(AuthorizeUrl(base_), {"Accept: application/json"});
  ASSERT_EQ(json.status, 200) << json.body;
  const std::string code = Field(Field(ParseJson(json.body), "approve"), "code").string_value();
  ASSERT_FALSE(code.empty());

  CurlResult units =
      Fetch(base_ + "/api/emrs/athenapractice/care-units", LeyrHeaders(approve.fields["code"]));
  EXPECT_EQ(units.status, 200) << units.body;
  EXPECT_TRUE(ParseJson(units.body).has_list_value());

  CurlResult echo = Fetch(base_ + "/api/emrs/athenapractice/echo?a=1%202", LeyrHeaders(code),
                          "DELETE");
  EXPECT_EQ(echo.status, 200);
  EXPECT_EQ(Field(ParseJson(echo.body), "method").string_value(), "DELETE");
  EXPECT_THAT(echo.body, HasSubstr("1 2"));

  CurlResult bad = Fetch(base_ + "/api/emrs/athenapractice/care-units", LeyrHeaders("nope"));
  EXPECT_EQ(bad.status, 401);
  EXPECT_EQ(Field(ParseJson(bad.body), "code").string_value(), "EMR_ERROR");

  CurlResult log = Fetch(base_ + "/sandbox/requests");
  ASSERT_EQ(log.status, 200);
  auto requests = Field(ParseJson(log.body), "requests").list_value();
  ASSERT_EQ(requests.values_size(), 3);
  for (int i = 0; i < 2; ++i) {
    EXPECT_TRUE(Field(requests.values(i), "client_id_ok").bool_value());
    EXPECT_TRUE(Field(requests.values(i), "client_secret_ok").bool_value());
    EXPECT_TRUE(Field(requests.values(i), "code_ok").bool_value());
  }
  EXPECT_FALSE(Field(requests.values(2), "code_ok").bool_value());
  EXPECT_THAT(log.body, Not(HasSubstr(kLeyrSecret)));
  EXPECT_THAT(log.body, Not(HasSubstr(code)));

  EXPECT_EQ(Fetch(base_ + "/healthz").status, 200);
}

TEST_F(SandboxServerTest, TwoThousandDelayedRequestsInFlight) {
  SandboxOptions options = TestOptions();
  options.leyr_latency = absl::Seconds(1);
  Start(options);
  CurlResult json = Fetch(AuthorizeUrl(base_), {"Accept: application/json"});
  const std::string code = Field(Field(ParseJson(json.body), "approve"), "code").string_value();

  constexpr int kRequests = 2000;
  CURLM* multi = curl_multi_init();
  curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, 0L);
  std::vector<std::unique_ptr<Transfer>> transfers;
  for (int i = 0; i < kRequests; ++i) {
    transfers.push_back(std::make_unique<Transfer>(
        base_ + "/api/emrs/athenapractice/care-units", LeyrHeaders(code)));
    // A fresh connection each, so that all 2000 are in flight at once.
    curl_easy_setopt(transfers.back()->easy, CURLOPT_FRESH_CONNECT, 1L);
    curl_multi_add_handle(multi, transfers.back()->easy);
  }
  const absl::Time start = absl::Now();
  int running = 0;
  int ok = 0, early = 0, done = 0;
  do {
    curl_multi_perform(multi, &running);
    CURLMsg* msg;
    int left;
    while ((msg = curl_multi_info_read(multi, &left)) != nullptr) {
      if (msg->msg != CURLMSG_DONE) continue;
      ++done;
      long status = 0;
      double seconds = 0;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
      curl_easy_getinfo(msg->easy_handle, CURLINFO_TOTAL_TIME, &seconds);
      if (msg->data.result == CURLE_OK && status == 200) ++ok;
      if (seconds < 1.0) ++early;
    }
    if (running > 0) curl_multi_poll(multi, nullptr, 0, 1000, nullptr);
  } while (running > 0 && absl::Now() - start < absl::Seconds(120));
  const absl::Duration elapsed = absl::Now() - start;
  for (auto& t : transfers) curl_multi_remove_handle(multi, t->easy);
  curl_multi_cleanup(multi);

  EXPECT_EQ(done, kRequests);
  EXPECT_EQ(ok, kRequests);
  EXPECT_EQ(early, 0);
  // One at a time would take 2000 s; in flight together, a few seconds.
  EXPECT_LT(elapsed, absl::Seconds(60));
  CurlResult log = Fetch(base_ + "/sandbox/requests");
  EXPECT_EQ(Field(ParseJson(log.body), "count").number_value(), kRequests);
}

// --- the binary ---------------------------------------------------------------------------

// A leyr-sandbox child process with its stderr read through a pipe.
class SandboxProcess {
 public:
  explicit SandboxProcess(const std::vector<std::string>& args) {
    int fds[2];
    if (pipe(fds) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(fds[1], 2);
      close(fds[0]);
      close(fds[1]);
      std::vector<char*> argv;
      std::string binary = LEYR_SANDBOX_BINARY;
      argv.push_back(binary.data());
      std::vector<std::string> copy = args;
      for (auto& a : copy) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(binary.c_str(), argv.data());
      _exit(127);
    }
    close(fds[1]);
    err_fd_ = fds[0];
  }
  ~SandboxProcess() {
    if (pid_ > 0 && !exited_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (err_fd_ >= 0) close(err_fd_);
  }

  // Reads stderr until a line contains `needle` (returned) or the deadline passes ("").
  std::string WaitForLine(const std::string& needle, absl::Duration timeout = absl::Seconds(30)) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      size_t nl;
      while ((nl = buffer_.find('\n')) != std::string::npos) {
        std::string line = buffer_.substr(0, nl);
        all_ += line + "\n";
        buffer_.erase(0, nl + 1);
        if (absl::StrContains(line, needle)) return line;
      }
      if (!ReadSome(deadline)) break;
    }
    return "";
  }

  // Waits for the exit status (-1 on timeout); collects the rest of stderr.
  int Wait(absl::Duration timeout = absl::Seconds(30)) {
    const absl::Time deadline = absl::Now() + timeout;
    while (ReadSome(deadline)) {
    }
    all_ += buffer_;
    buffer_.clear();
    int status = 0;
    while (absl::Now() < deadline) {
      pid_t r = waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        exited_ = true;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      pollfd none{};
      poll(&none, 0, 20);  // waitpid has no timeout: a short poll between checks
    }
    return -1;
  }

  pid_t pid() const { return pid_; }
  const std::string& output() const { return all_; }

 private:
  // Reads what is available; false at end of file or deadline.
  bool ReadSome(absl::Time deadline) {
    pollfd p{err_fd_, POLLIN, 0};
    int ms = static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
    if (ms <= 0 || poll(&p, 1, ms) <= 0) return false;
    char chunk[4096];
    ssize_t n = read(err_fd_, chunk, sizeof chunk);
    if (n <= 0) return false;
    buffer_.append(chunk, static_cast<size_t>(n));
    return true;
  }

  pid_t pid_ = -1;
  int err_fd_ = -1;
  bool exited_ = false;
  std::string buffer_;
  std::string all_;
};

class SandboxBinaryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/sandbox_binary_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    mkdir(dir_.c_str(), 0700);
    std::ofstream(dir_ + "/secret") << kLeyrSecret << "\n";
  }
  std::string WriteConfig(const std::string& json) {
    std::string path = dir_ + "/sandbox.json";
    std::ofstream(path, std::ios::trunc) << json;
    return path;
  }
  std::string GoodConfig() {
    return absl::StrCat(R"({"listen": "127.0.0.1:0", "clients": [{"client_id": ")", kClientId,
                        R"(", "redirect_uri": ")", kRedirect, R"("}], "leyr_client_id": ")",
                        kLeyrId, R"(", "leyr_client_secret_file": ")", dir_, R"(/secret"})");
  }
  std::string dir_;
};

TEST_F(SandboxBinaryTest, LogsListeningServesAndStopsOnSigterm) {
  SandboxProcess process({"--config=" + WriteConfig(GoodConfig())});
  std::string line = process.WaitForLine("\"msg\":\"listening\"");
  ASSERT_FALSE(line.empty()) << process.output();
  EXPECT_THAT(line, HasSubstr("\"component\":\"sandbox\""));
  const std::string key = "\"address\":\"";
  size_t at = line.find(key);
  ASSERT_NE(at, std::string::npos);
  std::string address = line.substr(at + key.size());
  address = address.substr(0, address.find('"'));
  const std::string base = "http://" + address;

  EXPECT_EQ(Fetch(base + "/healthz").status, 200);
  // aud is the bound address by default.
  CurlResult json = Fetch(AuthorizeUrl(base), {"Accept: application/json"});
  ASSERT_EQ(json.status, 200) << json.body;
  const std::string code = Field(Field(ParseJson(json.body), "approve"), "code").string_value();
  EXPECT_EQ(Fetch(base + "/api/emrs/athenapractice/patients", LeyrHeaders(code)).status, 200);

  ASSERT_EQ(kill(process.pid(), SIGTERM), 0);
  EXPECT_EQ(process.Wait(), 0) << process.output();
  // Neither the secret nor the code reaches the log.
  EXPECT_THAT(process.output(), Not(HasSubstr(kLeyrSecret)));
  EXPECT_THAT(process.output(), Not(HasSubstr(code)));
  // Method, path and status are logged.
  EXPECT_THAT(process.output(),
              HasSubstr(R"("method":"GET","path":"/api/emrs/athenapractice/patients","status":200)"));
}

TEST_F(SandboxBinaryTest, BadConfigurationExitsTwoNamingTheKey) {
  std::string config = GoodConfig();
  config.replace(config.find("\"leyr_client_id\""), strlen("\"leyr_client_id\""),
                 "\"leyr_client_idx\"");
  {
    SandboxProcess process({"--config=" + WriteConfig(config)});
    EXPECT_EQ(process.Wait(), 2);
    EXPECT_THAT(process.output(), HasSubstr("leyr_client_idx"));
  }
  config = GoodConfig();
  config.replace(config.find("\"leyr_client_id\": \""), strlen("\"leyr_client_id\": \""),
                 "\"leyr_failure_rate\": 2, \"leyr_client_id\": \"");
  {
    SandboxProcess process({"--config=" + WriteConfig(config)});
    EXPECT_EQ(process.Wait(), 2);
    EXPECT_THAT(process.output(), HasSubstr("leyr_failure_rate"));
  }
  {
    SandboxProcess process({});
    EXPECT_EQ(process.Wait(), 2);
    EXPECT_THAT(process.output(), HasSubstr("--config"));
  }
}

}  // namespace
}  // namespace leyr::sandbox
