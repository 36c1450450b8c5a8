"""Bench helper process: a lean HTTP/1.1 keep-alive load generator (GETs on loopback).

Much cheaper per request than an HTTP client library, so the server, not the generator, is what
saturates. Prints one JSON line: requests, errors (non-200 or dropped), elapsed seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import sys
import time

import orjson


class _Conn(asyncio.Protocol):
    """One keep-alive connection sending the next request as soon as a response is complete."""

    def __init__(self, request: bytes, stats: dict[str, int], deadline: float, done: asyncio.Future[None]):
        self.request = request
        self.stats = stats
        self.deadline = deadline
        self.done = done
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # noqa: S101 - TCP
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            head_end = self.buf.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buf[:head_end]
            start = head.find(b"\r\nContent-Length:")
            if start < 0:
                start = head.lower().find(b"\r\ncontent-length:")
            line_end = head.find(b"\r\n", start + 2)
            length = int(head[start + 17: line_end if line_end >= 0 else None])
            total = head_end + 4 + length
            if len(self.buf) < total:
                return
            status_ok = head.startswith(b"HTTP/1.1 200")
            self.buf = self.buf[total:]
            self.stats["requests" if status_ok else "errors"] += 1
            assert self.transport is not None  # noqa: S101 - connected
            if time.monotonic() >= self.deadline:
                self.transport.close()
                return
            self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if time.monotonic() < self.deadline:
            self.stats["errors"] += 1
        if not self.done.done():
            self.done.set_result(None)


async def main(host: str, port: int, path: str, *, token: str, connections: int, duration_s: float) -> None:
    """Run ``connections`` connections for ``duration_s`` seconds and print the counts."""
    request = (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
               f"Authorization: Bearer {token}\r\nAccept: application/json\r\n\r\n").encode()
    stats = {"requests": 0, "errors": 0}
    loop = asyncio.get_running_loop()
    start = time.monotonic()
    deadline = start + duration_s
    done = [loop.create_future() for _ in range(connections)]
    for fut in done:
        await loop.create_connection(functools.partial(_Conn, request, stats, deadline, fut), host, port)
    await asyncio.gather(*done)
    elapsed = time.monotonic() - start
    sys.stdout.buffer.write(orjson.dumps({**stats, "elapsed_s": elapsed}) + b"\n")
    sys.stdout.flush()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--token", default="")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--duration-s", type=float, default=5.0)
    a = parser.parse_args()
    asyncio.run(main(a.host, a.port, a.path, token=a.token, connections=a.connections,
                     duration_s=a.duration_s))
