#ifndef LEYR_TESTS_TESTING_HTTP_CLIENT_H_
#define LEYR_TESTS_TESTING_HTTP_CLIENT_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace leyr::testing {

struct HttpResult {
  long status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names in lower case
  std::string body;
  // First value of header `name` (lower case), or "".
  std::string Header(const std::string& name) const;
};

// One blocking HTTP request with libcurl (never follows redirects), for tests.
absl::StatusOr<HttpResult> HttpRequest(const std::string& method, const std::string& url,
                                       const std::vector<std::string>& headers = {},
                                       const std::string& body = "");

}  // namespace leyr::testing

#endif  // LEYR_TESTS_TESTING_HTTP_CLIENT_H_
