#include "server/leyr/call_policy.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/common/status_util.h"

namespace leyr {
namespace {

constexpr size_t kMaxNameInMessage = 64;

absl::Status Refuse(absl::string_view reason, absl::string_view message) {
  return MakeError(absl::StatusCode::kInvalidArgument, reason, message);
}

absl::Status PathError(absl::string_view what) {
  return Refuse(reason::kPathNotAllowed, absl::StrCat("path ", what));
}

bool IsControl(unsigned char c) { return c < 0x20 || c == 0x7f; }

bool IsUnreserved(unsigned char c) {
  return absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

// RFC 3986 sub-delims plus ':' (pchar without '@' and without pct-encoded).
bool IsPcharSymbol(unsigned char c) {
  switch (c) {
    case '!': case '$': case '&': case '\'': case '(': case ')': case '*': case '+':
    case ',': case ';': case '=': case ':':
      return true;
    default:
      return false;
  }
}

// RFC 7230 tchar.
bool IsTokenChar(unsigned char c) {
  if (absl::ascii_isalnum(c)) return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
    case '-': case '.': case '^': case '_': case '`': case '|': case '~':
      return true;
    default:
      return false;
  }
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Checks one path segment (between slashes) and returns its decoded form in `decoded`.
absl::Status CheckSegment(absl::string_view segment, std::string* decoded) {
  decoded->clear();
  for (size_t i = 0; i < segment.size(); ++i) {
    const unsigned char c = segment[i];
    if (c == '%') {
      if (i + 2 >= segment.size() || HexValue(segment[i + 1]) < 0 ||
          HexValue(segment[i + 2]) < 0) {
        return PathError("has a malformed percent escape");
      }
      const unsigned char byte =
          static_cast<unsigned char>(HexValue(segment[i + 1]) * 16 + HexValue(segment[i + 2]));
      if (byte == '/' || byte == '\\') {
        return PathError("has an encoded slash or backslash inside a segment");
      }
      if (IsControl(byte)) return PathError("has an encoded control character");
      decoded->push_back(static_cast<char>(byte));
      i += 2;
      continue;
    }
    if (!IsUnreserved(c) && !IsPcharSymbol(c)) {
      return PathError("has a character outside RFC 3986 path characters");
    }
    decoded->push_back(static_cast<char>(c));
  }
  // Servlet-style servers drop ";params" (even an encoded ';') before resolving dot segments, so
  // "..;x" climbs like "..".
  const absl::string_view bare = absl::string_view(*decoded).substr(0, decoded->find(';'));
  if (bare == "." || bare == "..") {
    return PathError("has a '.' or '..' segment");
  }
  return absl::OkStatus();
}

absl::Status CheckPath(absl::string_view path, absl::string_view emr,
                       const CallPolicyOptions& options) {
  if (path.empty()) return PathError("is empty");
  if (path.size() > options.max_path_bytes) {
    return PathError(absl::StrCat("is longer than ", options.max_path_bytes, " bytes"));
  }
  // Character classes first, so that later messages can assume printable ASCII.
  for (unsigned char c : path) {
    if (IsControl(c)) return PathError("contains a control character");
    if (c == ' ') return PathError("contains a space");
    if (c >= 0x80) return PathError("contains non-ASCII bytes");
    if (c == '?' || c == '#') {
      return PathError("contains '?' or '#'; pass query parameters in `query`");
    }
    if (c == '\\') return PathError("contains a backslash");
    if (c == '@') return PathError("contains '@'");
  }
  if (absl::StrContains(path, "//")) return PathError("contains an empty segment ('//')");
  const std::string prefix = absl::StrCat("/api/emrs/", emr, "/");
  if (!absl::StartsWith(path, prefix) || path.size() == prefix.size()) {
    return Refuse(reason::kPathNotAllowed,
                  absl::StrCat("path must be under ", prefix, " (the authorization's EMR)"));
  }
  std::string decoded;
  for (absl::string_view segment : absl::StrSplit(path.substr(1), '/')) {
    LEYR_RETURN_IF_ERROR(CheckSegment(segment, &decoded));
  }
  return absl::OkStatus();
}

// A header or parameter name safe to repeat in a message: bounded, printable ASCII only.
std::string QuotedName(absl::string_view name) {
  std::string out = "'";
  for (unsigned char c : name.substr(0, kMaxNameInMessage)) {
    out.push_back(c > 0x20 && c < 0x7f && c != '\'' ? static_cast<char>(c) : '?');
  }
  if (name.size() > kMaxNameInMessage) out += "...";
  out += "'";
  return out;
}

bool IsRefusedHeader(absl::string_view lower) {
  static constexpr absl::string_view kRefused[] = {
      "host",    "content-length", "transfer-encoding", "connection", "keep-alive",
      "te",      "trailer",        "upgrade",           "expect",     "cookie",
  };
  for (absl::string_view name : kRefused) {
    if (lower == name) return true;
  }
  return absl::StartsWith(lower, "x-leyr-") || absl::StartsWith(lower, "proxy-");
}

absl::Status CheckHeaders(const broker::v1::CallLeyrRequest& request,
                          const CallPolicyOptions& options, HttpFields* out) {
  if (static_cast<size_t>(request.headers_size()) > options.max_headers) {
    return Refuse(reason::kHeaderNotAllowed,
                  absl::StrCat("more than ", options.max_headers, " headers"));
  }
  for (int i = 0; i < request.headers_size(); ++i) {
    const auto& header = request.headers(i);
    const std::string field = absl::StrCat("headers[", i, "]");
    const std::string& name = header.name();
    const std::string& value = header.value();
    if (name.empty()) {
      return Refuse(reason::kHeaderNotAllowed, absl::StrCat(field, ".name is empty"));
    }
    if (name.size() + value.size() > options.max_header_bytes) {
      return Refuse(reason::kHeaderNotAllowed,
                    absl::StrCat(field, " is longer than ", options.max_header_bytes,
                                 " bytes (name plus value)"));
    }
    for (unsigned char c : name) {
      if (!IsTokenChar(c)) {
        // The name is not echoed: it is not a token and could be anything.
        return Refuse(reason::kHeaderNotAllowed,
                      absl::StrCat(field, ".name is not an RFC 7230 token"));
      }
    }
    if (IsRefusedHeader(absl::AsciiStrToLower(name))) {
      return Refuse(reason::kHeaderNotAllowed,
                    absl::StrCat(field, ".name ", QuotedName(name), " is set by the broker"));
    }
    for (unsigned char c : value) {
      if (c == '\r' || c == '\n' || c == '\0' || (IsControl(c) && c != '\t')) {
        return Refuse(reason::kHeaderNotAllowed,
                      absl::StrCat(field, ".value (of ", QuotedName(name),
                                   ") contains a control character"));
      }
    }
    out->emplace_back(name, value);
  }
  return absl::OkStatus();
}

absl::Status CheckQuery(const broker::v1::CallLeyrRequest& request,
                        const CallPolicyOptions& options, FormFields* out) {
  if (static_cast<size_t>(request.query_size()) > options.max_query_params) {
    return Refuse(reason::kQueryNotAllowed,
                  absl::StrCat("more than ", options.max_query_params, " query parameters"));
  }
  size_t total = 0;
  for (int i = 0; i < request.query_size(); ++i) {
    const auto& param = request.query(i);
    const std::string field = absl::StrCat("query[", i, "]");
    if (param.name().empty()) {
      return Refuse(reason::kQueryNotAllowed, absl::StrCat(field, ".name is empty"));
    }
    for (unsigned char c : param.name()) {
      if (IsControl(c)) {
        return Refuse(reason::kQueryNotAllowed,
                      absl::StrCat(field, ".name contains a control character"));
      }
    }
    for (unsigned char c : param.value()) {
      if (IsControl(c)) {
        return Refuse(reason::kQueryNotAllowed,
                      absl::StrCat(field, ".value contains a control character"));
      }
    }
    total += param.name().size() + param.value().size();
    if (total > options.max_query_bytes) {
      return Refuse(reason::kQueryNotAllowed,
                    absl::StrCat("query parameters are longer than ", options.max_query_bytes,
                                 " bytes in total"));
    }
    out->emplace_back(param.name(), param.value());
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<LeyrRequest> CheckLeyrCall(const broker::v1::CallLeyrRequest& request,
                                          absl::string_view emr,
                                          const CallPolicyOptions& options) {
  // The EMR slug comes from validated configuration; anything else is a broker bug.
  if (emr.empty() || !std::all_of(emr.begin(), emr.end(), [](unsigned char c) {
        return absl::ascii_isalnum(c) || c == '-' || c == '_';
      })) {
    return MakeError(absl::StatusCode::kInternal, reason::kInternal,
                     "the connection's EMR slug is not valid");
  }
  const std::string& method = request.method();
  if (method != "GET" && method != "POST" && method != "PUT" && method != "PATCH" &&
      method != "DELETE") {
    return Refuse(reason::kMethodNotAllowed,
                  "method must be one of GET, POST, PUT, PATCH, DELETE (upper case)");
  }
  LEYR_RETURN_IF_ERROR(CheckPath(request.path(), emr, options));

  LeyrRequest out;
  out.method = method;
  out.path = request.path();
  LEYR_RETURN_IF_ERROR(CheckQuery(request, options, &out.query));
  LEYR_RETURN_IF_ERROR(CheckHeaders(request, options, &out.headers));

  if (request.body().size() > options.max_body_bytes) {
    return Refuse(reason::kBodyTooLarge,
                  absl::StrCat("body is larger than ", options.max_body_bytes, " bytes"));
  }
  if (!request.body().empty() && (method == "GET" || method == "DELETE")) {
    return Refuse(reason::kInvalidArgument,
                  absl::StrCat("a body is only sent with POST, PUT or PATCH, not ", method));
  }
  out.body = request.body();
  return out;
}

}  // namespace leyr
