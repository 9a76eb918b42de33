#ifndef LEYR_SERVER_COMMON_LOG_H_
#define LEYR_SERVER_COMMON_LOG_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace leyr {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// Parses "debug", "info", "warn" or "error"; "" means info.
absl::StatusOr<LogLevel> ParseLogLevel(absl::string_view text);

// Process-wide settings, set once in main before any thread starts.
void SetLogLevel(LogLevel level);
void SetLogComponent(absl::string_view component);
bool LogEnabled(LogLevel level);

// Appends `text` to `out` as the inside of a JSON string.
void AppendJsonEscaped(absl::string_view text, std::string* out);

// One structured JSON line on stderr, written when the LogLine is destroyed:
//   {"time":"...","level":"info","component":"broker","msg":"listening","address":"..."}
// Never pass a secret (code, state, token, client secret) as a field.
class LogLine {
 public:
  LogLine(LogLevel level, absl::string_view msg);
  ~LogLine();
  LogLine(const LogLine&) = delete;
  LogLine& operator=(const LogLine&) = delete;

  LogLine& Field(absl::string_view key, absl::string_view value);
  LogLine& Field(absl::string_view key, const char* value) {
    return Field(key, absl::string_view(value));
  }
  LogLine& Field(absl::string_view key, const std::string& value) {
    return Field(key, absl::string_view(value));
  }
  LogLine& Field(absl::string_view key, int64_t value);
  LogLine& Field(absl::string_view key, int value) { return Field(key, int64_t{value}); }
  LogLine& Field(absl::string_view key, double value);
  LogLine& Field(absl::string_view key, bool value);

 private:
  bool enabled_;
  std::string line_;
};

}  // namespace leyr

#define LEYR_LOG(level, msg) ::leyr::LogLine(::leyr::LogLevel::k##level, (msg))

#endif  // LEYR_SERVER_COMMON_LOG_H_
