// libFuzzer target: leyr::ParseFormUrlEncoded (the form bodies of /oauth/callback and the
// token endpoint). Any input must yield fields or an error, never a crash; what parses must
// survive an EncodeQuery round trip unchanged.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "absl/strings/string_view.h"
#include "server/common/url.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view body(reinterpret_cast<const char*>(data), size);
  auto fields = leyr::ParseFormUrlEncoded(body);
  if (!fields.ok()) return 0;
  auto again = leyr::ParseFormUrlEncoded(leyr::EncodeQuery(*fields));
  if (!again.ok() || *again != *fields) abort();
  return 0;
}
