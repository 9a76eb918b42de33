#ifndef LEYR_SERVER_BROKER_SEALER_H_
#define LEYR_SERVER_BROKER_SEALER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <openssl/evp.h>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace leyr {

// Seals secrets (athena codes) before a store keeps them, and opens them again. `aad` is the
// record's own key (the authorization id): a sealed value opens only under the same aad, so a
// value copied to another record does not open.
class Sealer {
 public:
  virtual ~Sealer() = default;
  virtual absl::StatusOr<std::string> Seal(absl::string_view plaintext, absl::string_view aad) = 0;
  virtual absl::StatusOr<std::string> Open(absl::string_view sealed, absl::string_view aad) = 0;
};

// One AES-256 key of a key ring.
struct SealingKey {
  std::string id;   // 1-64 characters of A-Z a-z 0-9 . _ -
  std::string key;  // 32 raw bytes
};

// AES-256-GCM (OpenSSL EVP) over a key ring. Record layout (all bytes, no text encoding):
//
//   version (1 byte, 0x01) | key id length L (1 byte) | key id (L bytes) |
//   nonce (12 bytes, fresh from RAND_bytes) | ciphertext (as long as the plaintext) | tag (16 bytes)
//
// The GCM associated data is the header (version, L, key id) followed by the caller's aad, so
// neither the key id nor the record's key can be changed without the tag failing.
// The primary key seals; every key of the ring opens. Thread-safe.
class KeyRingSealer final : public Sealer {
 public:
  static constexpr uint8_t kVersion = 1;
  static constexpr size_t kKeyBytes = 32;
  static constexpr size_t kNonceBytes = 12;
  static constexpr size_t kTagBytes = 16;

  // INVALID_ARGUMENT, naming the key id (never the key), for: no keys, a bad id, a key that is
  // not 32 bytes, a duplicate id, a primary that is not in `keys`. An empty `primary_id` means
  // the last key of `keys`.
  static absl::StatusOr<std::unique_ptr<KeyRingSealer>> Create(std::vector<SealingKey> keys,
                                                               std::string primary_id);

  // The key-ring file (docs/security.md):
  //   {"primary": "k2", "keys": [{"id": "k1", "key_base64": "..."}, {"id": "k2", ...}]}
  // Errors never repeat the file's contents (the JSON parser's messages quote the input, so
  // they are not passed on).
  static absl::StatusOr<std::unique_ptr<KeyRingSealer>> FromJson(absl::string_view json);
  static absl::StatusOr<std::unique_ptr<KeyRingSealer>> FromFile(const std::string& path);

  // One random key (id "ephemeral"), for plaintext_development only: sealed values do not
  // survive a restart (nor does the memory store).
  static std::unique_ptr<KeyRingSealer> Ephemeral();

  ~KeyRingSealer() override;

  absl::StatusOr<std::string> Seal(absl::string_view plaintext, absl::string_view aad) override;
  // INVALID_ARGUMENT for a record that is too short, has another version or an unknown key id;
  // DATA_LOSS when the tag does not verify (changed bytes, wrong key, another record's aad).
  absl::StatusOr<std::string> Open(absl::string_view sealed, absl::string_view aad) override;

  const std::string& primary_key_id() const { return keys_[primary_].id; }
  std::vector<std::string> key_ids() const;

 private:
  KeyRingSealer(std::vector<SealingKey> keys, size_t primary)
      : keys_(std::move(keys)), primary_(primary) {}

  std::vector<SealingKey> keys_;  // immutable after construction
  size_t primary_;
  // Decryption contexts with the cipher and the nonce length already set, reused by Open: a new
  // context per call (allocation, cipher set-up, free) was about half of Open's cost, on the
  // path of every CallLeyr. Freed, and with them the key schedules cleansed, by the destructor.
  absl::Mutex pool_mu_;
  std::vector<EVP_CIPHER_CTX*> open_pool_ ABSL_GUARDED_BY(pool_mu_);
};

}  // namespace leyr

#endif  // LEYR_SERVER_BROKER_SEALER_H_
