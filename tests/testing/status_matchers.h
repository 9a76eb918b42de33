#ifndef LEYR_TESTS_TESTING_STATUS_MATCHERS_H_
#define LEYR_TESTS_TESTING_STATUS_MATCHERS_H_

// IsOk() and StatusIs(code[, reason]) for absl::Status and absl::StatusOr<T>, which Debian 12's
// Abseil does not ship.

#include <string>

#include <gmock/gmock.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/common/status_util.h"

namespace leyr::testing {

inline const absl::Status& GetStatus(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& s) {
  return s.status();
}

MATCHER(IsOk, "is OK") {
  const absl::Status& s = GetStatus(arg);
  if (!s.ok()) *result_listener << "status is " << s.ToString();
  return s.ok();
}

MATCHER_P(StatusIs, code, "has status code " + std::string(absl::StatusCodeToString(code))) {
  const absl::Status& s = GetStatus(arg);
  *result_listener << "status is " << s.ToString();
  return s.code() == code;
}

MATCHER_P2(StatusIs, code, reason,
           "has status code " + std::string(absl::StatusCodeToString(code)) + " and reason " +
               std::string(reason)) {
  const absl::Status& s = GetStatus(arg);
  *result_listener << "status is " << s.ToString() << " reason " << ::leyr::ReasonOf(s);
  return s.code() == code && ::leyr::ReasonOf(s) == std::string(reason);
}

}  // namespace leyr::testing

#endif  // LEYR_TESTS_TESTING_STATUS_MATCHERS_H_
