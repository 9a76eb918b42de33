#include "tests/testing/stack.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/common/status_util.h"

namespace leyr::testing {
namespace {

// "," + extra when extra is not empty: appended as further members of a JSON object.
std::string More(const std::string& extra) { return extra.empty() ? "" : "," + extra; }

std::vector<std::string> With(std::vector<std::string> argv, const std::vector<std::string>& more) {
  argv.insert(argv.end(), more.begin(), more.end());
  return argv;
}

}  // namespace

absl::StatusOr<std::string> Stack::AddressOn(Process& process, const std::string& msg) {
  const std::string marker = absl::StrCat("\"msg\":\"", msg, "\"");
  LEYR_ASSIGN_OR_RETURN(std::string line, process.WaitForLine([&marker](const std::string& l) {
    return absl::StrContains(l, marker);
  }));
  const std::string key = "\"address\":\"";
  size_t start = line.find(key);
  if (start == std::string::npos) return absl::InternalError("address missing on " + msg);
  start += key.size();
  return line.substr(start, line.find('"', start) - start);
}

absl::StatusOr<std::unique_ptr<Stack>> Stack::Start(const StackOptions& options) {
  std::unique_ptr<Stack> stack(new Stack());
  const TempDir& dir = stack->dir_;
  const std::string secret_file =
      dir.WriteFile("leyr-secret", std::string(kStackLeyrSecret) + "\n");
  const std::string socket = dir.path() + "/broker0.sock";

  // The shim first: the brokers' configuration needs its URL; it reaches broker 0 over a Unix
  // socket whose path is known before that broker starts.
  const std::string shim_config = dir.WriteFile(
      "shim.json", absl::StrCat(R"({"listen":"127.0.0.1:0","broker_target":"unix:)", socket,
                                R"(","callback_path":"/oauth/callback")", More(options.shim_json),
                                "}"));
  LEYR_ASSIGN_OR_RETURN(stack->shim_,
                        Process::Start(With({LEYR_SHIM_BIN, "--config=" + shim_config},
                                            options.shim_flags)));
  LEYR_ASSIGN_OR_RETURN(stack->shim_address_, stack->shim_->WaitForListening());
  stack->redirect_uri_ = absl::StrCat("http://", stack->shim_address_, "/oauth/callback");

  const std::string sandbox_config = dir.WriteFile(
      "sandbox.json",
      absl::StrCat(R"({"listen":"127.0.0.1:0","clients":[{"client_id":"athena-client",)",
                   R"("redirect_uri":")", stack->redirect_uri_,
                   R"("}],"leyr_client_id":"leyr-client","leyr_client_secret_file":")",
                   secret_file, "\"", More(options.sandbox_json), "}"));
  LEYR_ASSIGN_OR_RETURN(stack->sandbox_,
                        Process::Start({LEYR_SANDBOX_BIN, "--config=" + sandbox_config}));
  LEYR_ASSIGN_OR_RETURN(std::string sandbox_address, stack->sandbox_->WaitForListening());
  stack->sandbox_url_ = absl::StrCat("http://", sandbox_address);

  for (int i = 0; i < options.brokers; ++i) {
    const std::string listen =
        i == 0 ? absl::StrCat(R"("unix:)", socket, R"(","127.0.0.1:0")") : R"("127.0.0.1:0")";
    const std::string broker_config = dir.WriteFile(
        absl::StrCat("broker", i, ".json"),
        absl::StrCat(R"({"listen":[)", listen, R"(],"plaintext_development":true,)",
                     R"("leyr":{"base_uri":")", stack->sandbox_url_,
                     R"(","client_id":"leyr-client","client_secret_file":")", secret_file,
                     R"("},"connections":[{"name":"athena-sandbox","emr":"athenapractice",)",
                     R"("base_uri":")", stack->sandbox_url_,
                     R"(","client_id":"athena-client","redirect_uri":")", stack->redirect_uri_,
                     R"("}],"return_uri_origins":[")", kStackReturnOrigin, "\"]",
                     More(options.broker_json), "}"));
    LEYR_ASSIGN_OR_RETURN(auto broker,
                          Process::Start(With({LEYR_BROKER_BIN, "--config=" + broker_config},
                                              options.broker_flags)));
    // Broker 0's first "listening" line is the Unix socket; the TCP one has "127.0.0.1:".
    LEYR_ASSIGN_OR_RETURN(std::string line, broker->WaitForLine([](const std::string& l) {
      return absl::StrContains(l, "\"msg\":\"listening\"") && absl::StrContains(l, "127.0.0.1:");
    }));
    const std::string key = "\"address\":\"";
    size_t start = line.find(key) + key.size();
    stack->broker_addresses_.push_back(line.substr(start, line.find('"', start) - start));
    stack->brokers_.push_back(std::move(broker));
  }
  return stack;
}

absl::StatusOr<broker::v1::BeginAuthorizationResponse> Stack::Begin(BrokerClient& client,
                                                                    const CallOptions& options) {
  broker::v1::BeginAuthorizationRequest request;
  request.set_connection("athena-sandbox");
  request.set_return_uri(absl::StrCat(kStackReturnOrigin, "/done"));
  return client.Begin(request, options);
}

absl::StatusOr<Form> Stack::OpenConsentPage(const std::string& authorize_uri,
                                            const std::string& form_id) {
  LEYR_ASSIGN_OR_RETURN(HttpResult page, HttpRequest("GET", authorize_uri));
  if (page.status != 200) {
    return absl::InternalError(absl::StrCat("consent page answered ", page.status));
  }
  LEYR_ASSIGN_OR_RETURN(Form form, ParseForm(page.body, form_id));
  for (const char* field : {"code", "state", "id_token"}) {
    if (!form.Field(field).empty()) secrets_.insert(form.Field(field));
  }
  return form;
}

absl::StatusOr<HttpResult> Stack::Submit(const Form& form) {
  return HttpRequest("POST", form.action, {"Content-Type: application/x-www-form-urlencoded"},
                     EncodeQuery(form.fields));
}

absl::StatusOr<std::string> Stack::Authorize(BrokerClient& client) {
  LEYR_ASSIGN_OR_RETURN(auto begun, Begin(client));
  LEYR_ASSIGN_OR_RETURN(Form form, OpenConsentPage(begun.authorize_uri()));
  LEYR_ASSIGN_OR_RETURN(HttpResult result, Submit(form));
  if (result.status != 303) {
    return absl::InternalError(absl::StrCat("the shim answered ", result.status));
  }
  return begun.authorization().name();
}

broker::v1::CallLeyrRequest CareUnitsRequest(const std::string& name) {
  broker::v1::CallLeyrRequest request;
  request.set_authorization(name);
  request.set_method("GET");
  request.set_path("/api/emrs/athenapractice/care-units");
  return request;
}

}  // namespace leyr::testing
