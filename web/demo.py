"""Demo data: each package contributes a seed function through the SEEDS list.

A seed is ``async def seed(runtime: Runtime) -> DemoReport | None``. It must be
idempotent (the demo seeds at every start) and may return links to open and logins to
show. Seeds whose module does not exist yet are skipped.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from web.runtime import Runtime, open_runtime
from web.settings import Settings
from web.territories import seed_default_groups


@dataclass
class DemoReport:
    """What a seed wants the person starting the demo to know."""

    links: list[tuple[str, str]] = field(default_factory=list)  # (label, path)
    logins: list[tuple[str, str, str]] = field(default_factory=list)  # (role, login, password)
    notes: list[str] = field(default_factory=list)

    def merge(self, other: DemoReport) -> None:
        self.links.extend(other.links)
        self.logins.extend(other.logins)
        self.notes.extend(other.notes)


DemoSeed = Callable[[Runtime], Awaitable[DemoReport | None]]

# "module:function", run in this order (territories first: volunteers need the groups).
SEEDS: list[str] = [
    "web.demo:seed_territories",
    "volunteers.demo:seed",
    "callers.demo:seed",
]


async def seed_territories(runtime: Runtime) -> DemoReport:
    """The default territory groups (Massif alpin), then the engine reloads them."""
    async with runtime.db.transaction() as session:
        added = await seed_default_groups(session, actor="demo")
    await runtime.reload_territories()
    report = DemoReport(links=[("Tableau de bord (coordination)", "/coordination")])
    if added:
        report.notes.append(f"territory groups added: {', '.join(added)}")
    return report


def resolve(spec: str) -> DemoSeed | None:
    """The seed function named by ``module:function``, or None if the module is absent."""
    module_name, _, attr = spec.partition(":")
    package = module_name.partition(".")[0]
    if importlib.util.find_spec(package) is None or importlib.util.find_spec(module_name) is None:
        return None
    return getattr(importlib.import_module(module_name), attr)


async def run_seeds(settings: Settings) -> DemoReport:
    """Run every available seed against the configured Redis and database."""
    report = DemoReport()
    async with open_runtime(settings) as runtime:
        for spec in SEEDS:
            seed = resolve(spec)
            if seed is None:
                continue
            result = await seed(runtime)
            if result is not None:
                report.merge(result)
    return report


def banner(settings: Settings, report: DemoReport) -> str:
    """The text printed when the demo starts: what to open, how to log in."""
    base = settings.public_base_url
    lines = ["", "Permanence demo", "=" * 15, "", "Open:"]
    lines.append(f"  {'Home':<28} {base}/")
    for label, path in report.links:
        lines.append(f"  {label:<28} {base}{path}")
    lines.append(f"  {'Health check':<28} {base}/healthz")
    if report.logins:
        lines += ["", "Demo logins:"]
        for role, login, password in report.logins:
            lines.append(f"  {role:<16} {login:<32} {password}")
    if report.notes:
        lines += ["", *(f"  {note}" for note in report.notes)]
    lines += [
        "",
        f"Data (embedded Redis, SQLite) in {settings.data_dir}",
        "Stop with Ctrl-C.",
        "",
    ]
    return "\n".join(lines)
