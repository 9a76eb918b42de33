// libFuzzer target: leyr::CheckLeyrCall (the CallLeyr request validator). The input is a
// CallLeyrRequest in protobuf text format (the seed corpus), or, when that does not parse, in
// the binary wire format. Any request must be accepted or refused, never crash; an accepted
// one must stay inside the policy's limits and under /api/emrs/{emr}/.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/strings/match.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"
#include "leyr/broker/v1/broker_service.pb.h"
#include "server/leyr/call_policy.h"

namespace {

// Quiet the text-format parser: libFuzzer feeds it mostly broken text.
class SilentErrors : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int, int, const std::string&) override {}
  void AddWarning(int, int, const std::string&) override {}
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string input(reinterpret_cast<const char*>(data), size);
  leyr::broker::v1::CallLeyrRequest request;
  google::protobuf::TextFormat::Parser parser;
  SilentErrors errors;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(input, &request)) {
    request.Clear();
    if (!request.ParseFromString(input)) return 0;
  }
  leyr::CallPolicyOptions options;
  options.max_body_bytes = 4096;  // small limits so that the fuzzer reaches them
  options.max_headers = 4;
  options.max_query_params = 4;
  auto checked = leyr::CheckLeyrCall(request, "emr-a", options);
  if (!checked.ok()) return 0;
  if (static_cast<size_t>(request.body().size()) > options.max_body_bytes) abort();
  if (request.headers_size() > static_cast<int>(options.max_headers)) abort();
  if (request.query_size() > static_cast<int>(options.max_query_params)) abort();
  if (!absl::StartsWith(request.path(), "/api/emrs/emr-a/")) abort();
  return 0;
}
