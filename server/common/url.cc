#include "server/common/url.h"

#include <curl/curl.h>

#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace leyr {
namespace {

bool IsUnreserved(unsigned char c) {
  return absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

struct CurlUrlDeleter {
  void operator()(CURLU* u) const { curl_url_cleanup(u); }
};
using CurlUrlPtr = std::unique_ptr<CURLU, CurlUrlDeleter>;

// Reads one part of a parsed URL; "" when the part is absent.
std::string GetPart(CURLU* url, CURLUPart part, unsigned int flags = 0) {
  char* value = nullptr;
  if (curl_url_get(url, part, &value, flags) != CURLUE_OK || value == nullptr) return "";
  std::string out(value);
  curl_free(value);
  return out;
}

}  // namespace

std::string PercentEncode(absl::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size() * 3);
  for (unsigned char c : text) {
    if (IsUnreserved(c)) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    }
  }
  return out;
}

absl::StatusOr<std::string> PercentDecode(absl::string_view text, bool plus_as_space) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '%') {
      if (i + 2 >= text.size()) {
        return absl::InvalidArgumentError("truncated percent escape");
      }
      int hi = HexValue(text[i + 1]);
      int lo = HexValue(text[i + 2]);
      if (hi < 0 || lo < 0) return absl::InvalidArgumentError("malformed percent escape");
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (c == '+' && plus_as_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

absl::StatusOr<FormFields> ParseFormUrlEncoded(absl::string_view body) {
  FormFields fields;
  if (body.empty()) return fields;
  for (absl::string_view pair : absl::StrSplit(body, '&')) {
    if (pair.empty()) continue;  // "a=1&&b=2" is tolerated, as browsers never send it anyway
    size_t eq = pair.find('=');
    absl::string_view raw_name = pair.substr(0, eq);
    absl::string_view raw_value =
        eq == absl::string_view::npos ? absl::string_view() : pair.substr(eq + 1);
    auto name = PercentDecode(raw_name, /*plus_as_space=*/true);
    if (!name.ok()) return absl::InvalidArgumentError("form field name is not valid form encoding");
    auto value = PercentDecode(raw_value, /*plus_as_space=*/true);
    if (!value.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("form field '", PercentEncode(*name), "' is not valid form encoding"));
    }
    if (name->empty()) return absl::InvalidArgumentError("form field with an empty name");
    fields.emplace_back(std::move(*name), std::move(*value));
  }
  return fields;
}

std::string EncodeQuery(const FormFields& fields) {
  std::string out;
  for (const auto& [name, value] : fields) {
    if (!out.empty()) out.push_back('&');
    absl::StrAppend(&out, PercentEncode(name), "=", PercentEncode(value));
  }
  return out;
}

absl::StatusOr<std::string> CanonicalOrigin(absl::string_view uri) {
  if (uri.empty()) return absl::InvalidArgumentError("URI is empty");
  if (uri.size() > 2048) return absl::InvalidArgumentError("URI is longer than 2048 bytes");
  for (unsigned char c : uri) {
    if (c <= 0x20 || c >= 0x7f) {
      return absl::InvalidArgumentError(
          "URI contains whitespace, a control character or non-ASCII bytes");
    }
    if (c == '\\') return absl::InvalidArgumentError("URI contains a backslash");
  }
  CurlUrlPtr url(curl_url());
  if (!url) return absl::ResourceExhaustedError("out of memory");
  std::string copy(uri);
  if (curl_url_set(url.get(), CURLUPART_URL, copy.c_str(), 0) != CURLUE_OK) {
    return absl::InvalidArgumentError("URI is not an absolute http or https URI");
  }
  std::string scheme = absl::AsciiStrToLower(GetPart(url.get(), CURLUPART_SCHEME));
  if (scheme != "http" && scheme != "https") {
    return absl::InvalidArgumentError("URI scheme must be http or https");
  }
  // The scheme must be followed by "//" and the host exactly as written (curl would accept
  // "https:/x" and "https:///x", reading "x" as the host).
  size_t colon = uri.find(':');
  if (uri.substr(colon, 3) != "://" || uri.substr(colon + 3, 1) == "/") {
    return absl::InvalidArgumentError("URI must have the form scheme://host");
  }
  if (!GetPart(url.get(), CURLUPART_USER).empty() ||
      !GetPart(url.get(), CURLUPART_PASSWORD).empty() ||
      uri.substr(0, uri.find_first_of("/?#", colon + 3)).find('@') != absl::string_view::npos) {
    return absl::InvalidArgumentError("URI must not contain user information");
  }
  std::string host = absl::AsciiStrToLower(GetPart(url.get(), CURLUPART_HOST));
  if (host.empty()) return absl::InvalidArgumentError("URI has no host");
  if (host.back() == '.') return absl::InvalidArgumentError("URI host ends with a dot");
  // The host must be written as libcurl reads it: curl normalises numeric IPv4 forms
  // ("2130706433", "0x7f.1", "127.1") and IPv6 spellings, which an exact-origin allow-list must
  // not accept in place of the listed spelling.
  absl::string_view authority = uri.substr(colon + 3);
  authority = authority.substr(0, authority.find_first_of("/?#"));
  absl::string_view written = authority;
  if (absl::StartsWith(authority, "[")) {
    written = authority.substr(0, authority.find(']') + 1);
  } else if (size_t port_colon = authority.rfind(':'); port_colon != absl::string_view::npos) {
    written = authority.substr(0, port_colon);
  }
  if (absl::AsciiStrToLower(written) != host) {
    return absl::InvalidArgumentError("URI host is not written in its canonical form");
  }
  std::string port = GetPart(url.get(), CURLUPART_PORT);
  std::string origin = absl::StrCat(scheme, "://", host);
  if (!port.empty() && !((scheme == "http" && port == "80") || (scheme == "https" && port == "443"))) {
    absl::StrAppend(&origin, ":", port);
  }
  return origin;
}

absl::StatusOr<std::string> AppendQuery(absl::string_view uri, const FormFields& params) {
  CurlUrlPtr url(curl_url());
  if (!url) return absl::ResourceExhaustedError("out of memory");
  std::string copy(uri);
  if (curl_url_set(url.get(), CURLUPART_URL, copy.c_str(), 0) != CURLUE_OK) {
    return absl::InvalidArgumentError("URI is not valid");
  }
  for (const auto& [name, value] : params) {
    std::string pair = absl::StrCat(PercentEncode(name), "=", PercentEncode(value));
    if (curl_url_set(url.get(), CURLUPART_QUERY, pair.c_str(), CURLU_APPENDQUERY) != CURLUE_OK) {
      return absl::InvalidArgumentError("URI query could not be extended");
    }
  }
  std::string out = GetPart(url.get(), CURLUPART_URL);
  if (out.empty()) return absl::InternalError("URI could not be rebuilt");
  return out;
}

}  // namespace leyr
