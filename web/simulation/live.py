"""The live simulator: a scenario played against a running Permanence, from outside.

Callers phone through ``TwilioNetwork`` (signed webhooks; the app's REST calls come back
to it, so the app's TWILIO_API_BASE must be its ``rest_url``) or open the public web chat
(``ChatCaller``: the start API and the /aide/ws websocket, as the page does), volunteers
work from real consoles (several chats at once, up to their chat capacity), a
coordinator's dashboard watches. Scenario time runs ``speedup`` times faster
than the wall clock: arrivals, patience, service, human delays and shifts are divided by
it. The server's own timers (widening, ring time) run in real seconds unless ``--widen``
sets them (divided by the speed-up too).

Every chat comes from this one machine, so the server's per-IP chat limits apply to the
whole run: a test server meant for it raises CHAT_STARTS_PER_HOUR_IP and
CHAT_MESSAGES_PER_MINUTE_IP (the report counts what those limits refused).

What the report says is what the world saw: waits from the caller's side (enqueued →
moved out of the queue, or told that a volunteer joined the chat), territory from the
volunteer who took the contact, dispatch latency from the simulator's own action that
made a match possible (the enqueueing webhook or chat start, a volunteer's availability,
wrap-up or chat accept, a widening threshold) to the offer's arrival on the volunteer's
socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import random
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from routing.config import RoutingConfig
from routing.metrics import Counts, compute
from routing.territory import Territories
from web.simulation.clients import (
    CSRF,
    REQUEST_TIMEOUT_S,
    Caller,
    ChatCaller,
    Console,
    Dashboard,
    Handled,
    Line,
    PhoneVolunteer,
    TwilioNetwork,
    Volunteer,
    login,
)
from web.simulation.fast import CallRecord, SimOptions, SimResult
from web.simulation.report import pct, percentile, sec
from web.simulation.runner import default_territories
from web.simulation.scenario import CHANNELS, HALF_HOUR_S, Scenario, SimCall
from web.simulation.seed import Login, phone_number, postal_code_of, seed_accounts

ROUTING_INPUT = re.compile(r'name="(widen_group_s|widen_region_s|widen_national_s|ring_s)" '
                           r'value="([0-9.]+)"')  # fmt: skip
# What a simulated chat caller writes: once a volunteer has written, then halfway through.
CALLER_LINES = ("Bonjour, j'ai besoin d'aide pour une démarche en ligne.",
                "Merci, c'est plus clair maintenant.")  # fmt: skip
CHANNEL_NAMES = {"voice": "Calls", "chat": "Chats"}
CALLER_GOODBYE_S = 5.0  # scenario seconds a caller stays on after the call's service time


@dataclass(frozen=True)
class LiveOptions:
    """How the world behaves, in scenario seconds (divided by ``speedup`` when played)."""

    seed: int = 1
    speedup: float = 10.0
    accept_delay_s: tuple[float, float] = (1.0, 4.0)
    wrapup_s: tuple[float, float] = (5.0, 20.0)
    hold_every_s: float = 45.0  # Twilio fetches the wait URL again after each music play
    drain_s: float = 120.0  # real seconds to wait for the queue to empty after the last arrival
    widen: tuple[float, float, float] | None = None  # set on the server (scenario seconds)
    open_line: bool = False  # set the line's hours to every day, all day (a test server)
    phone_share: float = 0.0  # share of volunteers taking calls on their own phone (phone mode)


@dataclass
class LiveCall:
    """One contact of the scenario as it is played: a phone call or a web chat."""

    sim: SimCall
    caller: Caller | None = None
    chat: ChatCaller | None = None
    matchable: bool = False
    outcome: str = "pending"  # answered | abandoned | closed | refused | failed
    refusal: str = ""  # why it never reached the queue: closed, rate (chats' per-IP limit)...
    error: str = ""  # what broke, when the simulator itself failed to play it
    served: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def contact(self) -> Caller | ChatCaller | None:
        """The caller's side, whichever the channel: enqueue_sent_at, answered_at, task."""
        return self.chat if self.sim.channel == "chat" else self.caller


class LiveSimulator:
    """Plays one scenario against the app at ``line.base_url``."""

    def __init__(self, line: Line, net: TwilioNetwork, scenario: Scenario,
                 volunteers: list[Login], coordinator: Login | None,
                 options: LiveOptions, territories: Territories | None = None) -> None:  # fmt: skip
        if len(volunteers) < len(scenario.volunteer_departements):
            raise ValueError(f"the scenario needs {len(scenario.volunteer_departements)} "
                             f"volunteer accounts, {len(volunteers)} given")  # fmt: skip
        self.line, self.net, self.scenario, self.options = line, net, scenario, options
        self.logins = volunteers[: len(scenario.volunteer_departements)]
        self.coordinator = coordinator
        self.territories = territories or default_territories()
        self.rng = random.Random(options.seed)
        self.calls = [LiveCall(c) for c in scenario.calls]
        self.by_task: dict[str, LiveCall] = {}
        self.task_known: dict[str, asyncio.Event] = {}
        self.workers: list[Volunteer] = []
        self.rostered: set[int] = set()
        self.dashboard: Dashboard | None = None
        self.chat_http: httpx.AsyncClient | None = None  # every chat caller's requests
        self.config = RoutingConfig()
        self.channel_counts: dict[str, Counts] = {}  # per channel, filled with the result
        self.requests = 0
        self._numbers: dict[str, str] = {}
        # Fresh numbers each run: the app would resume a previous run's abandoned callers.
        self._number_base = random.SystemRandom().randrange(10**8)
        self.on_progress: Callable[[int, int], None] | None = None
        first_slot = next((i for i, n in enumerate(scenario.staffing) if n), 0)
        first_call = min((c.arrival_s for c in scenario.calls), default=0.0)
        self.sim_start_s = min(first_slot * HALF_HOUR_S, first_call)
        self.t0 = 0.0

    # Time ----------------------------------------------------------------------------

    def real(self, scenario_s: float) -> float:
        """Scenario seconds as real seconds."""
        return scenario_s / self.options.speedup

    def _patience(self, call: SimCall) -> float | None:
        """How long this caller waits, in real seconds (None: as long as it takes)."""
        return None if call.patience_s is None else self.real(call.patience_s)

    async def until(self, scenario_at_s: float) -> None:
        delay = self.t0 + self.real(scenario_at_s - self.sim_start_s) - time.time()
        if delay > 0:
            await asyncio.sleep(delay)

    def scenario_ms(self, wall: float) -> int:
        return int(round((self.sim_start_s + (wall - self.t0) * self.options.speedup) * 1000))

    def _uniform(self, bounds: tuple[float, float]) -> float:
        return self.real(self.rng.uniform(*bounds))

    # Coordinator's settings -------------------------------------------------------------

    async def _coordinate(self) -> None:
        """Read (or set, with --widen) the routing thresholds; open the line if asked."""
        if self.coordinator is None:
            return
        async with contextlib.AsyncExitStack() as stack:
            http = await login(self.line.base_url, self.coordinator.email,
                               self.coordinator.password)  # fmt: skip
            stack.push_async_callback(http.aclose)
            if self.options.open_line:
                page = await http.get("/coordination/horaires")
                form = {f"jour_{d}": "00:00-23:59" for d in range(7)}
                form.update(csrf_token=_csrf(page.text), message_accueil="")
                await _posted(http, "/coordination/horaires", form)
            page = await http.get("/coordination/routage")
            values = {k: float(v) for k, v in ROUTING_INPUT.findall(page.text)}
            if self.options.widen is not None:
                group, region, nat = (self.real(x) for x in self.options.widen)
                values.update(widen_group_s=group, widen_region_s=region, widen_national_s=nat)
                await _posted(http, "/coordination/routage",
                              {**{k: str(v) for k, v in values.items()},
                               "csrf_token": _csrf(page.text)})  # fmt: skip
            self.config = RoutingConfig(**values)

    # Volunteers -----------------------------------------------------------------------

    async def _open_consoles(self) -> None:
        consoles = await asyncio.gather(
            *(Console.open(self.line.base_url, v.email, v.password) for v in self.logins)
        )
        for console, account in zip(consoles, self.logins, strict=True):
            if not console.welcome.get("can_work"):
                raise RuntimeError(f"{account.email} cannot work: {console.welcome.get('why')}")
            if account.phone:
                self.workers.append(
                    PhoneVolunteer(console, account.departement, self.net, account.phone)
                )
            else:
                self.workers.append(Volunteer(console, account.departement))
        await asyncio.gather(*(w.console.presence("logged_out") for w in self.workers))
        await asyncio.gather(*(w.finish_held() for w in self.workers))

    async def _service_s(self, task: str) -> float:
        """How long this call lasts: the caller learns its task id when put through."""
        event = self.task_known.setdefault(task, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), 10)
        call = self.by_task.get(task)
        return self.real(call.sim.service_s) if call else self.real(180)

    async def _shifts(self) -> None:
        for slot in range(48):
            await self.until(slot * HALF_HOUR_S)
            wanted = self.scenario.staffing[slot]
            off = sorted(set(range(len(self.workers))) - self.rostered)
            while len(self.rostered) < wanted and off:
                i = off.pop(self.rng.randrange(len(off)))
                self.rostered.add(i)
                await self.workers[i].go_available()
            while len(self.rostered) > wanted:
                i = sorted(self.rostered)[self.rng.randrange(len(self.rostered))]
                self.rostered.discard(i)
                await self.workers[i].console.presence("logged_out")

    async def _work(self, i: int) -> None:
        await self.workers[i].work(
            lambda: self._uniform(self.options.accept_delay_s),
            self._service_s,
            lambda: self._uniform(self.options.wrapup_s),
        )

    # Callers ------------------------------------------------------------------------------

    def _number(self, call: SimCall) -> str:
        """One phone number per caller: a returning caller (trace) calls from the same one."""
        key = call.caller_key or call.id
        if key not in self._numbers:
            self._numbers[key] = f"+336{(self._number_base + len(self._numbers)) % 10**8:08d}"
        return self._numbers[key]

    def _matchable(self, call: SimCall) -> bool:
        """A volunteer of the caller's département is on duty (at the caller's arrival)."""
        on_duty = {self.workers[i].home for i in self.rostered}
        return self.territories.territory(call.departement).departement in on_duty

    def _known(self, task: str, live: LiveCall) -> None:
        self.by_task[task] = live
        self.task_known.setdefault(task, asyncio.Event()).set()

    async def _contact(self, live: LiveCall) -> None:
        await self.until(live.sim.arrival_s)
        live.matchable = self._matchable(live.sim)
        try:
            await (self._chat(live) if live.sim.channel == "chat" else self._call(live))
        except asyncio.CancelledError:  # the run is over: leave as a person would
            live.outcome = "closed" if live.outcome == "pending" else live.outcome
            with contextlib.suppress(Exception):
                await asyncio.shield(self._leave(live))
            raise
        except Exception as exc:  # counted and shown, never silently dropped from the report
            live.outcome, live.error = "failed", f"{type(exc).__name__}: {exc}"
            if live.chat is not None:
                await live.chat.close()
        finally:
            live.served.set()

    @staticmethod
    async def _leave(live: LiveCall) -> None:
        """Hang up, or end the chat."""
        if live.chat is not None:
            await live.chat.end()
        elif live.caller is not None:
            await live.caller.hang_up()

    async def _call(self, live: LiveCall) -> None:
        call = live.sim
        caller = live.caller = self.net.caller(self._number(call))
        if not await caller.dial(call.departement):
            live.outcome, live.refusal = "refused", "closed"
            return
        patience = self._patience(call)
        # Twilio refetches the wait URL after each music play: at least a second apart,
        # so a high speed-up does not turn hold music into a webhook flood.
        hold_every = max(1.0, self.real(self.options.hold_every_s))
        if await caller.wait_answer(patience, hold_every):
            live.outcome = "answered"
            self._known(caller.task, live)
            await asyncio.sleep(self.real(call.service_s))
            # The volunteer ends the call (console or phone) and the app cuts the line; a
            # caller whose line stays up hangs up a moment later.
            await caller.stay_on_line(self.real(CALLER_GOODBYE_S))
        else:
            live.outcome = "abandoned"
        await caller.hang_up()

    async def _chat(self, live: LiveCall) -> None:
        """The public chat as a person uses it: the form, the wait, a few words, the end."""
        call = live.sim
        assert self.chat_http is not None
        chat = live.chat = ChatCaller(self.line, self.chat_http)
        if not await chat.start(postal_code_of(call.departement)):
            live.outcome, live.refusal = "refused", chat.refusal
            return
        if chat.task:
            self._known(chat.task, live)
        patience = self._patience(call)
        if await chat.wait_answer(patience):
            live.outcome = "answered"
            await self._talk(chat, self.real(call.service_s))
        else:  # patience ran out, or the server ended the chat itself
            live.outcome = "closed" if chat.ended else "abandoned"
        await chat.end()

    @staticmethod
    async def _talk(chat: ChatCaller, service_s: float) -> None:
        """Write once the volunteer has, again halfway through; the service time ends it."""
        ends = time.monotonic() + service_s
        await chat.wait_volunteer_message(service_s)
        await chat.say(CALLER_LINES[0])
        await asyncio.sleep(max(0.0, (ends - time.monotonic()) / 2))
        await chat.say(CALLER_LINES[1])
        await asyncio.sleep(max(0.0, ends - time.monotonic()))

    # Run ---------------------------------------------------------------------------------

    async def run(self) -> SimResult:
        wall = time.perf_counter()
        await self._coordinate()
        if self.coordinator is not None:
            self.dashboard = await Dashboard.open(self.line.base_url, self.coordinator.email,
                                                  self.coordinator.password)  # fmt: skip
        await self._open_consoles()
        self.chat_http = httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S)
        self.t0 = time.time()
        loop = asyncio.get_running_loop()
        shifts = loop.create_task(self._shifts())
        work = [loop.create_task(self._work(i)) for i in range(len(self.workers))]
        callers = [loop.create_task(self._contact(c)) for c in self.calls]
        progress = loop.create_task(self._progress())
        try:
            last = max((c.arrival_s for c in self.scenario.calls), default=self.sim_start_s)
            await self.until(last)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*(c.served.wait() for c in self.calls)), self.options.drain_s
                )
        finally:
            for task in [*callers, shifts, progress]:
                task.cancel()
            await asyncio.gather(*callers, shifts, progress, return_exceptions=True)
            for task in work:
                task.cancel()
            await asyncio.gather(*work, return_exceptions=True)
            await self._close()
        if self.on_progress:
            self.on_progress(len(self.calls), len(self.calls))
        return self._result(time.perf_counter() - wall)

    async def _progress(self) -> None:
        while True:
            if self.on_progress:
                self.on_progress(sum(c.served.is_set() for c in self.calls), len(self.calls))
            await asyncio.sleep(0.5)

    async def _close(self) -> None:
        for worker in self.workers:
            with contextlib.suppress(Exception):
                await worker.console.presence("logged_out")
                await worker.finish_held()  # the next run finds everyone free
            self.requests += worker.console._ref
            await worker.console.close()
        if self.dashboard is not None:
            await self.dashboard.close()
        if self.chat_http is not None:
            await self.chat_http.aclose()

    # Results -------------------------------------------------------------------------

    def _result(self, wall_s: float) -> SimResult:
        taken: dict[str, tuple[Volunteer, Handled]] = {}
        for worker in self.workers:
            for h in worker.handled:
                if h.accepted:
                    taken[h.task] = (worker, h)
        records: list[CallRecord] = []
        self.channel_counts = {channel: Counts() for channel in CHANNELS}
        for live in self.calls:
            found = self._record(live, taken)
            if found is None:
                continue
            rec, one = found
            records.append(rec)
            self.channel_counts[live.sim.channel] += one
        counts = sum(self.channel_counts.values(), Counts())  # every channel's, together
        chats = sum(c.chat.requests for c in self.calls if c.chat is not None)
        result = SimResult(
            scenario=self.scenario.name + f" (live, ×{self.options.speedup:g})",
            records=records,
            counts=counts,
            wall_s=wall_s,
            engine_calls=self.requests + self.net.phone.sent + chats,
            options=SimOptions(seed=self.options.seed),
            staffing=list(self.scenario.staffing),
        )
        return result

    def _record(
        self, live: LiveCall, taken: dict[str, tuple[Volunteer, Handled]]
    ) -> tuple[CallRecord, Counts] | None:
        """What happened to one contact that reached the queue, and its counts."""
        c, contact = live.sim, live.contact
        if live.outcome in ("refused", "failed", "pending") or contact is None:
            return None
        terr = self.territories.territory(c.departement)
        sl_ms, short_ms = self.config.service_level_s * 1000, self.config.short_abandon_s * 1000
        start = contact.enqueue_sent_at or self.t0
        rec = CallRecord(
            id=c.id,
            departement=terr.departement,
            region=terr.region,
            arrival_ms=int(c.arrival_s * 1000),
            matchable=live.matchable,
        )
        counts = Counts(offered=1)
        if live.outcome == "answered" and contact.answered_at is not None:
            wait = self.scenario_ms(contact.answered_at) - self.scenario_ms(start)
            rec.outcome, rec.wait_ms = "answered", max(0, wait)
            worker, handled = taken.get(contact.task, (None, None))
            if worker is not None:
                rec.volunteer = worker.console.volunteer_id
                rec.ring = self.territories.ring(c.departement, worker.home)
                setattr(counts, f"answered_ring{rec.ring}", 1)
            counts.answered, counts.wait_ms = 1, rec.wait_ms
            counts.answered_within_sl = int(rec.wait_ms <= sl_ms)
            if handled is not None and handled.completed_at and handled.accepted_at:
                counts.completed = 1
                counts.handle_ms = self.scenario_ms(handled.completed_at) - \
                    self.scenario_ms(handled.accepted_at)  # fmt: skip
        elif live.outcome == "abandoned":
            rec.outcome, rec.wait_ms = "abandoned", int(1000 * (c.patience_s or 0))
            counts.abandoned, counts.abandoned_short = 1, int(rec.wait_ms < short_ms)
        else:
            rec.outcome, counts.closed = "closed", 1
        return rec, counts

    def dispatch_latencies(self) -> list[tuple[str, float]]:
        """(trigger, ms) per offer: its arrival minus the latest of what made it possible.

        Triggers: ``arrival`` (the enqueueing webhook or the chat's start request was
        sent), ``volunteer`` (presence, wrap-up or the accept of a chat sent), ``widening``
        (task arrival + the ring's threshold). Request send times are used, so a request's
        own work (a wrap-up's SQL write) counts as latency.
        """
        thresholds = [0.0, self.config.widen_group_s, self.config.widen_region_s,
                      self.config.widen_national_s]  # fmt: skip
        out = []
        for worker in self.workers:
            times = sorted(worker.available_times)
            for h in worker.handled:
                live = self.by_task.get(h.task)
                contact = live.contact if live is not None else None
                if live is None or contact is None or contact.enqueue_sent_at is None:
                    continue
                enq = contact.enqueue_sent_at
                candidates = [(enq, "arrival")]
                candidates += [(t, "volunteer") for t in times if t <= h.offered_at]
                widened = enq + thresholds[self.territories.ring(live.sim.departement, worker.home)]
                if enq < widened <= h.offered_at:
                    candidates.append((widened, "widening"))
                at, kind = max(candidates)
                out.append((kind, max(0.0, (h.offered_at - at) * 1000)))
        return out

    def channels(self) -> dict[str, dict[str, Any]]:
        """Per channel: the headline metrics, contacts closed at the end, and refusals."""
        out = {}
        for channel, counts in self.channel_counts.items():
            lives = [c for c in self.calls if c.sim.channel == channel]
            refusals = [c.refusal for c in lives if c.outcome == "refused"]
            errors = [c.error for c in lives if c.outcome == "failed"]
            out[channel] = {
                "contacts": len(lives),
                **compute(counts).as_dict(),
                "closed": counts.closed,
                "refused": len(refusals),
                "refused_by_reason": dict(Counter(refusals)),
                "failed": len(errors),
                "first_error": errors[0] if errors else None,
            }
        return out

    def chat_section(self) -> dict[str, Any]:
        """What crossed the chats both ways, and how many tasks volunteers held at once."""
        chats = [c.chat for c in self.calls if c.chat is not None]
        handled = [h for w in self.workers for h in w.handled if h.channel == "chat"]
        held = [w.held_at_once() for w in self.workers]
        seen = {
            (task, m.get("id"))
            for w in self.workers
            for task, messages in w.console.chats.items()
            for m in messages
            if m.get("author") == "caller"
        }
        refused = Counter(str(e.get("code", "")) for c in chats for e in c.errors)
        return {
            "caller_messages_sent": sum(c.sent for c in chats),
            "caller_messages_refused": refused.total(),
            "caller_messages_refused_by_code": dict(refused),  # rate: the per-IP limit
            "volunteer_messages_seen_by_callers": sum(c.volunteer_messages for c in chats),
            "volunteer_messages_sent": sum(h.chat_sent for h in handled),
            "caller_messages_seen_by_volunteers": len(seen),
            "ended_by_volunteer": sum(h.ended_by_volunteer for h in handled),
            "most_chats_at_once": max((m for m, _ in held), default=0),
            "chat_capacity": max((w.chat_capacity for w in self.workers), default=0),
            "calls_alongside_another_task": sum(n for _, n in held),
        }  # fmt: skip

    def live_section(self) -> dict[str, Any]:
        """What only the live mode reports: latencies, refusals, the server's own view."""
        found = self.dispatch_latencies()
        board = self.dashboard

        def summary(values: list[float]) -> dict[str, Any]:
            return {"count": len(values), "p50": percentile(values, 50),
                    "p90": percentile(values, 90), "p99": percentile(values, 99),
                    "max": max(values, default=None)}  # fmt: skip

        latency = summary([ms for _, ms in found])
        latency["by_trigger"] = {
            kind: summary([ms for k, ms in found if k == kind])
            for kind in ("arrival", "volunteer", "widening")
        }
        return {
            "speedup": self.options.speedup,
            "dispatch_latency_ms": latency,
            "refused": sum(c.outcome == "refused" for c in self.calls),
            "channels": self.channels(),
            "chat": self.chat_section(),
            "routing_config_on_server": {k: getattr(self.config, k) for k in (
                "widen_group_s", "widen_region_s", "widen_national_s", "ring_s")},
            "dashboard_updates": len(board.updates) if board else None,
            "server_today": board.latest.get("today") if board else None,
            "phone": self.phone_section(),
            # Answered calls whose line the app cut when the volunteer ended the call (from
            # the console or by hanging up their phone), before the caller hung up.
            "calls_ended_by_volunteer": sum(c.outcome == "answered" and c.caller is not None
                                            and c.caller.ended_by_app for c in self.calls),
        }  # fmt: skip

    def phone_section(self) -> dict[str, int]:
        """Volunteers in phone mode: calls they took by pressing 1, rings that found no call."""
        phones = [w for w in self.workers if isinstance(w, PhoneVolunteer)]
        return {
            "volunteers": len(phones),
            "calls_taken": sum(w.calls_by_phone for w in phones),
            "rings_not_connected": sum(h.error == "not_connected" for w in phones
                                       for h in w.handled),
        }  # fmt: skip


def _csrf(html: str) -> str:
    found = CSRF.search(html)
    if found is None:
        raise RuntimeError("no CSRF token on a coordination page (is this a coordinator?)")
    return found.group(1)


async def _posted(http: httpx.AsyncClient, path: str, form: dict[str, str]) -> None:
    reply = await http.post(path, data=form)
    if reply.status_code >= 400 or "erreur=" in reply.headers.get("location", ""):
        raise RuntimeError(f"{path} refused the change: {reply.headers.get('location', '')}")


def live_table(section: dict[str, Any]) -> str:
    """The live mode's extra lines under the shared table."""
    lat = section["dispatch_latency_ms"]

    def ms(x: float | None) -> str:
        return "   -" if x is None else f"{x:7.1f} ms"

    lines = [
        f"  Dispatch latency p50/p90  {ms(lat['p50'])} / {ms(lat['p90'])}"
        f"  (p99 {ms(lat['p99'])}, {lat['count']} offers)",
    ]
    for kind, part in lat["by_trigger"].items():
        if part["count"]:
            lines.append(f"    after {kind:<10} p50/p90 {ms(part['p50'])} / {ms(part['p90'])}"
                         f"  ({part['count']} offers)")  # fmt: skip
    channels = section["channels"]
    if channels["chat"]["contacts"]:
        lines += ["", *_channel_lines(channels, section["chat"])]
    lines += _refusal_lines(channels, section["chat"])
    lines += _phone_lines(section.get("phone") or {"volunteers": 0})
    return "\n".join(lines)


def _channel_lines(channels: dict[str, Any], chat: dict[str, Any]) -> list[str]:
    lines = [f"  {'Channel':<8} {'contacts':>8} {'answered':>8} {'abandoned':>9} "
             f"{'closed':>6} {'refused':>7} {'failed':>6} {'ASA':>8} {'SL (60 s)':>9}"]  # fmt: skip
    for channel, c in channels.items():
        lines.append(f"  {CHANNEL_NAMES[channel]:<8} {c['contacts']:>8} {c['answered']:>8} "
                     f"{c['abandoned']:>9} {c['closed']:>6} {c['refused']:>7} {c['failed']:>6} "
                     f"{sec(c['asa_s']):>8} {pct(c['service_level']):>9}")  # fmt: skip
    lines.append(
        f"  Chat messages: {chat['caller_messages_sent']} from callers "
        f"({chat['caller_messages_seen_by_volunteers']} seen on consoles), "
        f"{chat['volunteer_messages_sent']} from volunteers "
        f"({chat['volunteer_messages_seen_by_callers']} seen on the page)"
    )
    lines.append(
        f"  Most chats held at once by one volunteer: {chat['most_chats_at_once']} "
        f"(capacity {chat['chat_capacity']}); calls held alongside another task: "
        f"{chat['calls_alongside_another_task']}"
    )
    return lines


def _phone_lines(phone: dict[str, int]) -> list[str]:
    if not phone["volunteers"]:
        return []
    return [f"  Volunteers on their own phone: {phone['volunteers']}, "
            f"{phone['calls_taken']} calls taken by pressing 1, "
            f"{phone['rings_not_connected']} rings that found the call gone"]  # fmt: skip


def _refusal_lines(channels: dict[str, Any], chat: dict[str, Any]) -> list[str]:
    """Contacts that never reached the queue, and what to change when it was a limit."""
    lines = []
    calls = channels["voice"]["refused"]
    if calls:
        lines.append(f"  ({calls} calls found the line closed or nobody on duty)")
    for channel, c in channels.items():
        if c["failed"]:
            lines.append(f"  ({c['failed']} {CHANNEL_NAMES[channel].lower()} failed in the "
                         f"simulator, first: {c['first_error']})")  # fmt: skip
    reasons = dict(channels["chat"]["refused_by_reason"])
    closed, rate = reasons.pop("closed", 0), reasons.pop("rate", 0)
    if closed:
        lines.append(f"  ({closed} chats found the chat closed: line closed or nobody on duty)")
    if rate:
        lines.append(f"  ({rate} chats refused by the server's per-IP limit: start a test "
                     "server with a higher CHAT_STARTS_PER_HOUR_IP)")  # fmt: skip
    if reasons:
        lines.append("  (chats refused: " + ", ".join(f"{n} {r}" for r, n in reasons.items())
                     + ")")  # fmt: skip
    codes = dict(chat["caller_messages_refused_by_code"])
    if codes.get("rate"):
        lines.append(f"  ({codes.pop('rate')} chat messages refused by the server's per-IP "
                     "limit: raise CHAT_MESSAGES_PER_MINUTE_IP on a test server)")  # fmt: skip
    if codes:
        lines.append("  (chat messages refused: "
                     + ", ".join(f"{n} {code}" for code, n in codes.items()) + ")")  # fmt: skip
    return lines


@dataclass(frozen=True)
class LiveTarget:
    """The running app, its Twilio account, and where its TWILIO_API_BASE points."""

    line: Line
    twilio_host: str = "127.0.0.1"
    twilio_port: int = 8765


def run_id(homes: list[str], phones: list[str] | None = None) -> str:
    """Accounts are reused by runs that need the same homes (and phones), in the same order."""
    key = ",".join(homes) + ("|" + ",".join(phones) if phones and any(phones) else "")
    return hashlib.sha256(key.encode()).hexdigest()[:8]


def volunteer_phones(count: int, share: float, seed: int) -> list[str]:
    """Which volunteers take calls on their own phone (a number), drawn with the seed."""
    rng = random.Random(f"phones:{seed}")
    return [phone_number(i) if rng.random() < share else "" for i in range(count)]


def sim_password(secret_key: str, run: str) -> str:
    """A password nobody has to type, that the simulator finds again on the next run."""
    return hmac.new(secret_key.encode(), f"simulation:{run}".encode(), "sha256").hexdigest()[:32]


async def simulate_live(
    target: LiveTarget,
    scenario: Scenario,
    options: LiveOptions,
    *,
    settings: Any,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Seed the run's accounts in ``settings``' database, play the scenario, return the report."""
    from web.db import Database
    from web.simulation.report import build

    homes = list(scenario.volunteer_departements)
    phones = volunteer_phones(len(homes), options.phone_share, options.seed)
    run = run_id(homes, phones)
    db = Database(settings)
    try:
        logins, coordinator = await seed_accounts(
            db, settings.secret_key, run, homes, sim_password(settings.secret_key, run), phones
        )
    finally:
        await db.dispose()
    net = TwilioNetwork(target.line, host=target.twilio_host, port=target.twilio_port)
    await net.start()
    try:
        sim = LiveSimulator(target.line, net, scenario, logins, coordinator, options)
        sim.on_progress = on_progress
        result = await sim.run()
    finally:
        await net.stop()
    report = build(result)
    report["config"] = sim.config.model_dump()
    report["live"] = sim.live_section()
    return report
