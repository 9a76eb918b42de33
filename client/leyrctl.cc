// leyrctl: a command line for the Leyr credential broker.
//
//   leyrctl begin CONNECTION [--return_uri=URI] [--labels=k=v,...]
//   leyrctl wait [NAME] [--timeout=10m]
//   leyrctl get [NAME] | list | revoke [NAME]
//   leyrctl call METHOD PATH [--authorization=NAME] [--query=k=v,...] [--headers=k:v,...]
//                            [--data=FILE|-] [--include]
//
// NAME defaults to the authorization of the last `begin` (kept in
// $LEYRCTL_STATE_DIR, default ~/.local/state/leyrctl). Exit codes: see kUsage.

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "client/broker_client.h"
#include "server/common/config_util.h"
#include "server/common/status_util.h"

ABSL_FLAG(std::string, broker, "",
          "Broker gRPC target (default $LEYR_BROKER, else 127.0.0.1:50051).");
ABSL_FLAG(bool, json, false, "Print responses as JSON (for scripts).");
ABSL_FLAG(std::string, return_uri, "", "begin: where the browser goes after the callback.");
ABSL_FLAG(std::vector<std::string>, labels, {}, "begin: labels, k=v,k2=v2.");
ABSL_FLAG(absl::Duration, timeout, absl::Minutes(10), "wait: how long to wait; others: RPC deadline.");
ABSL_FLAG(std::string, authorization, "", "call: authorization name (default: the last begun).");
ABSL_FLAG(std::vector<std::string>, query, {}, "call: query parameters, k=v,k2=v2.");
ABSL_FLAG(std::vector<std::string>, headers, {}, "call: request headers, Name:value,...");
ABSL_FLAG(std::string, data, "", "call: request body from FILE, or - for standard input.");
ABSL_FLAG(bool, include, false, "call: print Leyr's status line and response headers.");
ABSL_FLAG(std::string, connection, "", "list: only this connection.");
ABSL_FLAG(std::string, tls_ca, "",
          "CA bundle (PEM) for the broker's certificate; turns TLS on (default plaintext).");
ABSL_FLAG(std::string, tls_cert, "", "Client certificate (PEM) for mTLS, with --tls_key.");
ABSL_FLAG(std::string, tls_key, "", "Client private key (PEM) for mTLS, with --tls_cert.");
ABSL_FLAG(std::string, tls_server_name, "",
          "Name the broker's certificate must carry when it differs from the target's host.");
ABSL_FLAG(std::string, token_file, "",
          "File holding a bearer token sent to the broker (needs --tls_ca). Never a flag value.");

namespace leyr {
namespace {

constexpr char kUsage[] = R"(leyrctl: command line for the Leyr credential broker

Commands:
  begin CONNECTION   start an authorization; prints the URL to open in the clinician's browser
  wait [NAME]        wait until the authorization leaves PENDING
  get [NAME]         show one authorization
  list               list authorizations (--connection to filter)
  revoke [NAME]      revoke an authorization
  call METHOD PATH   call Leyr through the broker, e.g. call GET /api/emrs/athenapractice/care-units

NAME defaults to the authorization of the last `begin`.
Exit codes: 0 ok, 1 other error, 2 usage, 3 not found, 4 invalid argument,
  5 failed precondition (not active, re-authorization required), 6 broker or Leyr unavailable
  or timed out, 7 Leyr answered HTTP >= 400, 8 wait ended still pending,
  9 wait ended denied or expired.
`leyrctl COMMAND --help` shows one command; `leyrctl --helpfull` every flag.)";

int ExitCodeFor(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kNotFound: return 3;
    case absl::StatusCode::kInvalidArgument: return 4;
    case absl::StatusCode::kFailedPrecondition: return 5;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded: return 6;
    default: return 1;
  }
}

int Fail(const absl::Status& status) {
  std::string reason = ReasonOf(status);
  std::fprintf(stderr, "leyrctl: %s: %s%s%s\n", absl::StatusCodeToString(status.code()).c_str(),
               std::string(status.message()).c_str(), reason.empty() ? "" : " [",
               reason.empty() ? "" : (reason + "]").c_str());
  return ExitCodeFor(status);
}

int Usage(const std::string& problem) {
  std::fprintf(stderr, "leyrctl: %s\n\n%s\n", problem.c_str(), kUsage);
  return 2;
}

std::string StateDir() {
  if (const char* dir = std::getenv("LEYRCTL_STATE_DIR"); dir && *dir) return dir;
  if (const char* dir = std::getenv("XDG_STATE_HOME"); dir && *dir) return absl::StrCat(dir, "/leyrctl");
  const char* home = std::getenv("HOME");
  return absl::StrCat(home ? home : ".", "/.local/state/leyrctl");
}

void RememberName(const std::string& name) {
  std::string dir = StateDir();
  // Not through a shell: the directory comes from the environment and may hold any character.
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) return;
  std::ofstream(dir + "/last-authorization") << name << "\n";
}

absl::StatusOr<std::string> NameOrLast(const std::vector<char*>& args, size_t index) {
  if (args.size() > index) return std::string(args[index]);
  auto text = ReadFile(StateDir() + "/last-authorization");
  if (!text.ok()) {
    return absl::InvalidArgumentError("no NAME given and no earlier `leyrctl begin` remembered");
  }
  return std::string(absl::StripAsciiWhitespace(*text));
}

std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  return out;
}

const char* StateText(broker::v1::Authorization::State state) {
  switch (state) {
    case broker::v1::Authorization::STATE_PENDING: return "pending";
    case broker::v1::Authorization::STATE_ACTIVE: return "active";
    case broker::v1::Authorization::STATE_DENIED: return "denied";
    case broker::v1::Authorization::STATE_EXPIRED: return "expired";
    case broker::v1::Authorization::STATE_REVOKED: return "revoked";
    case broker::v1::Authorization::STATE_REAUTHORIZATION_REQUIRED: return "reauthorization required";
    default: return "unknown";
  }
}

void PrintAuthorization(const broker::v1::Authorization& a) {
  if (absl::GetFlag(FLAGS_json)) {
    std::cout << ToJson(a);
    return;
  }
  std::cout << a.name() << "  " << StateText(a.state()) << "  connection=" << a.connection();
  if (a.activated()) std::cout << "  activated";
  if (!a.denial_error().empty()) std::cout << "  error=" << a.denial_error();
  std::cout << "\n";
}

// Splits "k=v" (or "k:v" for headers) into a field.
bool SplitPair(const std::string& text, char sep, broker::v1::HttpField* field) {
  size_t pos = text.find(sep);
  if (pos == std::string::npos || pos == 0) return false;
  field->set_name(text.substr(0, pos));
  field->set_value(std::string(absl::StripLeadingAsciiWhitespace(text.substr(pos + 1))));
  return true;
}

int Begin(BrokerClient& client, const std::vector<char*>& args) {
  if (args.size() != 3) return Usage("begin needs exactly one CONNECTION");
  broker::v1::BeginAuthorizationRequest request;
  request.set_connection(args[2]);
  request.set_return_uri(absl::GetFlag(FLAGS_return_uri));
  for (const std::string& label : absl::GetFlag(FLAGS_labels)) {
    broker::v1::HttpField kv;
    if (!SplitPair(label, '=', &kv)) return Usage("--labels takes k=v pairs");
    (*request.mutable_labels())[kv.name()] = kv.value();
  }
  auto response = client.Begin(request);
  if (!response.ok()) return Fail(response.status());
  RememberName(response->authorization().name());
  if (absl::GetFlag(FLAGS_json)) {
    std::cout << ToJson(*response);
    return 0;
  }
  std::cout << "authorization: " << response->authorization().name() << "\n"
            << "open this URL in the clinician's browser (it is single-use; do not share it):\n  "
            << response->authorize_uri() << "\n"
            << "then run: leyrctl wait\n";
  return 0;
}

int Wait(BrokerClient& client, const std::vector<char*>& args) {
  auto name = NameOrLast(args, 2);
  if (!name.ok()) return Usage(std::string(name.status().message()));
  const bool tty = isatty(STDERR_FILENO) && !absl::GetFlag(FLAGS_json);
  // On a terminal, wait in one-second long polls to show progress; otherwise in long polls of a
  // minute and silently.
  int ticks = 0;
  auto result = client.WaitUntilDone(
      *name, absl::GetFlag(FLAGS_timeout), tty ? absl::Seconds(1) : absl::Minutes(1),
      [&](absl::Duration waited) {
        if (!tty) return;
        static const char kSpin[] = "|/-\\";
        std::fprintf(stderr, "\rwaiting for the clinician to sign in %c %llds ", kSpin[ticks++ % 4],
                     static_cast<long long>(absl::ToInt64Seconds(waited)));
      });
  if (tty && ticks > 0) std::fprintf(stderr, "\r\033[K");
  if (!result.ok()) return Fail(result.status());
  PrintAuthorization(*result);
  switch (result->state()) {
    case broker::v1::Authorization::STATE_ACTIVE: return 0;
    case broker::v1::Authorization::STATE_PENDING: return 8;
    case broker::v1::Authorization::STATE_DENIED:
    case broker::v1::Authorization::STATE_EXPIRED: return 9;
    default: return 5;
  }
}

std::string PrettyBody(const std::string& body) {
  google::protobuf::Value value;
  google::protobuf::util::JsonParseOptions parse;
  if (body.empty() || !google::protobuf::util::JsonStringToMessage(body, &value, parse).ok()) {
    return body;
  }
  google::protobuf::util::JsonPrintOptions print;
  print.add_whitespace = true;
  std::string out;
  if (!google::protobuf::util::MessageToJsonString(value, &out, print).ok()) return body;
  return out;
}

int Call(BrokerClient& client, const std::vector<char*>& args) {
  if (args.size() != 4) return Usage("call needs METHOD and PATH");
  broker::v1::CallLeyrRequest request;
  std::string authorization = absl::GetFlag(FLAGS_authorization);
  if (authorization.empty()) {
    auto last = NameOrLast({}, 0);
    if (!last.ok()) return Usage("call needs --authorization (no earlier `leyrctl begin`)");
    authorization = *last;
  }
  request.set_authorization(authorization);
  request.set_method(absl::AsciiStrToUpper(args[2]));
  request.set_path(args[3]);
  for (const std::string& q : absl::GetFlag(FLAGS_query)) {
    if (!SplitPair(q, '=', request.add_query())) return Usage("--query takes k=v pairs");
  }
  for (const std::string& h : absl::GetFlag(FLAGS_headers)) {
    if (!SplitPair(h, ':', request.add_headers())) return Usage("--headers takes Name:value pairs");
  }
  const std::string data = absl::GetFlag(FLAGS_data);
  if (data == "-") {
    std::ostringstream in;
    in << std::cin.rdbuf();
    request.set_body(in.str());
  } else if (!data.empty()) {
    auto body = ReadFile(data);
    if (!body.ok()) return Fail(body.status());
    request.set_body(*body);
  }
  CallOptions options;
  options.timeout = std::min(absl::GetFlag(FLAGS_timeout), absl::Minutes(5));
  auto response = client.CallLeyr(request, options);
  if (!response.ok()) return Fail(response.status());
  if (absl::GetFlag(FLAGS_json)) {
    std::cout << ToJson(*response);
  } else {
    if (absl::GetFlag(FLAGS_include)) {
      std::cout << "HTTP " << response->status_code() << "\n";
      for (const auto& h : response->headers()) std::cout << h.name() << ": " << h.value() << "\n";
      std::cout << "\n";
    }
    std::cout << PrettyBody(response->body()) << "\n";
  }
  if (response->status_code() >= 400) {
    const auto& e = response->leyr_error();
    std::fprintf(stderr, "leyrctl: Leyr answered HTTP %d%s%s%s%s\n", response->status_code(),
                 e.code().empty() ? "" : " ", e.code().c_str(), e.detail().empty() ? "" : ": ",
                 e.detail().c_str());
    return 7;
  }
  return 0;
}

// Help for one command ("" = all), for `leyrctl [COMMAND] --help` and `leyrctl help [COMMAND]`.
int Help(const std::string& command) {
  static const std::map<std::string, std::string> kCommands = {
      {"begin", "leyrctl begin CONNECTION [--return_uri=URI] [--labels=k=v,...] [--json]\n"
                "  Starts an authorization and prints the URL to open in the clinician's browser."},
      {"wait", "leyrctl wait [NAME] [--timeout=10m] [--json]\n"
               "  Waits until the authorization leaves PENDING (progress shown on a terminal)."},
      {"get", "leyrctl get [NAME] [--json]\n  Shows one authorization."},
      {"list", "leyrctl list [--connection=NAME] [--json]\n  Lists authorizations, newest first."},
      {"revoke", "leyrctl revoke [NAME] [--json]\n  Revokes an authorization."},
      {"call", "leyrctl call METHOD PATH [--authorization=NAME] [--query=k=v,...]\n"
               "             [--headers=Name:value,...] [--data=FILE|-] [--include] [--json]\n"
               "  Calls Leyr through the broker; JSON bodies are pretty-printed."},
  };
  auto it = kCommands.find(command);
  if (it != kCommands.end()) {
    std::printf("%s\n\nCommon flags: --broker=HOST:PORT, --tls_ca, --tls_cert, --tls_key, "
                "--tls_server_name, --token_file. Every flag: leyrctl --helpfull\n",
                it->second.c_str());
  } else {
    std::printf("%s\n", kUsage);
  }
  return 0;
}

int Main(int argc, char** argv) {
  absl::SetProgramUsageMessage(kUsage);
  // --help (anywhere) and `help [COMMAND]` answer here with exit code 0; --helpfull lists flags.
  std::string first_command;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (first_command.empty() && a[0] != '-') first_command = a;
    if (a == "--help" || a == "-h") return Help(first_command);
  }
  if (first_command == "help") {
    for (int i = 1; i < argc; ++i) {
      if (std::string(argv[i]) != "help" && argv[i][0] != '-') return Help(argv[i]);
    }
    return Help("");
  }
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() < 2) return Usage("no command given");
  std::string target = absl::GetFlag(FLAGS_broker);
  if (target.empty()) {
    const char* env = std::getenv("LEYR_BROKER");
    target = env && *env ? env : "127.0.0.1:50051";
  }
  ClientTlsSettings tls;
  tls.ca_file = absl::GetFlag(FLAGS_tls_ca);
  tls.cert_file = absl::GetFlag(FLAGS_tls_cert);
  tls.key_file = absl::GetFlag(FLAGS_tls_key);
  tls.server_name = absl::GetFlag(FLAGS_tls_server_name);
  tls.token_file = absl::GetFlag(FLAGS_token_file);
  if (tls.cert_file.empty() != tls.key_file.empty()) {
    return Usage("--tls_cert and --tls_key go together");
  }
  auto connected = BrokerClient::Connect(target, tls);
  if (!connected.ok()) return Usage(std::string(connected.status().message()));
  std::unique_ptr<BrokerClient> client = std::move(*connected);
  CallOptions options;
  options.timeout = std::min(absl::GetFlag(FLAGS_timeout), absl::Minutes(1));
  const std::string command = args[1];
  if (command == "begin") return Begin(*client, args);
  if (command == "wait") return Wait(*client, args);
  if (command == "call") return Call(*client, args);
  if (command == "get" || command == "revoke") {
    auto name = NameOrLast(args, 2);
    if (!name.ok()) return Usage(std::string(name.status().message()));
    auto result = command == "get" ? client->Get(*name, options) : client->Revoke(*name, options);
    if (!result.ok()) return Fail(result.status());
    PrintAuthorization(*result);
    return 0;
  }
  if (command == "list") {
    broker::v1::ListAuthorizationsRequest request;
    request.set_connection(absl::GetFlag(FLAGS_connection));
    do {
      auto page = client->List(request, options);
      if (!page.ok()) return Fail(page.status());
      for (const auto& a : page->authorizations()) PrintAuthorization(a);
      request.set_page_token(page->next_page_token());
    } while (!request.page_token().empty());
    return 0;
  }
  return Usage(absl::StrCat("unknown command '", command, "'"));
}

}  // namespace
}  // namespace leyr

int main(int argc, char** argv) { return leyr::Main(argc, argv); }
