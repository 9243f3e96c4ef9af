"""Reports from the recorded history: the same numbers as the live counters, filtered, as CSV."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis

from routing.clock import PARIS, ManualClock, buckets
from routing.engine import Engine
from routing.metrics import compute
from tests.coordination.test_recorder import a_morning, drain
from volunteers import accounts
from volunteers.models import AccountStatus, Booking, WrapUp
from web.coordination.history import Thresholds
from web.coordination.people import volunteer_info
from web.coordination.recorder import Recorder
from web.coordination.reports import Period, ReportFilter, build_report, report_csv
from web.db import Database

MONDAY = datetime(2026, 11, 23).date()


async def recorded_morning(engine: Engine, clock: ManualClock, redis: Redis,
                           database: Database) -> None:
    await a_morning(engine, clock)
    await drain(Recorder(redis, database.engine, line=engine.keys.line))


async def test_a_day_report_gives_the_live_counters_numbers(
    engine: Engine, clock: ManualClock, redis: Redis, database: Database
) -> None:
    await recorded_morning(engine, clock, redis, database)
    live = compute(await engine.counts(buckets(clock.now_ms())[0]))
    async with database.session() as session:
        report = await build_report(session, engine.keys.line, Period.of("day", MONDAY),
                                    ReportFilter(), Thresholds(), now_ms=clock.now_ms())
    total = report.total.metrics
    assert {k: v for k, v in total.as_dict().items() if k != "occupancy"} == {
        k: v for k, v in live.as_dict().items() if k != "occupancy"}
    assert [r.label for r in report.rows] == ["09 h"]
    assert report.rows[0].metrics.offered == 5  # c5's callback is c5, offered once
    # From the recorded presence and assignment events: v1 is on duty from 09:00 until the
    # pause 262 s later and holds c1 from 8 s to the end of its wrap-up at 143 s; v2 is on
    # duty from 148 s to the end (114 s) and holds c2 from 152 s to 262 s (110 s).
    v1 = next(v for v in report.volunteers if v.volunteer == "v1")
    assert v1.staffed_h * 3600 == pytest.approx(262) and v1.occupancy == pytest.approx(135 / 262)
    assert total.occupancy == pytest.approx((135 + 110) / (262 + 114))


async def test_filters_by_channel_departement_and_region(
    engine: Engine, clock: ManualClock, redis: Redis, database: Database
) -> None:
    await recorded_morning(engine, clock, redis, database)
    day = Period.of("day", MONDAY)

    async def offered(**kw: str) -> tuple[int, int, int]:
        async with database.session() as session:
            r = await build_report(session, engine.keys.line, day, ReportFilter(**kw),
                                   Thresholds())
        m = r.total.metrics
        return m.offered, m.answered, m.abandoned

    assert await offered(channel="chat") == (1, 0, 1)
    assert await offered(channel="callback") == (1, 0, 0)
    assert await offered(departement="05") == (1, 1, 0)
    assert await offered(region="93") == (3, 2, 1)  # 05, 13 and 84 are in PACA
    assert await offered(region="93", channel="voice") == (3, 2, 1)
    assert await offered(topic="impots") == (0, 0, 0)
    # The week holding that Monday has the same total, spread over seven days.
    async with database.session() as session:
        week = await build_report(session, engine.keys.line, Period.of("week", MONDAY),
                                  ReportFilter(), Thresholds())
    assert len(week.rows) == 7 and week.rows[0].metrics.offered == 5
    assert sum(r.metrics.offered for r in week.rows[1:]) == 0


async def test_wrapups_bookings_and_the_csv_carry_the_same_numbers(
    engine: Engine, clock: ManualClock, redis: Redis, database: Database
) -> None:
    async with database.session() as session:
        anne = await accounts.create_account(
            session, email="anne@exemple.fr", password="mot-de-passe-solide-42",
            name="Anne Alpes", status=AccountStatus.APPROVED, postal_code="05000")
    # The engine knows volunteers by their public id.
    await a_morning(engine, clock, v1=anne.public_id)
    await drain(Recorder(redis, database.engine, line=engine.keys.line))
    slot = datetime(2026, 11, 23, 9, 0, tzinfo=PARIS).astimezone(UTC)
    async with database.session() as session:
        # As the console stores them: codes, named in French wherever coordinators read them.
        session.add(WrapUp(task_id="c1", account_id=anne.id, volunteer_id=anne.public_id,
                           topic="famille", outcome="referred", referral="aidants_connect",
                           created_at=slot + timedelta(minutes=5)))
        session.add(WrapUp(task_id="c2", account_id=anne.id, volunteer_id=anne.public_id,
                           topic="famille", outcome="interrupted",
                           created_at=slot + timedelta(minutes=9)))
        session.add(Booking(account_id=anne.id, slot_start=slot,
                            slot_end=slot + timedelta(hours=2), present_at=slot))
        await session.commit()
    period = Period.of("day", MONDAY)
    async with database.session() as session:
        info = await volunteer_info(session, period, engine.territories, clock.now_ms())
        report = await build_report(session, engine.keys.line, period, ReportFilter(),
                                    Thresholds(), volunteer_info=info)
    assert sorted(report.outcomes) == [("Interrompu (appel coupé, personne partie)", 1),
                                       ("Orienté vers un organisme", 1)]
    assert report.referrals == [("Aidants Connect", 1)]
    line = next(v for v in report.volunteers if v.volunteer == anne.public_id)
    assert (line.name, line.booked, line.attended, line.adherence) == ("Anne Alpes", 1, 1, 1.0)

    rows = list(csv.reader(io.StringIO(report_csv(report, "volumes")), delimiter=";"))
    header, total = rows[0], rows[-1]
    assert total[0] == "Total"
    got = dict(zip(header, total, strict=True))
    m = report.total.metrics
    assert int(got["Contacts reçus"]) == m.offered == 5
    assert int(got["Répondus"]) == m.answered and int(got["Abandons"]) == m.abandoned
    assert float(got["Niveau de service"]) == pytest.approx(m.service_level, abs=1e-4)
    assert float(got["Attente moyenne avant réponse (s)"]) == pytest.approx(m.asa_s)
    wrapups = list(csv.reader(io.StringIO(report_csv(report, "comptes-rendus")), delimiter=";"))
    assert ["Issue", "Orienté vers un organisme", "1"] in wrapups
    assert ["Orientation", "Aidants Connect", "1"] in wrapups
    people = list(csv.reader(io.StringIO(report_csv(report, "benevoles")), delimiter=";"))
    assert people[1][0] == "Anne Alpes" and people[1][4:8] == ["1", "1", "0", "1"]
    with pytest.raises(ValueError):
        report_csv(report, "inconnu")
