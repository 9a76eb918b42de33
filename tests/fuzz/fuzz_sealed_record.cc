// libFuzzer target: leyr::KeyRingSealer::Open (the sealed-record decoder) over a fixed test key
// ring (ids "k1" and "k2"). Any record must open or be refused (INVALID_ARGUMENT or DATA_LOSS),
// never crash. A record that opens is sealed again and must open to the same plaintext.
//
// The seed corpus holds records sealed by this ring: run the binary with
// LEYR_FUZZ_WRITE_SEEDS=DIR to write fresh ones (then it exits).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "server/broker/sealer.h"

namespace {

constexpr absl::string_view kAad = "authorizations/0f3c9a61-fuzz";

leyr::KeyRingSealer* Ring() {
  static leyr::KeyRingSealer* ring = [] {
    std::vector<leyr::SealingKey> keys = {{"k1", std::string(32, '\x11')},
                                          {"k2", std::string(32, '\x22')}};
    auto created = leyr::KeyRingSealer::Create(std::move(keys), "k2");
    if (!created.ok()) abort();
    return created->release();
  }();
  return ring;
}

void WriteSeeds(const std::string& dir) {
  const std::vector<std::pair<std::string, std::string>> seeds = {
      {"code", "athena-code-5f2b7c1e0d"}, {"empty", ""}, {"long", std::string(300, 'c')}};
  for (const auto& [name, plaintext] : seeds) {
    auto sealed = Ring()->Seal(plaintext, kAad);
    if (!sealed.ok()) abort();
    std::ofstream(dir + "/" + name, std::ios::binary) << *sealed;
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const char* dir = std::getenv("LEYR_FUZZ_WRITE_SEEDS")) {
    WriteSeeds(dir);
    exit(0);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view record(reinterpret_cast<const char*>(data), size);
  auto opened = Ring()->Open(record, kAad);
  if (!opened.ok()) {
    absl::StatusCode code = opened.status().code();
    if (code != absl::StatusCode::kInvalidArgument && code != absl::StatusCode::kDataLoss) abort();
    return 0;
  }
  auto resealed = Ring()->Seal(*opened, kAad);
  if (!resealed.ok()) abort();
  auto again = Ring()->Open(*resealed, kAad);
  if (!again.ok() || *again != *opened) abort();
  return 0;
}
