"""The bucket still filling reaches the store before it closes: a killed gateway loses seconds."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from gateway.core.history import BUCKET
from gateway.runtime.storage.history import HistoryStore
from gateway.web.keys import GATEWAY
from simulator import Simulator
from tests.helpers import SITE_ID, eventually, gateway_config
from tests.integration.conftest import GatewayFactory


async def test_a_checkpoint_stores_the_open_bucket_and_its_remainder_adds_to_it(
    sim: Simulator, tmp_path: Path, start_gateway: GatewayFactory,
) -> None:
    sim.homes["home-1001"].set_load_scale(30)  # kW of load: energy in every interval, sun or not
    async with start_gateway(gateway_config(sim, tmp_path / "data")) as gw:
        history = gw.app[GATEWAY].history
        store = HistoryStore(gw.app[GATEWAY].storage)
        now = datetime.now(UTC)
        window = (now - BUCKET * 4, now + BUCKET * 4)

        async def stored() -> float:
            return sum(sum(b.energy.values()) for b in await store.buckets(SITE_ID, *window))

        # nothing closed yet within seconds of start: the store is empty until a checkpoint
        await eventually(lambda: history.buffered_wh(SITE_ID) > 0.5, timeout=15)
        before = await stored()
        await history.flush(checkpoint=True)
        checkpointed = await stored()
        assert checkpointed > before  # the open bucket's energy so far is on disk
        assert history.buffered_wh(SITE_ID) < checkpointed - before  # and left memory
        # the remainder adds to the stored part: the final flush neither loses nor repeats it
        await eventually(lambda: history.buffered_wh(SITE_ID) > 0.5, timeout=15)
        remainder = history.buffered_wh(SITE_ID)
        await history.flush(final=True)
        assert await stored() >= checkpointed + remainder - 1e-6
