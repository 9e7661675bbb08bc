"""The servicers' method handlers by path, collected the way grpc registers them.

The generated add_<Service>Servicer_to_server(servicer, server) functions hand a server their handlers;
a MethodRegistry stands in for that server, so the web port answers from the very handlers (and so
the very servicer instances) the gRPC server runs, and a new RPC in protos/ reaches it with no change
here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import grpc
from google.protobuf import descriptor_pool, message, message_factory


@dataclass(frozen=True)
class Method:
    path: str  # /itsm.v1.TicketService/CreateTicket
    handler: grpc.RpcMethodHandler
    request_class: type[message.Message]


class MethodRegistry:
    """Quacks like the server argument of the generated add_*Servicer_to_server functions."""

    def __init__(self) -> None:
        self._methods: dict[str, Method] = {}

    def add_registered_method_handlers(
        self, service_name: str, method_handlers: Mapping[str, grpc.RpcMethodHandler]
    ) -> None:
        service = descriptor_pool.Default().FindServiceByName(service_name)
        for name, handler in method_handlers.items():
            request_class = message_factory.GetMessageClass(service.methods_by_name[name].input_type)
            path = f"/{service_name}/{name}"
            self._methods[path] = Method(path, handler, request_class)

    def add_generic_rpc_handlers(self, generic_rpc_handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        # The generated code registers each service both ways; the registered handlers are enough.
        pass

    def get(self, path: str) -> Method | None:
        return self._methods.get(path)

    def paths(self) -> list[str]:
        return sorted(self._methods)
