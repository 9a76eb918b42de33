// The memory store keeps codes only sealed, and the broker's configuration loads the key ring.

#include <fstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "server/broker/memory_store.h"
#include "server/broker/sealer.h"
#include "server/broker/settings.h"
#include "server/common/clock.h"
#include "tests/testing/status_matchers.h"

namespace leyr {
namespace {

using ::leyr::testing::IsOk;
using ::leyr::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kCode[] = "canary-ATHENA-CODE-77c2d4";

class SealedStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto ring = KeyRingSealer::Create({SealingKey{"k1", std::string(32, 'q')}}, "k1");
    ASSERT_THAT(ring, IsOk());
    sealer_ = std::move(*ring);
    store_ = std::make_unique<MemoryStore>(&clock_, sealer_.get());
  }

  // Inserts a PENDING record and completes it with `code`.
  void Activate(const std::string& id, const std::string& code) {
    AuthorizationRecord r;
    r.id = id;
    r.connection = "athena";
    r.emr = "athenapractice";
    r.create_time = r.update_time = clock_.Now();
    r.expire_time = r.create_time + absl::Minutes(10);
    ASSERT_THAT(store_->Insert(r, "hash-" + id), IsOk());
    ASSERT_THAT(store_->Complete("hash-" + id, Completion{code, "", ""}), IsOk());
  }

  FakeClock clock_;
  std::unique_ptr<KeyRingSealer> sealer_;
  std::unique_ptr<MemoryStore> store_;
};

TEST_F(SealedStoreTest, StoredBytesAreSealedAndReadsOpenThem) {
  Activate("id-a", kCode);
  const std::string stored = store_->SealedCodeForTesting("id-a");
  ASSERT_FALSE(stored.empty());
  EXPECT_THAT(stored, Not(HasSubstr(kCode)));
  EXPECT_EQ(stored.substr(1, 3), std::string("\x02k1", 3));  // key id in the record
  auto opened = sealer_->Open(stored, "id-a");  // the record's id is the associated data
  ASSERT_THAT(opened, IsOk());
  EXPECT_EQ(*opened, kCode);

  auto got = store_->Get("id-a");
  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(got->code, kCode);
  auto listed = store_->List(ListQuery{});
  ASSERT_THAT(listed, IsOk());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].code, kCode);
}

TEST_F(SealedStoreTest, SameCodeInTwoRecordsIsStoredDifferently) {
  Activate("id-a", kCode);
  Activate("id-b", kCode);
  EXPECT_NE(store_->SealedCodeForTesting("id-a"), store_->SealedCodeForTesting("id-b"));
}

TEST_F(SealedStoreTest, CodeCopiedToAnotherRecordDoesNotOpen) {
  Activate("id-a", kCode);
  Activate("id-b", "another-code");
  store_->SetSealedCodeForTesting("id-b", store_->SealedCodeForTesting("id-a"));
  auto got = store_->Get("id-b");
  EXPECT_THAT(got, StatusIs(absl::StatusCode::kInternal, "INTERNAL"));
  EXPECT_THAT(std::string(got.status().message()), Not(HasSubstr(kCode)));
  // The record that owns it still opens.
  auto a = store_->Get("id-a");
  ASSERT_THAT(a, IsOk());
  EXPECT_EQ(a->code, kCode);
}

TEST_F(SealedStoreTest, TamperedStoredBytesFailEveryRead) {
  Activate("id-a", kCode);
  std::string stored = store_->SealedCodeForTesting("id-a");
  stored[stored.size() / 2] ^= 0x20;
  store_->SetSealedCodeForTesting("id-a", stored);
  EXPECT_THAT(store_->Get("id-a"), StatusIs(absl::StatusCode::kInternal, "INTERNAL"));
  EXPECT_THAT(store_->List(ListQuery{}), StatusIs(absl::StatusCode::kInternal, "INTERNAL"));
}

TEST_F(SealedStoreTest, ClearedCodeLeavesNothingStored) {
  Activate("id-a", kCode);
  Transition revoke;
  revoke.from = {broker::v1::Authorization::STATE_ACTIVE};
  revoke.to = broker::v1::Authorization::STATE_REVOKED;
  revoke.clear_code = true;
  auto updated = store_->Update("id-a", revoke);
  ASSERT_THAT(updated, IsOk());
  EXPECT_EQ(updated->code, "");
  EXPECT_EQ(store_->SealedCodeForTesting("id-a"), "");
}

// --- The broker's configuration: sealing_key_file. ---

std::string WriteTemp(const std::string& name, const std::string& content) {
  std::string path = ::testing::TempDir() + "/seal_settings_test_" + std::to_string(::getpid()) +
                     "_" + name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  return path;
}

config::BrokerConfig Config(bool plaintext_development) {
  config::BrokerConfig c;
  c.add_listen("127.0.0.1:0");
  c.set_plaintext_development(plaintext_development);
  c.mutable_leyr()->set_base_uri("http://127.0.0.1:9000/");
  c.mutable_leyr()->set_client_id("leyr-client");
  c.mutable_leyr()->set_client_secret_file(WriteTemp("secret", "leyr-secret\n"));
  auto* conn = c.add_connections();
  conn->set_name("athena");
  conn->set_emr("athenapractice");
  conn->set_base_uri("http://127.0.0.1:9000/athena/");
  conn->set_client_id("athena-client");
  conn->set_redirect_uri("http://127.0.0.1:8081/athena/callback");
  return c;
}

std::string Ring(const std::string& id, const std::string& key) {
  return absl::StrCat(R"({"primary":")", id, R"(","keys":[{"id":")", id, R"(","key_base64":")",
                      absl::Base64Escape(key), R"("}]})");
}

TEST(SealingSettingsTest, KeyRingFileIsLoaded) {
  auto c = Config(true);
  c.set_sealing_key_file(WriteTemp("ring", Ring("k7", std::string(32, 'k'))));
  auto s = ValidateBrokerConfig(c);
  ASSERT_THAT(s, IsOk());
  ASSERT_NE(s->sealer, nullptr);
  EXPECT_EQ(s->sealer->primary_key_id(), "k7");
}

TEST(SealingSettingsTest, WithoutPlaintextDevelopmentTheKeyRingIsRequired) {
  auto s = ValidateBrokerConfig(Config(false));
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("sealing_key_file: required"));
}

TEST(SealingSettingsTest, PlaintextDevelopmentMayGoWithoutOne) {
  auto s = ValidateBrokerConfig(Config(true));
  ASSERT_THAT(s, IsOk());
  EXPECT_EQ(s->sealer, nullptr);  // main() then uses an ephemeral key and logs a warning
}

TEST(SealingSettingsTest, WrongKeyLengthIsRefusedAtStartNamingTheKeyId) {
  const std::string key(16, 'W');
  auto c = Config(true);
  c.set_sealing_key_file(WriteTemp("short", Ring("old-key", key)));
  auto s = ValidateBrokerConfig(c);
  ASSERT_FALSE(s.ok());
  const std::string message(s.status().message());
  EXPECT_THAT(message, HasSubstr("sealing_key_file: "));
  EXPECT_THAT(message, HasSubstr("'old-key'"));
  EXPECT_THAT(message, HasSubstr("16 bytes"));
  EXPECT_THAT(message, Not(HasSubstr(key)));
  EXPECT_THAT(message, Not(HasSubstr(absl::Base64Escape(key))));
}

TEST(SealingSettingsTest, MissingKeyRingFileIsRefused) {
  auto c = Config(true);
  c.set_sealing_key_file("/nonexistent/leyr/keys.json");
  auto s = ValidateBrokerConfig(c);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("sealing_key_file: "));
}

}  // namespace
}  // namespace leyr
