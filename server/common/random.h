#ifndef LEYR_SERVER_COMMON_RANDOM_H_
#define LEYR_SERVER_COMMON_RANDOM_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace leyr {

// Source of unpredictable bytes, injected so that tests can make ids predictable.
class Random {
 public:
  virtual ~Random() = default;
  // Returns `n` random bytes, or an error if the generator fails (never silently weak bytes).
  virtual absl::StatusOr<std::string> Bytes(size_t n) = 0;
};

// OpenSSL's CSPRNG (RAND_bytes). Small draws (ids, states: 16 and 32 bytes) are served from a
// pool filled by one RAND_bytes call of kPoolBytes: each RAND_bytes call costs about 7,000
// instructions whatever its size (OpenSSL 3's CTR-DRBG re-keys its AES context after every
// call), which was a tenth of a BeginAuthorization. Every byte is handed out once and wiped from
// the pool as it leaves; the pool is wiped with the object, and dropped in a child after fork()
// so that parent and child never hand out the same bytes. Larger draws go to RAND_bytes.
// Thread-safe.
class SecureRandom final : public Random {
 public:
  static constexpr size_t kPoolBytes = 1024;
  static constexpr size_t kMaxPooledDraw = 64;

  SecureRandom();
  ~SecureRandom() override;
  SecureRandom(const SecureRandom&) = delete;
  SecureRandom& operator=(const SecureRandom&) = delete;

  absl::StatusOr<std::string> Bytes(size_t n) override;

 private:
  absl::Mutex mu_;
  unsigned char pool_[kPoolBytes] ABSL_GUARDED_BY(mu_);
  size_t left_ ABSL_GUARDED_BY(mu_) = 0;      // unused bytes, at the end of pool_
  uint64_t generation_ ABSL_GUARDED_BY(mu_);  // the fork count when pool_ was filled
};

// Unpadded base64url of `bytes` (RFC 4648 section 5).
std::string Base64Url(const std::string& bytes);

// SHA-256 of `data`, raw 32 bytes.
std::string Sha256(absl::string_view data);

// Lower-case hex of `bytes`.
std::string Hex(const std::string& bytes);

// Compares in time that depends only on the lengths.
bool ConstantTimeEquals(const std::string& a, const std::string& b);

}  // namespace leyr

#endif  // LEYR_SERVER_COMMON_RANDOM_H_
