#include "server/common/random.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/testing/status_matchers.h"

namespace leyr {
namespace {

using ::leyr::testing::IsOk;

TEST(SecureRandomTest, ReturnsTheSizeAskedForAndDiffers) {
  SecureRandom random;
  std::set<std::string> seen;
  for (int i = 0; i < 16; ++i) {
    auto bytes = random.Bytes(32);
    ASSERT_THAT(bytes, IsOk());
    EXPECT_EQ(bytes->size(), 32u);
    seen.insert(*bytes);
  }
  EXPECT_EQ(seen.size(), 16u);
  auto none = random.Bytes(0);
  ASSERT_THAT(none, IsOk());
  EXPECT_TRUE(none->empty());
}

// Draws from the pool, from several threads, with sizes that do not divide the pool (so refills
// happen mid-draw): no 8-byte piece of any draw appears twice, which would be the case if a
// byte were handed out twice.
TEST(SecureRandomTest, PooledBytesAreHandedOutOnce) {
  SecureRandom random;
  constexpr int kThreads = 4, kDraws = 1500;
  const size_t sizes[] = {16, 32, 24, 48, SecureRandom::kMaxPooledDraw};
  std::vector<std::vector<std::string>> drawn(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kDraws; ++i) {
        auto bytes = random.Bytes(sizes[(i + t) % 5]);
        if (bytes.ok()) drawn[t].push_back(*std::move(bytes));
      }
    });
  }
  for (auto& th : threads) th.join();
  std::set<std::string> pieces;
  size_t total = 0;
  for (const auto& draws : drawn) {
    ASSERT_EQ(draws.size(), static_cast<size_t>(kDraws));
    for (const auto& d : draws) {
      for (size_t off = 0; off + 8 <= d.size(); off += 8) {
        pieces.insert(d.substr(off, 8));
        ++total;
      }
    }
  }
  EXPECT_GT(total, 10 * SecureRandom::kPoolBytes / 8);  // many refills
  EXPECT_EQ(pieces.size(), total);
}

TEST(SecureRandomTest, LargeDrawsComeStraightFromOpenSsl) {
  SecureRandom random;
  auto a = random.Bytes(SecureRandom::kPoolBytes * 3);
  auto b = random.Bytes(SecureRandom::kMaxPooledDraw + 1);
  ASSERT_THAT(a, IsOk());
  ASSERT_THAT(b, IsOk());
  EXPECT_EQ(a->size(), SecureRandom::kPoolBytes * 3);
  EXPECT_EQ(b->size(), SecureRandom::kMaxPooledDraw + 1);
  EXPECT_NE(a->substr(0, b->size()), *b);
}

// A child after fork() must not hand out the bytes left in the parent's pool.
TEST(SecureRandomTest, ParentAndChildAfterForkDrawDifferentBytes) {
  SecureRandom random;
  ASSERT_THAT(random.Bytes(16), IsOk());  // the pool is filled, most of it unused
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    auto bytes = random.Bytes(32);
    int rc = 1;
    if (bytes.ok() && write(fds[1], bytes->data(), bytes->size()) == 32) rc = 0;
    _exit(rc);
  }
  close(fds[1]);
  auto mine = random.Bytes(32);
  char theirs[32];
  size_t got = 0;
  while (got < sizeof theirs) {
    ssize_t n = read(fds[0], theirs + got, sizeof theirs - got);
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  close(fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ASSERT_EQ(got, sizeof theirs);
  ASSERT_THAT(mine, IsOk());
  EXPECT_NE(*mine, std::string(theirs, sizeof theirs));
}

TEST(Base64UrlTest, UnpaddedUrlAlphabet) {
  EXPECT_EQ(Base64Url(""), "");
  EXPECT_EQ(Base64Url("f"), "Zg");
  EXPECT_EQ(Base64Url("fo"), "Zm8");
  EXPECT_EQ(Base64Url("foo"), "Zm9v");
  EXPECT_EQ(Base64Url("\xfb\xff\xbf"), "-_-_");  // '+' and '/' become '-' and '_'
  std::string bytes;
  for (int i = 0; i < 32; ++i) bytes.push_back(static_cast<char>(i));
  EXPECT_EQ(Base64Url(bytes), "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8");
}

TEST(Sha256Test, KnownVectors) {
  EXPECT_EQ(Hex(Sha256("")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Hex(Sha256("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha256("abc").size(), 32u);
  // Many blocks, on the context the calls above left behind, then a short one again.
  EXPECT_EQ(Hex(Sha256(std::string(1000000, 'a'))),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  EXPECT_EQ(Hex(Sha256("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(HexTest, LowerCase) { EXPECT_EQ(Hex(std::string("\x00\xab\xFF", 3)), "00abff"); }

TEST(ConstantTimeEqualsTest, ComparesContentAndLength) {
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abcd"));
  EXPECT_FALSE(ConstantTimeEquals(std::string("a\0b", 3), std::string("a\0c", 3)));
}

}  // namespace
}  // namespace leyr
