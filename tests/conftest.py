"""Autouse guards for every test: no leaked asyncio tasks, no blocking calls on the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from blockbuster import BlockBuster, blockbuster_ctx


@pytest.fixture(autouse=True)
def blockbuster() -> Iterator[BlockBuster]:
    """Fail a test whose code makes a blocking call on the running event loop."""
    # Scan only our own packages: a blocking call reached from gateway/, drivers/ or simulator/
    # code on the loop is a bug; third-party start-up I/O is not ours to police.
    with blockbuster_ctx(["gateway", "drivers", "simulator"]) as bb:
        yield bb


@pytest_asyncio.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    """Fail a test that leaves asyncio tasks running behind it."""
    before = set(asyncio.all_tasks())
    yield
    # Let cancelled tasks finish unwinding before judging.
    for _ in range(5):
        leaked = {t for t in asyncio.all_tasks() - before if not t.done()}
        leaked.discard(asyncio.current_task())  # type: ignore[arg-type]
        if not leaked:
            return
        await asyncio.sleep(0)
    names = sorted(t.get_name() + ": " + repr(t.get_coro()) for t in leaked)
    pytest.fail(f"test leaked {len(leaked)} asyncio task(s): {names}")
