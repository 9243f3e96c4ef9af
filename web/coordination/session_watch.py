"""Open dashboards whose session ended: checked together, one query per period per process.

A dashboard stays open for hours and shows every volunteer and caller. An account disabled,
no longer a coordinator, or whose password changed (the session's version) must stop
receiving it within a moment, as a volunteer's console stops taking calls. One query per
socket and period cost 40 reads a second with 200 dashboards open, and it showed in the
dashboards' staleness and the offers' latency on SQLite (bench/README.md, 2026-12-03).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from volunteers import accounts
from volunteers.access import session_user_at

log = logging.getLogger(__name__)

CHECK_EVERY_S = 5.0


class DashboardSessions:
    """The sessions behind this process's open dashboards."""

    def __init__(self, sessions: Callable[[], Any], every_s: float | None = None) -> None:
        self._sessions = sessions
        self.every_s = every_s  # None: CHECK_EVERY_S, read at each round
        self._open: dict[asyncio.Event, tuple[int, int]] = {}  # ended → (account, version)
        self._task: asyncio.Task[None] | None = None

    def watch(self, account_id: int, version: int) -> asyncio.Event:
        """An event set once this session no longer stands for a coordinator."""
        ended = asyncio.Event()
        self._open[ended] = (account_id, version)
        if self._task is None or self._task.done():  # runs while a dashboard is open
            self._task = asyncio.get_running_loop().create_task(self._run())
        return ended

    def forget(self, ended: asyncio.Event) -> None:
        self._open.pop(ended, None)

    async def close(self) -> None:
        """Stop checking (the app stops)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while self._open:
            await asyncio.sleep(CHECK_EVERY_S if self.every_s is None else self.every_s)
            try:
                await self.check()
            except (SQLAlchemyError, OSError):  # a database hiccup: check again next time
                log.warning("dashboards: could not check their sessions", exc_info=True)

    async def check(self) -> int:
        """Check every open dashboard's session in one query; how many ended."""
        watched = dict(self._open)
        if not watched:
            return 0
        ids = {account_id for account_id, _ in watched.values()}
        async with self._sessions() as session:
            rows = await accounts.by_ids(session, ids)
        ended = 0
        for event, (account_id, version) in watched.items():
            user = session_user_at(rows.get(account_id), version)
            if user is None or "coordinator" not in user.scopes:
                event.set()
                ended += 1
        return ended
