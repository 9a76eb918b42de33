#ifndef LEYR_SERVER_COMMON_RANDOM_H_
#define LEYR_SERVER_COMMON_RANDOM_H_

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"

namespace leyr {

// Source of unpredictable bytes, injected so that tests can make ids predictable.
class Random {
 public:
  virtual ~Random() = default;
  // Returns `n` random bytes, or an error if the generator fails (never silently weak bytes).
  virtual absl::StatusOr<std::string> Bytes(size_t n) = 0;
};

// OpenSSL's CSPRNG (RAND_bytes).
class SecureRandom final : public Random {
 public:
  absl::StatusOr<std::string> Bytes(size_t n) override;
};

// Unpadded base64url of `bytes` (RFC 4648 section 5).
std::string Base64Url(const std::string& bytes);

// SHA-256 of `data`, raw 32 bytes.
std::string Sha256(const std::string& data);

// Lower-case hex of `bytes`.
std::string Hex(const std::string& bytes);

// Compares in time that depends only on the lengths.
bool ConstantTimeEquals(const std::string& a, const std::string& b);

}  // namespace leyr

#endif  // LEYR_SERVER_COMMON_RANDOM_H_
