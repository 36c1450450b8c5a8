"""A Modbus TCP proxy: third parties share the gateway's one connection to a device."""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from drivers.errors import DeviceRejected, DeviceUnreachable
from drivers.transport.mbap import (
    ExceptionCode,
    FrameError,
    Function,
    Rejected,
    Request,
    exception_reply,
    next_request,
    read_reply,
    write_reply,
)
from drivers.transport.modbus import ModbusEndpoint, Priority

log = structlog.get_logger("gateway.runtime.proxy")


class ModbusProxy:
    """Serves FC3 reads (and, when allowed, FC6/FC16 writes) of one device on its own port.

    Requests go through the device's shared endpoint, so single-client inverters keep exactly
    one connection; reads queue behind the gateway's commands like its own polls. Any unit id
    reaches the device (the reply echoes the client's unit id).
    """

    def __init__(
        self, endpoint: ModbusEndpoint, *, unit_id: int, host: str, port: int,
        allow_writes: bool, name: str,
    ) -> None:
        self._endpoint = endpoint
        self._unit_id = unit_id
        self._host = host
        self._port = port
        self._allow_writes = allow_writes
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()
        self._log = log.bind(device=name)
        self.requests = 0
        self.refused_writes = 0

    @property
    def port(self) -> int:
        """The bound port (after start)."""
        if self._server is None:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        """Listen for Modbus TCP clients."""
        self._server = await asyncio.start_server(self._accept, self._host, self._port)
        self._log.info("proxy.listening", host=self._host, port=self.port,
                       writes=self._allow_writes)

    async def stop(self) -> None:
        """Stop listening and drop every client."""
        if self._server is not None:
            self._server.close()
        for task in list(self._clients):
            task.cancel()
        for task in list(self._clients):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._clients.add(task)
        peer = writer.get_extra_info("peername")
        try:
            await self._serve(reader, writer)
        except FrameError as exc:
            self._log.warning("proxy.bad_frame", peer=str(peer), error=str(exc))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            # stop() cancels this connection task. asyncio runs it as the connection's own task
            # and, on 3.11, calls task.exception() when it ends, which raises for a cancelled
            # task and logs "Exception in callback StreamReaderProtocol.connection_made..." with
            # a traceback: end normally instead (only stop() awaits it).
            if task is not None:
                task.uncancel()
        finally:
            if task is not None:
                self._clients.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buffer = b""
        while True:
            data = await reader.read(4096)
            if not data:
                return
            buffer += data
            while True:
                request, used = next_request(buffer)
                if request is None:
                    break
                buffer = buffer[used:]
                writer.write(await self._answer(request))
            await writer.drain()

    async def _answer(self, request: Request | Rejected) -> bytes:
        self.requests += 1
        if isinstance(request, Rejected):
            return exception_reply(request.transaction_id, request.unit_id, request.function,
                                   request.code)
        try:
            if request.function == Function.READ_HOLDING:
                registers = await self._endpoint.read_holding(
                    self._unit_id, request.address, request.count, priority=Priority.POLL)
                return read_reply(request, registers)
            if not self._allow_writes:
                self.refused_writes += 1
                return exception_reply(request.transaction_id, request.unit_id,
                                       request.function, ExceptionCode.ILLEGAL_FUNCTION)
            await self._endpoint.write(self._unit_id, request.address, request.values,
                                       priority=Priority.COMMAND)
            self._log.info("proxy.write", address=request.address, values=list(request.values))
            return write_reply(request)
        except DeviceRejected as exc:
            code = exc.code if exc.code is not None else ExceptionCode.DEVICE_FAILURE
            return exception_reply(request.transaction_id, request.unit_id, request.function,
                                   code)
        except DeviceUnreachable:
            return exception_reply(request.transaction_id, request.unit_id, request.function,
                                   ExceptionCode.GATEWAY_TARGET_FAILED)
