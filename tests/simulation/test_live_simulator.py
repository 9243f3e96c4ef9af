"""The live simulator against the real app served by uvicorn: signed webhooks, web chats
over the public websocket, consoles, the coordinator's dashboard, and the app's Twilio REST
calls coming back to the simulator."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from routing.clock import PARIS, Clock
from routing.keys import Keys
from tests.callers.live import free_port, serve
from web.cli import cli
from web.settings import Settings
from web.simulation.scenario import poisson

TOKEN = "live-simulation-token"
ACCOUNT = "AC" + "5" * 32
NUMBER = "+33800555666"


class OpenHoursClock(Clock):
    """Real time, shifted to a Monday morning so the line is open whenever the test runs."""

    def __init__(self, at: datetime) -> None:
        self.offset_ms = int(at.timestamp() * 1000) - int(time.time() * 1000)

    def now_ms(self) -> int:
        return int(time.time() * 1000) + self.offset_ms


@pytest.fixture
async def live_app(app_settings: Settings, redis, monkeypatch: pytest.MonkeyPatch):
    """The app on a free port, its Twilio REST API pointed at the simulator's port."""
    port, twilio_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    settings = app_settings.model_copy(update={
        "public_base_url": base, "port": port, "twilio_fake": False,
        "twilio_api_base": f"http://127.0.0.1:{twilio_port}", "twilio_account_sid": ACCOUNT,
        "twilio_auth_token": TOKEN, "twilio_number": NUMBER,
    })  # fmt: skip
    # The command seeds its accounts in the database of its environment: the app's.
    for name, value in {
        "DATA_DIR": str(settings.data_dir), "DATABASE_URL": settings.database_url,
        "DATABASE_SCHEMA": settings.database_schema, "SECRET_KEY": settings.secret_key,
        "TWILIO_ACCOUNT_SID": ACCOUNT, "TWILIO_AUTH_TOKEN": TOKEN, "TWILIO_NUMBER": NUMBER,
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    monday = OpenHoursClock(datetime(2026, 11, 23, 10, 0, tzinfo=PARIS))
    with serve(settings, monday, port):
        yield base, twilio_port, settings.line
    async for key in redis.scan_iter(match=f"*{{{settings.line}}}*", count=1000):
        await redis.delete(key)


def simulate(base: str, twilio_port: int, load: dict, out: Path, *more: str):
    """`permanence simulate --live` on a Poisson load (a dict of poisson()'s arguments)."""
    args = ["simulate", "--live", "--url", base, "--twilio-listen", f"127.0.0.1:{twilio_port}",
            "--poisson", str(load["calls_per_hour"]), "--hours", str(load["hours"]),
            "--aht", str(load["aht_s"]), "--patience", str(load["patience_s"]),
            "--volunteers", str(load["volunteers_on_duty"]), "--seed", str(load["seed"]),
            "--speedup", "20", "--drain", "120", "--json", str(out), *more]  # fmt: skip
    if load.get("chat_share"):
        args += ["--chat-share", str(load["chat_share"])]
    return CliRunner().invoke(cli, args)


def calls_and_chats(load: dict) -> tuple[int, int]:
    """How many phone calls and web chats the simulator will place for this load."""
    scenario = poisson(**load, start_s=8 * 3600)
    chats = sum(c.channel == "chat" for c in scenario.calls)
    return len(scenario.calls) - chats, chats


POISSON = {"calls_per_hour": 400, "hours": 0.02, "aht_s": 40, "patience_s": 150,
           "volunteers_on_duty": 3, "seed": 4}  # fmt: skip


def test_live_run_accounts_for_every_call(live_app, tmp_path: Path) -> None:
    base, twilio_port, _ = live_app
    out = tmp_path / "live.json"
    result = simulate(base, twilio_port, POISSON, out, "--widen", "20,40,60")
    assert result.exit_code == 0, result.output
    assert "Service level" in result.output and "Dispatch latency" in result.output
    report = json.loads(out.read_text(encoding="utf-8"))
    placed = len(poisson(**POISSON, start_s=8 * 3600).calls)
    m, live = report["metrics"], report["live"]
    assert placed >= 3
    assert live["refused"] == 0  # the line was open and volunteers on duty
    assert report["calls"] == placed == m["offered"]
    assert m["answered"] + m["abandoned"] + report["closed_at_end"] == m["offered"]
    assert m["answered"] >= 1
    lat = live["dispatch_latency_ms"]
    assert lat["count"] >= 1 and 0 <= lat["p50"] <= lat["max"]
    # The thresholds were set on the server through the coordinators' routing page.
    assert live["routing_config_on_server"]["widen_national_s"] == pytest.approx(3.0)
    # The coordinator's dashboard saw the same offered calls the callers placed.
    assert live["dashboard_updates"] >= 1
    assert live["server_today"]["offered"] == m["offered"]
    # A volunteer ending the call in the console cuts the caller's line too.
    assert 1 <= live["calls_ended_by_volunteer"] <= m["answered"]


MIXED = {"calls_per_hour": 500, "hours": 0.02, "aht_s": 60, "patience_s": 400,
         "volunteers_on_duty": 2, "seed": 6, "chat_share": 0.6}  # fmt: skip


async def test_live_run_with_chats_over_the_public_websocket(live_app, redis, tmp_path) -> None:
    """Chats start on the public API, wait and talk on /aide/ws, and are answered by
    console volunteers, several at once; every contact is counted in its channel, as the
    server counted it."""
    base, twilio_port, line = live_app
    out = tmp_path / "mixed.json"
    calls, chats = calls_and_chats(MIXED)
    assert chats >= 3 and calls >= 1
    result = await asyncio.to_thread(
        simulate, base, twilio_port, MIXED, out, "--widen", "20,40,60")
    assert result.exit_code == 0, result.output
    assert "Chats" in result.output and "Chat messages" in result.output
    report = json.loads(out.read_text(encoding="utf-8"))
    channels, chat = report["live"]["channels"], report["live"]["chat"]
    assert channels["voice"]["contacts"] == calls and channels["chat"]["contacts"] == chats
    server = await redis.hgetall(Keys(line).stats("2026-11-23"))
    for name, c in channels.items():
        assert c["refused"] == 0
        assert c["answered"] + c["abandoned"] + c["closed"] == c["offered"] == c["contacts"]
        assert int(server.get(f"offered_{name}", 0)) == c["offered"]
        assert int(server.get(f"answered_{name}", 0)) == c["answered"]
        assert int(server.get(f"abandoned_{name}", 0)) == c["abandoned"]
    assert report["metrics"]["offered"] == calls + chats == report["calls"]
    answered = channels["chat"]["answered"]
    assert answered == chats and channels["chat"]["asa_s"] is not None
    # Words crossed both ways: every chat was greeted on its page, and callers' messages
    # reached the consoles; callers ended their chats themselves.
    assert chat["volunteer_messages_seen_by_callers"] >= answered
    assert chat["caller_messages_sent"] >= answered and chat["caller_messages_refused"] == 0
    assert chat["caller_messages_seen_by_volunteers"] == chat["caller_messages_sent"]
    assert chat["ended_by_volunteer"] == 0
    # Several chats at once, never beyond the capacity; a call takes a volunteer whole.
    assert 2 <= chat["most_chats_at_once"] <= chat["chat_capacity"]
    assert chat["calls_alongside_another_task"] == 0
    assert report["live"]["dispatch_latency_ms"]["count"] >= calls + chats


BY_PHONE = {"calls_per_hour": 500, "hours": 0.02, "aht_s": 40, "patience_s": 400,
            "volunteers_on_duty": 3, "seed": 8, "chat_share": 0.3}  # fmt: skip


async def test_live_run_with_volunteers_on_their_own_phone(live_app, redis, tmp_path) -> None:
    """Volunteers in phone mode: the app rings their number with a whisper, they press 1,
    and hang up at the end, which ends the caller's call; chats still reach their console."""
    base, twilio_port, line = live_app
    out = tmp_path / "phone.json"
    calls, chats = calls_and_chats(BY_PHONE)
    assert calls >= 3 and chats >= 1
    result = await asyncio.to_thread(
        simulate, base, twilio_port, BY_PHONE, out, "--phone-share", "1")
    assert result.exit_code == 0, result.output
    assert "Volunteers on their own phone: 3" in result.output
    report = json.loads(out.read_text(encoding="utf-8"))
    live = report["live"]
    voice, chat = live["channels"]["voice"], live["channels"]["chat"]
    assert voice["contacts"] == calls and chat["contacts"] == chats
    # Every call answered was taken on a phone, by pressing 1 after the whisper.
    assert voice["answered"] >= 1 and live["phone"]["calls_taken"] == voice["answered"]
    assert chat["answered"] >= 1  # in the console, as before
    server = await redis.hgetall(Keys(line).stats("2026-11-23"))
    for name, c in live["channels"].items():
        assert c["answered"] + c["abandoned"] + c["closed"] == c["offered"] == c["contacts"]
        assert int(server.get(f"answered_{name}", 0)) == c["answered"]
    # Each conversation ended once; a volunteer putting the phone down cut the caller's line.
    assert int(server.get("completed", 0)) == voice["answered"] + chat["answered"]
    assert 1 <= live["calls_ended_by_volunteer"] <= voice["answered"]
