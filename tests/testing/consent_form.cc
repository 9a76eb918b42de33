#include "tests/testing/consent_form.h"

#include <regex>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace leyr::testing {
namespace {

std::string HtmlUnescape(const std::string& s) {
  return absl::StrReplaceAll(s, {{"&quot;", "\""}, {"&#39;", "'"}, {"&lt;", "<"}, {"&gt;", ">"},
                                 {"&amp;", "&"}});
}

}  // namespace

std::string Form::Field(const std::string& name) const {
  for (const auto& [k, v] : fields) {
    if (k == name) return v;
  }
  return "";
}

absl::StatusOr<Form> ParseForm(const std::string& html, const std::string& id) {
  std::smatch m;
  std::regex form_re("<form id=\"" + id +
                     "\" method=\"post\" action=\"([^\"]*)\">([\\s\\S]*?)</form>");
  if (!std::regex_search(html, m, form_re)) {
    return absl::NotFoundError(absl::StrCat("no form '", id, "' on the page"));
  }
  Form form;
  form.action = HtmlUnescape(m[1]);
  std::string inner = m[2];
  std::regex input_re("<input type=\"hidden\" name=\"([^\"]*)\" value=\"([^\"]*)\">");
  for (auto it = std::sregex_iterator(inner.begin(), inner.end(), input_re);
       it != std::sregex_iterator(); ++it) {
    form.fields.emplace_back(HtmlUnescape((*it)[1]), HtmlUnescape((*it)[2]));
  }
  return form;
}

}  // namespace leyr::testing
