"""Background tasks: started in a clean context (no request's log binding), stopped for sure."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["spawn", "stop"]

T = TypeVar("T")


def spawn(coro: Coroutine[Any, Any, T], *, name: str) -> asyncio.Task[T]:
    """Run ``coro`` as a task of its own, in an empty context rather than a copy of the caller's.

    Shared connections start their reconnect loops and keepalives lazily, often inside whichever
    request first needs them. A task copies its creator's contextvars, so such a loop would carry
    that request's ``request_id``/``token_sub`` (bound with structlog.contextvars) in every log
    line for the rest of its life. A background task belongs to no request.
    """
    return asyncio.get_running_loop().create_task(coro, name=name, context=contextvars.Context())


async def stop(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` and wait until it is done (None: nothing to stop).

    Cancel again until it is really gone: on Python 3.11 ``asyncio.wait_for`` (inside pymodbus'
    and aiomqtt's awaits) can swallow a cancellation that races the answer it was waiting for.
    """
    while task is not None and not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.1)
