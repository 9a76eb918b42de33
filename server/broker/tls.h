#ifndef LEYR_SERVER_BROKER_TLS_H_
#define LEYR_SERVER_BROKER_TLS_H_

#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "config/config.pb.h"

namespace leyr {

// TLS of a server port, validated (config::ServerTls).
struct ServerTlsSettings {
  enum class ClientAuth { kNone, kRequest, kRequire };
  std::string cert_file;
  std::string key_file;
  std::string client_ca_file;  // "" = no client certificates
  ClientAuth client_auth = ClientAuth::kNone;
  absl::Duration refresh_interval = absl::Seconds(60);
  bool enabled() const { return !cert_file.empty(); }
};

// Validates `config` (keys prefixed with `key`, as "tls.cert_file: ..."), appending problems.
// Checks that the files can be read now and that the key matches the certificate. An unset
// message gives a disabled ServerTlsSettings. `allow_client_auth` is false for the shim's HTTP
// port (no client certificates there).
ServerTlsSettings ValidateServerTls(const config::ServerTls& config, absl::string_view key,
                                    bool allow_client_auth, std::vector<std::string>& problems);

// gRPC server credentials that re-read the certificate, key and client CA every
// refresh_interval (grpc::experimental::FileWatcherCertificateProvider): new connections get
// the new certificate, open ones keep theirs. Client certificates are always verified against
// client_ca_file when requested.
std::shared_ptr<grpc::ServerCredentials> MakeServerCredentials(const ServerTlsSettings& tls);

// A client's channel to the broker (config::ClientTls, or leyrctl's flags).
struct ClientTlsSettings {
  std::string ca_file;    // "" = plaintext
  std::string cert_file;  // mTLS, with key_file
  std::string key_file;
  std::string token_file;   // bearer token, sent on every call
  std::string server_name;  // expected name in the broker's certificate, when not the target's
};

// Validates `config` (keys prefixed with `key`), appending problems.
ClientTlsSettings ValidateClientTls(const config::ClientTls& config, absl::string_view key,
                                    std::vector<std::string>& problems);

// A channel to `target` with `tls`: plaintext when ca_file is empty (then a token is refused:
// it would travel in clear). Reads the files now; errors name the file, never its content.
// `local_subchannels` keeps the channel's connection to itself (so a new channel makes a new
// TLS handshake; tests of certificate reload need that).
absl::StatusOr<std::shared_ptr<grpc::Channel>> CreateBrokerChannel(
    const std::string& target, const ClientTlsSettings& tls, bool local_subchannels = false);

// Per-call credentials that add "authorization: Bearer <token>".
std::shared_ptr<grpc::CallCredentials> BearerTokenCredentials(const std::string& token);

// The certificate's serial number as upper-case hex (for logs and tests), or an error.
absl::StatusOr<std::string> CertificateSerial(absl::string_view pem);

}  // namespace leyr

#endif  // LEYR_SERVER_BROKER_TLS_H_
