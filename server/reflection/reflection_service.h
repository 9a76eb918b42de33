#ifndef LEYR_SERVER_REFLECTION_REFLECTION_SERVICE_H_
#define LEYR_SERVER_REFLECTION_REFLECTION_SERVICE_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <google/protobuf/descriptor.h>
#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"

namespace leyr {

// gRPC server reflection (grpc.reflection.v1alpha: what grpcurl and `buf curl` speak) for the
// broker's API, its error details, health and reflection itself. The descriptors come from a
// descriptor set compiled with --include_source_info and embedded at build time, so
// `grpcurl describe` shows every service, method, message and field with its comments.
// Replaces gRPC's reflection plugin (which serves the comment-less generated pool); a binary
// must not register both.
class ReflectionService final
    : public grpc::reflection::v1alpha::ServerReflection::Service {
 public:
  // Fails when the embedded descriptor set does not parse or build.
  static absl::StatusOr<std::unique_ptr<ReflectionService>> Create();

  // The full names of the services described, for `list`.
  const std::vector<std::string>& services() const { return services_; }

  grpc::Status ServerReflectionInfo(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<grpc::reflection::v1alpha::ServerReflectionResponse,
                               grpc::reflection::v1alpha::ServerReflectionRequest>* stream)
      override;

 private:
  ReflectionService() = default;
  // Adds `file` and every file it imports, or a NOT_FOUND error response when it is null.
  void AddFile(const google::protobuf::FileDescriptor* file,
               grpc::reflection::v1alpha::ServerReflectionResponse* response) const;

  google::protobuf::DescriptorPool pool_;
  // File name -> serialized FileDescriptorProto, with source information.
  std::map<std::string, std::string> files_;
  std::vector<std::string> services_;
};

}  // namespace leyr

#endif  // LEYR_SERVER_REFLECTION_REFLECTION_SERVICE_H_
