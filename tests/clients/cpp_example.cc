// The whole authorization flow from C++ with the client library (client/broker_client.h), the
// same steps as client/python, client/node and client/go: begin -> open the authorize page (as
// JSON) -> POST its approve form to the shim -> wait -> CallLeyr GET care-units; then reads the
// ErrorInfo reason of a failed call. Exits non-zero on any failure.
// Usage: LEYR_BROKER=127.0.0.1:50051 cpp-example

#include <curl/curl.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <cstdlib>
#include <iostream>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "client/broker_client.h"
#include "server/common/status_util.h"
#include "server/common/url.h"

namespace {

using ::leyr::broker::v1::Authorization;

size_t Append(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

// One HTTP request without following redirects; returns the status and fills `body`.
absl::StatusOr<long> Http(const std::string& url, const std::string& header,
                          const std::string* post_body, std::string* body) {
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return absl::InternalError("curl_easy_init");
  curl_slist* headers = curl_slist_append(nullptr, header.c_str());
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Append);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, body);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 15L);
  if (post_body != nullptr) curl_easy_setopt(curl, CURLOPT_POSTFIELDS, post_body->c_str());
  CURLcode rc = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  if (rc != CURLE_OK) return absl::UnavailableError(curl_easy_strerror(rc));
  return status;
}

// Does what the clinician's browser does: loads the consent page and submits "approve".
absl::StatusOr<long> ApproveInBrowser(const std::string& authorize_uri) {
  std::string json;
  auto status = Http(authorize_uri, "Accept: application/json", nullptr, &json);
  if (!status.ok()) return status.status();
  google::protobuf::Struct page;
  if (!google::protobuf::util::JsonStringToMessage(json, &page).ok() ||
      !page.fields().contains("approve")) {
    return absl::InternalError(absl::StrCat("authorize page: HTTP ", *status));
  }
  leyr::FormFields form;
  for (const auto& [name, value] : page.fields().at("approve").struct_value().fields()) {
    form.emplace_back(name, value.string_value());
  }
  std::string post = leyr::EncodeQuery(form), ignored;
  auto answer = Http(page.fields().at("action").string_value(),
                     "Content-Type: application/x-www-form-urlencoded", &post, &ignored);
  if (answer.ok() && *answer != 200 && *answer != 303) {
    return absl::InternalError(absl::StrCat("the shim answered HTTP ", *answer));
  }
  return answer;
}

int Run(const std::string& target, const std::string& connection) {
  auto broker = leyr::BrokerClient::ConnectInsecure(target);

  leyr::broker::v1::BeginAuthorizationRequest begin;
  begin.set_connection(connection);
  auto begun = broker->Begin(begin);
  if (!begun.ok()) return std::cerr << "begin: " << begun.status() << "\n", 1;
  const std::string name = begun->authorization().name();
  std::cout << "begin: " << name << "\n";

  auto shim = ApproveInBrowser(begun->authorize_uri());
  if (!shim.ok()) return std::cerr << "approve: " << shim.status() << "\n", 1;
  std::cout << "shim answered HTTP " << *shim << "\n";

  // Long poll in 30-second slices until the authorization leaves PENDING.
  Authorization authorization = begun->authorization();
  while (authorization.state() == Authorization::STATE_PENDING) {
    auto waited = broker->Wait(name, absl::Seconds(30));
    if (!waited.ok()) return std::cerr << "wait: " << waited.status() << "\n", 1;
    authorization = *waited;
  }
  std::cout << "wait: " << Authorization::State_Name(authorization.state()) << "\n";
  if (authorization.state() != Authorization::STATE_ACTIVE) return 1;

  leyr::broker::v1::CallLeyrRequest call;
  call.set_authorization(name);
  call.set_method("GET");
  call.set_path("/api/emrs/athenapractice/care-units");
  auto response = broker->CallLeyr(call);
  if (!response.ok()) return std::cerr << "CallLeyr: " << response.status() << "\n", 1;
  std::cout << "CallLeyr: HTTP " << response->status_code() << "\n"
            << response->body().substr(0, 400) << "\n";
  if (response->status_code() != 200) return 1;

  // Errors: match on the ErrorInfo reason, not on the message.
  auto missing = broker->Get("authorizations/AAAAAAAAAAAAAAAAAAAAAA");
  std::cout << "error: " << absl::StatusCodeToString(missing.status().code())
            << " reason=" << leyr::ReasonOf(missing.status()) << "\n";
  if (leyr::ReasonOf(missing.status()) != "AUTHORIZATION_NOT_FOUND") return 1;
  std::cout << "c++ example: OK\n";
  return 0;
}

}  // namespace

int main() {
  const char* target = std::getenv("LEYR_BROKER");
  const char* connection = std::getenv("LEYR_CONNECTION");
  curl_global_init(CURL_GLOBAL_DEFAULT);
  int rc = Run(target ? target : "127.0.0.1:50051", connection ? connection : "athena-sandbox");
  curl_global_cleanup();
  return rc;
}
