"""Every Redis key of the engine, defined once.

All keys of a line share the hash tag ``{line}`` so that every script touches a
single Redis Cluster slot. The Lua scripts write ``K.name(...)``, which the script
linker expands from ``TEMPLATES`` below (``lua_key``), so Python and Lua can never
disagree on a name.
"""

from __future__ import annotations

# name -> suffix after the line's base; "{}" parts are filled in order.
TEMPLATES: dict[str, str] = {
    "cfg": "cfg",  # hash: the line's routing parameters (KEYS[1] of every script)
    "task": "t:{}",  # hash: one task
    "vol": "v:{}",  # hash: one volunteer's presence, profile and load
    "live": "live",  # set: ids of tasks not yet ended
    "vols": "vols",  # set: ids of volunteers ever logged in on this line
    "wait": "w:{}:{}",  # zset per channel class and scope: waiting tasks by place
    # zset per scope of the volunteers who may be offered a task, by idle time: 'voice' those
    # with nothing in hand (a call or a chat), 'chat' those with chats under capacity, no call
    "free": "f:{}:{}",
    "on": "on",  # hash scope -> volunteers on duty (available) in that scope
    "staff": "staff",  # hash: logged_in, working, lanes (Engine.staffing); absent = not counted
    "timers": "timers",  # zset: due times of widening, ring, wrap-up and delay timers
    "events": "events",  # stream: every transition
    "stats": "s:{}",  # hash per day or 15-minute interval: live counters
    "resume": "resume:{}",  # string per caller key: the place of an abandoned task
    "recent": "recent:{}",  # hash per caller key: last volunteer and département
}

# The free sets a task of each channel class looks in (FREE_SETS in the Lua prelude).
FREE_SETS: dict[str, tuple[str, ...]] = {"voice": ("voice",), "chat": ("voice", "chat")}


class Keys:
    """Key names of one line."""

    def __init__(self, line: str = "main", prefix: str = "perm") -> None:
        if "{" in line or "}" in line or ":" in line:
            raise ValueError("line names cannot contain braces or colons")
        self.line = line
        self.base = f"{prefix}:{{{line}}}:"

    def _key(self, name: str, *parts: str) -> str:
        return self.base + TEMPLATES[name].format(*parts)

    @property
    def cfg(self) -> str:
        return self._key("cfg")

    @property
    def live(self) -> str:
        return self._key("live")

    @property
    def vols(self) -> str:
        return self._key("vols")

    @property
    def on(self) -> str:
        return self._key("on")

    @property
    def staff(self) -> str:
        return self._key("staff")

    @property
    def timers(self) -> str:
        return self._key("timers")

    @property
    def events(self) -> str:
        return self._key("events")

    def task(self, task_id: str) -> str:
        return self._key("task", task_id)

    def vol(self, volunteer_id: str) -> str:
        return self._key("vol", volunteer_id)

    def wait(self, channel_class: str, scope: str) -> str:
        return self._key("wait", channel_class, scope)

    def free(self, free_set: str, scope: str) -> str:
        return self._key("free", free_set, scope)

    def stats(self, bucket: str) -> str:
        return self._key("stats", bucket)

    def resume(self, caller_key: str) -> str:
        return self._key("resume", caller_key)

    def recent(self, caller_key: str) -> str:
        return self._key("recent", caller_key)

    def pattern(self) -> str:
        """A SCAN pattern matching every key of the line (for tests and resets)."""
        return self.base.replace("{", "\\{").replace("}", "\\}") + "*"


def lua_key(name: str, args: list[str]) -> str:
    """The Lua expression of key ``name`` built from Lua expressions ``args``, e.g.
    ``(B .. 't:' .. (tid))``; ``B`` is the line's base, taken from KEYS[1] by every script.

    The script linker writes this in place of each ``K.name(...)`` of the Lua sources: a
    concatenation where it is used instead of a function defined on every call of the script.
    """
    pieces = TEMPLATES[name].split("{}")
    if len(args) != len(pieces) - 1:
        raise ValueError(f"key {name} takes {len(pieces) - 1} parts, given {len(args)}")
    parts = ["B"]
    for i, piece in enumerate(pieces):
        if piece:
            parts.append(f"'{piece}'")
        if i < len(args):
            parts.append(f"({args[i]})")
    return "(" + " .. ".join(parts) + ")"
