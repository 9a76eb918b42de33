#include "server/broker/sealer.h"

#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tests/testing/status_matchers.h"

namespace leyr {
namespace {

using ::leyr::testing::IsOk;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kCode[] = "canary-ATHENA-CODE-5b1e0f";
constexpr char kAuthorizationId[] = "6ELvXq8l2fwDCt1FxIOLZA";

// A recognisable 32-byte key: `fill` repeated.
SealingKey Key(const std::string& id, char fill, size_t size = 32) {
  return SealingKey{id, std::string(size, fill)};
}

std::unique_ptr<KeyRingSealer> Ring(std::vector<SealingKey> keys, std::string primary = "") {
  auto ring = KeyRingSealer::Create(std::move(keys), std::move(primary));
  EXPECT_THAT(ring, IsOk());
  return ring.ok() ? std::move(*ring) : nullptr;
}

std::string KeyRingJson(const std::vector<std::pair<std::string, std::string>>& keys,
                        const std::string& primary) {
  std::string json = "{";
  if (!primary.empty()) absl::StrAppend(&json, "\"primary\":\"", primary, "\",");
  json += "\"keys\":[";
  for (size_t i = 0; i < keys.size(); ++i) {
    absl::StrAppend(&json, i ? "," : "", "{\"id\":\"", keys[i].first, "\",\"key_base64\":\"",
                    absl::Base64Escape(keys[i].second), "\"}");
  }
  return json + "]}";
}

TEST(KeyRingSealerTest, SealThenOpen) {
  auto ring = Ring({Key("k1", 'a')});
  auto sealed = ring->Seal(kCode, kAuthorizationId);
  ASSERT_THAT(sealed, IsOk());
  auto opened = ring->Open(*sealed, kAuthorizationId);
  ASSERT_THAT(opened, IsOk());
  EXPECT_EQ(*opened, kCode);
}

TEST(KeyRingSealerTest, RecordLayoutIsVersionKeyIdNonceCiphertextTag) {
  auto ring = Ring({Key("k1", 'a')});
  auto sealed = ring->Seal(kCode, kAuthorizationId);
  ASSERT_THAT(sealed, IsOk());
  const size_t plain = std::string(kCode).size();
  ASSERT_EQ(sealed->size(), 1 + 1 + 2 + 12 + plain + 16);
  EXPECT_EQ(static_cast<uint8_t>((*sealed)[0]), KeyRingSealer::kVersion);
  EXPECT_EQ((*sealed)[1], 2);
  EXPECT_EQ(sealed->substr(2, 2), "k1");
}

TEST(KeyRingSealerTest, StoredBytesDoNotContainThePlaintext) {
  auto ring = Ring({Key("k1", 'a')});
  for (const std::string& value : {std::string(kCode), std::string(1000, 'x'), std::string("ab")}) {
    auto sealed = ring->Seal(value, kAuthorizationId);
    ASSERT_THAT(sealed, IsOk());
    EXPECT_THAT(*sealed, Not(HasSubstr(value)));
    EXPECT_THAT(*sealed, Not(HasSubstr(std::string(32, 'a'))));  // nor the key
    if (value.size() > 8) {
      // Not even a fragment of it.
      EXPECT_THAT(*sealed, Not(HasSubstr(value.substr(0, 8))));
    }
  }
}

TEST(KeyRingSealerTest, EmptyValueSealsAndOpens) {
  auto ring = Ring({Key("k1", 'a')});
  auto sealed = ring->Seal("", kAuthorizationId);
  ASSERT_THAT(sealed, IsOk());
  auto opened = ring->Open(*sealed, kAuthorizationId);
  ASSERT_THAT(opened, IsOk());
  EXPECT_EQ(*opened, "");
}

TEST(KeyRingSealerTest, EveryFlippedByteFailsToOpen) {
  auto ring = Ring({Key("k1", 'a')});
  auto sealed = ring->Seal(kCode, kAuthorizationId);
  ASSERT_THAT(sealed, IsOk());
  for (size_t i = 0; i < sealed->size(); ++i) {
    for (unsigned char mask : {0x01, 0x80, 0xff}) {
      std::string changed = *sealed;
      changed[i] = static_cast<char>(changed[i] ^ mask);
      auto opened = ring->Open(changed, kAuthorizationId);
      EXPECT_FALSE(opened.ok()) << "byte " << i << " mask " << int{mask};
      if (!opened.ok()) {
        EXPECT_THAT(std::string(opened.status().message()), Not(HasSubstr(kCode)));
      }
    }
  }
}

TEST(KeyRingSealerTest, AnotherAuthorizationIdAsAadFails) {
  auto ring = Ring({Key("k1", 'a')});
  auto sealed = ring->Seal(kCode, kAuthorizationId);
  ASSERT_THAT(sealed, IsOk());
  for (const std::string& other : {std::string("6ELvXq8l2fwDCt1FxIOLZB"), std::string(""),
                                   std::string(kAuthorizationId) + "x",
                                   std::string(kAuthorizationId).substr(1)}) {
    EXPECT_THAT(ring->Open(*sealed, other),
                ::leyr::testing::StatusIs(absl::StatusCode::kDataLoss))
        << other;
  }
}

TEST(KeyRingSealerTest, RecordCopiedUnderAnotherKeyFails) {
  // Same key id, different key material (another deployment, or a replaced key).
  auto ring_a = Ring({Key("k1", 'a')});
  auto ring_b = Ring({Key("k1", 'b')});
  auto sealed = ring_a->Seal(kCode, kAuthorizationId);
  ASSERT_THAT(sealed, IsOk());
  EXPECT_THAT(ring_b->Open(*sealed, kAuthorizationId),
              ::leyr::testing::StatusIs(absl::StatusCode::kDataLoss));

  // The key id rewritten to another key of the same ring: the header is authenticated.
  auto ring = Ring({Key("k1", 'a'), Key("k2", 'b')}, "k1");
  sealed = ring->Seal(kCode, kAuthorizationId);
  ASSERT_THAT(sealed, IsOk());
  std::string relabelled = *sealed;
  relabelled[3] = '2';  // "k1" → "k2"
  EXPECT_THAT(ring->Open(relabelled, kAuthorizationId),
              ::leyr::testing::StatusIs(absl::StatusCode::kDataLoss));

  // A key id not in the ring.
  auto ring_c = Ring({Key("k9", 'a')});
  EXPECT_THAT(ring_c->Open(*sealed, kAuthorizationId),
              ::leyr::testing::StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(KeyRingSealerTest, SealingTheSameValueTwiceGivesDifferentBytes) {
  auto ring = Ring({Key("k1", 'a')});
  std::set<std::string> seen;
  std::set<std::string> nonces;
  for (int i = 0; i < 100; ++i) {
    auto sealed = ring->Seal(kCode, kAuthorizationId);
    ASSERT_THAT(sealed, IsOk());
    seen.insert(*sealed);
    nonces.insert(sealed->substr(4, KeyRingSealer::kNonceBytes));
  }
  EXPECT_EQ(seen.size(), 100u);
  EXPECT_EQ(nonces.size(), 100u);
}

TEST(KeyRingSealerTest, RotationOldRecordsOpenNewOnesUseTheNewPrimary) {
  auto old_ring = Ring({Key("k1", 'a')});
  auto old_record = old_ring->Seal(kCode, kAuthorizationId);
  ASSERT_THAT(old_record, IsOk());

  auto json = KeyRingJson({{"k1", std::string(32, 'a')}, {"k2", std::string(32, 'b')}}, "k2");
  auto new_ring = KeyRingSealer::FromJson(json);
  ASSERT_THAT(new_ring, IsOk());
  EXPECT_EQ((*new_ring)->primary_key_id(), "k2");
  auto opened = (*new_ring)->Open(*old_record, kAuthorizationId);
  ASSERT_THAT(opened, IsOk());
  EXPECT_EQ(*opened, kCode);

  auto new_record = (*new_ring)->Seal(kCode, kAuthorizationId);
  ASSERT_THAT(new_record, IsOk());
  EXPECT_EQ(new_record->substr(1, 3), std::string("\x02k2", 3));
  // The old ring cannot open what the new primary sealed.
  EXPECT_FALSE(old_ring->Open(*new_record, kAuthorizationId).ok());
}

// Open reuses its decryption contexts: alternating keys, records and failed opens on one ring
// must each give exactly the answer a fresh context would.
TEST(KeyRingSealerTest, ReusedContextsOpenEachRecordUnderItsOwnKey) {
  auto k1 = Ring({Key("k1", 'a')});
  auto ring = Ring({Key("k1", 'a'), Key("k2", 'b')}, "k2");
  auto under_k1 = k1->Seal("code-under-k1", kAuthorizationId);
  auto under_k2 = ring->Seal("code-under-k2", kAuthorizationId);
  ASSERT_THAT(under_k1, IsOk());
  ASSERT_THAT(under_k2, IsOk());
  std::string tampered = *under_k2;
  tampered.back() ^= 1;
  for (int i = 0; i < 3; ++i) {
    auto a = ring->Open(*under_k1, kAuthorizationId);
    ASSERT_THAT(a, IsOk());
    EXPECT_EQ(*a, "code-under-k1");
    EXPECT_EQ(ring->Open(tampered, kAuthorizationId).status().code(),
              absl::StatusCode::kDataLoss);
    EXPECT_EQ(ring->Open(*under_k2, "another-id").status().code(), absl::StatusCode::kDataLoss);
    auto b = ring->Open(*under_k2, kAuthorizationId);
    ASSERT_THAT(b, IsOk());
    EXPECT_EQ(*b, "code-under-k2");
  }
}

TEST(KeyRingSealerTest, PrimaryDefaultsToTheLastKey) {
  auto ring = KeyRingSealer::FromJson(
      KeyRingJson({{"k1", std::string(32, 'a')}, {"k2", std::string(32, 'b')}}, ""));
  ASSERT_THAT(ring, IsOk());
  EXPECT_EQ((*ring)->primary_key_id(), "k2");
}

TEST(KeyRingSealerTest, TruncatedRecordsAreRefused) {
  auto ring = Ring({Key("k1", 'a')});
  auto sealed = ring->Seal(kCode, kAuthorizationId);
  ASSERT_THAT(sealed, IsOk());
  for (size_t n = 0; n < sealed->size(); ++n) {
    EXPECT_FALSE(ring->Open(sealed->substr(0, n), kAuthorizationId).ok()) << n;
  }
  // Also with bytes appended.
  EXPECT_FALSE(ring->Open(*sealed + "x", kAuthorizationId).ok());
  // And with another version byte.
  std::string v2 = *sealed;
  v2[0] = 2;
  EXPECT_THAT(ring->Open(v2, kAuthorizationId),
              ::leyr::testing::StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(KeyRingSealerTest, WrongKeyLengthIsRefusedNamingTheIdNotTheKey) {
  for (size_t size : {0, 1, 16, 24, 31, 33, 64}) {
    const std::string key(size, 'Z');
    auto ring = KeyRingSealer::Create({Key("ok", 'a'), SealingKey{"short-key", key}}, "");
    ASSERT_FALSE(ring.ok()) << size;
    EXPECT_EQ(ring.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(ring.status().message()), HasSubstr("'short-key'"));
    if (size > 0) {
      EXPECT_THAT(std::string(ring.status().message()), Not(HasSubstr(key)));
    }
    auto from_json =
        KeyRingSealer::FromJson(KeyRingJson({{"ok", std::string(32, 'a')}, {"short-key", key}}, ""));
    ASSERT_FALSE(from_json.ok());
    EXPECT_THAT(std::string(from_json.status().message()), HasSubstr("'short-key'"));
    if (size > 0) {
      EXPECT_THAT(std::string(from_json.status().message()), Not(HasSubstr(key)));
      EXPECT_THAT(std::string(from_json.status().message()),
                  Not(HasSubstr(absl::Base64Escape(key))));
    }
  }
}

TEST(KeyRingSealerTest, BadKeyRingsAreRefusedWithoutEchoingTheFile) {
  const std::string secret_b64 = absl::Base64Escape(std::string(32, 'S'));
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"duplicate", KeyRingJson({{"k1", std::string(32, 'S')}, {"k1", std::string(32, 'S')}}, "")},
      {"no keys", R"({"keys":[]})"},
      {"keys missing", R"({"primary":"k1"})"},
      {"primary unknown", KeyRingJson({{"k1", std::string(32, 'S')}}, "k2")},
      {"bad base64", R"({"keys":[{"id":"k1","key_base64":"!!)" + secret_b64 + R"("}]})"},
      {"bad id", KeyRingJson({{"k 1", std::string(32, 'S')}}, "")},
      {"unknown field", R"({"keys":[{"id":"k1","key_base64":")" + secret_b64 + R"(","x":1}]})"},
      {"unknown top field",
       R"({"secret":")" + secret_b64 + R"(","keys":[{"id":"k1","key_base64":")" + secret_b64 +
           R"("}]})"},
      {"not json", R"({"keys":[{"id":"k1","key_base64":")" + secret_b64 + R"("}])"},
      {"not an object", "[]"},
      {"empty", ""},
  };
  for (const auto& [what, json] : cases) {
    auto ring = KeyRingSealer::FromJson(json);
    ASSERT_FALSE(ring.ok()) << what;
    EXPECT_EQ(ring.status().code(), absl::StatusCode::kInvalidArgument) << what;
    EXPECT_THAT(std::string(ring.status().message()), Not(HasSubstr(secret_b64))) << what;
    EXPECT_THAT(std::string(ring.status().message()), Not(HasSubstr(secret_b64.substr(0, 12))))
        << what;
  }
  auto dup = KeyRingSealer::FromJson(cases[0].second);
  EXPECT_THAT(std::string(dup.status().message()), HasSubstr("'k1'"));
}

TEST(KeyRingSealerTest, FromFileReadsTheRingAndNamesAMissingFile) {
  const std::string path = ::testing::TempDir() + "/seal_test_ring_" + std::to_string(getpid());
  {
    std::ofstream out(path);
    out << KeyRingJson({{"k1", std::string(32, 'a')}}, "k1");
  }
  auto ring = KeyRingSealer::FromFile(path);
  ASSERT_THAT(ring, IsOk());
  EXPECT_EQ((*ring)->primary_key_id(), "k1");
  std::remove(path.c_str());
  auto missing = KeyRingSealer::FromFile(path);
  EXPECT_THAT(missing, ::leyr::testing::StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(KeyRingSealerTest, EphemeralKeysDiffer) {
  auto a = KeyRingSealer::Ephemeral();
  auto b = KeyRingSealer::Ephemeral();
  auto sealed = a->Seal(kCode, kAuthorizationId);
  ASSERT_THAT(sealed, IsOk());
  EXPECT_THAT(a->Open(*sealed, kAuthorizationId), IsOk());
  EXPECT_FALSE(b->Open(*sealed, kAuthorizationId).ok());
}

TEST(KeyRingSealerTest, ConcurrentSealAndOpen) {
  auto ring = Ring({Key("k1", 'a'), Key("k2", 'b')});
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        std::string value = absl::StrCat("code-", t, "-", i);
        std::string aad = absl::StrCat("id-", t, "-", i);
        auto sealed = ring->Seal(value, aad);
        if (!sealed.ok()) { ++failures; continue; }
        auto opened = ring->Open(*sealed, aad);
        if (!opened.ok() || *opened != value) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
}

}  // namespace
}  // namespace leyr
