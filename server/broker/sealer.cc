#include "server/broker/sealer.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "server/common/config_util.h"

namespace leyr {
namespace {

struct CtxDeleter {
  void operator()(EVP_CIPHER_CTX* ctx) const { EVP_CIPHER_CTX_free(ctx); }
};
using CtxPtr = std::unique_ptr<EVP_CIPHER_CTX, CtxDeleter>;

// AES-256-GCM fetched from the default provider once: passing EVP_aes_256_gcm() makes every
// Init fetch it again (OpenSSL 3's implicit fetch), a measurable part of each CallLeyr.
// Falls back to the implicit fetch if the explicit one fails.
const EVP_CIPHER* Aes256Gcm() {
  static const EVP_CIPHER* const cipher = [] {
    const EVP_CIPHER* fetched = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
    return fetched != nullptr ? fetched : EVP_aes_256_gcm();
  }();
  return cipher;
}

constexpr size_t kMaxKeyIdBytes = 64;

bool IsKeyId(absl::string_view id) {
  if (id.empty() || id.size() > kMaxKeyIdBytes) return false;
  for (char c : id) {
    if (!(absl::ascii_isalnum(c) || c == '.' || c == '_' || c == '-')) return false;
  }
  return true;
}

// The header that starts every record and is authenticated with it.
std::string Header(absl::string_view key_id) {
  std::string header;
  header.push_back(static_cast<char>(KeyRingSealer::kVersion));
  header.push_back(static_cast<char>(key_id.size()));
  header.append(key_id.data(), key_id.size());
  return header;
}

void Cleanse(std::string& s) {
  if (!s.empty()) OPENSSL_cleanse(s.data(), s.size());
}

absl::Status CryptoError(absl::string_view what) {
  return absl::InternalError(absl::StrCat("sealing: OpenSSL failed to ", what));
}

}  // namespace

absl::StatusOr<std::unique_ptr<KeyRingSealer>> KeyRingSealer::Create(std::vector<SealingKey> keys,
                                                                     std::string primary_id) {
  auto cleanse_all = [&keys] {
    for (auto& k : keys) Cleanse(k.key);
  };
  if (keys.empty()) {
    return absl::InvalidArgumentError("sealing key ring: no keys");
  }
  absl::flat_hash_set<std::string> seen;
  for (size_t i = 0; i < keys.size(); ++i) {
    const SealingKey& k = keys[i];
    if (!IsKeyId(k.id)) {
      cleanse_all();
      return absl::InvalidArgumentError(absl::StrCat(
          "sealing key ring: keys[", i, "].id must be 1-64 characters of A-Z a-z 0-9 . _ -"));
    }
    if (k.key.size() != kKeyBytes) {
      cleanse_all();
      return absl::InvalidArgumentError(
          absl::StrCat("sealing key ring: key '", k.id, "' is ", k.key.size(),
                       " bytes; AES-256-GCM needs exactly ", kKeyBytes));
    }
    if (!seen.insert(k.id).second) {
      cleanse_all();
      return absl::InvalidArgumentError(
          absl::StrCat("sealing key ring: key id '", k.id, "' appears more than once"));
    }
  }
  size_t primary = keys.size() - 1;
  if (!primary_id.empty()) {
    primary = keys.size();
    for (size_t i = 0; i < keys.size(); ++i) {
      if (keys[i].id == primary_id) primary = i;
    }
    if (primary == keys.size()) {
      cleanse_all();
      // The primary id is not a secret, but it may be anything: echo it only when well formed.
      return absl::InvalidArgumentError(absl::StrCat(
          "sealing key ring: primary ",
          IsKeyId(primary_id) ? absl::StrCat("'", primary_id, "'") : std::string("(malformed id)"),
          " is not one of the listed keys"));
    }
  }
  return std::unique_ptr<KeyRingSealer>(new KeyRingSealer(std::move(keys), primary));
}

absl::StatusOr<std::unique_ptr<KeyRingSealer>> KeyRingSealer::FromJson(absl::string_view json) {
  google::protobuf::Struct root;
  google::protobuf::util::JsonParseOptions options;
  if (!google::protobuf::util::JsonStringToMessage(std::string(json), &root, options).ok()) {
    return absl::InvalidArgumentError("sealing key ring: the file is not a JSON object");
  }
  std::string primary;
  std::vector<SealingKey> keys;
  auto cleanse_all = [&keys, &root] {
    for (auto& k : keys) Cleanse(k.key);
    root.Clear();
  };
  for (const auto& [name, value] : root.fields()) {
    if (name == "primary") {
      if (value.kind_case() != google::protobuf::Value::kStringValue) {
        cleanse_all();
        return absl::InvalidArgumentError("sealing key ring: 'primary' must be a string");
      }
      primary = value.string_value();
    } else if (name != "keys") {
      cleanse_all();
      return absl::InvalidArgumentError(absl::StrCat(
          "sealing key ring: unknown field (only 'primary' and 'keys' are allowed)"));
    }
  }
  auto keys_it = root.fields().find("keys");
  if (keys_it == root.fields().end() ||
      keys_it->second.kind_case() != google::protobuf::Value::kListValue) {
    cleanse_all();
    return absl::InvalidArgumentError("sealing key ring: 'keys' must be a list");
  }
  const auto& list = keys_it->second.list_value().values();
  for (int i = 0; i < list.size(); ++i) {
    const auto& entry = list[i];
    if (entry.kind_case() != google::protobuf::Value::kStructValue) {
      cleanse_all();
      return absl::InvalidArgumentError(
          absl::StrCat("sealing key ring: keys[", i, "] must be an object"));
    }
    const auto& fields = entry.struct_value().fields();
    auto id = fields.find("id");
    auto key = fields.find("key_base64");
    if (id == fields.end() || id->second.kind_case() != google::protobuf::Value::kStringValue ||
        key == fields.end() || key->second.kind_case() != google::protobuf::Value::kStringValue ||
        fields.size() != 2) {
      cleanse_all();
      return absl::InvalidArgumentError(absl::StrCat(
          "sealing key ring: keys[", i, "] must have exactly 'id' and 'key_base64' strings"));
    }
    SealingKey k;
    k.id = id->second.string_value();
    if (!absl::Base64Unescape(key->second.string_value(), &k.key)) {
      cleanse_all();
      return absl::InvalidArgumentError(absl::StrCat(
          "sealing key ring: key ",
          IsKeyId(k.id) ? absl::StrCat("'", k.id, "'") : absl::StrCat("keys[", i, "]"),
          " is not valid base64"));
    }
    keys.push_back(std::move(k));
  }
  root.Clear();
  return Create(std::move(keys), std::move(primary));
}

absl::StatusOr<std::unique_ptr<KeyRingSealer>> KeyRingSealer::FromFile(const std::string& path) {
  auto text = ReadFile(path);
  if (!text.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("sealing key ring: cannot read file '", path, "'"));
  }
  auto sealer = FromJson(*text);
  Cleanse(*text);
  return sealer;
}

std::unique_ptr<KeyRingSealer> KeyRingSealer::Ephemeral() {
  SealingKey k;
  k.id = "ephemeral";
  k.key.resize(kKeyBytes);
  if (RAND_bytes(reinterpret_cast<unsigned char*>(k.key.data()), kKeyBytes) != 1) {
    // No randomness means no safe key; there is nothing sensible to continue with.
    std::abort();
  }
  std::vector<SealingKey> keys;
  keys.push_back(std::move(k));
  return std::unique_ptr<KeyRingSealer>(new KeyRingSealer(std::move(keys), 0));
}

KeyRingSealer::~KeyRingSealer() {
  for (auto& k : keys_) Cleanse(k.key);
  absl::MutexLock lock(&pool_mu_);
  for (EVP_CIPHER_CTX* ctx : open_pool_) EVP_CIPHER_CTX_free(ctx);  // cleanses the context
}

std::vector<std::string> KeyRingSealer::key_ids() const {
  std::vector<std::string> ids;
  for (const auto& k : keys_) ids.push_back(k.id);
  return ids;
}

absl::StatusOr<std::string> KeyRingSealer::Seal(absl::string_view plaintext,
                                                absl::string_view aad) {
  const SealingKey& key = keys_[primary_];
  std::string out = Header(key.id);
  const size_t header_size = out.size();
  out.resize(header_size + kNonceBytes + plaintext.size() + kTagBytes);
  auto* nonce = reinterpret_cast<unsigned char*>(out.data() + header_size);
  if (RAND_bytes(nonce, kNonceBytes) != 1) return CryptoError("draw a nonce");

  CtxPtr ctx(EVP_CIPHER_CTX_new());
  if (!ctx) return CryptoError("allocate a cipher context");
  int len = 0;
  if (EVP_EncryptInit_ex(ctx.get(), Aes256Gcm(), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, kNonceBytes, nullptr) != 1 ||
      EVP_EncryptInit_ex(ctx.get(), nullptr, nullptr,
                         reinterpret_cast<const unsigned char*>(key.key.data()), nonce) != 1) {
    return CryptoError("start AES-256-GCM");
  }
  if (EVP_EncryptUpdate(ctx.get(), nullptr, &len,
                        reinterpret_cast<const unsigned char*>(out.data()),
                        static_cast<int>(header_size)) != 1 ||
      EVP_EncryptUpdate(ctx.get(), nullptr, &len,
                        reinterpret_cast<const unsigned char*>(aad.data()),
                        static_cast<int>(aad.size())) != 1) {
    return CryptoError("add associated data");
  }
  auto* cipher = reinterpret_cast<unsigned char*>(out.data() + header_size + kNonceBytes);
  int written = 0;
  if (!plaintext.empty()) {
    if (EVP_EncryptUpdate(ctx.get(), cipher, &len,
                          reinterpret_cast<const unsigned char*>(plaintext.data()),
                          static_cast<int>(plaintext.size())) != 1) {
      return CryptoError("encrypt");
    }
    written = len;
  }
  if (EVP_EncryptFinal_ex(ctx.get(), cipher + written, &len) != 1) return CryptoError("encrypt");
  written += len;
  if (static_cast<size_t>(written) != plaintext.size()) return CryptoError("encrypt fully");
  if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagBytes, cipher + written) != 1) {
    return CryptoError("produce the tag");
  }
  return out;
}

absl::StatusOr<std::string> KeyRingSealer::Open(absl::string_view sealed, absl::string_view aad) {
  if (sealed.size() < 2) {
    return absl::InvalidArgumentError("sealed record is truncated (no header)");
  }
  if (static_cast<uint8_t>(sealed[0]) != kVersion) {
    return absl::InvalidArgumentError("sealed record has an unknown format version");
  }
  const size_t id_size = static_cast<uint8_t>(sealed[1]);
  const size_t header_size = 2 + id_size;
  if (id_size == 0 || sealed.size() < header_size + kNonceBytes + kTagBytes) {
    return absl::InvalidArgumentError("sealed record is truncated");
  }
  absl::string_view id = sealed.substr(2, id_size);
  const SealingKey* key = nullptr;
  for (const auto& k : keys_) {
    if (k.id == id) key = &k;
  }
  if (key == nullptr) {
    // The id comes from stored bytes: name it only when it is a well-formed id.
    return absl::InvalidArgumentError(absl::StrCat(
        "sealed record names key ",
        IsKeyId(id) ? absl::StrCat("'", id, "'") : std::string("(malformed id)"),
        ", which is not in the key ring"));
  }
  const auto* nonce = reinterpret_cast<const unsigned char*>(sealed.data() + header_size);
  absl::string_view cipher =
      sealed.substr(header_size + kNonceBytes, sealed.size() - header_size - kNonceBytes - kTagBytes);
  std::string tag(sealed.substr(sealed.size() - kTagBytes));

  // A pooled context (cipher and nonce length set), or a new one; back to the pool only after a
  // successful open, so a context in an unknown state is never reused.
  CtxPtr ctx;
  {
    absl::MutexLock lock(&pool_mu_);
    if (!open_pool_.empty()) {
      ctx.reset(open_pool_.back());
      open_pool_.pop_back();
    }
  }
  if (!ctx) {
    ctx.reset(EVP_CIPHER_CTX_new());
    if (!ctx) return CryptoError("allocate a cipher context");
    if (EVP_DecryptInit_ex(ctx.get(), Aes256Gcm(), nullptr, nullptr, nullptr) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, kNonceBytes, nullptr) != 1) {
      return CryptoError("start AES-256-GCM");
    }
  }
  int len = 0;
  if (EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr,
                         reinterpret_cast<const unsigned char*>(key->key.data()), nonce) != 1) {
    return CryptoError("start AES-256-GCM");
  }
  if (EVP_DecryptUpdate(ctx.get(), nullptr, &len,
                        reinterpret_cast<const unsigned char*>(sealed.data()),
                        static_cast<int>(header_size)) != 1 ||
      EVP_DecryptUpdate(ctx.get(), nullptr, &len,
                        reinterpret_cast<const unsigned char*>(aad.data()),
                        static_cast<int>(aad.size())) != 1) {
    return CryptoError("add associated data");
  }
  std::string plain(cipher.size(), '\0');
  int written = 0;
  if (!cipher.empty()) {
    if (EVP_DecryptUpdate(ctx.get(), reinterpret_cast<unsigned char*>(plain.data()), &len,
                          reinterpret_cast<const unsigned char*>(cipher.data()),
                          static_cast<int>(cipher.size())) != 1) {
      Cleanse(plain);
      return CryptoError("decrypt");
    }
    written = len;
  }
  if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagBytes, tag.data()) != 1) {
    Cleanse(plain);
    return CryptoError("set the tag");
  }
  if (EVP_DecryptFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(plain.data()) + written,
                          &len) != 1) {
    Cleanse(plain);
    return absl::DataLossError(
        "sealed record does not open: changed bytes, wrong key or another record's");
  }
  {
    constexpr size_t kMaxPooled = 64;
    absl::MutexLock lock(&pool_mu_);
    if (open_pool_.size() < kMaxPooled) open_pool_.push_back(ctx.release());
  }
  return plain;
}

}  // namespace leyr
