"""How many volunteers a slot needs, and who decided it.

One rule for every page that shows a target (the volunteers' week view, the
coordinators' dashboard and coverage page): a coordinator's override (``SlotTarget``)
wins; otherwise the forecast need; otherwise the configured fallback.

The forecast comes from the line's contact history, which volunteers/ cannot read:
web/ installs a ``ForecastProvider`` (see web/volunteers_glue.py) that hands back an
object with ``for_slot(start, end)``, or None when no forecast can be made.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from volunteers.models import SlotTarget
from volunteers.slots import Slot

log = logging.getLogger(__name__)


class TargetSource(StrEnum):
    COORDINATOR = "coordinator"
    FORECAST = "forecast"
    FALLBACK = "fallback"


SOURCE_LABELS = {
    TargetSource.COORDINATOR: "fixé par un coordinateur",
    TargetSource.FORECAST: "prévision",
    TargetSource.FALLBACK: "valeur par défaut",
}


class NeedForecast(Protocol):
    """Volunteers a slot needs according to the forecast (web.staffing.Demand)."""

    def for_slot(self, start: datetime, end: datetime) -> int: ...


ForecastProvider = Callable[[], Awaitable[NeedForecast | None]]


@dataclass(frozen=True)
class SlotGoal:
    """A slot's target, where it comes from, and what the forecast alone says."""

    target: int
    source: TargetSource
    forecast: int | None = None  # shown next to an override, so coordinators can compare

    @property
    def source_label(self) -> str:
        return SOURCE_LABELS[self.source]


def decide(override: int | None, forecast: int | None, fallback: int) -> SlotGoal:
    """The rule: override, else forecast, else fallback.

    A forecast never asks for nobody: while the line is open someone must be there to
    answer, even when history says the half hour is quiet. A coordinator may still set 0.
    """
    if override is not None:
        return SlotGoal(override, TargetSource.COORDINATOR, forecast)
    if forecast is not None:
        return SlotGoal(max(1, forecast), TargetSource.FORECAST, forecast)
    return SlotGoal(fallback, TargetSource.FALLBACK, None)


async def current_forecast(provider: ForecastProvider | None) -> NeedForecast | None:
    """The provider's forecast; a failing forecast falls back, never breaks a page."""
    if provider is None:
        return None
    try:
        return await provider()
    except Exception:
        log.exception("slot forecast unavailable; using the fallback target")
        return None


async def slot_goals(
    session: AsyncSession,
    slots: Sequence[Slot],
    fallback: int,
    provider: ForecastProvider | None = None,
) -> dict[datetime, SlotGoal]:
    """Each slot's goal, keyed by its UTC start."""
    if not slots:
        return {}
    first, last = min(s.start for s in slots), max(s.start for s in slots)
    overrides = {
        t.slot_start: t.target
        for t in await session.exec(
            select(SlotTarget).where(SlotTarget.slot_start >= first, SlotTarget.slot_start <= last)
        )
    }
    forecast = await current_forecast(provider)
    return {
        s.start: decide(
            overrides.get(s.start),
            forecast.for_slot(s.start, s.end) if forecast is not None else None,
            fallback,
        )
        for s in slots
    }
