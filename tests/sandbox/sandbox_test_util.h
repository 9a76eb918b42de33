#ifndef LEYR_TESTS_SANDBOX_SANDBOX_TEST_UTIL_H_
#define LEYR_TESTS_SANDBOX_SANDBOX_TEST_UTIL_H_

// Helpers shared by the sandbox tests: reading the consent page and JSON answers.

#include <cstring>
#include <map>
#include <regex>
#include <string>

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

namespace leyr::sandbox::testing {

// Parses a JSON document into a Value (null Value when it is not JSON).
inline google::protobuf::Value ParseJson(const std::string& text) {
  google::protobuf::Value value;
  if (!google::protobuf::util::JsonStringToMessage(text, &value).ok()) value.Clear();
  return value;
}

inline const google::protobuf::Value& Field(const google::protobuf::Value& object,
                                            const std::string& name) {
  static const auto* empty = new google::protobuf::Value();
  const auto& fields = object.struct_value().fields();
  auto it = fields.find(name);
  return it == fields.end() ? *empty : it->second;
}

// One form of the consent page: its action and hidden fields (values still HTML-escaped).
struct Form {
  bool found = false;
  std::string method;
  std::string action;
  std::map<std::string, std::string> fields;
};

inline std::string HtmlUnescape(std::string s) {
  const std::pair<const char*, const char*> entities[] = {
      {"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""}, {"&#39;", "'"}, {"&amp;", "&"}};
  for (const auto& [from, to] : entities) {
    for (size_t pos = 0; (pos = s.find(from, pos)) != std::string::npos; pos += strlen(to)) {
      s.replace(pos, strlen(from), to);
    }
  }
  return s;
}

// Reads <form id="ID" method="..." action="..."> ... </form> with its hidden inputs, unescaped.
inline Form ReadForm(const std::string& html, const std::string& id) {
  Form form;
  std::smatch m;
  std::regex open("<form id=\"" + id + "\" method=\"([^\"]*)\" action=\"([^\"]*)\">");
  if (!std::regex_search(html, m, open)) return form;
  form.found = true;
  form.method = m[1];
  form.action = HtmlUnescape(m[2]);
  std::string rest = m.suffix();
  rest = rest.substr(0, rest.find("</form>"));
  std::regex input("<input type=\"hidden\" name=\"([^\"]*)\" value=\"([^\"]*)\">");
  for (auto it = std::sregex_iterator(rest.begin(), rest.end(), input);
       it != std::sregex_iterator(); ++it) {
    form.fields[HtmlUnescape((*it)[1])] = HtmlUnescape((*it)[2]);
  }
  return form;
}

}  // namespace leyr::sandbox::testing

#endif  // LEYR_TESTS_SANDBOX_SANDBOX_TEST_UTIL_H_
