#!/usr/bin/python3
"""grpcurl's `list` and `describe`, over gRPC server reflection, as a check.

Lists the broker's services (both leyr.broker.v1.BrokerService and grpc.health.v1.Health must be
there, without a reflection error), then fetches the file descriptors of BrokerService through
reflection only and prints every service, method, message, field and enum of package
leyr.broker.v1 with its comments, as `grpcurl -plaintext ADDR describe SYMBOL` does. Fails when
a service, method, message or enum has no comment: the comments are the API's documentation and
only reach a debugging user when the broker serves descriptors with their source information.

Usage: LEYR_REFLECTION_STUBS=DIR describe.py [--require-comments] [ADDRESS]
  ADDRESS defaults to $LEYR_BROKER. Without --require-comments, missing comments are reported
  but do not fail the check.
  DIR: the python-reflection directory scripts/gen-stubs.sh writes.
"""

import os
import sys

sys.path.insert(0, os.environ["LEYR_REFLECTION_STUBS"])

import grpc  # noqa: E402
from google.protobuf import descriptor_pb2  # noqa: E402
import reflection_pb2  # noqa: E402
import reflection_pb2_grpc  # noqa: E402

PACKAGE = "leyr.broker.v1"
REQUIRED_SERVICES = ("leyr.broker.v1.BrokerService", "grpc.health.v1.Health")


def ask(stub, **request):
    """One reflection request on a new stream; fails on a reflection error response."""
    responses = list(stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(**request)]), timeout=10))
    if len(responses) != 1:
        raise RuntimeError(f"expected one reflection response, got {len(responses)}")
    response = responses[0]
    if response.HasField("error_response"):
        raise RuntimeError(f"reflection error for {request}: {response.error_response}")
    return response


def fetch_files(stub, symbol):
    """The file defining `symbol` and, transitively, its imports, by name."""
    files = {}
    pending = []
    for raw in ask(stub, file_containing_symbol=symbol).file_descriptor_response.file_descriptor_proto:
        pending.append(descriptor_pb2.FileDescriptorProto.FromString(raw))
    while pending:
        proto = pending.pop()
        if proto.name in files:
            continue
        files[proto.name] = proto
        for dep in proto.dependency:
            if dep not in files:
                for raw in ask(stub, file_by_filename=dep).file_descriptor_response.file_descriptor_proto:
                    pending.append(descriptor_pb2.FileDescriptorProto.FromString(raw))
    return files


class Describer:
    """Prints definitions with comments; collects what has none."""

    def __init__(self, proto):
        self.proto = proto
        self.comments = {tuple(loc.path): loc.leading_comments
                         for loc in proto.source_code_info.location}
        self.missing = []

    def comment(self, path, name, indent, required=True):
        text = self.comments.get(tuple(path), "").rstrip("\n")
        if not text.strip():
            if required:
                self.missing.append(name)
            return
        for line in text.split("\n"):
            print(f"{indent}//{line}")

    def enum(self, enum, path, full_name, indent):
        self.comment(path, full_name, indent)
        print(f"{indent}enum {enum.name} {{")
        for i, value in enumerate(enum.value):
            self.comment(path + [2, i], f"{full_name}.{value.name}", indent + "  ", required=False)
            print(f"{indent}  {value.name} = {value.number};")
        print(f"{indent}}}")

    def message(self, message, path, full_name, indent=""):
        self.comment(path, full_name, indent)
        print(f"{indent}message {message.name} {{")
        for i, nested in enumerate(message.nested_type):
            if not nested.options.map_entry:
                self.message(nested, path + [3, i], f"{full_name}.{nested.name}", indent + "  ")
        for i, enum in enumerate(message.enum_type):
            self.enum(enum, path + [4, i], f"{full_name}.{enum.name}", indent + "  ")
        for i, field in enumerate(message.field):
            self.comment(path + [2, i], f"{full_name}.{field.name}", indent + "  ", required=False)
            label = "repeated " if field.label == field.LABEL_REPEATED else ""
            kind = field.type_name.lstrip(".") or \
                descriptor_pb2.FieldDescriptorProto.Type.Name(field.type)[5:].lower()
            print(f"{indent}  {label}{kind} {field.name} = {field.number};")
        print(f"{indent}}}")

    def all(self):
        for i, service in enumerate(self.proto.service):
            name = f"{self.proto.package}.{service.name}"
            print(f"{name} is a service:")
            self.comment([6, i], name, "")
            print(f"service {service.name} {{")
            for j, method in enumerate(service.method):
                self.comment([6, i, 2, j], f"{name}.{method.name}", "  ")
                print(f"  rpc {method.name} ( {method.input_type.lstrip('.')} ) returns "
                      f"( {method.output_type.lstrip('.')} );")
            print("}\n")
        for i, message in enumerate(self.proto.message_type):
            name = f"{self.proto.package}.{message.name}"
            print(f"{name} is a message:")
            self.message(message, [4, i], name)
            print()
        for i, enum in enumerate(self.proto.enum_type):
            name = f"{self.proto.package}.{enum.name}"
            print(f"{name} is an enum:")
            self.enum(enum, [5, i], name, "")
            print()


def main():
    args = sys.argv[1:]
    require_comments = "--require-comments" in args
    args = [a for a in args if a != "--require-comments"]
    target = args[0] if args else os.environ["LEYR_BROKER"]
    with grpc.insecure_channel(target) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        services = [s.name for s in ask(stub, list_services="").list_services_response.service]
        print("== list\n" + "\n".join(services))
        missing_services = [s for s in REQUIRED_SERVICES if s not in services]
        if missing_services:
            print(f"FAIL: reflection does not list {missing_services}")
            return 1
        # Every listed service must resolve too (grpcurl describes them all).
        for service in services:
            fetch_files(stub, service)

        files = fetch_files(stub, REQUIRED_SERVICES[0])
        missing = []
        messages = 0
        for name in sorted(files):
            proto = files[name]
            if proto.package != PACKAGE:
                continue
            print(f"== describe ({name})")
            describer = Describer(proto)
            describer.all()
            missing += describer.missing
            messages += len(proto.message_type)
        if messages == 0:
            print(f"FAIL: no messages of {PACKAGE} through reflection")
            return 1
        if missing:
            print(f"{'FAIL' if require_comments else 'NOTE'}: {len(missing)} definitions show no comment through reflection "
                  f"(first: {', '.join(missing[:5])}); the broker must serve descriptors with "
                  "source_code_info")
            if require_comments:
                return 1
    print(f"describe: {messages} messages of {PACKAGE}"
          f"{'' if missing else ', all with comments'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
