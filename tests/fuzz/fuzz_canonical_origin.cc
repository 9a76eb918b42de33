// libFuzzer target: leyr::CanonicalOrigin (the return-URI validator). Any input must yield an
// origin or an error; an origin it returns must be canonical (CanonicalOrigin of it is itself)
// and printable ASCII.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "absl/strings/string_view.h"
#include "server/common/url.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view uri(reinterpret_cast<const char*>(data), size);
  auto origin = leyr::CanonicalOrigin(uri);
  if (!origin.ok()) return 0;
  for (char c : *origin) {
    if (c <= 0x20 || c >= 0x7f) abort();
  }
  auto again = leyr::CanonicalOrigin(*origin);
  if (!again.ok() || *again != *origin) abort();
  return 0;
}
