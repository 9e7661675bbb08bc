"""Server reflection (grpc.reflection.v1alpha) served from the shipped descriptor set.

Why not grpcio-reflection's servicer: it looks symbols up with DescriptorPool.FindFileContainingSymbol,
which cannot resolve a method or other nested element (grpc/grpc#34743), so `grpcurl describe
itsm.v1.TicketService.CreateTicket` failed; and it serialises files with CopyToProto, which drops the
source info, so `describe` showed no comments. Here every file comes from gen/itsm/v1/descriptor_set.binpb
(written by scripts/gen_protos.py with source info and imports), and a symbol index built from it maps
every fully qualified name (package, message and nested message, field, oneof, enum, enum value,
service, method, extension) to the file that defines it. Files not in the set (health, reflection
itself) come from the process's default descriptor pool, indexed the same way, without comments.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from importlib import resources

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc import aio
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

DESCRIPTOR_SET = "descriptor_set.binpb"
SERVICE_NAME = reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"].full_name

_Response = reflection_pb2.ServerReflectionResponse
_Request = reflection_pb2.ServerReflectionRequest


def load_descriptor_set() -> descriptor_pb2.FileDescriptorSet:
    """The descriptor set shipped in the itsm.v1 package (a wheel carries it as package data)."""
    data = resources.files("itsm.v1").joinpath(DESCRIPTOR_SET).read_bytes()
    return descriptor_pb2.FileDescriptorSet.FromString(data)


class DescriptorIndex:
    """Serialized files by name, and the file defining each fully qualified symbol."""

    def __init__(self, files: Iterable[descriptor_pb2.FileDescriptorProto]) -> None:
        self._files: dict[str, descriptor_pb2.FileDescriptorProto] = {}
        self._serialized: dict[str, bytes] = {}
        self._symbols: dict[str, str] = {}
        self._extensions: dict[tuple[str, int], str] = {}
        for file in files:
            self._files[file.name] = file
            self._serialized[file.name] = file.SerializeToString()
            self._index(file)

    def _index(self, file: descriptor_pb2.FileDescriptorProto) -> None:
        prefix = f"{file.package}." if file.package else ""
        if file.package:
            # grpcurl resolves a package name too (`describe itsm.v1`); any file of it answers.
            parts = file.package.split(".")
            for end in range(1, len(parts) + 1):
                self._symbols.setdefault(".".join(parts[:end]), file.name)
        for message in file.message_type:
            self._message(file.name, prefix + message.name, message)
        for enum in file.enum_type:
            self._enum(file.name, prefix, enum)
        for service in file.service:
            name = prefix + service.name
            self._symbols[name] = file.name
            for method in service.method:
                self._symbols[f"{name}.{method.name}"] = file.name
        for extension in file.extension:
            self._extension(file.name, prefix, extension)

    def _message(self, file: str, name: str, message: descriptor_pb2.DescriptorProto) -> None:
        self._symbols[name] = file
        for field in message.field:
            self._symbols[f"{name}.{field.name}"] = file
        for oneof in message.oneof_decl:
            self._symbols[f"{name}.{oneof.name}"] = file
        for nested in message.nested_type:
            self._message(file, f"{name}.{nested.name}", nested)
        for enum in message.enum_type:
            self._enum(file, f"{name}.", enum)
        for extension in message.extension:
            self._extension(file, f"{name}.", extension)

    def _enum(self, file: str, scope: str, enum: descriptor_pb2.EnumDescriptorProto) -> None:
        self._symbols[scope + enum.name] = file
        # Enum values are siblings of their enum in protobuf's scoping (itsm.v1.PLATFORM_JIRA).
        for value in enum.value:
            self._symbols[scope + value.name] = file

    def _extension(self, file: str, scope: str, extension: descriptor_pb2.FieldDescriptorProto) -> None:
        self._symbols[scope + extension.name] = file
        self._extensions[(extension.extendee.lstrip("."), extension.number)] = file

    def file_of_symbol(self, symbol: str) -> str | None:
        return self._symbols.get(symbol.lstrip("."))

    def file_of_extension(self, containing_type: str, number: int) -> str | None:
        return self._extensions.get((containing_type.lstrip("."), number))

    def extension_numbers(self, containing_type: str) -> list[int] | None:
        name = containing_type.lstrip(".")
        if self._symbols.get(name) is None:
            return None
        return sorted(number for (extendee, number) in self._extensions if extendee == name)

    def with_dependencies(self, name: str) -> list[bytes] | None:
        """The file and everything it imports, transitively, each once; None for an unknown file."""
        if name not in self._files and _default_file(name) is None:
            return None
        found: dict[str, bytes] = {}
        pending = [name]
        while pending:
            current = pending.pop()
            if current in found:
                continue
            file = self._files.get(current) or _default_file(current)
            if file is None:
                continue  # a dependency nobody has: the client reports what it misses
            found[current] = self._serialized.get(current) or file.SerializeToString()
            pending.extend(file.dependency)
        return list(found.values())


def _default_file(name: str) -> descriptor_pb2.FileDescriptorProto | None:
    """A file the process imported (health, reflection), from the default pool; no source info."""
    try:
        descriptor = descriptor_pool.Default().FindFileByName(name)
    except KeyError:
        return None
    proto = descriptor_pb2.FileDescriptorProto()
    descriptor.CopyToProto(proto)
    return proto


def default_pool_files(
    service_names: Iterable[str], known: DescriptorIndex
) -> list[descriptor_pb2.FileDescriptorProto]:
    """The files (from the default pool, without comments) defining services the set does not hold:
    indexed like ours, so their methods resolve too."""
    files = []
    for service in service_names:
        if known.file_of_symbol(service) is not None:
            continue
        try:
            name = descriptor_pool.Default().FindFileContainingSymbol(service).name
        except KeyError:
            continue
        file = _default_file(name)
        if file is not None:
            files.append(file)
    return files


class ReflectionServicer(reflection_pb2_grpc.ServerReflectionServicer):
    """grpc.reflection.v1alpha.ServerReflection over a DescriptorIndex."""

    def __init__(self, service_names: Iterable[str], index: DescriptorIndex) -> None:
        self._services = tuple(sorted(service_names))
        self._index = index

    async def ServerReflectionInfo(
        self, request_iterator: AsyncIterator[_Request], context: aio.ServicerContext
    ) -> AsyncIterator[_Response]:
        async for request in request_iterator:
            yield self.answer(request)

    def answer(self, request: _Request) -> _Response:
        kind = request.WhichOneof("message_request")
        if kind == "list_services":
            services = [reflection_pb2.ServiceResponse(name=name) for name in self._services]
            return _Response(
                original_request=request,
                list_services_response=reflection_pb2.ListServiceResponse(service=services),
            )
        if kind == "file_by_filename":
            return self._files(request, request.file_by_filename)
        if kind == "file_containing_symbol":
            symbol = request.file_containing_symbol
            return self._files(request, self._index.file_of_symbol(symbol))
        if kind == "file_containing_extension":
            wanted = request.file_containing_extension
            name = self._index.file_of_extension(wanted.containing_type, wanted.extension_number)
            return self._files(request, name)
        if kind == "all_extension_numbers_of_type":
            numbers = self._index.extension_numbers(request.all_extension_numbers_of_type)
            if numbers is None:
                return _error(request, grpc.StatusCode.NOT_FOUND, "unknown type")
            return _Response(
                original_request=request,
                all_extension_numbers_response=reflection_pb2.ExtensionNumberResponse(
                    base_type_name=request.all_extension_numbers_of_type.lstrip("."),
                    extension_number=numbers,
                ),
            )
        return _error(request, grpc.StatusCode.INVALID_ARGUMENT, "unknown reflection request")

    def _files(self, request: _Request, name: str | None) -> _Response:
        files = self._index.with_dependencies(name) if name else None
        if files is None:
            return _error(request, grpc.StatusCode.NOT_FOUND, "not found")
        return _Response(
            original_request=request,
            file_descriptor_response=reflection_pb2.FileDescriptorResponse(file_descriptor_proto=files),
        )


def _error(request: _Request, code: grpc.StatusCode, message: str) -> _Response:
    return _Response(
        original_request=request,
        error_response=reflection_pb2.ErrorResponse(error_code=code.value[0], error_message=message),
    )


def enable_reflection(service_names: Iterable[str], server: aio.Server) -> None:
    """Registers reflection for `service_names` (plus itself) on `server`."""
    names = (*service_names, SERVICE_NAME)
    ours = load_descriptor_set().file
    index = DescriptorIndex([*ours, *default_pool_files(names, DescriptorIndex(ours))])
    servicer = ReflectionServicer(names, index)
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
