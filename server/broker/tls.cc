#include "server/broker/tls.h"

#include <grpc/grpc_security_constants.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "absl/strings/str_cat.h"
#include "server/common/config_util.h"

namespace leyr {
namespace {

struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Deleter {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyDeleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};

std::unique_ptr<X509, X509Deleter> ParseCert(absl::string_view pem) {
  std::unique_ptr<BIO, BioDeleter> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return nullptr;
  return std::unique_ptr<X509, X509Deleter>(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

// Reads a PEM file; "" after adding a problem.
std::string ReadPem(const std::string& key, const std::string& path,
                    std::vector<std::string>& problems) {
  auto content = ReadFile(path);
  if (!content.ok() || content->empty()) {
    problems.push_back(absl::StrCat(key, ": cannot be read or is empty ('", path, "')"));
    return "";
  }
  return std::move(*content);
}

// The key matches the certificate (both PEM). Never prints the key.
bool KeyMatchesCert(const std::string& cert_pem, const std::string& key_pem) {
  auto cert = ParseCert(cert_pem);
  if (!cert) return false;
  std::unique_ptr<BIO, BioDeleter> bio(
      BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())));
  std::unique_ptr<EVP_PKEY, PkeyDeleter> key(
      PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  return key && X509_check_private_key(cert.get(), key.get()) == 1;
}

class BearerPlugin final : public grpc::MetadataCredentialsPlugin {
 public:
  explicit BearerPlugin(std::string token) : value_(absl::StrCat("Bearer ", token)) {}
  ~BearerPlugin() override { OPENSSL_cleanse(value_.data(), value_.size()); }
  bool IsBlocking() const override { return false; }
  const char* GetType() const override { return "leyr-bearer"; }
  grpc::Status GetMetadata(grpc::string_ref, grpc::string_ref, const grpc::AuthContext&,
                           std::multimap<grpc::string, grpc::string>* metadata) override {
    metadata->emplace("authorization", value_);
    return grpc::Status::OK;
  }
  // Never describes the token.
  grpc::string DebugString() override { return "leyr-bearer"; }

 private:
  std::string value_;
};

}  // namespace

ServerTlsSettings ValidateServerTls(const config::ServerTls& config, absl::string_view key,
                                    bool allow_client_auth, std::vector<std::string>& problems) {
  ServerTlsSettings s;
  const std::string k(key);
  if (config.cert_file().empty() && config.key_file().empty() && config.client_ca_file().empty() &&
      config.client_auth().empty()) {
    return s;
  }
  if (config.cert_file().empty()) problems.push_back(k + ".cert_file: required");
  if (config.key_file().empty()) problems.push_back(k + ".key_file: required");
  if (!config.cert_file().empty() && !config.key_file().empty()) {
    std::string cert = ReadPem(k + ".cert_file", config.cert_file(), problems);
    std::string pkey = ReadPem(k + ".key_file", config.key_file(), problems);
    if (!cert.empty() && !pkey.empty() && !KeyMatchesCert(cert, pkey)) {
      problems.push_back(k + ".key_file: is not a PEM private key for the certificate in cert_file");
    }
    OPENSSL_cleanse(pkey.data(), pkey.size());
  }
  s.cert_file = config.cert_file();
  s.key_file = config.key_file();
  if (!allow_client_auth && (!config.client_ca_file().empty() || !config.client_auth().empty())) {
    problems.push_back(k + ".client_ca_file: client certificates are not supported on this port");
    return s;
  }
  s.client_ca_file = config.client_ca_file();
  if (!s.client_ca_file.empty()) {
    std::string ca = ReadPem(k + ".client_ca_file", s.client_ca_file, problems);
    if (!ca.empty() && !ParseCert(ca)) {
      problems.push_back(k + ".client_ca_file: holds no PEM certificate");
    }
  }
  if (config.client_auth().empty()) {
    s.client_auth = s.client_ca_file.empty() ? ServerTlsSettings::ClientAuth::kNone
                                             : ServerTlsSettings::ClientAuth::kRequire;
  } else if (config.client_auth() == "require") {
    s.client_auth = ServerTlsSettings::ClientAuth::kRequire;
  } else if (config.client_auth() == "request") {
    s.client_auth = ServerTlsSettings::ClientAuth::kRequest;
  } else if (config.client_auth() == "none") {
    s.client_auth = ServerTlsSettings::ClientAuth::kNone;
  } else {
    problems.push_back(k + ".client_auth: must be \"require\", \"request\" or \"none\"");
  }
  if (s.client_auth != ServerTlsSettings::ClientAuth::kNone && s.client_ca_file.empty()) {
    problems.push_back(k + ".client_ca_file: required when client_auth is request or require");
  }
  s.refresh_interval = DurationOr(config.refresh_interval(), absl::Seconds(60));
  if (s.refresh_interval < absl::Seconds(1) || s.refresh_interval > absl::Hours(24)) {
    problems.push_back(k + ".refresh_interval: must be between 1s and 86400s");
  }
  return s;
}

std::shared_ptr<grpc::ServerCredentials> MakeServerCredentials(const ServerTlsSettings& tls) {
  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      tls.key_file, tls.cert_file, tls.client_ca_file,
      static_cast<unsigned int>(absl::ToInt64Seconds(tls.refresh_interval)));
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_identity_key_cert_pairs();
  switch (tls.client_auth) {
    case ServerTlsSettings::ClientAuth::kNone:
      options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
      break;
    case ServerTlsSettings::ClientAuth::kRequest:
      options.watch_root_certs();
      options.set_cert_request_type(GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
      break;
    case ServerTlsSettings::ClientAuth::kRequire:
      options.watch_root_certs();
      options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
      break;
  }
  return grpc::experimental::TlsServerCredentials(options);
}

ClientTlsSettings ValidateClientTls(const config::ClientTls& config, absl::string_view key,
                                    std::vector<std::string>& problems) {
  const std::string k(key);
  ClientTlsSettings s;
  s.ca_file = config.ca_file();
  s.cert_file = config.cert_file();
  s.key_file = config.key_file();
  s.token_file = config.token_file();
  s.server_name = config.server_name();
  if (s.cert_file.empty() != s.key_file.empty()) {
    problems.push_back(k + ".cert_file: cert_file and key_file go together");
  }
  if (s.ca_file.empty() && (!s.cert_file.empty() || !s.token_file.empty())) {
    problems.push_back(k + ".ca_file: required for a client certificate or a token");
  }
  return s;
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> CreateBrokerChannel(const std::string& target,
                                                                  const ClientTlsSettings& tls,
                                                                  bool local_subchannels) {
  grpc::ChannelArguments args;
  if (local_subchannels) args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  if (tls.ca_file.empty()) {
    if (!tls.token_file.empty() || !tls.cert_file.empty()) {
      return absl::InvalidArgumentError("a token or client certificate needs TLS: give a CA file");
    }
    return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
  }
  grpc::SslCredentialsOptions ssl;
  auto ca = ReadFile(tls.ca_file);
  if (!ca.ok()) return ca.status();
  ssl.pem_root_certs = std::move(*ca);
  if (!tls.cert_file.empty() || !tls.key_file.empty()) {
    auto cert = ReadFile(tls.cert_file);
    if (!cert.ok()) return cert.status();
    auto key = ReadFile(tls.key_file);
    if (!key.ok()) return key.status();
    ssl.pem_cert_chain = std::move(*cert);
    ssl.pem_private_key = std::move(*key);
  }
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::SslCredentials(ssl);
  OPENSSL_cleanse(ssl.pem_private_key.data(), ssl.pem_private_key.size());
  if (!tls.token_file.empty()) {
    auto token = ReadSecretFile("token_file", tls.token_file);
    if (!token.ok()) return token.status();
    credentials = grpc::CompositeChannelCredentials(credentials, BearerTokenCredentials(*token));
    OPENSSL_cleanse(token->data(), token->size());
  }
  if (!tls.server_name.empty()) args.SetSslTargetNameOverride(tls.server_name);
  return grpc::CreateCustomChannel(target, credentials, args);
}

std::shared_ptr<grpc::CallCredentials> BearerTokenCredentials(const std::string& token) {
  return grpc::MetadataCredentialsFromPlugin(std::make_unique<BearerPlugin>(token));
}

absl::StatusOr<std::string> CertificateSerial(absl::string_view pem) {
  auto cert = ParseCert(pem);
  if (!cert) return absl::InvalidArgumentError("not a PEM certificate");
  BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get_serialNumber(cert.get()), nullptr);
  if (bn == nullptr) return absl::InternalError("cannot read the serial number");
  char* hex = BN_bn2hex(bn);
  std::string out(hex);
  OPENSSL_free(hex);
  BN_free(bn);
  return out;
}

}  // namespace leyr
