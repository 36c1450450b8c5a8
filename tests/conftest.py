"""Autouse guards for every test: no leaked asyncio tasks, no blocking calls on the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from blockbuster import BlockBuster, blockbuster_ctx


@pytest.fixture(autouse=True, scope="session")
def state_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A config without data_dir keeps its state under a temporary XDG_STATE_HOME, not ~."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("STATE_DIRECTORY", raising=False)
        mp.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))
        yield


@pytest.fixture(autouse=True)
def blockbuster() -> Iterator[BlockBuster]:
    """Fail a test whose code makes a blocking call on the running event loop."""
    # Scan only our own packages: a blocking call reached from gateway/, drivers/ or simulator/
    # code on the loop is a bug; third-party start-up I/O is not ours to police.
    with blockbuster_ctx(["gateway", "drivers", "simulator"]) as bb:
        # Rendering a logged traceback reads source lines; that is the logger's cost, not ours.
        for name in ("os.stat", "io.BufferedReader.read", "io.TextIOWrapper.read"):
            if name in bb.functions:
                bb.functions[name].can_block_in("linecache.py", {"updatecache", "checkcache"})
                bb.functions[name].can_block_in("rich/traceback.py", {"_render_stack", "from_exception"})
        for name in ("os.path.abspath", "os.getcwd"):  # structlog's dict tracebacks, the same cost
            if name in bb.functions:
                bb.functions[name].can_block_in("structlog/tracebacks.py", {"extract"})
        yield bb


@pytest_asyncio.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    """Fail a test that leaves asyncio tasks running behind it."""
    before = set(asyncio.all_tasks())
    yield
    leaked: set[asyncio.Task[object]] = set()
    for _ in range(5):  # let cancelled tasks finish unwinding before judging
        leaked = {t for t in asyncio.all_tasks() - before
                  if not t.done() and t is not asyncio.current_task()}
        if not leaked:
            return
        await asyncio.sleep(0)
    names = sorted(t.get_name() + ": " + repr(t.get_coro()) for t in leaked)
    pytest.fail(f"test leaked {len(leaked)} asyncio task(s): {names}")
