"""The Lua scripts of the engine: one per state transition, sharing one prelude."""

from __future__ import annotations

from functools import cache
from importlib import resources

from routing.keys import lua_key_builders

TRANSITIONS = (
    "enqueue",
    "accept",
    "decline",
    "ring_timeout",
    "complete",
    "finish_wrapup",
    "cancel",
    "to_callback",
    "close_task",
    "transfer",
    "give_back",
    "widen",
    "unblock",
    "log_in",
    "set_presence",
    "set_priority",
)

_HEADER = "local B = string.sub(KEYS[1], 1, #KEYS[1] - 3)\n"  # KEYS[1] is the line's cfg key


@cache
def _read(name: str) -> str:
    return (resources.files("routing") / "lua" / f"{name}.lua").read_text(encoding="utf-8")


@cache
def source(name: str) -> str:
    """The full text of a transition script: key builders, shared functions, body."""
    parts = (_HEADER, lua_key_builders(), _read("staff_share"), _read("prelude"), _read(name))
    return "\n".join(parts)


@cache
def snapshot_source() -> str:
    """The read-only script that copies the whole live state at one instant."""
    return "\n".join((_HEADER, lua_key_builders(), _read("snapshot")))


@cache
def staffing_source() -> str:
    """The script that reads the staffing counts (and makes them once when absent)."""
    return "\n".join((_HEADER, lua_key_builders(), _read("staff_share"), _read("staffing")))
