"""The Lua scripts of the engine: one per state transition, sharing one prelude.

Each script carries only the prelude definitions it uses (`_link`): Redis runs a script's whole
text on every call, and creating every shared function there was a fifth of a task life
cycle's Redis work.
"""

from __future__ import annotations

import re
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

# A top-level definition starts at column 0: `local function f(`, `local A, B =` or a key
# builder `K.name =`; the comment lines just above it go with it.
_START = re.compile(r"^(?:local function (\w+)|local ([\w, ]+?) =|(K\.\w+) =)", re.M)
_NAME = re.compile(r"K\.\w+|\b[A-Za-z_]\w*")


@cache
def _read(name: str) -> str:
    return (resources.files("routing") / "lua" / f"{name}.lua").read_text(encoding="utf-8")


def _definitions(library: str) -> list[tuple[set[str], str]]:
    """The library's top-level definitions in order: (names defined, text)."""
    lines = library.splitlines(keepends=True)
    out: list[tuple[set[str], str]] = []
    pending: list[str] = []  # comment lines waiting for the definition they describe
    for line in lines:
        match = _START.match(line)
        if match:
            fn, names, builder = match.groups()
            if fn or builder:
                defined = {fn or builder}
            else:
                defined = {n.strip() for n in names.split(",")}
            out.append((defined, "".join(pending) + line))
            pending = []
        elif line.startswith("--") or not out:
            pending.append(line)
        else:
            defined, text = out[-1]
            out[-1] = (defined, text + "".join(pending) + line)
            pending = []
    return out


@cache
def _uses(library: str) -> tuple[list[tuple[set[str], str]], dict[str, set[str]]]:
    """The library's definitions, and for each name it defines the names its text uses."""
    definitions = _definitions(library)
    uses: dict[str, set[str]] = {}
    for defined, text in definitions:
        names = set(_NAME.findall(text))
        for name in defined:
            uses[name] = names
    return definitions, uses


def _link(library: str, body: str) -> str:
    """The library's definitions that `body` needs, directly or through each other, in order."""
    definitions, uses = _uses(library)
    needed: set[str] = set()
    todo = set(_NAME.findall(body))
    while todo:
        name = todo.pop()
        if name not in needed:
            needed.add(name)
            todo |= uses.get(name, set())
    if any(name.startswith("K.") for name in needed):
        needed.add("K")
    return "".join(text for defined, text in definitions if defined & needed)


def _assemble(body: str, *libraries: str) -> str:
    return "\n".join((_HEADER, _link("\n".join(libraries) + "\n", body), body))


@cache
def source(name: str) -> str:
    """The full text of a transition script: the key builders and shared functions it uses, body."""
    return _assemble(_read(name), lua_key_builders(), _read("staff_share"), _read("prelude"))


@cache
def snapshot_source() -> str:
    """The read-only script that copies the whole live state at one instant."""
    return _assemble(_read("snapshot"), lua_key_builders())


@cache
def volunteers_source() -> str:
    """The read-only script that returns a batch of volunteers' hashes in one reply."""
    return _assemble(_read("volunteers"), lua_key_builders())


@cache
def staffing_source() -> str:
    """The script that reads the staffing counts (and makes them once when absent)."""
    return _assemble(_read("staffing"), lua_key_builders(), _read("staff_share"))
