"""Chats in simulated days: which contacts are chats, the postal code a chat caller types,
the public chat's per-IP limit as the simulator meets it, and the command's checks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest
from typer.testing import CliRunner

from callers.settings import CallersSettings
from callers.web import callers_settings
from routing.territory import departement_code_for_postal_code, load_territories
from tests.conftest import make_settings
from web.cli import cli
from web.settings import Settings
from web.simulation.clients import ChatCaller, Handled, Line, Volunteer
from web.simulation.live import live_table
from web.simulation.scenario import ScenarioError, draw_channels, from_trace, poisson
from web.simulation.seed import postal_code_of
from web.simulation.trace import DEFAULT_TRACE_FILE, Patience, load_trace

LOAD = {"calls_per_hour": 300, "aht_s": 200, "volunteers_on_duty": 5, "hours": 6,
        "patience_s": 120}  # fmt: skip


def test_every_departement_gets_a_real_postal_code_that_maps_back() -> None:
    codes = load_territories().departements
    assert {"2A", "2B", "971", "972", "973", "974", "976"} <= set(codes)
    for code in codes:
        postal = postal_code_of(code)
        assert len(postal) == 5 and postal.isdigit(), (code, postal)
        assert departement_code_for_postal_code(postal) == code
    # Préfectures: Paris, Marseille and Lyon have no XX000 code; Ajaccio and Bastia.
    assert [postal_code_of(c) for c in ("75", "13", "69", "2A", "2B", "05", "974", "976")] == [
        "75001", "13001", "69001", "20000", "20200", "05000", "97400", "97600"]  # fmt: skip


def test_chat_share_picks_chats_with_the_seed_and_moves_nothing_else() -> None:
    plain = poisson(seed=3, **LOAD)
    assert poisson(seed=3, chat_share=0.0, **LOAD).calls == plain.calls
    assert all(c.channel == "voice" for c in plain.calls)
    mixed = poisson(seed=3, chat_share=0.3, **LOAD)
    assert mixed.calls == poisson(seed=3, chat_share=0.3, **LOAD).calls  # reproducible
    # Arrivals, départements, patience and service are those of the plain day.
    assert [replace(c, channel="voice") for c in mixed.calls] == plain.calls
    assert mixed.volunteer_departements == plain.volunteer_departements
    share = sum(c.channel == "chat" for c in mixed.calls) / len(mixed.calls)
    assert len(mixed.calls) > 1500 and 0.27 < share < 0.33
    other = poisson(seed=4, chat_share=0.3, **LOAD)
    assert [c.channel for c in other.calls[:200]] != [c.channel for c in mixed.calls[:200]]
    assert {c.channel for c in poisson(seed=3, chat_share=1.0, **LOAD).calls} == {"chat"}
    for bad in (-0.1, 1.5):
        with pytest.raises(ScenarioError, match="between 0 and 1"):
            draw_channels(plain.calls, bad, 3)


def test_trace_days_take_a_chat_share_too() -> None:
    trace = load_trace(DEFAULT_TRACE_FILE)
    day = trace["2010-08-02"]
    patience = Patience(day.calls)
    plain = from_trace([day], patience, seed=2)
    mixed = from_trace([day], patience, seed=2, chat_share=0.5)
    assert [replace(c, channel="voice") for c in mixed.calls] == plain.calls
    chats = sum(c.channel == "chat" for c in mixed.calls)
    assert 0.45 < chats / len(mixed.calls) < 0.55
    assert mixed.notes["chat_share"] == 0.5


def test_simulate_checks_the_chat_share() -> None:
    runner = CliRunner()
    base = ["simulate", "--poisson", "10", "--volunteers", "1", "--hours", "1"]
    for bad in ("1.5", "-0.2", "x"):
        refused = runner.invoke(cli, [*base, "--chat-share", bad])
        assert refused.exit_code == 2 and "--chat-share" in refused.output, refused.output
    fast = runner.invoke(cli, [*base, "--chat-share", "0.3"])
    assert fast.exit_code == 2
    assert "fast mode plays phone calls only" in " ".join(fast.output.split())


def test_chat_limits_per_ip_keep_their_defaults_and_can_be_raised(tmp_path) -> None:
    default = callers_settings(make_settings(tmp_path, redis_url="redis://unused"))
    assert (default.chat_starts_per_hour_ip, default.chat_messages_per_minute_ip) == (
        CallersSettings.chat_starts_per_hour_ip,
        CallersSettings.chat_messages_per_minute_ip,
    )
    assert (default.chat_starts_per_hour_ip, default.chat_messages_per_minute_ip) == (20, 40)
    raised = make_settings(tmp_path, redis_url="redis://unused", chat_starts_per_hour_ip=5000,
                           chat_messages_per_minute_ip=9000)  # fmt: skip
    assert callers_settings(raised).chat_starts_per_hour_ip == 5000
    assert callers_settings(raised).chat_messages_per_minute_ip == 9000


@pytest.fixture
def app_settings(app_settings: Settings) -> Settings:
    """The app with room for one chat start per hour from an address."""
    return app_settings.model_copy(update={"chat_starts_per_hour_ip": 1})


@pytest.fixture
async def chat_http(web_app) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=web_app)) as client:
        yield client


async def test_a_chat_caller_says_why_its_chat_was_refused(chat_http) -> None:
    line = Line(base_url="http://testserver")
    first = ChatCaller(line, chat_http)
    assert not await first.start(postal_code_of("05"))
    assert first.refusal == "closed"  # nobody on duty: the app refuses the chat
    second = ChatCaller(line, chat_http)
    assert not await second.start(postal_code_of("05"))
    assert second.refusal == "rate" and second.token == "" and second.task == ""
    assert not await second.wait_answer(1.0)  # nothing to wait for


class _Welcomed:
    """What a Volunteer reads of its console when it starts: the welcome."""

    welcome = {"volunteer": {"chat_capacity": 3}}


def test_held_at_once_counts_overlapping_chats_and_shared_calls() -> None:
    worker = Volunteer(_Welcomed())  # type: ignore[arg-type]
    spans = [("c1", "chat", 0, 10), ("c2", "chat", 5, 12), ("c3", "chat", 12, 20),
             ("v1", "voice", 20, 30), ("v2", "voice", 35, 40), ("c4", "chat", 39, 45)]  # fmt: skip
    for task, channel, start, end in spans:
        worker.handled.append(Handled(task, start, channel=channel, accepted=True,
                                      accepted_at=start, wrapup_sent_at=end))  # fmt: skip
    worker.handled.append(Handled("c5", 1, channel="chat", error="offer_expired"))
    assert worker.chat_capacity == 3
    # c1 and c2 overlap; c3 starts as c2 ends; v1 shares nothing; v2 and c4 overlap.
    assert worker.held_at_once() == (2, 1)


def _section(chat_refusals: dict[str, int], message_refusals: dict[str, int]) -> dict:
    none = {"count": 0, "p50": None, "p90": None, "p99": None, "max": None}
    channel = {"contacts": 0, "offered": 0, "answered": 0, "abandoned": 0, "closed": 0,
               "refused": 0, "refused_by_reason": {}, "failed": 0, "first_error": None,
               "asa_s": None, "service_level": None}  # fmt: skip
    chat = {**channel, "contacts": 5, "refused": sum(chat_refusals.values()),
            "refused_by_reason": chat_refusals}  # fmt: skip
    return {
        "dispatch_latency_ms": {**none, "by_trigger": {"arrival": none}},
        "channels": {"voice": channel, "chat": chat},
        "chat": {"caller_messages_sent": 4, "caller_messages_refused_by_code": message_refusals,
                 "caller_messages_seen_by_volunteers": 4, "volunteer_messages_sent": 6,
                 "volunteer_messages_seen_by_callers": 6, "most_chats_at_once": 2,
                 "chat_capacity": 2, "calls_alongside_another_task": 0},
    }  # fmt: skip


def test_the_live_table_says_which_limit_to_raise() -> None:
    quiet = live_table(_section({}, {}))
    assert "Chats" in quiet and "CHAT_" not in quiet and "refused:" not in quiet
    limited = live_table(_section({"rate": 3, "closed": 1}, {"rate": 2}))
    assert "3 chats refused by the server's per-IP limit" in limited
    assert "CHAT_STARTS_PER_HOUR_IP" in limited and "CHAT_MESSAGES_PER_MINUTE_IP" in limited
    assert "1 chats found the chat closed" in limited
