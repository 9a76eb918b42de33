// The `postgres` section of the broker's configuration.

#include "server/broker/pg_settings.h"

#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace leyr {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

config::Postgres Good() {
  config::Postgres c;
  c.set_conninfo("host=db.internal port=5432 dbname=leyr user=leyr_broker");
  return c;
}

TEST(PostgresSettingsTest, DefaultsAreVerifyFullAndSmallPool) {
  std::vector<std::string> problems;
  PostgresSettings s = ValidatePostgresConfig(Good(), /*plaintext_development=*/false, problems);
  EXPECT_THAT(problems, IsEmpty());
  EXPECT_EQ(s.sslmode, "verify-full");
  EXPECT_EQ(s.pool_size, 8);
  EXPECT_EQ(s.statement_timeout, absl::Seconds(5));
  EXPECT_EQ(s.acquire_timeout, absl::Seconds(1));
  EXPECT_EQ(s.connect_timeout, absl::Milliseconds(900));
  EXPECT_EQ(s.password, "");
  // In development the connection string decides (libpq's default, or sslmode=disable in it).
  s = ValidatePostgresConfig(Good(), /*plaintext_development=*/true, problems);
  EXPECT_THAT(problems, IsEmpty());
  EXPECT_EQ(s.sslmode, "");
}

TEST(PostgresSettingsTest, PasswordComesFromAFileNeverFromTheConnectionString) {
  std::string path = ::testing::TempDir() + "/pg_settings_test_pw_" + std::to_string(getpid());
  std::ofstream(path) << "CANARY-db-password\n";
  config::Postgres c = Good();
  c.set_password_file(path);
  std::vector<std::string> problems;
  PostgresSettings s = ValidatePostgresConfig(c, false, problems);
  EXPECT_THAT(problems, IsEmpty());
  EXPECT_EQ(s.password, "CANARY-db-password");

  for (const char* bad : {"host=db password=CANARY-x dbname=leyr",
                          "postgresql://leyr:CANARY-x@db/leyr"}) {
    c = Good();
    c.set_conninfo(bad);
    problems.clear();
    ValidatePostgresConfig(c, false, problems);
    ASSERT_THAT(problems, ElementsAre(HasSubstr("postgres.conninfo: must not contain a password")))
        << bad;
    EXPECT_THAT(problems[0], Not(HasSubstr("CANARY")));
  }
  c = Good();
  c.set_conninfo("postgresql://leyr@db:5432/leyr");  // a port is not a password
  problems.clear();
  ValidatePostgresConfig(c, false, problems);
  EXPECT_THAT(problems, IsEmpty());
  c = Good();
  c.set_password_file("/nonexistent/pw");
  problems.clear();
  ValidatePostgresConfig(c, false, problems);
  EXPECT_THAT(problems, ElementsAre(HasSubstr("postgres.password_file: cannot be read")));
}

TEST(PostgresSettingsTest, EveryBadKeyIsReported) {
  config::Postgres c;
  c.set_sslmode("sometimes");
  c.set_pool_size(500);
  c.mutable_statement_timeout()->set_seconds(3600);
  c.mutable_acquire_timeout()->set_seconds(60);
  c.mutable_connect_timeout()->set_nanos(1000000);  // 1 ms
  std::vector<std::string> problems;
  ValidatePostgresConfig(c, false, problems);
  EXPECT_THAT(problems, ElementsAre(HasSubstr("postgres.conninfo: required"),
                                    HasSubstr("postgres.sslmode: must be disable"),
                                    HasSubstr("postgres.sslmode: must be require"),
                                    HasSubstr("postgres.pool_size"),
                                    HasSubstr("postgres.statement_timeout"),
                                    HasSubstr("postgres.acquire_timeout"),
                                    HasSubstr("postgres.connect_timeout")));
  // Without TLS to the database only in development.
  c = Good();
  c.set_sslmode("disable");
  problems.clear();
  ValidatePostgresConfig(c, false, problems);
  EXPECT_THAT(problems, ElementsAre(HasSubstr("postgres.sslmode: must be require")));
  problems.clear();
  ValidatePostgresConfig(c, true, problems);
  EXPECT_THAT(problems, IsEmpty());
}

}  // namespace
}  // namespace leyr
