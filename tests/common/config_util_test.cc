#include "server/common/config_util.h"

#include <unistd.h>

#include <fstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "config/config.pb.h"
#include "tests/testing/status_matchers.h"

namespace leyr {
namespace {

using ::leyr::testing::IsOk;
using ::leyr::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

std::string WriteTemp(const std::string& name, const std::string& content) {
  std::string path =
      ::testing::TempDir() + "/common_unit_test_" + std::to_string(::getpid()) + "_" + name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  return path;
}

TEST(ReadFileTest, ReadsBytesAndNamesMissingPath) {
  std::string path = WriteTemp("read_file", std::string("a\0b\n", 4));
  auto text = ReadFile(path);
  ASSERT_THAT(text, IsOk());
  EXPECT_EQ(*text, std::string("a\0b\n", 4));
  auto missing = ReadFile("/nonexistent/dir/file.json");
  EXPECT_THAT(missing, Not(IsOk()));
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("/nonexistent/dir/file.json"));
}

TEST(ReadSecretFileTest, TrimsTrailingNewlines) {
  auto secret = ReadSecretFile("leyr.client_secret_file", WriteTemp("secret_nl", "s3cr3t\r\n\n"));
  ASSERT_THAT(secret, IsOk());
  EXPECT_EQ(*secret, "s3cr3t");
  // Inner whitespace is kept: it is part of the secret.
  auto inner = ReadSecretFile("k", WriteTemp("secret_inner", " a b \n"));
  ASSERT_THAT(inner, IsOk());
  EXPECT_EQ(*inner, " a b ");
}

TEST(ReadSecretFileTest, ErrorsNameKeyAndPathNeverContent) {
  auto empty = ReadSecretFile("leyr.client_secret_file", WriteTemp("secret_empty", "\n\n"));
  EXPECT_THAT(empty, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(std::string(empty.status().message()), HasSubstr("leyr.client_secret_file"));
  EXPECT_THAT(std::string(empty.status().message()), HasSubstr("secret_empty"));

  auto missing = ReadSecretFile("my.key", "/nonexistent/secret");
  EXPECT_THAT(missing, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("my.key"));
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("/nonexistent/secret"));

  auto no_path = ReadSecretFile("my.key", "");
  EXPECT_THAT(no_path, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(std::string(no_path.status().message()), HasSubstr("my.key"));
}

TEST(LoadJsonConfigTest, ParsesProto3Json) {
  std::string path = WriteTemp("good.json", R"({
    "listen": ["127.0.0.1:0"],
    "plaintextDevelopment": true,
    "leyr": {"baseUri": "http://127.0.0.1:9", "clientId": "c", "requestTimeout": "2.5s"},
    "connections": [{"name": "athena", "emr": "athenapractice", "scopes": ["openid", "profile"]}],
    "state_ttl": "600s"
  })");
  config::BrokerConfig config;
  ASSERT_THAT(LoadJsonConfig(path, &config), IsOk());
  EXPECT_EQ(config.listen(0), "127.0.0.1:0");
  EXPECT_TRUE(config.plaintext_development());
  EXPECT_EQ(config.leyr().client_id(), "c");
  EXPECT_EQ(DurationOr(config.leyr().request_timeout(), absl::Seconds(30)),
            absl::Milliseconds(2500));
  EXPECT_EQ(config.connections(0).scopes_size(), 2);
  EXPECT_EQ(DurationOr(config.state_ttl(), absl::ZeroDuration()), absl::Minutes(10));
}

TEST(LoadJsonConfigTest, UnknownKeyIsAnErrorNamingKeyAndPath) {
  std::string path = WriteTemp("unknown.json", R"({"listen": ["x"], "no_such_key": 1})");
  config::BrokerConfig config;
  absl::Status s = LoadJsonConfig(path, &config);
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(std::string(s.message()), HasSubstr("no_such_key"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("unknown.json"));
}

TEST(LoadJsonConfigTest, WrongTypeAndMissingFile) {
  config::BrokerConfig config;
  EXPECT_THAT(LoadJsonConfig(WriteTemp("wrong.json", R"({"plaintext_development": "yes please"})"),
                             &config),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(LoadJsonConfig(WriteTemp("notjson.json", "{"), &config),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(LoadJsonConfig("/nonexistent/config.json", &config), Not(IsOk()));
}

TEST(DurationOrTest, FallbackOnlyWhenUnset) {
  google::protobuf::Duration d;
  EXPECT_EQ(DurationOr(d, absl::Seconds(7)), absl::Seconds(7));
  d.set_seconds(3);
  d.set_nanos(500000000);
  EXPECT_EQ(DurationOr(d, absl::Seconds(7)), absl::Milliseconds(3500));
  google::protobuf::Duration nanos_only;
  nanos_only.set_nanos(1000);
  EXPECT_EQ(DurationOr(nanos_only, absl::Seconds(7)), absl::Microseconds(1));
}

}  // namespace
}  // namespace leyr
