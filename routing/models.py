"""The engine's domain: tasks, volunteers and what they look like from outside."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Channel(StrEnum):
    VOICE = "voice"
    CHAT = "chat"
    CALLBACK = "callback"

    @property
    def capacity_class(self) -> str:
        """'voice' takes the volunteer's full attention (calls and callbacks); 'chat' shares it."""
        return "chat" if self is Channel.CHAT else "voice"


class TaskState(StrEnum):
    WAITING = "waiting"
    RESERVED = "reserved"  # offered to one volunteer, ringing
    ASSIGNED = "assigned"
    WRAPUP = "wrapup"  # conversation over, the volunteer fills the wrap-up
    ENDED = "ended"


class Outcome(StrEnum):
    COMPLETED = "completed"
    ABANDONED = "abandoned"
    CALLBACK = "callback"
    CLOSED = "closed"


class Presence(StrEnum):
    LOGGED_OUT = "logged_out"
    AVAILABLE = "available"
    PAUSED = "paused"


class VolunteerState(StrEnum):
    """What a coordinator sees: presence combined with the work in hand."""

    LOGGED_OUT = "logged_out"
    AVAILABLE = "available"
    RESERVED = "reserved"
    BUSY = "busy"
    WRAPUP = "wrapup"
    PAUSED = "paused"


class Ring(int):
    """Territorial level: 0 département, 1 group, 2 région, 3 national."""


RING_NAMES = {0: "departement", 1: "groupe", 2: "region", 3: "national"}
NO_ANSWER_REASON = "sans réponse"


@dataclass(frozen=True)
class TaskSpec:
    """What enters the queue."""

    id: str
    channel: Channel
    departement: str
    skill: str = ""
    language: str = ""
    priority: int = 0
    caller_key: str = ""
    place_ms: int | None = None  # keep an earlier place (a message left while closed)


@dataclass(frozen=True)
class VolunteerProfile:
    """What the engine needs to know of a volunteer to route to them."""

    id: str
    departement: str
    skills: frozenset[str] = frozenset()
    languages: frozenset[str] = frozenset()
    chat_capacity: int = 2
    name: str = ""


@dataclass(frozen=True)
class Task:
    id: str
    channel: Channel
    state: TaskState
    departement: str
    region: str
    groups: tuple[str, ...]
    level: int
    priority: int
    skill: str
    language: str
    caller_key: str
    place_ms: int
    created_ms: int
    volunteer: str
    outcome: Outcome | None
    reason: str
    ring: int | None
    preferred: str
    resumed: bool
    raw: dict[str, str] = field(repr=False, compare=False, default_factory=dict)

    @classmethod
    def from_hash(cls, task_id: str, h: dict[str, str]) -> Task:
        return cls(
            id=task_id,
            channel=Channel(h["channel"]),
            state=TaskState(h["state"]),
            departement=h["dept"],
            region=h["region"],
            groups=tuple(g for g in h.get("groups", "").split(",") if g),
            level=int(h["level"]),
            priority=int(h["priority"]),
            skill=h.get("skill", ""),
            language=h.get("lang", ""),
            caller_key=h.get("ck", ""),
            place_ms=int(h["enq"]),
            created_ms=int(h["created"]),
            volunteer=h.get("vol", ""),
            outcome=Outcome(h["outcome"]) if h.get("outcome") else None,
            reason=h.get("reason", ""),
            ring=int(h["ring"]) if h.get("ring") else None,
            preferred=h.get("pref", ""),
            resumed=h.get("resumed") == "1",
            raw=h,
        )


@dataclass(frozen=True)
class Volunteer:
    id: str
    name: str
    presence: Presence
    reason: str
    departement: str
    region: str
    groups: tuple[str, ...]
    skills: frozenset[str]
    languages: frozenset[str]
    chat_capacity: int
    load_voice: int
    load_chat: int
    reserved: str
    misses: int
    idle_since_ms: int
    blocked_until_ms: int
    presence_since_ms: int
    raw: dict[str, str] = field(repr=False, compare=False, default_factory=dict)

    @classmethod
    def from_hash(cls, volunteer_id: str, h: dict[str, str]) -> Volunteer:
        def items(key: str) -> frozenset[str]:
            return frozenset(s for s in h.get(key, "").split(",") if s)

        return cls(
            id=volunteer_id,
            name=h.get("name", ""),
            presence=Presence(h["presence"]),
            reason=h.get("reason", ""),
            departement=h["dept"],
            region=h["region"],
            groups=tuple(g for g in h.get("groups", "").split(",") if g),
            skills=items("skills"),
            languages=items("langs"),
            chat_capacity=int(h["chat_cap"]),
            load_voice=int(h["load_voice"]),
            load_chat=int(h["load_chat"]),
            reserved=h.get("reserved", ""),
            misses=int(h.get("misses", "0")),
            idle_since_ms=int(h["idle_since"]),
            blocked_until_ms=int(h.get("blocked_until", "0")),
            presence_since_ms=int(h.get("presence_since", h["idle_since"])),
            raw=h,
        )

    def state(self, wrapup_only: bool = False) -> VolunteerState:
        """The coordinator's view; ``wrapup_only`` when every held task is in wrap-up."""
        if self.reserved:
            return VolunteerState.RESERVED
        if self.load_voice or self.load_chat:
            return VolunteerState.WRAPUP if wrapup_only else VolunteerState.BUSY
        return VolunteerState(self.presence.value)


@dataclass(frozen=True)
class Staffing:
    """The line's volunteers right now, counted at one instant."""

    logged_in: int  # available, busy or paused
    working: int  # available, or paused with a conversation still in hand
    chat_lanes: int  # the chat capacity of those working
