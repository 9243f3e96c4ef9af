"""Glue that hands volunteers/ the forecast need of each slot (volunteers/ cannot read the
contact history, which lives in web/): ``app.state.slot_forecast``, a cached Demand."""

from __future__ import annotations

from fastapi import FastAPI

from volunteers.targets import NeedForecast
from web.staffing import DemandCache


def install_slot_forecast(app: FastAPI) -> None:
    """Give volunteers/ (and the dashboard) ``app.state.slot_forecast``: the line's Demand.

    The cache is made when first asked, once the app's runtime (database, engine clock)
    is open; volunteers.targets decides between it, a coordinator's override and the
    configured fallback.
    """
    made_for: dict[str, object] = {}  # the runtime the cache reads from

    async def forecast() -> NeedForecast | None:
        runtime = getattr(app.state, "runtime", None)
        if runtime is None:
            return None
        if made_for.get("runtime") is not runtime:  # first use, or the app was restarted
            made_for["runtime"] = runtime
            app.state.demand_cache = DemandCache(
                runtime.db.session,
                runtime.settings.line,
                runtime.engine.clock.now_ms,
                ttl_s=runtime.settings.staffing_refresh_s,
                contacts_per_day=runtime.settings.forecast_contacts_per_day,
            )
        return await app.state.demand_cache.get()

    app.state.slot_forecast = forecast
