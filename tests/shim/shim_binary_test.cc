// Runs the real leyr-callback-shim binary with only --config, against an in-process fake broker.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/shim/fake_broker.h"
#include "tests/testing/http_client.h"

extern char** environ;

namespace leyr::shim {
namespace {

using ::leyr::testing::CurlResult;
using ::leyr::testing::FakeBrokerServer;
using ::leyr::testing::Fetch;
using ::testing::HasSubstr;
using ::testing::Not;

// A child process whose stderr is read through a pipe.
class Child {
 public:
  explicit Child(const std::string& config_path) {
    int fds[2];
    EXPECT_EQ(pipe(fds), 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDERR_FILENO);
    posix_spawn_file_actions_addclose(&actions, fds[0]);
    std::string flag = "--config=" + config_path;
    std::vector<char*> argv = {const_cast<char*>(LEYR_SHIM_BINARY), flag.data(), nullptr};
    EXPECT_EQ(posix_spawn(&pid_, LEYR_SHIM_BINARY, &actions, nullptr, argv.data(), environ), 0);
    posix_spawn_file_actions_destroy(&actions);
    close(fds[1]);
    fd_ = fds[0];
  }
  ~Child() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (fd_ >= 0) close(fd_);
  }

  // Reads stderr until `needle` appears or the timeout passes; returns all read so far.
  std::string ReadUntil(const std::string& needle, absl::Duration timeout) {
    absl::Time deadline = absl::Now() + timeout;
    while (output_.find(needle) == std::string::npos && absl::Now() < deadline) {
      pollfd p{fd_, POLLIN, 0};
      int ms = static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
      if (poll(&p, 1, std::max(ms, 1)) <= 0) continue;
      char buf[4096];
      ssize_t n = read(fd_, buf, sizeof(buf));
      if (n <= 0) break;
      output_.append(buf, static_cast<size_t>(n));
    }
    return output_;
  }

  // Waits for exit; returns the exit code, or -1.
  int Wait() {
    ReadUntil("\x01never", absl::Seconds(30));  // drains until EOF
    int status = 0;
    if (waitpid(pid_, &status, 0) != pid_) return -1;
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  void Signal(int sig) { kill(pid_, sig); }
  const std::string& output() const { return output_; }

 private:
  pid_t pid_ = -1;
  int fd_ = -1;
  std::string output_;
};

std::string WriteConfig(const std::string& name, const std::string& json) {
  std::string path = ::testing::TempDir() + name;
  std::ofstream(path) << json;
  return path;
}

// The "address" of the "listening" line, or "".
std::string ListeningAddress(const std::string& log) {
  size_t line = log.find("\"msg\":\"listening\"");
  if (line == std::string::npos) return "";
  const std::string key = "\"address\":\"";
  size_t start = log.find(key, line);
  if (start == std::string::npos) return "";
  start += key.size();
  return log.substr(start, log.find('"', start) - start);
}

TEST(ShimBinaryTest, ServesWithOnlyConfigAndExitsZeroOnSigterm) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  FakeBrokerServer broker;
  ASSERT_TRUE(broker.Start());
  broker::v1::CompleteAuthorizationResponse answer;
  answer.mutable_authorization()->set_name("authorizations/xyz");
  answer.set_next_uri("http://127.0.0.1:9/back?authorization=authorizations%2Fxyz");
  broker.service.Answer(answer);
  std::string config = WriteConfig(
      "shim_ok.json", absl::StrCat("{\"listen\": \"127.0.0.1:0\", \"broker_target\": \"",
                                   broker.target(), "\", \"callback_path\": \"/cb\"}"));
  Child child(config);
  std::string log = child.ReadUntil("\"msg\":\"listening\"", absl::Seconds(30));
  std::string address = ListeningAddress(log);
  ASSERT_THAT(address, ::testing::MatchesRegex("127\\.0\\.0\\.1:[0-9]+")) << log;
  EXPECT_THAT(log, HasSubstr("\"component\":\"shim\""));

  std::string body = "state=BINCANARYSTATE&code=BINCANARYCODE";
  CurlResult r = Fetch("POST", absl::StrCat("http://", address, "/cb"), &body,
                       {"Content-Type: application/x-www-form-urlencoded"});
  ASSERT_EQ(r.code, CURLE_OK);
  EXPECT_EQ(r.status, 303);
  EXPECT_EQ(r.Header("location"), answer.next_uri());
  ASSERT_EQ(broker.service.received().size(), 1u);
  EXPECT_EQ(broker.service.received()[0].code(), "BINCANARYCODE");

  CurlResult health = Fetch("GET", absl::StrCat("http://", address, "/healthz"), nullptr);
  EXPECT_EQ(health.status, 200);

  child.Signal(SIGTERM);
  EXPECT_EQ(child.Wait(), 0);
  EXPECT_THAT(child.output(), HasSubstr("\"msg\":\"callback\""));
  EXPECT_THAT(child.output(), Not(HasSubstr("BINCANARY")));
}

TEST(ShimBinaryTest, BadConfigExitsTwoNamingTheKey) {
  std::string config = WriteConfig("shim_bad.json", "{\"listen\": \"127.0.0.1:0\"}");
  Child child(config);
  EXPECT_EQ(child.Wait(), 2);
  EXPECT_THAT(child.output(), HasSubstr("broker_target"));
}

TEST(ShimBinaryTest, MissingConfigFileExitsTwo) {
  Child child(::testing::TempDir() + "does_not_exist.json");
  EXPECT_EQ(child.Wait(), 2);
}

}  // namespace
}  // namespace leyr::shim
