"""The demo's seeds: hooks from each package, idempotent, and the banner that lists them."""

from __future__ import annotations

import pytest
from sqlmodel import select

from web import demo
from web.demo import DemoReport, banner, resolve, run_seeds
from web.models import TerritoryGroup
from web.runtime import Runtime
from web.settings import Settings


async def test_seeding_twice_adds_the_massif_alpin_once(
    app_settings: Settings, database
) -> None:
    first = await run_seeds(app_settings)
    second = await run_seeds(app_settings)
    assert "territory groups added: massif-alpin" in first.notes
    assert "territory groups added: massif-alpin" not in second.notes
    async with database.session() as session:
        rows = list(await session.exec(select(TerritoryGroup)))
    assert [r.id for r in rows] == ["massif-alpin"]


async def test_a_seed_hook_reports_links_and_logins(
    app_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []

    async def seed(runtime: Runtime) -> DemoReport:
        seen.append(runtime.engine.keys.line)
        return DemoReport(
            links=[("Espace bénévoles", "/benevoles")],
            logins=[("bénévole", "marie@demo.example", "demo-marie")],
        )

    monkeypatch.setattr(demo, "demo_test_seed", seed, raising=False)
    monkeypatch.setattr(demo, "SEEDS", [*demo.SEEDS, "web.demo:demo_test_seed"])
    report = await run_seeds(app_settings)
    assert seen == [app_settings.line]
    text = banner(app_settings, report)
    assert f"{app_settings.public_base_url}/benevoles" in text
    assert "marie@demo.example" in text and "demo-marie" in text
    assert f"{app_settings.public_base_url}/healthz" in text


def test_seeds_of_packages_not_written_yet_are_skipped() -> None:
    assert resolve("nosuchpackage.demo:seed") is None
    assert resolve("web.nosuchmodule:seed") is None
    assert resolve("web.demo:seed_territories") is demo.seed_territories
