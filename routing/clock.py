"""Time for the engine: the wall clock, or one a test drives."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")


class Clock:
    """The wall clock, in milliseconds since the epoch (UTC)."""

    def now_ms(self) -> int:
        return int(time.time() * 1000)


class ManualClock(Clock):
    """A clock that only moves when told to."""

    def __init__(self, start_ms: int | None = None) -> None:
        self._now = (
            start_ms
            if start_ms is not None
            else int(datetime(2026, 11, 23, 9, 0, tzinfo=PARIS).timestamp() * 1000)
        )

    def now_ms(self) -> int:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += int(round(seconds * 1000))

    def set(self, when: datetime) -> None:
        self._now = int(when.timestamp() * 1000)


QUARTER_MS = 15 * 60 * 1000


def buckets(now_ms: int) -> tuple[str, str]:
    """The day and 15-minute interval labels (Europe/Paris) of a moment; the interval's
    starts with the day's ('2026-12-02', '2026-12-02T09:15'), which the scripts rely on."""
    # Paris has been a whole number of hours from UTC since 1911, so its quarter-hours are
    # UTC quarter-hours: the labels change only every 15 minutes, and the engine asks for
    # them on every transition (computing them was a tenth of its Python time).
    return _quarter_buckets(now_ms // QUARTER_MS)


@lru_cache(maxsize=256)
def _quarter_buckets(quarter: int) -> tuple[str, str]:
    local = datetime.fromtimestamp(quarter * QUARTER_MS / 1000, UTC).astimezone(PARIS)
    return local.strftime("%Y-%m-%d"), f"{local:%Y-%m-%d}T{local:%H:%M}"
