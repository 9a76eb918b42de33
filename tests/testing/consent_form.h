#ifndef LEYR_TESTS_TESTING_CONSENT_FORM_H_
#define LEYR_TESTS_TESTING_CONSENT_FORM_H_

// The sandbox's consent page as a browser reads it: a form's action and hidden inputs.

#include <string>

#include "absl/status/statusor.h"
#include "server/common/url.h"

namespace leyr::testing {

// A form as a browser would submit it.
struct Form {
  std::string action;
  FormFields fields;
  // The first value of `name`, or "".
  std::string Field(const std::string& name) const;
};

// Reads <form id="ID" method="post" action="..."> and its hidden inputs (HTML entities
// unescaped); NOT_FOUND when the page has no such form.
absl::StatusOr<Form> ParseForm(const std::string& html, const std::string& id);

}  // namespace leyr::testing

#endif  // LEYR_TESTS_TESTING_CONSENT_FORM_H_
