#include "server/common/request_id.h"

#include <algorithm>
#include <cstdint>

#include "absl/random/random.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_format.h"

namespace leyr {

std::string RequestIdOr(absl::string_view given) {
  if (!given.empty() && given.size() <= 64 &&
      std::all_of(given.begin(), given.end(), [](char c) {
        return absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.';
      })) {
    return std::string(given);
  }
  // A thread-local generator keeps the CSPRNG (and its lock) off the hot path.
  thread_local absl::BitGen gen;
  return absl::StrFormat("%016x", absl::Uniform<uint64_t>(gen));
}

}  // namespace leyr
