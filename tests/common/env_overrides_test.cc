#include "server/common/env_overrides.h"

#include <stdlib.h>

#include <memory>
#include <string>
#include <vector>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/duration.pb.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/text_format.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_split.h"
#include "config/config.pb.h"
#include "tests/testing/status_matchers.h"

namespace leyr {
namespace {

using ::google::protobuf::Message;
using ::google::protobuf::TextFormat;
using ::google::protobuf::util::MessageDifferencer;
using ::leyr::testing::IsOk;
using ::leyr::testing::StatusIs;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;

constexpr char kBroker[] = "LEYR_BROKER_";
// A value that must never show up in an error message.
constexpr char kCanary[] = "CANARY-s3cr3t-9f2c";

std::unique_ptr<Message> FromText(const Message& type, const std::string& text) {
  std::unique_ptr<Message> message(type.New());
  EXPECT_TRUE(TextFormat::ParseFromString(text, message.get())) << text;
  return message;
}

std::string Text(const Message& message) {
  std::string text;
  TextFormat::PrintToString(message, &text);
  return text;
}

std::string ErrorOf(const absl::StatusOr<std::vector<std::string>>& result) {
  EXPECT_THAT(result, StatusIs(absl::StatusCode::kInvalidArgument));
  return std::string(result.status().message());
}

struct SetCase {
  const Message* type;
  std::string prefix;
  std::string variable;  // "NAME=VALUE"
  std::string before;    // text format
  std::string after;     // text format
};

TEST(EnvOverridesTest, SetsEachSupportedType) {
  const Message* broker = &config::BrokerConfig::default_instance();
  const Message* shim = &config::ShimConfig::default_instance();
  const Message* sandbox = &config::SandboxConfig::default_instance();
  const std::vector<SetCase> cases = {
      // string
      {broker, kBroker, "LEYR_BROKER_LOG_LEVEL=debug", "log_level: 'info'", "log_level: 'debug'"},
      {broker, kBroker, "LEYR_BROKER_STORE=postgres", "", "store: 'postgres'"},
      {shim, "LEYR_SHIM_", "LEYR_SHIM_BROKER_TARGET=unix:/run/leyr/broker.sock", "listen: 'x'",
       "listen: 'x' broker_target: 'unix:/run/leyr/broker.sock'"},
      // Only the first "=" separates the name: the value keeps its own.
      {broker, kBroker, "LEYR_BROKER_POSTGRES__CONNINFO=host=db port=5432 dbname=leyr",
       "postgres { pool_size: 8 }",
       "postgres { conninfo: 'host=db port=5432 dbname=leyr' pool_size: 8 }"},
      {shim, "LEYR_SHIM_", "LEYR_SHIM_BROKER_TLS__SERVER_NAME=broker.internal", "",
       "broker_tls { server_name: 'broker.internal' }"},
      // Empty string.
      {broker, kBroker, "LEYR_BROKER_LOG_LEVEL=", "log_level: 'info'", ""},
      // bool
      {broker, kBroker, "LEYR_BROKER_PLAINTEXT_DEVELOPMENT=true", "",
       "plaintext_development: true"},
      {broker, kBroker, "LEYR_BROKER_PLAINTEXT_DEVELOPMENT=1", "", "plaintext_development: true"},
      {broker, kBroker, "LEYR_BROKER_PLAINTEXT_DEVELOPMENT=false", "plaintext_development: true",
       ""},
      {broker, kBroker, "LEYR_BROKER_LEYR__DISABLE_ACTIVATION=0",
       "leyr { disable_activation: true client_id: 'c' }", "leyr { client_id: 'c' }"},
      // int32, int64
      {broker, kBroker, "LEYR_BROKER_LEYR__MAX_IDLE_CONNECTIONS=4096", "",
       "leyr { max_idle_connections: 4096 }"},
      {broker, kBroker, "LEYR_BROKER_POSTGRES__POOL_SIZE=-3", "", "postgres { pool_size: -3 }"},
      {broker, kBroker, "LEYR_BROKER_LEYR__MAX_RESPONSE_BYTES=17179869184", "",
       "leyr { max_response_bytes: 17179869184 }"},
      {shim, "LEYR_SHIM_", "LEYR_SHIM_MAX_CONNECTIONS=2147483647", "",
       "max_connections: 2147483647"},
      // double
      {sandbox, "LEYR_SANDBOX_", "LEYR_SANDBOX_LEYR_FAILURE_RATE=0.25", "",
       "leyr_failure_rate: 0.25"},
      // Duration
      {broker, kBroker, "LEYR_BROKER_STATE_TTL=300s", "state_ttl { seconds: 600 }",
       "state_ttl { seconds: 300 }"},
      {broker, kBroker, "LEYR_BROKER_LEYR__REQUEST_TIMEOUT=1.5s", "",
       "leyr { request_timeout { seconds: 1 nanos: 500000000 } }"},
      {shim, "LEYR_SHIM_", "LEYR_SHIM_TLS__REFRESH_INTERVAL=0.000000001s", "",
       "tls { refresh_interval { nanos: 1 } }"},
      // repeated string: replaced, not appended; spaces around elements trimmed.
      {broker, kBroker, "LEYR_BROKER_LISTEN=0.0.0.0:50051,unix:/run/x.sock",
       "listen: ['127.0.0.1:1', '127.0.0.1:2', '127.0.0.1:3']",
       "listen: ['0.0.0.0:50051', 'unix:/run/x.sock']"},
      {broker, kBroker, "LEYR_BROKER_RETURN_URI_ORIGINS=https://a.example , https://b.example",
       "return_uri_origins: 'https://old.example'",
       "return_uri_origins: ['https://a.example', 'https://b.example']"},
      {sandbox, "LEYR_SANDBOX_", "LEYR_SANDBOX_REQUIRED_SCOPES=openid",
       "required_scopes: ['a', 'b']", "required_scopes: 'openid'"},
      {broker, kBroker, "LEYR_BROKER_LISTEN=", "listen: ['a', 'b']", ""},
  };
  for (const SetCase& c : cases) {
    SCOPED_TRACE(c.variable);
    std::unique_ptr<Message> message = FromText(*c.type, c.before);
    std::unique_ptr<Message> expected = FromText(*c.type, c.after);
    auto applied = ApplyEnvOverrides(c.prefix, {c.variable}, message.get());
    ASSERT_THAT(applied, IsOk());
    std::string name = c.variable.substr(0, c.variable.find('='));
    EXPECT_THAT(*applied, ElementsAre(name));
    EXPECT_TRUE(MessageDifferencer::Equals(*message, *expected))
        << "got: " << Text(*message) << "want: " << Text(*expected);
  }
}

TEST(EnvOverridesTest, NestedFieldCreatesTheMessageAndKeepsItsOtherFields) {
  config::BrokerConfig config;
  ASSERT_FALSE(config.has_postgres());
  ASSERT_THAT(ApplyEnvOverrides(kBroker, {"LEYR_BROKER_POSTGRES__SSLMODE=require"}, &config),
              IsOk());
  EXPECT_TRUE(config.has_postgres());
  EXPECT_EQ(config.postgres().sslmode(), "require");

  config.mutable_postgres()->set_pool_size(4);
  config.mutable_postgres()->set_conninfo("host=a");
  ASSERT_THAT(ApplyEnvOverrides(kBroker, {"LEYR_BROKER_POSTGRES__CONNINFO=host=b"}, &config),
              IsOk());
  EXPECT_EQ(config.postgres().conninfo(), "host=b");
  EXPECT_EQ(config.postgres().pool_size(), 4);
  EXPECT_EQ(config.postgres().sslmode(), "require");
}

TEST(EnvOverridesTest, AppliesSeveralAndReturnsSortedNamesOnly) {
  config::BrokerConfig config;
  auto applied = ApplyEnvOverrides(
      kBroker,
      {"LEYR_BROKER_STORE=postgres", "HOME=/root",
       std::string("LEYR_BROKER_POSTGRES__CONNINFO=") + kCanary, "LEYR_BROKER_LOG_LEVEL=warn"},
      &config);
  ASSERT_THAT(applied, IsOk());
  EXPECT_THAT(*applied, ElementsAre("LEYR_BROKER_LOG_LEVEL", "LEYR_BROKER_POSTGRES__CONNINFO",
                                    "LEYR_BROKER_STORE"));
  EXPECT_EQ(config.store(), "postgres");
  EXPECT_EQ(config.log_level(), "warn");
  EXPECT_EQ(config.postgres().conninfo(), kCanary);
}

TEST(EnvOverridesTest, NoVariablesLeavesMessageAlone) {
  auto config = FromText(config::BrokerConfig::default_instance(), "log_level: 'info'");
  auto before = FromText(config::BrokerConfig::default_instance(), "log_level: 'info'");
  auto applied = ApplyEnvOverrides(kBroker, {"PATH=/usr/bin", "NOEQUALS", ""}, config.get());
  ASSERT_THAT(applied, IsOk());
  EXPECT_THAT(*applied, IsEmpty());
  EXPECT_TRUE(MessageDifferencer::Equals(*config, *before));
}

// The JSON mapping's duration syntax, checked against protobuf's own JSON parser.
TEST(EnvOverridesTest, DurationSyntaxIsTheJsonOne) {
  for (const char* text : {"0s", "300s", "1.5s", "-2s", "-0.25s", "0.000000001s", "86400.123s",
                           "315576000000s", "-315576000000.999999999s"}) {
    SCOPED_TRACE(text);
    google::protobuf::Duration want;
    ASSERT_TRUE(
        google::protobuf::util::JsonStringToMessage(std::string("\"") + text + "\"", &want).ok());
    config::BrokerConfig config;
    ASSERT_THAT(ApplyEnvOverrides(kBroker, {std::string("LEYR_BROKER_STATE_TTL=") + text}, &config),
                IsOk());
    EXPECT_EQ(config.state_ttl().seconds(), want.seconds());
    EXPECT_EQ(config.state_ttl().nanos(), want.nanos());
  }
  for (const char* text :
       {"", "300", "5m", "1h", "1.5", "s", "-s", ".5s", "1.s", "1.0000000001s", "1e3s", " 1s",
        "1s ", "+1s", "1,5s", "0x10s", "315576000001s", "99999999999999999999s", "--1s"}) {
    SCOPED_TRACE(text);
    config::BrokerConfig config;
    EXPECT_THAT(ApplyEnvOverrides(kBroker, {std::string("LEYR_BROKER_STATE_TTL=") + text}, &config),
                StatusIs(absl::StatusCode::kInvalidArgument));
    EXPECT_FALSE(config.has_state_ttl());
  }
}

struct BadValueCase {
  std::string variable;  // name; the value is built around kCanary
  std::string value;
  std::string field;  // dotted path the error must name
};

TEST(EnvOverridesTest, BadValuesNameVariableAndFieldNeverTheValue) {
  const std::string canary = kCanary;
  const std::vector<BadValueCase> cases = {
      {"LEYR_BROKER_PLAINTEXT_DEVELOPMENT", canary, "plaintext_development"},
      {"LEYR_BROKER_PLAINTEXT_DEVELOPMENT", "yes" + canary, "plaintext_development"},
      {"LEYR_BROKER_LEYR__DISABLE_ACTIVATION", "TRUE" + canary, "leyr.disable_activation"},
      {"LEYR_BROKER_POSTGRES__POOL_SIZE", "12" + canary, "postgres.pool_size"},
      {"LEYR_BROKER_LEYR__MAX_RESPONSE_BYTES", canary, "leyr.max_response_bytes"},
      {"LEYR_BROKER_STATE_TTL", "300" + canary + "s", "state_ttl"},
      {"LEYR_BROKER_POSTGRES__ACQUIRE_TIMEOUT", canary, "postgres.acquire_timeout"},
      {"LEYR_BROKER_LISTEN", canary + ",," + canary, "listen"},
      {"LEYR_BROKER_LISTEN", canary + ",", "listen"},
  };
  for (const BadValueCase& c : cases) {
    SCOPED_TRACE(c.variable + " " + c.field);
    config::BrokerConfig config;
    std::string error = ErrorOf(ApplyEnvOverrides(kBroker, {c.variable + "=" + c.value}, &config));
    EXPECT_THAT(error, HasSubstr(c.variable));
    EXPECT_THAT(error, HasSubstr(c.field));
    EXPECT_THAT(error, Not(HasSubstr("CANARY")));
    EXPECT_THAT(error, Not(HasSubstr("s3cr3t")));
  }
}

TEST(EnvOverridesTest, NumbersOutOfRangeOrNotFiniteAreErrors) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"LEYR_SHIM_MAX_CONNECTIONS=2147483648", "max_connections"},
      {"LEYR_SHIM_MAX_CONNECTIONS=1.5", "max_connections"},
      {"LEYR_SHIM_MAX_CONNECTIONS=", "max_connections"},
      {"LEYR_SHIM_MAX_BODY_BYTES=9223372036854775808", "max_body_bytes"},
      {"LEYR_SANDBOX_LEYR_FAILURE_RATE=nan", "leyr_failure_rate"},
      {"LEYR_SANDBOX_LEYR_FAILURE_RATE=inf", "leyr_failure_rate"},
      {"LEYR_SANDBOX_LEYR_FAILURE_RATE=0.5x", "leyr_failure_rate"},
  };
  for (const auto& [variable, field] : cases) {
    SCOPED_TRACE(variable);
    std::string error;
    if (variable.rfind("LEYR_SHIM_", 0) == 0) {
      config::ShimConfig config;
      error = ErrorOf(ApplyEnvOverrides("LEYR_SHIM_", {variable}, &config));
    } else {
      config::SandboxConfig config;
      error = ErrorOf(ApplyEnvOverrides("LEYR_SANDBOX_", {variable}, &config));
    }
    EXPECT_THAT(error, HasSubstr(variable.substr(0, variable.find('='))));
    EXPECT_THAT(error, HasSubstr(field));
  }
}

TEST(EnvOverridesTest, UnknownVariablesAreErrorsNamingThem) {
  for (const char* name : {"LEYR_BROKER_NO_SUCH_FIELD",
                           "LEYR_BROKER_log_level",          // names are upper case
                           "LEYR_BROKER_POSTGRES_CONNINFO",  // "__" between levels
                           "LEYR_BROKER_POSTGRES__NO_SUCH",  // nested unknown
                           "LEYR_BROKER_POSTGRES__CONNINFO__", "LEYR_BROKER_",
                           "LEYR_BROKER___LOG_LEVEL", "LEYR_BROKER_PORTX", "LEYR_BROKER_SERVICE"}) {
    SCOPED_TRACE(name);
    config::BrokerConfig config;
    std::string error =
        ErrorOf(ApplyEnvOverrides(kBroker, {std::string(name) + "=" + kCanary}, &config));
    EXPECT_THAT(error, HasSubstr(name));
    EXPECT_THAT(error, Not(HasSubstr(kCanary)));
    EXPECT_FALSE(config.has_postgres());
  }
}

TEST(EnvOverridesTest, UnsupportedFieldsAreErrorsNamingVariableAndField) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"LEYR_BROKER_CONNECTIONS", "repeated message"},        // repeated message
      {"LEYR_BROKER_CONNECTIONS__NAME", "repeated message"},  // cannot step into one
      {"LEYR_BROKER_POSTGRES", "is a message"},               // set its fields instead
      {"LEYR_BROKER_STATE_TTL__SECONDS", "state_ttl"},        // a Duration is one value
      {"LEYR_BROKER_LOG_LEVEL__X", "log_level"},              // a string has no fields
  };
  for (const auto& [name, problem] : cases) {
    SCOPED_TRACE(name);
    config::BrokerConfig config;
    std::string error = ErrorOf(ApplyEnvOverrides(kBroker, {name + "=" + kCanary}, &config));
    EXPECT_THAT(error, HasSubstr(name));
    EXPECT_THAT(error, HasSubstr(problem));
    EXPECT_THAT(error, Not(HasSubstr(kCanary)));
  }
}

// Field types config.proto does not use (map, uint32, float, bytes, enum, repeated int32), on a
// message from a separate descriptor pool; its Duration field (the pool's own Duration
// descriptor) must still be settable.
TEST(EnvOverridesTest, OtherTypesAreErrorsAndDynamicMessagesWork) {
  google::protobuf::FileDescriptorProto duration_file;
  google::protobuf::Duration::descriptor()->file()->CopyTo(&duration_file);
  google::protobuf::FileDescriptorProto file;
  ASSERT_TRUE(TextFormat::ParseFromString(
      R"pb(
        name: "envtest.proto"
        package: "envtest"
        syntax: "proto3"
        dependency: "google/protobuf/duration.proto"
        message_type {
          name: "Settings"
          field { name: "u" number: 1 label: LABEL_OPTIONAL type: TYPE_UINT32 }
          field { name: "f" number: 2 label: LABEL_OPTIONAL type: TYPE_FLOAT }
          field { name: "b" number: 3 label: LABEL_OPTIONAL type: TYPE_BYTES }
          field {
            name: "e"
            number: 4
            label: LABEL_OPTIONAL
            type: TYPE_ENUM
            type_name: ".envtest.Kind"
          }
          field {
            name: "labels"
            number: 5
            label: LABEL_REPEATED
            type: TYPE_MESSAGE
            type_name: ".envtest.Settings.LabelsEntry"
          }
          field { name: "counts" number: 6 label: LABEL_REPEATED type: TYPE_INT32 }
          field {
            name: "timeout"
            number: 7
            label: LABEL_OPTIONAL
            type: TYPE_MESSAGE
            type_name: ".google.protobuf.Duration"
          }
          nested_type {
            name: "LabelsEntry"
            field { name: "key" number: 1 label: LABEL_OPTIONAL type: TYPE_STRING }
            field { name: "value" number: 2 label: LABEL_OPTIONAL type: TYPE_STRING }
            options { map_entry: true }
          }
        }
        enum_type {
          name: "Kind"
          value { name: "KIND_UNSPECIFIED" number: 0 }
        }
      )pb",
      &file));
  google::protobuf::DescriptorPool pool;
  ASSERT_NE(pool.BuildFile(duration_file), nullptr);
  ASSERT_NE(pool.BuildFile(file), nullptr);
  const google::protobuf::Descriptor* type = pool.FindMessageTypeByName("envtest.Settings");
  ASSERT_NE(type, nullptr);
  google::protobuf::DynamicMessageFactory factory(&pool);
  std::unique_ptr<Message> message(factory.GetPrototype(type)->New());

  auto applied = ApplyEnvOverrides("ENVTEST_", {"ENVTEST_TIMEOUT=2.5s"}, message.get());
  ASSERT_THAT(applied, IsOk());
  EXPECT_EQ(Text(*message), "timeout {\n  seconds: 2\n  nanos: 500000000\n}\n");

  std::string error =
      ErrorOf(ApplyEnvOverrides("ENVTEST_",
                                {"ENVTEST_U=1", "ENVTEST_F=1", "ENVTEST_B=1", "ENVTEST_E=1",
                                 "ENVTEST_LABELS=1", "ENVTEST_COUNTS=1", "ENVTEST_TIMEOUT=3s"},
                                message.get()));
  std::vector<std::string> lines = absl::StrSplit(error, '\n');
  ASSERT_THAT(lines, SizeIs(7)) << error;  // a heading and one line per refused variable
  EXPECT_THAT(lines[1], HasSubstr("ENVTEST_B (b)"));
  EXPECT_THAT(lines[2], HasSubstr("ENVTEST_COUNTS (counts)"));
  EXPECT_THAT(lines[3], HasSubstr("ENVTEST_E (e)"));
  EXPECT_THAT(lines[4], HasSubstr("ENVTEST_F (f)"));
  EXPECT_THAT(lines[5], AllOf(HasSubstr("ENVTEST_LABELS (labels)"), HasSubstr("map")));
  EXPECT_THAT(lines[6], HasSubstr("ENVTEST_U (u)"));
  EXPECT_THAT(error, Not(HasSubstr("ENVTEST_TIMEOUT")));
  // Nothing applied: the valid ENVTEST_TIMEOUT=3s too.
  EXPECT_EQ(Text(*message), "timeout {\n  seconds: 2\n  nanos: 500000000\n}\n");
}

TEST(EnvOverridesTest, CollectsEveryErrorOnePerLine) {
  config::BrokerConfig config;
  std::string error = ErrorOf(
      ApplyEnvOverrides(kBroker,
                        {"LEYR_BROKER_STATE_TTL=5m", "LEYR_BROKER_NOPE=1",
                         "LEYR_BROKER_PLAINTEXT_DEVELOPMENT=yes", "LEYR_BROKER_LOG_LEVEL=debug"},
                        &config));
  std::vector<std::string> lines = absl::StrSplit(error, '\n');
  ASSERT_THAT(lines, SizeIs(4)) << error;
  EXPECT_THAT(lines[0], HasSubstr("LEYR_BROKER_"));
  EXPECT_THAT(lines[1], HasSubstr("LEYR_BROKER_NOPE"));
  EXPECT_THAT(lines[2], HasSubstr("LEYR_BROKER_PLAINTEXT_DEVELOPMENT (plaintext_development)"));
  EXPECT_THAT(lines[3], HasSubstr("LEYR_BROKER_STATE_TTL (state_ttl)"));
}

TEST(EnvOverridesTest, AllOrNothing) {
  const std::string before = "log_level: 'info' listen: ['a', 'b'] postgres { pool_size: 2 }";
  auto config = FromText(config::BrokerConfig::default_instance(), before);
  auto original = FromText(config::BrokerConfig::default_instance(), before);
  auto result = ApplyEnvOverrides(
      kBroker,
      {"LEYR_BROKER_LOG_LEVEL=debug", "LEYR_BROKER_LISTEN=x",
       "LEYR_BROKER_POSTGRES__CONNINFO=host=db", "LEYR_BROKER_TLS__CERT_FILE=/tls/crt",
       "LEYR_BROKER_POSTGRES__POOL_SIZE=many"},
      config.get());
  EXPECT_THAT(result, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(std::string(result.status().message()), HasSubstr("none applied"));
  EXPECT_TRUE(MessageDifferencer::Equals(*config, *original)) << Text(*config);
  EXPECT_FALSE(static_cast<config::BrokerConfig&>(*config).has_tls());
}

TEST(EnvOverridesTest, OnlyExactPrefixCounts) {
  config::BrokerConfig config;
  auto applied = ApplyEnvOverrides(
      kBroker,
      {"LOG_LEVEL=error", "LEYR_BROKERX_LOG_LEVEL=error", "LEYR_BROKERX_NOPE=1",
       "LEYR_SHIM_LOG_LEVEL=error", "leyr_broker_log_level=error", "XLEYR_BROKER_LOG_LEVEL=error",
       "LEYR_BROKER=127.0.0.1:50051", "LEYR_BROKER_LOG_LEVEL=debug"},
      &config);
  ASSERT_THAT(applied, IsOk());
  EXPECT_THAT(*applied, ElementsAre("LEYR_BROKER_LOG_LEVEL"));
  EXPECT_EQ(config.log_level(), "debug");

  // The other way round: the longer prefix does not take the shorter one's variables.
  config::BrokerConfig other;
  auto none = ApplyEnvOverrides("LEYR_BROKERX_", {"LEYR_BROKER_LOG_LEVEL=debug"}, &other);
  ASSERT_THAT(none, IsOk());
  EXPECT_THAT(*none, IsEmpty());
  EXPECT_EQ(other.log_level(), "");
}

// A Service named leyr-broker gives every pod of the namespace these variables; they must not
// stop the broker from starting.
TEST(EnvOverridesTest, KubernetesServiceVariablesAreSkipped) {
  config::BrokerConfig config;
  auto applied = ApplyEnvOverrides(
      kBroker,
      {"LEYR_BROKER_SERVICE_HOST=10.96.0.12", "LEYR_BROKER_SERVICE_PORT=50051",
       "LEYR_BROKER_SERVICE_PORT_GRPC=50051", "LEYR_BROKER_PORT=tcp://10.96.0.12:50051",
       "LEYR_BROKER_PORT_50051_TCP=tcp://10.96.0.12:50051", "LEYR_BROKER_PORT_50051_TCP_PROTO=tcp",
       "LEYR_BROKER_PORT_50051_TCP_PORT=50051", "LEYR_BROKER_PORT_50051_TCP_ADDR=10.96.0.12",
       "LEYR_BROKER_STORE=postgres"},
      &config);
  ASSERT_THAT(applied, IsOk());
  EXPECT_THAT(*applied, ElementsAre("LEYR_BROKER_STORE"));
  EXPECT_EQ(config.store(), "postgres");
  EXPECT_THAT(config.listen(), IsEmpty());
}

TEST(EnvOverridesTest, NameGivenTwiceIsAnError) {
  config::BrokerConfig config;
  std::string error = ErrorOf(ApplyEnvOverrides(
      kBroker, {"LEYR_BROKER_LOG_LEVEL=debug", "LEYR_BROKER_LOG_LEVEL=info"}, &config));
  EXPECT_THAT(error, HasSubstr("LEYR_BROKER_LOG_LEVEL"));
  EXPECT_EQ(config.log_level(), "");
}

TEST(EnvOverridesTest, EmptyPrefixIsAnError) {
  config::BrokerConfig config;
  EXPECT_THAT(ApplyEnvOverrides("", {"LOG_LEVEL=debug"}, &config),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(config.log_level(), "");
}

TEST(EnvOverridesTest, ProcessEnvironmentHoldsTheProcessVariables) {
  ASSERT_EQ(::setenv("LEYR_ENVTEST_BROKER_TARGET", "unix:/run/x.sock", 1), 0);
  std::vector<std::string> environment = ProcessEnvironment();
  ::unsetenv("LEYR_ENVTEST_BROKER_TARGET");
  EXPECT_THAT(environment, ::testing::Contains("LEYR_ENVTEST_BROKER_TARGET=unix:/run/x.sock"));
  config::ShimConfig config;
  auto applied = ApplyEnvOverrides("LEYR_ENVTEST_", environment, &config);
  ASSERT_THAT(applied, IsOk());
  EXPECT_THAT(*applied, ElementsAre("LEYR_ENVTEST_BROKER_TARGET"));
  EXPECT_EQ(config.broker_target(), "unix:/run/x.sock");
}

}  // namespace
}  // namespace leyr
