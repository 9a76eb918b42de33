#ifndef LEYR_TESTS_TESTING_HTTP_CLIENT_H_
#define LEYR_TESTS_TESTING_HTTP_CLIENT_H_

#include <curl/curl.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace leyr::testing {

// One HTTP exchange with libcurl's easy API, for tests.
struct CurlResult {
  CURLcode code = CURLE_OK;  // the transfer's outcome
  long status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names in lower case
  std::string body;

  // First value of header `name` (lower case), or "".
  std::string Header(const std::string& name) const;
  int HeaderCount(const std::string& name) const;
};
using HttpResult = CurlResult;

// Never follows redirects. `body` is sent when non-null; `headers` are full header lines
// ("Content-Type: x"); "Expect:" is always suppressed. HEAD sends no body and reads none.
CurlResult Fetch(const std::string& method, const std::string& url, const std::string* body,
                 std::vector<std::string> headers = {});

// Fetch, with a failed transfer as an error status. A body is sent for POST, PUT and PATCH.
absl::StatusOr<HttpResult> HttpRequest(const std::string& method, const std::string& url,
                                       const std::vector<std::string>& headers = {},
                                       const std::string& body = "");

}  // namespace leyr::testing

#endif  // LEYR_TESTS_TESTING_HTTP_CLIENT_H_
