#include "server/reflection/reflection_service.h"

#include <set>

#include <google/protobuf/descriptor.pb.h>

#include "absl/memory/memory.h"
#include "absl/status/status.h"

namespace leyr {

// Written by embed.cmake from the descriptor set the build compiles.
extern const unsigned char kApiDescriptorSet[];
extern const size_t kApiDescriptorSetSize;

namespace {
using grpc::reflection::v1alpha::ServerReflectionRequest;
using grpc::reflection::v1alpha::ServerReflectionResponse;

void SetError(ServerReflectionResponse* response, grpc::StatusCode code, const std::string& message) {
  response->clear_message_response();
  response->mutable_error_response()->set_error_code(code);
  response->mutable_error_response()->set_error_message(message);
}
}  // namespace

absl::StatusOr<std::unique_ptr<ReflectionService>> ReflectionService::Create() {
  google::protobuf::FileDescriptorSet set;
  if (!set.ParseFromArray(kApiDescriptorSet, static_cast<int>(kApiDescriptorSetSize))) {
    return absl::InternalError("reflection: the embedded descriptor set does not parse");
  }
  auto service = absl::WrapUnique(new ReflectionService());
  // protoc --include_imports writes every file after the files it imports.
  for (const auto& file : set.file()) {
    if (service->pool_.BuildFile(file) == nullptr) {
      return absl::InternalError("reflection: cannot build " + file.name());
    }
    service->files_[file.name()] = file.SerializeAsString();
    for (const auto& s : file.service()) {
      service->services_.push_back(file.package().empty() ? s.name()
                                                          : file.package() + "." + s.name());
    }
  }
  return service;
}

void ReflectionService::AddFile(const google::protobuf::FileDescriptor* file,
                                ServerReflectionResponse* response) const {
  if (file == nullptr) {
    SetError(response, grpc::StatusCode::NOT_FOUND, "not found");
    return;
  }
  auto* out = response->mutable_file_descriptor_response();
  std::set<std::string> sent;
  std::vector<const google::protobuf::FileDescriptor*> pending = {file};
  while (!pending.empty()) {
    const google::protobuf::FileDescriptor* next = pending.back();
    pending.pop_back();
    if (!sent.insert(next->name()).second) continue;
    out->add_file_descriptor_proto(files_.at(next->name()));
    for (int i = 0; i < next->dependency_count(); ++i) pending.push_back(next->dependency(i));
  }
}

grpc::Status ReflectionService::ServerReflectionInfo(
    grpc::ServerContext* /*context*/,
    grpc::ServerReaderWriter<ServerReflectionResponse, ServerReflectionRequest>* stream) {
  ServerReflectionRequest request;
  while (stream->Read(&request)) {
    ServerReflectionResponse response;
    response.set_valid_host(request.host());
    *response.mutable_original_request() = request;
    switch (request.message_request_case()) {
      case ServerReflectionRequest::kFileByFilename:
        AddFile(pool_.FindFileByName(request.file_by_filename()), &response);
        break;
      case ServerReflectionRequest::kFileContainingSymbol:
        AddFile(pool_.FindFileContainingSymbol(request.file_containing_symbol()), &response);
        break;
      case ServerReflectionRequest::kFileContainingExtension: {
        const auto& ext = request.file_containing_extension();
        const auto* type = pool_.FindMessageTypeByName(ext.containing_type());
        const auto* field =
            type == nullptr ? nullptr : pool_.FindExtensionByNumber(type, ext.extension_number());
        AddFile(field == nullptr ? nullptr : field->file(), &response);
        break;
      }
      case ServerReflectionRequest::kAllExtensionNumbersOfType: {
        const auto* type = pool_.FindMessageTypeByName(request.all_extension_numbers_of_type());
        if (type == nullptr) {
          SetError(&response, grpc::StatusCode::NOT_FOUND, "type not found");
          break;
        }
        auto* out = response.mutable_all_extension_numbers_response();
        out->set_base_type_name(type->full_name());
        std::vector<const google::protobuf::FieldDescriptor*> extensions;
        pool_.FindAllExtensions(type, &extensions);
        for (const auto* e : extensions) out->add_extension_number(e->number());
        break;
      }
      case ServerReflectionRequest::kListServices:
        for (const auto& name : services_) {
          response.mutable_list_services_response()->add_service()->set_name(name);
        }
        break;
      default:
        SetError(&response, grpc::StatusCode::INVALID_ARGUMENT, "no request");
        break;
    }
    if (!stream->Write(response)) break;
  }
  return grpc::Status::OK;
}

}  // namespace leyr
