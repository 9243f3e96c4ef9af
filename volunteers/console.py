"""The volunteer console's live side: the websocket protocol (see PROTOCOL.md) and its hub.

Each app process runs one ``ConsoleHub``. It follows the line's event stream with
XREAD and pushes to the consoles connected to *this* process what concerns their
volunteer (offers, tasks ending, presence changes), so any number of processes can
serve consoles: the engine is the only shared state.

Liveness: every message a console sends refreshes its volunteer's "last seen" time
(a sorted set in Redis, scored with the engine's clock). ``reap()`` — run by every
hub every few seconds, harmless when several run it — logs out in the engine any
volunteer not seen for ``heartbeat_timeout_s``; the engine then moves an offer in
flight to the next volunteer. Reconnecting within ``restore_window_s`` restores the
presence the volunteer had. Chats live in the console, unlike calls (on the phone): a
volunteer still away ``lost_chat_grace_s`` after being reaped has their chats handed
back to the queue at their place (``hand_back_chats()``, run with the reaping), and
the caller, told that someone else takes over, is not left writing to nobody.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError
from starlette.websockets import (
    WebSocket,
    WebSocketDisconnect,
    WebSocketDisconnected,
    WebSocketState,
)

from routing.errors import OverCapacity, RoutingError
from routing.events import Event, EventType
from routing.models import Channel, Outcome, Presence, Task, TaskState, Volunteer
from routing.skills import SKILLS
from routing.territory import load_territories
from volunteers import accounts, wrapup
from volunteers.access import SessionUser, session_user_at
from volunteers.errors import VolunteerError
from volunteers.models import Account, AccountStatus, PhoneMode
from volunteers.runtime import Volunteers

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
LOST_REASON = "connexion perdue"
SESSION_ENDED_REASON = "session terminée"
UNAVAILABLE = "Problème technique passager : réessayez dans un instant."
UNREADABLE = "Message illisible."
SESSION_ENDED = (
    "Votre session a pris fin (déconnexion, compte modifié ou désactivé). Reconnectez-vous."
)
CAPACITY_NOT_APPLIED = (
    "Vous avez plus de discussions en cours que le nombre choisi dans votre profil : "
    "ce nombre s'appliquera quand vous en aurez terminé."
)
STOP_GRACE_S = 5.0  # a blocking read lasts 0.5 s; past this, cancel
CLOSE_BAD_VERSION = 4406
CLOSE_NOT_ALLOWED = 4403
CHANNEL_LABELS = {"voice": "Appel", "chat": "Discussion écrite", "callback": "Rappel"}
PRESENCE_LABELS = {
    "available": "Disponible",
    "paused": "En pause",
    "logged_out": "Déconnecté",
}
PAUSE_REASONS = ("Pause café", "Réunion", "Formation", "Problème technique", "Autre")
MAX_MESSAGE_BYTES = 16_000
MAX_CHAT_TEXT = 2000
CHAT_MESSAGE_ID = re.compile(r"[A-Za-z0-9_-]{0,64}")  # '' = none (an older console)
NOTES_READERS = 4  # returning callers' notes read from SQL at once, per process
NOTES_BACKLOG = 1000  # past this many waiting, a saturated database costs the notes, not offers

# Remove a volunteer from the "seen" set only if they were not seen again meanwhile.
_REAP_ONE = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) <= tonumber(ARGV[2]) then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 1
end
return 0
"""


def broadcast_key(line: str) -> str:
    """Stream of coordinators' messages to every console (field ``text``; XADD to it)."""
    return f"perm:coord:{{{line}}}:broadcast"


def _topic(skill: str) -> str:
    return SKILLS.get(skill, "Autre démarche") if skill else "Autre démarche"


def _departement_name(code: str) -> str:
    dep = load_territories().departements.get(code)
    return dep.name if dep else code


@dataclass(eq=False)
class Connection:
    """One open console: its volunteer and an outgoing queue drained by a sender task."""

    websocket: WebSocket
    user: SessionUser
    account: Account
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=lambda: asyncio.Queue(500))
    chat_followers: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    # Pushes kept back until the welcome is queued (see welcome()); None: none kept back.
    held: list[dict[str, Any]] | None = None

    @property
    def volunteer_id(self) -> str:
        return self.user.public_id

    def push(self, message: dict[str, Any]) -> None:
        """Queue a message; a console too slow to drain 500 messages is dropped (it reconnects)."""
        if self.held is not None:
            self.held.append(message)
            return
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            log.warning("console of %s too slow: closing it", self.volunteer_id)
            asyncio.get_running_loop().create_task(self.websocket.close(code=1013))

    def welcome(self, message: dict[str, Any]) -> None:
        """Queue the welcome, then what was pushed while it was built.

        The connection takes events from the moment it is attached, before the welcome's
        reads; the page resets its offer and tasks on a welcome, so an offer made meanwhile
        and sent ahead of it would ring unseen.
        """
        held, self.held = self.held or [], None
        self.push(message)
        for pushed in held:
            self.push(pushed)

    def refresh(self, account: Account | None) -> bool:
        """Take the account's fresh row if the session that opened this socket still stands
        (not disabled, role and password unchanged); False if it ended."""
        if account is None or session_user_at(account, self.account.session_version) is None:
            return False
        self.account = account
        return True

    def end_session(self) -> None:
        """The session that opened this socket no longer stands: say so, then close (4403)."""
        self.push({"type": "error", "error": {"code": "session_ended", "message": SESSION_ENDED}})
        self.push(_CLOSE)

    async def sender(self) -> None:
        while True:
            message = await self.queue.get()
            if message is _CLOSE:
                await self.websocket.close(code=CLOSE_NOT_ALLOWED)
                return
            await self.websocket.send_text(json.dumps(message, ensure_ascii=False))


_CLOSE: dict[str, Any] = {}  # queued after session_ended: the sender closes the socket


class ConsoleHub:
    """Pushes engine events to the consoles of this process; reaps lost consoles."""

    def __init__(self, volunteers: Volunteers, *, reap_every_s: float = 2.0) -> None:
        self.vol = volunteers
        self.engine = volunteers.engine
        self.connections: dict[str, set[Connection]] = {}
        self.reap_every_s = reap_every_s
        self._reap_script = volunteers.redis.register_script(_REAP_ONE)
        self._task: asyncio.Task[None] | None = None
        self._checker: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        # The last delivery started per volunteer: the next one waits for it (their order).
        self._delivering: dict[str, asyncio.Task[None]] = {}
        self._notes_readers = asyncio.Semaphore(NOTES_READERS)
        self._notes_tasks: set[asyncio.Task[None]] = set()

    @property
    def seen_key(self) -> str:
        return self.vol.key("seen")

    def lost_key(self, volunteer_id: str) -> str:
        return self.vol.lost_key(volunteer_id)

    @property
    def lost_chats_key(self) -> str:
        """Volunteers reaped, or whose session ended, while holding chats, scored with when
        (engine's clock)."""
        return self.vol.key("lostchats")

    # Life cycle ----------------------------------------------------------------------

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self._task is None:
            self._task = loop.create_task(self.run(), name="console-hub")
        if self._checker is None:
            self._checker = loop.create_task(self._check_accounts_forever(), name="console-check")

    async def stop(self) -> None:
        """Stop following events; the loop notices within one blocking read.

        Cancelling a task blocked in a redis-py read is not enough on its own: the
        cancellation can be absorbed by the client and the loop goes on, so the loop
        checks a flag and cancellation is only the fallback.
        """
        if self._checker is not None:
            self._checker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checker
            self._checker = None
        if self._task is None:
            return
        self._stopping.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), STOP_GRACE_S)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None
        pending = [*self._delivering.values(), *self._notes_tasks]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def run(self) -> None:
        """Follow the event stream and coordinators' broadcasts from now on; reap between."""
        streams = {self.engine.keys.events: "$", broadcast_key(self.vol.line): "$"}
        loop = asyncio.get_running_loop()
        next_reap = loop.time()
        while not self._stopping.is_set():
            try:
                reply = await self.vol.redis.xread(streams, count=500, block=500)
                for stream, entries in reply or []:
                    for entry_id, fields in entries:
                        streams[stream] = entry_id
                        if stream == self.engine.keys.events:
                            self._dispatch(Event.parse(entry_id, fields))
                        else:
                            self.broadcast({"type": "broadcast", "text": fields.get("text", "")})
                if loop.time() >= next_reap:
                    next_reap = loop.time() + self.reap_every_s
                    await self.reap()
                    await self.hand_back_chats()
            except asyncio.CancelledError:
                raise
            except Exception:  # a hiccup (Redis restart...) must not stop offers for good
                log.exception("console hub: error while following events")
                await asyncio.sleep(1)

    # Who is connected ------------------------------------------------------------------

    async def _check_accounts_forever(self) -> None:
        # Its own task, not the event loop's: offers must not wait for SQL.
        while True:
            try:
                await self.check_accounts()
            except asyncio.CancelledError:
                raise
            except Exception:  # a database hiccup: requests still check their own account
                log.exception("console hub: error while checking accounts")
            await asyncio.sleep(self.vol.settings.heartbeat_s)

    async def check_accounts(self) -> int:
        """Re-read the accounts of every console of this process in one query: a disabled
        account, or one whose role or password changed, has its consoles closed even if they
        only ping; the others get the fresh row (an approval, a profile change). Requests
        check their own account on arrival (ConsoleSession._still_allowed); this bounds the
        wait of a silent console to a heartbeat without a query per ping (a SQL read per ping
        was most of a worker's idle CPU with 500 consoles). Returns how many were closed."""
        conns = [conn for group in self.connections.values() for conn in group]
        if not conns:
            return 0
        async with self.vol.sessions() as session:
            fresh = await accounts.by_ids(session, {conn.user.account_id for conn in conns})
        ended = [conn for conn in conns if not conn.refresh(fresh.get(conn.user.account_id))]
        for vid in {conn.volunteer_id for conn in ended}:
            await self.session_ended(vid)
        for conn in ended:
            conn.end_session()
        return len(ended)

    def attach(self, conn: Connection) -> None:
        self.connections.setdefault(conn.volunteer_id, set()).add(conn)

    def detach(self, conn: Connection) -> None:
        conns = self.connections.get(conn.volunteer_id)
        if conns is not None:
            conns.discard(conn)
            if not conns:
                del self.connections[conn.volunteer_id]

    def send_to(self, volunteer_id: str, message: dict[str, Any]) -> None:
        for conn in self.connections.get(volunteer_id, ()):
            conn.push(message)

    def broadcast(self, message: dict[str, Any]) -> None:
        for conns in self.connections.values():
            for conn in conns:
                conn.push(message)

    # Liveness ---------------------------------------------------------------------------

    async def touch(self, volunteer_id: str) -> None:
        """The volunteer's console is alive now."""
        await self.vol.redis.zadd(self.seen_key, {volunteer_id: self.vol.now_ms()})

    async def reap(self) -> list[str]:
        """Log out every volunteer whose console went silent; returns their ids."""
        cutoff = self.vol.now_ms() - int(self.vol.settings.heartbeat_timeout_s * 1000)
        stale = await self.vol.redis.zrangebyscore(self.seen_key, "-inf", cutoff)
        reaped: list[str] = []
        for vid in stale:
            if not await self._reap_script(keys=[self.seen_key], args=[vid, cutoff]):
                continue  # seen again meanwhile, or another process reaped it
            volunteer = await self.engine.volunteer(vid)
            if volunteer is None or volunteer.presence is Presence.LOGGED_OUT:
                continue
            await self.vol.redis.set(
                self.lost_key(vid),
                json.dumps({"presence": volunteer.presence.value, "reason": volunteer.reason}),
                px=int(self.vol.settings.restore_window_s * 1000),
            )
            with contextlib.suppress(RoutingError):
                await self.engine.set_presence(vid, Presence.LOGGED_OUT, LOST_REASON)
            await self._start_chats_grace(volunteer)
            log.info("volunteer %s logged out: console silent", vid)
            reaped.append(vid)
        return reaped

    async def _start_chats_grace(self, volunteer: Volunteer) -> None:
        """Chats held by a volunteer just logged out go back to the queue after the grace
        (hand_back_chats) unless they return; nx: an earlier start of the grace stands."""
        if volunteer.load_chat:
            await self.vol.redis.zadd(
                self.lost_chats_key, {volunteer.id: self.vol.now_ms()}, nx=True
            )

    async def hand_back_chats(self) -> list[str]:
        """Chats of volunteers away for ``lost_chat_grace_s`` go back to the queue at their
        place; returns those tasks. Each volunteer is claimed by one process (ZREM)."""
        grace_ms = int(self.vol.settings.lost_chat_grace_s * 1000)
        due = await self.vol.redis.zrangebyscore(
            self.lost_chats_key, "-inf", self.vol.now_ms() - grace_ms
        )
        handed: list[str] = []
        for vid in due:
            if not await self.vol.redis.zrem(self.lost_chats_key, vid):
                continue
            volunteer = await self.engine.volunteer(vid)
            if volunteer is None or volunteer.presence is not Presence.LOGGED_OUT:
                continue  # back at their console (or set to work by a coordinator)
            chats = [t.id for t in await self.engine.live_tasks() if t.volunteer == vid
                     and t.channel is Channel.CHAT and t.state is TaskState.ASSIGNED]  # fmt: skip
            for task_id in chats:
                try:
                    await self.engine.give_back(vid, task_id)
                except RoutingError as error:  # it ended meanwhile
                    log.info("chat %s not handed back: %s", task_id, error.code)
                    continue
                handed.append(task_id)
                log.info("volunteer %s still away: chat %s handed back", vid, task_id)
        return handed

    async def restore(self, volunteer_id: str) -> bool:
        """Give back the presence a lost connection took away (within the window)."""
        await self.vol.redis.zrem(self.lost_chats_key, volunteer_id)  # their chats stay theirs
        raw = await self.vol.redis.getdel(self.lost_key(volunteer_id))
        if not raw:
            return False
        volunteer = await self.engine.volunteer(volunteer_id)
        if volunteer is None or volunteer.presence is not Presence.LOGGED_OUT:
            return False
        if volunteer.reason != LOST_REASON:
            return False  # they (or a coordinator) logged out on purpose since
        before = json.loads(raw)
        await self.engine.set_presence(volunteer_id, Presence(before["presence"]), before["reason"])
        return True

    async def session_ended(self, volunteer_id: str) -> None:
        """The volunteer's session ended (logged out, account disabled, role or password
        changed): log them out in the engine now, before their console closes.

        Left available, they would be offered callers on a console that no longer exists
        until the reaper logs them out (``heartbeat_timeout_s``), and then with a restore
        key that would make them available again at their next login. Logging out never
        takes a task away: a call goes on (on their phone, or back to the queue if the
        softphone's leg drops), an offer ringing moves on, and chats, which live in the
        console, get the same grace as after a lost connection (``hand_back_chats``): back
        within it, with a new login, they keep them; otherwise they go back to the queue.
        """
        try:
            await self.vol.redis.delete(self.lost_key(volunteer_id))
            volunteer = await self.engine.volunteer(volunteer_id)
            if volunteer is None:
                return
            if volunteer.presence is not Presence.LOGGED_OUT:
                await self.engine.set_presence(
                    volunteer_id, Presence.LOGGED_OUT, SESSION_ENDED_REASON
                )
            await self._start_chats_grace(volunteer)
            log.info("volunteer %s logged out: session ended", volunteer_id)
        except (RedisError, RoutingError):
            # The console closes all the same; the reaper logs them out a little later.
            log.exception("could not log out %s after their session ended", volunteer_id)

    # Events → consoles ---------------------------------------------------------------

    def _dispatch(self, event: Event) -> None:
        """Deliver an event without holding up the others: each volunteer's stay in order.

        Reading what a push needs takes Redis round trips; done one event after another,
        one slow read would delay every console of the process.
        """
        vid = event.volunteer
        if not vid or vid not in self.connections:
            return
        before = self._delivering.get(vid)
        task = asyncio.get_running_loop().create_task(self._deliver_after(before, event))
        self._delivering[vid] = task
        task.add_done_callback(lambda done: self._delivered(vid, done))

    async def _deliver_after(self, before: asyncio.Task[None] | None, event: Event) -> None:
        if before is not None:
            await asyncio.wait({before})  # its failure is logged by itself
        try:
            await self.deliver(event)
        except Exception:  # a hiccup costs this push, never the hub
            log.exception("console hub: could not deliver %s to %s", event.type, event.volunteer)

    def _delivered(self, vid: str, task: asyncio.Task[None]) -> None:
        if self._delivering.get(vid) is task:
            del self._delivering[vid]

    async def deliver(self, event: Event) -> None:
        """Push one engine event to the consoles it concerns on this process."""
        vid = event.volunteer
        if not vid or vid not in self.connections:
            return
        kind = event.type
        if kind is EventType.TASK_OFFERED:
            await self._push_offer(event)
        elif kind in (EventType.OFFER_DECLINED, EventType.OFFER_TIMEOUT):
            reason = "declined" if kind is EventType.OFFER_DECLINED else "timeout"
            self.send_to(vid, {"type": "offer_gone", "task": event.task, "reason": reason})
        elif kind is EventType.TASK_ASSIGNED:
            details = await self.task_details(event.task)
            self.send_to(vid, {"type": "task", "status": "assigned", **details})
            for conn in self.connections.get(vid, ()):
                self._follow_chat(conn, event.task, details.get("channel", ""))
        elif kind is EventType.TASK_COMPLETED:
            self.send_to(vid, {"type": "task", "task": event.task, "status": "wrapup"})
        elif kind is EventType.TASK_ENDED:
            self.send_to(
                vid,
                {
                    "type": "task",
                    "task": event.task,
                    "status": "ended",
                    "outcome": event.data.get("outcome", ""),
                },
            )
            self._stop_chat(vid, event.task)
        elif kind is EventType.TASK_TRANSFERRED:
            # back: the task went back to the queue because this volunteer's line was lost.
            self.send_to(vid, {"type": "task", "task": event.task, "status": "transferred",
                               "back": event.data.get("back") == "1"})
            self._stop_chat(vid, event.task)
        elif kind is EventType.VOLUNTEER_PRESENCE:
            self.send_to(vid, await self.state_message(vid))

    async def task_details(self, task_id: str) -> dict[str, Any]:
        """What a console shows of a task: channel, département, topic, wait."""
        task = await self.engine.task(task_id)
        if task is None:
            return {"task": task_id}
        return self._details(task)

    def _details(self, task: Task) -> dict[str, Any]:
        return {
            "task": task.id,
            "channel": task.channel.value,
            "channel_label": CHANNEL_LABELS[task.channel.value],
            "departement": task.departement,
            "departement_name": _departement_name(task.departement),
            "topic": _topic(task.skill),
            "skill": task.skill,
            "waited_s": max(0, (self.vol.now_ms() - task.created_ms) // 1000),
            "state": task.state.value,
        }

    async def _ringing(self, task_id: str, volunteer_id: str) -> Task | None:
        task = await self.engine.task(task_id)
        if task is None or task.state is not TaskState.RESERVED or task.volunteer != volunteer_id:
            return None  # already gone by the time we read it
        return task

    async def _ring(self, task: Task, event: Event | None = None) -> tuple[int, int]:
        """(ring time, expiry) of the offer in ms: from its event, else the line's parameters."""
        expires = event.data.get("expires_at", "") if event else ""
        if event is not None and expires.isdigit():
            return int(expires) - event.at_ms, int(expires)
        ring_ms = int((await self.engine.config()).ring_s * 1000)
        return ring_ms, int(task.raw.get("offered_at", self.vol.now_ms())) + ring_ms

    def _offer(
        self, task: Task, ring: tuple[int, int], previous: list[dict[str, Any]]
    ) -> dict[str, Any]:
        ring_ms, expires_at = ring
        return {
            "type": "offer",
            **self._details(task),
            "ring_s": round(ring_ms / 1000),
            "remaining_ms": max(0, expires_at - self.vol.now_ms()),
            "returning": bool(previous) or task.resumed,
            "previous": previous,
        }

    async def offer_message(self, task_id: str, volunteer_id: str) -> dict[str, Any] | None:
        """The ringing offer with a returning caller's notes (a console connecting)."""
        task = await self._ringing(task_id, volunteer_id)
        if task is None:
            return None
        previous: list[dict[str, Any]] = []
        if task.caller_key:
            async with self.vol.sessions() as session:
                previous = await wrapup.previous_notes(session, task.caller_key)
        return self._offer(task, await self._ring(task), previous)

    async def _push_offer(self, event: Event) -> None:
        """Push the offer at once; a returning caller's notes follow (``offer_previous``).

        The notes live in SQL: waiting for them before the offer would make every offer
        as slow as the database.
        """
        task = await self._ringing(event.task, event.volunteer)
        if task is None:
            return
        self.send_to(event.volunteer, self._offer(task, await self._ring(task, event), []))
        if task.caller_key:
            self._send_previous_later(event.volunteer, task.id, task.caller_key)

    def _send_previous_later(self, vid: str, task_id: str, caller_key: str) -> None:
        if len(self._notes_tasks) >= NOTES_BACKLOG:
            log.warning("console hub: notes for %s dropped, the database is behind", task_id)
            return
        task = asyncio.get_running_loop().create_task(self._send_previous(vid, task_id, caller_key))
        self._notes_tasks.add(task)
        task.add_done_callback(self._notes_tasks.discard)

    async def _send_previous(self, vid: str, task_id: str, caller_key: str) -> None:
        try:
            async with self._notes_readers, self.vol.sessions() as session:
                previous = await wrapup.previous_notes(session, caller_key)
        except (SQLAlchemyError, OSError):
            log.exception("console hub: could not read the notes of %s", task_id)
            return
        if previous:
            message = {"type": "offer_previous", "task": task_id, "returning": True}
            self.send_to(vid, {**message, "previous": previous})

    async def state_message(self, volunteer_id: str) -> dict[str, Any]:
        volunteer = await self.engine.volunteer(volunteer_id)
        presence = volunteer.presence.value if volunteer else Presence.LOGGED_OUT.value
        return {
            "type": "state",
            "presence": presence,
            "label": PRESENCE_LABELS[presence],
            "reason": volunteer.reason if volunteer else "",
        }

    # Chats -------------------------------------------------------------------------------

    def _follow_chat(self, conn: Connection, task_id: str, channel: str) -> None:
        bridge = self.vol.chat
        if bridge is None or channel != Channel.CHAT.value or task_id in conn.chat_followers:
            return

        async def follow() -> None:
            history = await bridge.history(task_id)
            conn.push({"type": "chat", "task": task_id, "messages": history})
            last = history[-1]["id"] if history else "0"
            async for batch in bridge.follow(task_id, last):
                conn.push({"type": "chat", "task": task_id, "messages": batch})

        conn.chat_followers[task_id] = asyncio.get_running_loop().create_task(follow())

    def _stop_chat(self, volunteer_id: str, task_id: str) -> None:
        for conn in self.connections.get(volunteer_id, ()):
            follower = conn.chat_followers.pop(task_id, None)
            if follower is not None:
                follower.cancel()


class ConsoleSession:
    """One console connection: the welcome, then requests until it closes."""

    def __init__(self, hub: ConsoleHub, websocket: WebSocket, user: SessionUser) -> None:
        self.hub = hub
        self.vol = hub.vol
        self.engine = hub.engine
        self.websocket = websocket
        self.user = user
        self.vid = user.public_id

    async def serve(self) -> None:
        """Accept, check version and account, welcome, then answer until disconnect."""
        await self.websocket.accept()
        if self.websocket.query_params.get("v", str(PROTOCOL_VERSION)) != str(PROTOCOL_VERSION):
            await self._send_error(
                "bad_version", "Rechargez la page : la console a été mise à jour."
            )
            await self.websocket.close(code=CLOSE_BAD_VERSION)
            return
        conn = await self._connection()
        if conn is None:
            await self.websocket.close(code=CLOSE_NOT_ALLOWED)
            return
        sender = asyncio.get_running_loop().create_task(conn.sender())
        self.hub.attach(conn)
        try:
            await self.hub.touch(self.vid)
            await self._welcome(conn)
            await self._loop(conn)
        except (WebSocketDisconnect, WebSocketDisconnected):
            # WebSocketDisconnected: the sender found the network gone (or closed the socket)
            # while this loop was busy with a request; the next read then refuses at once.
            pass
        finally:
            self.hub.detach(conn)
            for follower in conn.chat_followers.values():
                follower.cancel()
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender

    # serve() lasts as long as the socket, and so do its locals: reading the account there
    # would keep the closed session and that first row (replaced by _still_allowed on every
    # message) alive for hours, ~4 KB per console. Read in these short calls instead.
    async def _connection(self) -> Connection | None:
        account = await self._read_account()
        if account is None:
            return None
        return Connection(self.websocket, self.user, account, held=[])  # until the welcome

    async def _read_account(self) -> Account | None:
        async with self.vol.sessions() as session:
            return await session.get(Account, self.user.account_id)

    async def _welcome(self, conn: Connection) -> None:
        account = conn.account
        can_work, why = True, ""
        if account.status != AccountStatus.APPROVED:
            can_work, why = False, "Votre compte attend la validation d'un coordinateur."
        elif not accounts.profile_complete(account):
            can_work, why = False, "Complétez votre profil (code postal, téléphone) pour commencer."
        restored = False
        refused: RoutingError | None = None
        if can_work:
            try:
                await self.engine.log_in(accounts.routing_profile(account))
            except RoutingError as exc:
                # The engine keeps the profile it had (e.g. a chat capacity lowered below the
                # chats held, saved as one was accepted): the console must still open, or the
                # volunteer could never see the conversations they hold again.
                refused = exc
            restored = await self.hub.restore(self.vid)
        tasks = []
        held = []
        offer = None
        for task in await self.engine.live_tasks():
            if task.volunteer != self.vid:
                continue
            if task.state is TaskState.RESERVED:
                offer = await self.hub.offer_message(task.id, self.vid)
            elif task.state in (TaskState.ASSIGNED, TaskState.WRAPUP):
                details = await self.hub.task_details(task.id)
                status = "assigned" if task.state is TaskState.ASSIGNED else "wrapup"
                tasks.append({**details, "status": status})
                held.append(task)
        state = await self.hub.state_message(self.vid)
        conn.welcome(
            {
                "type": "welcome",
                "v": PROTOCOL_VERSION,
                "volunteer": {
                    "id": self.vid,
                    "name": account.name,
                    "chat_capacity": account.chat_capacity,
                    "phone_mode": account.phone_mode,
                    "softphone": account.phone_mode == PhoneMode.BROWSER.value,
                },
                "can_work": can_work,
                "why": why,
                "restored": restored,
                "presence": state["presence"],
                "label": state["label"],
                "reason": state["reason"],
                "tasks": tasks,
                "offer": offer,
                "heartbeat_s": self.vol.settings.heartbeat_s,
            }
        )
        if refused is not None:
            message = CAPACITY_NOT_APPLIED if isinstance(refused, OverCapacity) else refused.message
            conn.push({"type": "error", "error": {"code": refused.code, "message": message}})
        # The chats' histories only after the welcome: the page clears a held card's log on
        # a welcome, and a history read quickly enough to come first was wiped by it.
        for task in held:
            self.hub._follow_chat(conn, task.id, task.channel.value)

    async def _receive(self) -> str | None:
        """The next frame's text; None for a binary frame (the protocol speaks only text).

        receive_text() would raise KeyError on a binary frame, outside the loop's answers.
        """
        if self.websocket.application_state is not WebSocketState.CONNECTED:
            # As receive_text(): the sender closed the socket (session ended, too slow).
            raise WebSocketDisconnected("the console's socket is closed")
        message = await self.websocket.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
        text = message.get("text")
        return text if isinstance(text, str) else None

    async def _loop(self, conn: Connection) -> None:
        while True:
            raw = await self._receive()
            ref = None
            try:
                await self.hub.touch(self.vid)
                if raw is None:
                    raise VolunteerError("bad_json", UNREADABLE)
                if len(raw.encode()) > MAX_MESSAGE_BYTES:
                    raise VolunteerError("too_big", "Message trop long.")
                try:
                    msg = json.loads(raw)
                except (ValueError, RecursionError):
                    # RecursionError: brackets nested a few thousand deep, within 16 kB.
                    raise VolunteerError("bad_json", UNREADABLE) from None
                if not isinstance(msg, dict):
                    raise VolunteerError("bad_json", UNREADABLE)
                # A ping acts for nobody: the hub checks silent consoles once per heartbeat.
                if msg.get("type") != "ping" and not await self._still_allowed(conn):
                    await self.hub.session_ended(self.vid)
                    await self._send_error("session_ended", SESSION_ENDED)
                    await self.websocket.close(code=CLOSE_NOT_ALLOWED)
                    return
                ref = msg.get("ref")
                reply = await self.handle(conn, msg)
            except VolunteerError as exc:
                reply = {"ok": False, "error": {"code": exc.code, "message": exc.message}}
            except RoutingError as exc:
                reply = {"ok": False, "error": {"code": exc.code, "message": exc.message}}
            except (RedisError, SQLAlchemyError, OSError):
                # A saturated or restarting server: keep the console, let the person retry.
                log.exception("console %s: request failed", self.vid)
                reply = {"ok": False, "error": {"code": "unavailable", "message": UNAVAILABLE}}
            if reply is not None:
                conn.push({**reply, "type": "result", "ref": ref})

    async def _still_allowed(self, conn: Connection) -> bool:
        """Whether the session that opened this socket still stands.

        The handshake checked it, but a socket outlives that moment: an account disabled,
        or whose role or password changed (``session_version``), must stop taking calls
        now, not when the laptop closes. Checked on every request (pings aside: the hub
        checks every console once per heartbeat), and the fresh row also brings an approval
        or profile change.
        """
        return conn.refresh(await self._read_account())

    async def handle(self, conn: Connection, msg: dict[str, Any]) -> dict[str, Any] | None:
        """Answer one request; None for messages without a result (ping)."""
        kind = msg.get("type")
        if kind == "ping":
            conn.push({"type": "pong", "at": self.vol.now_ms()})
            return None
        handler = getattr(self, f"on_{kind}", None) if isinstance(kind, str) else None
        if handler is None or kind not in REQUESTS:
            raise VolunteerError("unknown_type", "Demande inconnue.")
        # Colleagues (for a transfer) need no complete profile, but an approved account:
        # who is on duty is not for someone nobody has vetted yet.
        if kind == "colleagues":
            allowed = conn.account.status == AccountStatus.APPROVED
        else:
            allowed = self._can_work(conn)
        if not allowed:
            raise VolunteerError(
                "cannot_work", "Votre compte doit être validé et votre profil complet."
            )
        return await handler(conn, msg)

    def _can_work(self, conn: Connection) -> bool:
        return conn.account.status == AccountStatus.APPROVED and accounts.profile_complete(
            conn.account
        )

    def _task_id(self, msg: dict[str, Any]) -> str:
        task = msg.get("task")
        if not isinstance(task, str) or not task or len(task) > 80:
            raise VolunteerError("bad_task", "Demande inconnue.")
        return task

    async def on_presence(self, conn: Connection, msg: dict[str, Any]) -> dict[str, Any]:
        try:
            presence = Presence(msg.get("state"))
        except ValueError:
            raise VolunteerError("bad_presence", "État inconnu.") from None
        reason = ""
        if presence is Presence.PAUSED:
            reason = " ".join(str(msg.get("reason", "")).split())[:60] or "Pause"
        # A capacity lowered below the chats held (see _welcome): the engine keeps the old
        # one until they end, and pausing or logging out must not wait for that.
        with contextlib.suppress(OverCapacity):
            await self.engine.log_in(accounts.routing_profile(conn.account))
        await self.engine.set_presence(self.vid, presence, reason)
        await self.vol.redis.delete(self.hub.lost_key(self.vid))
        return {"ok": True, **(await self.hub.state_message(self.vid))}

    async def on_accept(self, conn: Connection, msg: dict[str, Any]) -> dict[str, Any]:
        task_id = self._task_id(msg)
        await self.engine.accept(self.vid, task_id)
        return {"ok": True, **(await self.hub.task_details(task_id))}

    async def on_decline(self, conn: Connection, msg: dict[str, Any]) -> dict[str, Any]:
        task_id = self._task_id(msg)
        await self.engine.decline(self.vid, task_id)
        return {"ok": True, "task": task_id}

    async def on_complete(self, conn: Connection, msg: dict[str, Any]) -> dict[str, Any]:
        """The volunteer ends the conversation (a chat, or a call, whose lines are hung up)."""
        task_id = self._task_id(msg)
        await self.engine.complete(self.vid, task_id)
        return {"ok": True, "task": task_id}

    async def on_wrapup(self, conn: Connection, msg: dict[str, Any]) -> dict[str, Any]:
        form = wrapup.check(wrapup.WrapUpInput.from_message(msg))
        task = await self.engine.task(form.task_id)
        if task is None or task.volunteer != self.vid:
            raise VolunteerError("not_your_task", "Vous n'avez pas traité cette demande.")
        if task.state in (TaskState.WAITING, TaskState.RESERVED, TaskState.ASSIGNED):
            raise VolunteerError(
                "still_open", "Terminez d'abord la conversation avant de remplir la fiche."
            )
        # An ended task keeps the volunteer it last rang for: a caller who hung up (or was
        # closed, or asked for a callback) while it rang ends with ``vol`` still set. Only a
        # conversation this volunteer held ends "completed" (through wrap-up, with them).
        if task.outcome is not Outcome.COMPLETED:
            raise VolunteerError(
                "not_your_task",
                "Cette demande s'est terminée avant que vous ne la preniez : "
                "il n'y a pas de fiche à remplir.",
            )
        async with self.vol.sessions() as session:
            await wrapup.store(
                session,
                form,
                account_id=conn.account.id or 0,
                volunteer_id=self.vid,
                caller_key=task.caller_key,
                channel=task.channel.value,
                departement=task.departement,
            )
        if task.state is TaskState.WRAPUP:
            with contextlib.suppress(RoutingError):  # the wrap-up time may have run out meanwhile
                await self.engine.finish_wrapup(self.vid, form.task_id)
        return {"ok": True, "task": form.task_id, "message": "Fiche enregistrée. Merci !"}

    async def on_transfer(self, conn: Connection, msg: dict[str, Any]) -> dict[str, Any]:
        task_id = self._task_id(msg)
        skill = str(msg.get("skill", "") or "")
        to = str(msg.get("to", "") or "")
        if not skill and not to:
            raise VolunteerError("transfer_target", "Choisissez une compétence ou un collègue.")
        if skill and skill not in SKILLS:
            raise VolunteerError("bad_skill", "Cette compétence n'existe pas.")
        if to == self.vid:
            raise VolunteerError("transfer_self", "Vous ne pouvez pas vous transférer la demande.")
        await self.engine.transfer(self.vid, task_id, skill=skill, to_volunteer=to)
        return {"ok": True, "task": task_id}

    async def on_colleagues(self, conn: Connection, msg: dict[str, Any]) -> dict[str, Any]:
        """Colleagues on duty now (for a transfer), with their skills."""
        colleagues = [
            {
                "id": v.id,
                "name": v.name,
                "departement": v.departement,
                "skills": [SKILLS[s] for s in sorted(v.skills) if s in SKILLS],
                "presence": v.presence.value,
            }
            for v in await self.engine.volunteers()
            if v.id != self.vid and v.presence is not Presence.LOGGED_OUT
        ]
        return {"ok": True, "colleagues": colleagues}

    async def on_chat_send(self, conn: Connection, msg: dict[str, Any]) -> dict[str, Any]:
        task_id = self._task_id(msg)
        text = str(msg.get("text", "")).strip()
        if not text:
            raise VolunteerError("empty", "Le message est vide.")
        if len(text) > MAX_CHAT_TEXT:
            raise VolunteerError(
                "too_long", f"Message trop long ({MAX_CHAT_TEXT} caractères au plus)."
            )
        # The console's own id for the message: sent again after its answer was lost with
        # the line, it is posted once (ChatBridge.send).
        message_id = msg.get("mid", "")
        if not isinstance(message_id, str) or not CHAT_MESSAGE_ID.fullmatch(message_id):
            raise VolunteerError("invalid", "Ce message n'a pas pu être lu.")
        task = await self.engine.task(task_id)
        if task is None or task.volunteer != self.vid or task.state is not TaskState.ASSIGNED:
            raise VolunteerError("not_your_task", "Cette discussion n'est plus ouverte.")
        if self.vol.chat is None:
            raise VolunteerError("no_chat", "La discussion écrite n'est pas disponible.")
        await self.vol.chat.send(task_id, self.vid, conn.account.name, text, message_id)
        return {"ok": True, "task": task_id}

    async def _send_error(self, code: str, message: str) -> None:
        if self.websocket.application_state is WebSocketState.CONNECTED:
            await self.websocket.send_text(
                json.dumps({"type": "error", "error": {"code": code, "message": message}})
            )


REQUESTS = frozenset(
    {"presence", "accept", "decline", "complete", "wrapup", "transfer", "colleagues", "chat_send"}
)
