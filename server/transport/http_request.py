"""What every HTTP handler of the web port reads from a request the same way: its body, refused past
a limit without reading all of it, and the caller's address in grpc's peer format."""

from __future__ import annotations

from aiohttp import web


class BodyTooLarge(Exception):
    pass


async def read_body(request: web.BaseRequest, limit: int) -> bytes:
    """The body; BodyTooLarge as soon as it is known to pass the limit."""
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge
    chunks, size = [], 0
    while True:
        chunk = await request.content.readany()
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)


def peer_of(request: web.BaseRequest) -> str:
    """grpc's peer format: ipv4:127.0.0.1:5000, ipv6:[::1]:5000."""
    transport = request.transport
    address = transport.get_extra_info("peername") if transport is not None else None
    if not isinstance(address, tuple) or len(address) < 2:
        return ""
    host, port = address[0], address[1]
    return f"ipv6:[{host}]:{port}" if ":" in str(host) else f"ipv4:{host}:{port}"
