// libFuzzer target: the broker's configuration loader, i.e. JSON into leyr::config::BrokerConfig
// (google::protobuf::util::JsonStringToMessage, as LoadJsonConfig does) and then
// leyr::ValidateBrokerConfig. Any configuration must validate or be refused, never crash.
//
// So that the fuzzer never reads arbitrary files (/dev/zero, ...), every non-empty string field
// named *_file is pointed at a fixture written at start-up: the sealing key ring for
// sealing_key_file, a one-line secret for the others.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/strings/match.h"
#include "config/config.pb.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "google/protobuf/util/json_util.h"
#include "server/broker/settings.h"

namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

std::string secret_path;
std::string key_ring_path;

std::string WriteFixture(const std::string& name, const std::string& content) {
  const char* tmp = std::getenv("TMPDIR");
  std::string path = std::string(tmp ? tmp : "/tmp") + "/leyr_fuzz_broker_config_" +
                     std::to_string(::getpid()) + "_" + name;
  std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
  return path;
}

void RedirectFiles(Message* message) {
  const Reflection* reflection = message->GetReflection();
  const auto* descriptor = message->GetDescriptor();
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const FieldDescriptor* field = descriptor->field(i);
    if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      if (field->is_repeated()) {
        for (int j = 0; j < reflection->FieldSize(*message, field); ++j) {
          RedirectFiles(reflection->MutableRepeatedMessage(message, field, j));
        }
      } else if (reflection->HasField(*message, field)) {
        RedirectFiles(reflection->MutableMessage(message, field));
      }
    } else if (field->cpp_type() == FieldDescriptor::CPPTYPE_STRING && !field->is_repeated() &&
               absl::EndsWith(field->name(), "_file") &&
               !reflection->GetString(*message, field).empty()) {
      reflection->SetString(message, field,
                            field->name() == "sealing_key_file" ? key_ring_path : secret_path);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  secret_path = WriteFixture("secret", "fuzz-secret-7c1d\n");
  // Two 32-byte keys, base64 of 0x11... and 0x22....
  key_ring_path = WriteFixture(
      "keyring",
      R"({"primary":"k2","keys":[)"
      R"({"id":"k1","key_base64":"ERERERERERERERERERERERERERERERERERERERERERE="},)"
      R"({"id":"k2","key_base64":"IiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiI="}]})");
  std::atexit([] {
    ::unlink(secret_path.c_str());
    ::unlink(key_ring_path.c_str());
  });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string json(reinterpret_cast<const char*>(data), size);
  leyr::config::BrokerConfig config;
  if (!google::protobuf::util::JsonStringToMessage(json, &config).ok()) return 0;
  RedirectFiles(&config);
  (void)leyr::ValidateBrokerConfig(config);
  return 0;
}
