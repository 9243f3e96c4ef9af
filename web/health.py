"""/healthz: is this process able to serve? Checks Redis and the database, says which failed.

Public on purpose (load balancers and orchestrators call it); it names the backends and
the kind of error, never an address or a credential.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from web.runtime import Runtime

log = logging.getLogger(__name__)
router = APIRouter()

CHECK_TIMEOUT_S = 3.0


async def _check(name: str, probe: Awaitable[Any]) -> dict[str, Any]:
    try:
        await asyncio.wait_for(probe, timeout=CHECK_TIMEOUT_S)
    except Exception as exc:  # any failure is the answer we are asked for
        log.warning("health check of %s failed: %r", name, exc)
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True}


@router.get("/healthz", include_in_schema=False)
async def healthz(request: Request) -> JSONResponse:
    """200 when Redis and the database both answer, else 503 naming the failing part."""
    runtime: Runtime = request.app.state.runtime
    redis_state, db_state = await asyncio.gather(
        _check("redis", runtime.redis.ping()), _check("database", runtime.db.ping())
    )
    redis_state["backend"] = runtime.redis_target.backend
    db_state["backend"] = runtime.db.backend
    failing = [name for name, s in (("redis", redis_state), ("database", db_state)) if not s["ok"]]
    body = {
        "status": "error" if failing else "ok",
        "failing": failing,
        "redis": redis_state,
        "database": db_state,
    }
    return JSONResponse(body, status_code=503 if failing else 200)
