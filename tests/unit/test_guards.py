"""The autouse guards themselves catch what they promise to catch."""

from __future__ import annotations

import asyncio

from blockbuster import BlockBuster


async def test_event_loop_runs_under_guards(blockbuster: BlockBuster) -> None:
    assert blockbuster is not None
    await asyncio.sleep(0)
