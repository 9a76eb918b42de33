#include "server/common/random.h"

#include <pthread.h>

#include <atomic>
#include <cstring>
#include <memory>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "absl/strings/escaping.h"

namespace leyr {

namespace {

// Incremented in the child after every fork(), so that a pool filled before the fork is dropped.
std::atomic<uint64_t> g_fork_generation{0};

void CountForkInChild() { g_fork_generation.fetch_add(1, std::memory_order_relaxed); }

absl::Status RandomFailed() { return absl::InternalError("the random number generator failed"); }

}  // namespace

SecureRandom::SecureRandom() {
  static const int registered = pthread_atfork(nullptr, nullptr, CountForkInChild);
  (void)registered;
  absl::MutexLock lock(&mu_);
  generation_ = g_fork_generation.load(std::memory_order_relaxed);
}

SecureRandom::~SecureRandom() {
  absl::MutexLock lock(&mu_);
  OPENSSL_cleanse(pool_, sizeof pool_);
}

absl::StatusOr<std::string> SecureRandom::Bytes(size_t n) {
  std::string out(n, '\0');
  auto* dst = reinterpret_cast<unsigned char*>(out.data());
  if (n > kMaxPooledDraw) {
    if (RAND_bytes(dst, static_cast<int>(n)) != 1) return RandomFailed();
    return out;
  }
  absl::MutexLock lock(&mu_);
  const uint64_t generation = g_fork_generation.load(std::memory_order_relaxed);
  if (generation != generation_) {
    OPENSSL_cleanse(pool_, sizeof pool_);
    left_ = 0;
    generation_ = generation;
  }
  if (left_ < n) {
    if (RAND_bytes(pool_, static_cast<int>(kPoolBytes)) != 1) {
      OPENSSL_cleanse(pool_, sizeof pool_);
      left_ = 0;
      return RandomFailed();
    }
    left_ = kPoolBytes;
  }
  unsigned char* src = pool_ + (kPoolBytes - left_);
  std::memcpy(dst, src, n);
  OPENSSL_cleanse(src, n);
  left_ -= n;
  return out;
}

std::string Base64Url(const std::string& bytes) { return absl::WebSafeBase64Escape(bytes); }

namespace {

// SHA-256 fetched from the default provider once: EVP_sha256() makes every digest fetch it again
// (OpenSSL 3's implicit fetch), and a context per call costs two allocations. Together they were
// most of a 43-byte digest's 6,000 instructions.
const EVP_MD* Sha256Md() {
  static const EVP_MD* md = [] {
    const EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA2-256", nullptr);
    return fetched != nullptr ? fetched : EVP_sha256();
  }();
  return md;
}

struct MdCtxFree {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};

}  // namespace

std::string Sha256(absl::string_view data) {
  thread_local std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (ctx == nullptr || EVP_DigestInit_ex2(ctx.get(), Sha256Md(), nullptr) != 1 ||
      EVP_DigestUpdate(ctx.get(), data.data(), data.size()) != 1 ||
      EVP_DigestFinal_ex(ctx.get(), digest, &len) != 1) {
    // Only on allocation failure; the one-shot form allocates its own context.
    EVP_Digest(data.data(), data.size(), digest, &len, Sha256Md(), nullptr);
  }
  return std::string(reinterpret_cast<char*>(digest), len);
}

std::string Hex(const std::string& bytes) { return absl::BytesToHexString(bytes); }

bool ConstantTimeEquals(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace leyr
