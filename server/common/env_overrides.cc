#include "server/common/env_overrides.h"

#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <utility>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/duration.pb.h>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "server/common/config_util.h"
#include "server/common/status_util.h"

// POSIX: the process's environment. Declared here too because <unistd.h> only declares it with
// _GNU_SOURCE.
extern char** environ;

namespace leyr {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

constexpr absl::string_view kDurationType = "google.protobuf.Duration";
// Largest |seconds| of a google.protobuf.Duration (10000 years), as in the JSON mapping.
constexpr int64_t kMaxDurationSeconds = 315576000000;

// The variables Kubernetes sets for every Service of the namespace, after the Service's name in
// upper case: {NAME}_SERVICE_HOST, {NAME}_SERVICE_PORT, {NAME}_SERVICE_PORT_{PORT NAME},
// {NAME}_PORT and {NAME}_PORT_{NUMBER}_{PROTOCOL}[_PROTO|_PORT|_ADDR]. `suffix` is what follows
// the prefix.
bool IsKubernetesServiceLink(absl::string_view suffix) {
  if (suffix == "SERVICE_HOST" || suffix == "SERVICE_PORT" || suffix == "PORT") return true;
  if (absl::StartsWith(suffix, "SERVICE_PORT_")) return true;
  return absl::ConsumePrefix(&suffix, "PORT_") && !suffix.empty() && absl::ascii_isdigit(suffix[0]);
}

bool AllDigits(absl::string_view text) {
  for (char c : text) {
    if (!absl::ascii_isdigit(c)) return false;
  }
  return true;
}

// The proto3 JSON form of a Duration: an optional "-", decimal seconds with at most 9 fraction
// digits, then "s". Parsed here rather than by the JSON parser so that no library error message
// can echo the value.
bool ParseJsonDuration(absl::string_view text, google::protobuf::Duration* out) {
  if (!absl::ConsumeSuffix(&text, "s")) return false;
  bool negative = absl::ConsumePrefix(&text, "-");
  absl::string_view whole = text;
  absl::string_view fraction;
  if (size_t dot = text.find('.'); dot != absl::string_view::npos) {
    whole = text.substr(0, dot);
    fraction = text.substr(dot + 1);
    if (fraction.empty() || fraction.size() > 9) return false;
  }
  // 12 digits hold kMaxDurationSeconds; more would overflow the check below.
  if (whole.empty() || whole.size() > 12 || !AllDigits(whole) || !AllDigits(fraction)) {
    return false;
  }
  int64_t seconds = 0;
  if (!absl::SimpleAtoi(whole, &seconds) || seconds > kMaxDurationSeconds) return false;
  int32_t nanos = 0;
  for (size_t i = 0; i < 9; ++i) {
    nanos = nanos * 10 + (i < fraction.size() ? fraction[i] - '0' : 0);
  }
  out->set_seconds(negative ? -seconds : seconds);
  out->set_nanos(negative ? -nanos : nanos);
  return true;
}

// Where a variable points: the fields from the root message to the leaf, and their dotted path
// ("postgres.conninfo") for error messages.
struct Resolved {
  std::vector<const FieldDescriptor*> steps;  // intermediate message fields, then the leaf
  std::string path;
};

// Finds the field whose upper-case name is `segment`, or null.
const FieldDescriptor* FindUpperCaseField(const Descriptor* type, absl::string_view segment) {
  for (int i = 0; i < type->field_count(); ++i) {
    const FieldDescriptor* field = type->field(i);
    if (absl::AsciiStrToUpper(field->name()) == segment) return field;
  }
  return nullptr;
}

// Well-known types (Duration, wrappers, Struct...) are values, not groups of settings: their
// inner fields are not addressable.
bool IsWellKnownType(const Descriptor* type) {
  return type->file()->package() == "google.protobuf";
}

bool IsSupportedLeaf(const FieldDescriptor* field) {
  // bytes share strings' C++ type, but their JSON form is base64: refused rather than given a
  // second meaning here.
  if (field->is_map() || field->type() == FieldDescriptor::TYPE_BYTES) return false;
  if (field->is_repeated()) return field->cpp_type() == FieldDescriptor::CPPTYPE_STRING;
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_STRING:
    case FieldDescriptor::CPPTYPE_BOOL:
    case FieldDescriptor::CPPTYPE_INT32:
    case FieldDescriptor::CPPTYPE_INT64:
    case FieldDescriptor::CPPTYPE_DOUBLE:
      return true;
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return field->message_type()->full_name() == kDurationType;
    default:
      return false;
  }
}

// "a map", "a repeated message", "of type uint32"...: follows "is ".
std::string TypeDescription(const FieldDescriptor* field) {
  if (field->is_map()) return "a map";
  if (field->is_repeated()) {
    return field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE
               ? "a repeated message"
               : absl::StrCat("of type repeated ", field->type_name());
  }
  if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
    return absl::StrCat("of type ", field->message_type()->full_name());
  }
  return absl::StrCat("of type ", field->type_name());
}

// Resolves `suffix` (the variable's name after the prefix) against `type` into `resolved`.
// On failure returns the problem; `resolved->path` is then the part of the path that did
// resolve. Messages name fields and parts of the variable's name, never its value.
absl::Status Resolve(const Descriptor* type, absl::string_view suffix, Resolved* resolved) {
  std::vector<absl::string_view> segments = absl::StrSplit(suffix, "__");
  for (size_t i = 0; i < segments.size(); ++i) {
    const FieldDescriptor* field = FindUpperCaseField(type, segments[i]);
    if (field == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("names no field: ", type->full_name(), " has no field \"", segments[i],
                       "\" (expected field names in upper case, nested ones joined by \"__\")"));
    }
    resolved->steps.push_back(field);
    absl::StrAppend(&resolved->path, resolved->path.empty() ? "" : ".", field->name());
    if (i + 1 == segments.size()) break;
    // Not the last segment: the path must go on through a singular message of settings.
    if (field->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE || field->is_repeated() ||
        IsWellKnownType(field->message_type())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "is ", TypeDescription(field), ", which has no fields to set through \"__\""));
    }
    type = field->message_type();
  }
  const FieldDescriptor* leaf = resolved->steps.back();
  if (leaf->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE && !leaf->is_repeated() &&
      !IsWellKnownType(leaf->message_type())) {
    return absl::InvalidArgumentError("is a message; set one of its fields, named after \"__\"");
  }
  if (!IsSupportedLeaf(leaf)) {
    return absl::InvalidArgumentError(
        absl::StrCat("is ", TypeDescription(leaf),
                     ", which environment variables cannot set; set it in the configuration file"));
  }
  return absl::OkStatus();
}

// Sets the leaf of `resolved` in `root` from `value`. On failure returns the problem, phrased to
// follow "VARIABLE (path): "; it never contains the value.
absl::Status Apply(const Resolved& resolved, absl::string_view value, Message* root) {
  Message* message = root;
  for (size_t i = 0; i + 1 < resolved.steps.size(); ++i) {
    message = message->GetReflection()->MutableMessage(message, resolved.steps[i]);
  }
  const FieldDescriptor* field = resolved.steps.back();
  const Reflection* reflection = message->GetReflection();
  if (field->is_repeated()) {  // repeated string (Resolve refused the others)
    std::vector<std::string> items;
    if (!value.empty()) {
      for (absl::string_view item : absl::StrSplit(value, ',')) {
        item = absl::StripAsciiWhitespace(item);
        if (item.empty()) {
          return absl::InvalidArgumentError(
              "has an empty element; expected a comma-separated list such as \"a,b\"");
        }
        items.emplace_back(item);
      }
    }
    reflection->ClearField(message, field);
    for (std::string& item : items) reflection->AddString(message, field, std::move(item));
    return absl::OkStatus();
  }
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_STRING:
      reflection->SetString(message, field, std::string(value));
      return absl::OkStatus();
    case FieldDescriptor::CPPTYPE_BOOL:
      if (value == "true" || value == "1") {
        reflection->SetBool(message, field, true);
      } else if (value == "false" || value == "0") {
        reflection->SetBool(message, field, false);
      } else {
        return absl::InvalidArgumentError("is not a bool: expected true, false, 1 or 0");
      }
      return absl::OkStatus();
    case FieldDescriptor::CPPTYPE_INT32: {
      int32_t n = 0;
      if (!absl::SimpleAtoi(value, &n)) {
        return absl::InvalidArgumentError("is not an int32 (a decimal integer in range)");
      }
      reflection->SetInt32(message, field, n);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_INT64: {
      int64_t n = 0;
      if (!absl::SimpleAtoi(value, &n)) {
        return absl::InvalidArgumentError("is not an int64 (a decimal integer in range)");
      }
      reflection->SetInt64(message, field, n);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_DOUBLE: {
      double d = 0;
      if (!absl::SimpleAtod(value, &d) || !std::isfinite(d)) {
        return absl::InvalidArgumentError("is not a finite decimal number");
      }
      reflection->SetDouble(message, field, d);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_MESSAGE: {  // google.protobuf.Duration
      google::protobuf::Duration duration;
      if (!ParseJsonDuration(value, &duration)) {
        return absl::InvalidArgumentError(
            "is not a duration: expected seconds with an \"s\", such as \"300s\" or \"1.5s\"");
      }
      // Set through reflection rather than CopyFrom: a message built from a dynamic descriptor
      // pool has its own Duration descriptor, which CopyFrom would refuse.
      Message* target = reflection->MutableMessage(message, field);
      const Descriptor* type = target->GetDescriptor();
      const FieldDescriptor* seconds = type->FindFieldByName("seconds");
      const FieldDescriptor* nanos = type->FindFieldByName("nanos");
      if (seconds == nullptr || nanos == nullptr) {
        return absl::InternalError("unexpected google.protobuf.Duration descriptor");
      }
      target->GetReflection()->SetInt64(target, seconds, duration.seconds());
      target->GetReflection()->SetInt32(target, nanos, duration.nanos());
      return absl::OkStatus();
    }
    default:
      return absl::InternalError("unsupported field type");  // Resolve refused it
  }
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ApplyEnvOverrides(
    absl::string_view prefix, const std::vector<std::string>& environment, Message* message) {
  // With no prefix every variable (PATH, HOME...) would be an unknown field.
  if (prefix.empty()) return absl::InvalidArgumentError("environment override prefix is empty");

  // Sorted by name so that the applied list and the errors do not depend on environ's order.
  std::map<std::string, std::vector<absl::string_view>> variables;
  for (const std::string& entry : environment) {
    size_t eq = entry.find('=');
    if (eq == std::string::npos) continue;
    absl::string_view name = absl::string_view(entry).substr(0, eq);
    if (!absl::StartsWith(name, prefix)) continue;
    variables[std::string(name)].push_back(absl::string_view(entry).substr(eq + 1));
  }

  // The copy takes every override; `message` changes only if all of them are valid.
  std::unique_ptr<Message> copy(message->New());
  copy->CopyFrom(*message);
  std::vector<std::string> errors;
  std::vector<std::string> applied;
  for (const auto& [name, values] : variables) {
    absl::string_view suffix = absl::string_view(name).substr(prefix.size());
    if (values.size() > 1) {
      errors.push_back(absl::StrCat(name, ": set ", values.size(), " times"));
      continue;
    }
    // Kubernetes's Service variables are skipped, but only when their first segment names no
    // field: a real field always wins.
    const Descriptor* type = message->GetDescriptor();
    if (IsKubernetesServiceLink(suffix) &&
        FindUpperCaseField(type, suffix.substr(0, suffix.find("__"))) == nullptr) {
      continue;
    }
    Resolved resolved;
    absl::Status status = Resolve(type, suffix, &resolved);
    if (status.ok()) status = Apply(resolved, values.front(), copy.get());
    if (!status.ok()) {
      errors.push_back(resolved.path.empty()
                           ? absl::StrCat(name, ": ", status.message())
                           : absl::StrCat(name, " (", resolved.path, "): ", status.message()));
      continue;
    }
    applied.push_back(name);
  }
  if (!errors.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "environment overrides (", prefix, "*), none applied:\n", absl::StrJoin(errors, "\n")));
  }
  message->CopyFrom(*copy);
  return applied;
}

absl::StatusOr<std::vector<std::string>> LoadConfigWithEnvOverrides(
    absl::string_view path, absl::string_view prefix, google::protobuf::Message* message) {
  LEYR_RETURN_IF_ERROR(LoadJsonConfig(path, message));
  return ApplyEnvOverrides(prefix, ProcessEnvironment(), message);
}

std::vector<std::string> ProcessEnvironment() {
  std::vector<std::string> result;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    result.emplace_back(*entry);
  }
  return result;
}

}  // namespace leyr
