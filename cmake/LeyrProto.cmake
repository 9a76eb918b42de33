# leyr_proto_library(NAME target ROOTS dir... PROTOS rel/path.proto... [GRPC])
# Runs protoc (and gRPC's C++ plugin with GRPC) on .proto files named relative to one of ROOTS,
# writing into ${CMAKE_BINARY_DIR}/gen so that "#include <rel/path.pb.h>" works everywhere.
# (FindProtobuf's protobuf_generate guesses output paths wrongly for files outside the current
# source directory, such as Debian's copy of the health service.)
set(LEYR_GEN_DIR ${CMAKE_BINARY_DIR}/gen)
file(MAKE_DIRECTORY ${LEYR_GEN_DIR})

function(leyr_proto_library)
  cmake_parse_arguments(ARG "GRPC" "NAME" "ROOTS;PROTOS" ${ARGN})
  set(include_flags)
  foreach(root IN LISTS ARG_ROOTS)
    list(APPEND include_flags "-I${root}")
  endforeach()
  set(sources)
  foreach(proto IN LISTS ARG_PROTOS)
    set(abs "")
    foreach(root IN LISTS ARG_ROOTS)
      if(NOT abs AND EXISTS ${root}/${proto})
        set(abs ${root}/${proto})
      endif()
    endforeach()
    if(NOT abs)
      message(FATAL_ERROR "leyr_proto_library: ${proto} not found under ${ARG_ROOTS}")
    endif()
    string(REGEX REPLACE "\\.proto$" "" stem ${proto})
    set(outputs ${LEYR_GEN_DIR}/${stem}.pb.cc ${LEYR_GEN_DIR}/${stem}.pb.h)
    set(plugin_flags)
    if(ARG_GRPC)
      list(APPEND outputs ${LEYR_GEN_DIR}/${stem}.grpc.pb.cc ${LEYR_GEN_DIR}/${stem}.grpc.pb.h)
      set(plugin_flags "--grpc_out=${LEYR_GEN_DIR}"
          "--plugin=protoc-gen-grpc=$<TARGET_FILE:gRPC::grpc_cpp_plugin>")
    endif()
    add_custom_command(
      OUTPUT ${outputs}
      COMMAND protobuf::protoc ${include_flags} --cpp_out=${LEYR_GEN_DIR} ${plugin_flags} ${abs}
      DEPENDS ${abs} protobuf::protoc
      COMMENT "protoc ${proto}"
      VERBATIM)
    list(APPEND sources ${outputs})
  endforeach()
  add_library(${ARG_NAME} STATIC ${sources})
  target_include_directories(${ARG_NAME} PUBLIC ${LEYR_GEN_DIR})
  target_link_libraries(${ARG_NAME} PUBLIC protobuf::libprotobuf gRPC::grpc++)
endfunction()
