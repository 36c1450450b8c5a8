"""Background tasks started in a clean context, so no request's log binding reaches their log lines."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["spawn"]

T = TypeVar("T")


def spawn(coro: Coroutine[Any, Any, T], *, name: str) -> asyncio.Task[T]:
    """Run ``coro`` as a task of its own, in an empty context rather than a copy of the caller's.

    Shared connections start their reconnect loops and keepalives lazily, often inside whichever
    request first needs them. A task copies its creator's contextvars, so such a loop would carry
    that request's ``request_id``/``token_sub`` (bound with structlog.contextvars) in every log
    line for the rest of its life. A background task belongs to no request.
    """
    return asyncio.get_running_loop().create_task(coro, name=name, context=contextvars.Context())
