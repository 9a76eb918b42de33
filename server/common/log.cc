#include "server/common/log.h"

#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace leyr {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
std::string* g_component = new std::string("leyr");
std::mutex g_write_mu;

absl::string_view LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarn: return "warn";
    case LogLevel::kError: return "error";
  }
  return "info";
}

}  // namespace

absl::StatusOr<LogLevel> ParseLogLevel(absl::string_view text) {
  if (text.empty() || text == "info") return LogLevel::kInfo;
  if (text == "debug") return LogLevel::kDebug;
  if (text == "warn") return LogLevel::kWarn;
  if (text == "error") return LogLevel::kError;
  return absl::InvalidArgumentError("log level must be one of debug, info, warn, error");
}

void SetLogLevel(LogLevel level) { g_level.store(static_cast<int>(level)); }
void SetLogComponent(absl::string_view component) { *g_component = std::string(component); }
bool LogEnabled(LogLevel level) { return static_cast<int>(level) >= g_level.load(); }

namespace {

// Bytes that a JSON string cannot hold as they are: controls, DEL (kept out of log viewers),
// '"' and '\\'.
constexpr std::array<bool, 256> MakeNeedsEscape() {
  std::array<bool, 256> table{};
  for (int c = 0; c < 0x20; ++c) table[c] = true;
  table[0x7f] = table['"'] = table['\\'] = true;
  return table;
}
constexpr std::array<bool, 256> kNeedsEscape = MakeNeedsEscape();

}  // namespace

void AppendJsonEscaped(absl::string_view text, std::string* out) {
  // Runs of bytes that need no escaping, found by table, are appended at once (every log line
  // goes through here once per key and value).
  const unsigned char* p = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t run = 0;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char c = p[i];
    if (!kNeedsEscape[c]) continue;
    out->append(text.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      default: {
        static constexpr char kHex[] = "0123456789abcdef";
        const char escaped[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xf]};
        out->append(escaped, sizeof escaped);
      }
    }
  }
  out->append(text.data() + run, n - run);
}

namespace {

// "2026-12-03T23:49:56.584Z": the part up to the seconds is formatted once per second and
// thread (absl::FormatTime is a visible part of a log line's cost).
void AppendTimestamp(absl::Time now, std::string* out) {
  thread_local int64_t cached_second = -1;
  thread_local std::string cached_prefix;
  const int64_t ms = absl::ToUnixMillis(now);
  const int64_t second = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
  if (second != cached_second) {
    cached_second = second;
    cached_prefix = absl::FormatTime("%Y-%m-%dT%H:%M:%S", absl::FromUnixSeconds(second),
                                     absl::UTCTimeZone());
  }
  const int millis = static_cast<int>(ms - second * 1000);
  out->append(cached_prefix);
  out->push_back('.');
  out->push_back(static_cast<char>('0' + millis / 100));
  out->push_back(static_cast<char>('0' + millis / 10 % 10));
  out->push_back(static_cast<char>('0' + millis % 10));
  out->push_back('Z');
}

}  // namespace

LogLine::LogLine(LogLevel level, absl::string_view msg) : enabled_(LogEnabled(level)) {
  if (!enabled_) return;
  line_.reserve(320);
  line_.append("{\"time\":\"");
  AppendTimestamp(absl::Now(), &line_);
  absl::StrAppend(&line_, "\",\"level\":\"", LevelName(level), "\",\"component\":\"");
  AppendJsonEscaped(*g_component, &line_);
  line_.append("\",\"msg\":\"");
  AppendJsonEscaped(msg, &line_);
  line_.push_back('"');
}

LogLine::~LogLine() {
  if (!enabled_) return;
  line_.append("}\n");
  std::lock_guard<std::mutex> lock(g_write_mu);
  size_t off = 0;
  while (off < line_.size()) {
    ssize_t n = ::write(STDERR_FILENO, line_.data() + off, line_.size() - off);
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
}

LogLine& LogLine::Field(absl::string_view key, absl::string_view value) {
  if (!enabled_) return *this;
  line_.append(",\"");
  AppendJsonEscaped(key, &line_);
  line_.append("\":\"");
  AppendJsonEscaped(value, &line_);
  line_.push_back('"');
  return *this;
}

LogLine& LogLine::Field(absl::string_view key, int64_t value) {
  if (!enabled_) return *this;
  line_.append(",\"");
  AppendJsonEscaped(key, &line_);
  absl::StrAppend(&line_, "\":", value);
  return *this;
}

LogLine& LogLine::Field(absl::string_view key, double value) {
  if (!enabled_) return *this;
  line_.append(",\"");
  AppendJsonEscaped(key, &line_);
  absl::StrAppendFormat(&line_, "\":%.6g", value);
  return *this;
}

LogLine& LogLine::Field(absl::string_view key, bool value) {
  if (!enabled_) return *this;
  line_.append(",\"");
  AppendJsonEscaped(key, &line_);
  absl::StrAppend(&line_, "\":", value ? "true" : "false");
  return *this;
}

}  // namespace leyr
