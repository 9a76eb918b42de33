// BrokerClient over a mocked BrokerConnection: retries, backoff, the wait helper, reasons kept.

#include "client/broker_client.h"

#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "server/common/status_util.h"
#include "tests/testing/status_matchers.h"

namespace leyr {
namespace {

using broker::v1::Authorization;
using ::leyr::testing::IsOk;
using ::leyr::testing::StatusIs;
using ::testing::_;
using ::testing::Return;

class MockBrokerConnection : public BrokerConnection {
 public:
  MOCK_METHOD(absl::StatusOr<broker::v1::BeginAuthorizationResponse>, BeginAuthorization,
              (const broker::v1::BeginAuthorizationRequest&, absl::Time), (override));
  MOCK_METHOD(absl::StatusOr<broker::v1::GetAuthorizationResponse>, GetAuthorization,
              (const broker::v1::GetAuthorizationRequest&, absl::Time), (override));
  MOCK_METHOD(absl::StatusOr<broker::v1::WaitAuthorizationResponse>, WaitAuthorization,
              (const broker::v1::WaitAuthorizationRequest&, absl::Time), (override));
  MOCK_METHOD(absl::StatusOr<broker::v1::ListAuthorizationsResponse>, ListAuthorizations,
              (const broker::v1::ListAuthorizationsRequest&, absl::Time), (override));
  MOCK_METHOD(absl::StatusOr<broker::v1::RevokeAuthorizationResponse>, RevokeAuthorization,
              (const broker::v1::RevokeAuthorizationRequest&, absl::Time), (override));
  MOCK_METHOD(absl::StatusOr<broker::v1::CallLeyrResponse>, CallLeyr,
              (const broker::v1::CallLeyrRequest&, absl::Time), (override));
};

absl::Status Unavailable() {
  return MakeError(absl::StatusCode::kUnavailable, reason::kShuttingDown, "broker stopping");
}

broker::v1::WaitAuthorizationResponse WaitAnswer(Authorization::State state) {
  broker::v1::WaitAuthorizationResponse r;
  r.mutable_authorization()->set_name("authorizations/AAAAAAAAAAAAAAAAAAAAAA");
  r.mutable_authorization()->set_state(state);
  return r;
}

class BrokerClientTest : public ::testing::Test {
 protected:
  BrokerClientTest()
      : connection_(std::make_shared<MockBrokerConnection>()),
        client_(connection_, [this](absl::Duration d) { sleeps_.push_back(d); }) {}

  std::shared_ptr<MockBrokerConnection> connection_;
  std::vector<absl::Duration> sleeps_;
  BrokerClient client_;
};

TEST_F(BrokerClientTest, RetriesUnavailableWithGrowingJitteredBackoff) {
  broker::v1::GetAuthorizationResponse ok;
  ok.mutable_authorization()->set_state(Authorization::STATE_ACTIVE);
  EXPECT_CALL(*connection_, GetAuthorization(_, _))
      .WillOnce(Return(Unavailable()))
      .WillOnce(Return(Unavailable()))
      .WillOnce(Return(ok));
  CallOptions options;
  options.initial_backoff = absl::Milliseconds(100);
  options.max_backoff = absl::Milliseconds(150);
  auto got = client_.Get("authorizations/AAAAAAAAAAAAAAAAAAAAAA", options);
  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(got->state(), Authorization::STATE_ACTIVE);
  ASSERT_EQ(sleeps_.size(), 2u);
  EXPECT_LE(sleeps_[0], absl::Milliseconds(100));
  EXPECT_LE(sleeps_[1], absl::Milliseconds(150));  // capped at max_backoff
}

TEST_F(BrokerClientTest, GivesUpAfterMaxAttemptsAndKeepsTheReason) {
  EXPECT_CALL(*connection_, ListAuthorizations(_, _)).Times(4).WillRepeatedly(Return(Unavailable()));
  CallOptions options;
  options.max_attempts = 4;
  EXPECT_THAT(client_.List({}, options),
              StatusIs(absl::StatusCode::kUnavailable, std::string(reason::kShuttingDown)));
  EXPECT_EQ(sleeps_.size(), 3u);
}

TEST_F(BrokerClientTest, OtherErrorsAreNotRetried) {
  EXPECT_CALL(*connection_, RevokeAuthorization(_, _))
      .WillOnce(Return(MakeError(absl::StatusCode::kNotFound, reason::kAuthorizationNotFound,
                                 "authorization not found")));
  EXPECT_THAT(client_.Revoke("authorizations/AAAAAAAAAAAAAAAAAAAAAA"),
              StatusIs(absl::StatusCode::kNotFound, std::string(reason::kAuthorizationNotFound)));
  EXPECT_TRUE(sleeps_.empty());
}

TEST_F(BrokerClientTest, CallLeyrRetriesOnlyIdempotentMethods) {
  broker::v1::CallLeyrResponse ok;
  ok.set_status_code(200);
  EXPECT_CALL(*connection_, CallLeyr(_, _))
      .WillOnce(Return(Unavailable()))
      .WillOnce(Return(ok))
      .WillOnce(Return(Unavailable()));
  broker::v1::CallLeyrRequest get;
  get.set_method("GET");
  auto answered = client_.CallLeyr(get);
  ASSERT_THAT(answered, IsOk());
  EXPECT_EQ(answered->status_code(), 200);
  // A POST may have reached Leyr: never repeated behind the caller's back.
  broker::v1::CallLeyrRequest post;
  post.set_method("POST");
  EXPECT_THAT(client_.CallLeyr(post), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(sleeps_.size(), 1u);
}

TEST_F(BrokerClientTest, EachAttemptGetsTheTimeoutAsDeadline) {
  absl::Time seen;
  EXPECT_CALL(*connection_, BeginAuthorization(_, _))
      .WillOnce([&](const auto&, absl::Time deadline) {
        seen = deadline;
        return broker::v1::BeginAuthorizationResponse();
      });
  CallOptions options;
  options.timeout = absl::Seconds(7);
  absl::Time before = absl::Now();
  ASSERT_THAT(client_.Begin({}, options), IsOk());
  EXPECT_GE(seen, before + absl::Seconds(7));
  EXPECT_LE(seen, absl::Now() + absl::Seconds(7));
}

TEST_F(BrokerClientTest, WaitUntilDoneLongPollsUntilTheAuthorizationLeavesPending) {
  std::vector<int64_t> asked_ms;
  EXPECT_CALL(*connection_, WaitAuthorization(_, _))
      .WillOnce([&](const broker::v1::WaitAuthorizationRequest& r, absl::Time) {
        asked_ms.push_back(r.timeout().seconds() * 1000 + r.timeout().nanos() / 1000000);
        return WaitAnswer(Authorization::STATE_PENDING);
      })
      .WillOnce(Return(WaitAnswer(Authorization::STATE_PENDING)))
      .WillOnce(Return(WaitAnswer(Authorization::STATE_ACTIVE)));
  int progress_calls = 0;
  auto done = client_.WaitUntilDone("authorizations/AAAAAAAAAAAAAAAAAAAAAA", absl::Minutes(5),
                                    absl::Seconds(1), [&](absl::Duration) { ++progress_calls; });
  ASSERT_THAT(done, IsOk());
  EXPECT_EQ(done->state(), Authorization::STATE_ACTIVE);
  EXPECT_EQ(progress_calls, 2);
  ASSERT_EQ(asked_ms.size(), 1u);
  EXPECT_EQ(asked_ms[0], 1000);  // each poll asks the server for at most `poll`
}

TEST_F(BrokerClientTest, WaitUntilDoneReturnsPendingWhenTheTotalPasses) {
  EXPECT_CALL(*connection_, WaitAuthorization(_, _))
      .WillRepeatedly(Return(WaitAnswer(Authorization::STATE_PENDING)));
  auto done = client_.WaitUntilDone("authorizations/AAAAAAAAAAAAAAAAAAAAAA",
                                    absl::ZeroDuration(), absl::Seconds(1));
  ASSERT_THAT(done, IsOk());
  EXPECT_EQ(done->state(), Authorization::STATE_PENDING);
}

TEST_F(BrokerClientTest, WaitUntilDoneStopsOnAnError) {
  EXPECT_CALL(*connection_, WaitAuthorization(_, _))
      .WillOnce(Return(MakeError(absl::StatusCode::kNotFound, reason::kAuthorizationNotFound,
                                 "authorization not found")));
  EXPECT_THAT(client_.WaitUntilDone("authorizations/AAAAAAAAAAAAAAAAAAAAAA", absl::Minutes(1)),
              StatusIs(absl::StatusCode::kNotFound, std::string(reason::kAuthorizationNotFound)));
}

}  // namespace
}  // namespace leyr
