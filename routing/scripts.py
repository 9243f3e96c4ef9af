"""The Lua scripts of the engine: one per state transition, sharing one prelude.

Each script carries only the prelude definitions it uses (`_link`): Redis runs a script's whole
text on every call, and creating every shared function there was a fifth of a task life
cycle's Redis work. A block marked cold (its opening line ends with `-- cold`: a path most calls
do not take) gets the definitions only it needs written at its top, so that they are created
only when it runs. For the same reason the key builders `K.name(...)` are not functions: the
linker writes each key's concatenation where it is used (`_expand_keys`).
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

from routing.keys import TEMPLATES, lua_key

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

# A top-level definition starts at column 0: `local function f(` or `local A, B =`; the comment
# lines just above it go with it.
_START = re.compile(r"^(?:local function (\w+)|local ([\w, ]+?) =)", re.M)
# A name of the code; comments and string literals are matched too, so that the words in them
# are skipped (a comment naming a function must not link it).
_TOKEN = re.compile(r"""--[^\n]*|'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*"|\b([A-Za-z_]\w*)""")
_KEY_CALL = re.compile(r"\bK\.(\w+)\(")
# A cold block's opening line: `if ... then -- cold`, `else -- cold`, `do -- cold` (a reason may
# follow the word); not a comment line. Long strings and comments (`[[...]]`) are not read as
# such: the scripts use none.
_COLD = re.compile(r"^(?![ \t]*--)[^\n]*\b(?:then|do|else)[ \t]*-- cold\b[^\n]*\n", re.M)
_OPENS = {"function", "if", "do", "repeat"}  # `for` and `while` open with their `do`
_CLOSES = {"end", "until", "else", "elseif"}
_CLOSING = {"(": ")", "[": "]", "{": "}"}


@cache
def _read(name: str) -> str:
    return (resources.files("routing") / "lua" / f"{name}.lua").read_text(encoding="utf-8")


def _names(code: str) -> set[str]:
    """The names the code uses, outside comments and string literals."""
    return {name for name in _TOKEN.findall(code) if name}


def _cold_blocks(text: str) -> list[tuple[int, int]]:
    """Where each outermost cold block's inside starts (after its marker line) and ends (at the
    `end`, `else`, `elseif` or `until` that closes it)."""
    blocks: list[tuple[int, int]] = []
    pos = 0
    while marker := _COLD.search(text, pos):
        depth, start = 0, marker.end()
        for token in _TOKEN.finditer(text, start):
            word = token.group(1)
            if word in _OPENS:
                depth += 1
            elif word in _CLOSES and depth > 0:
                depth -= int(word in ("end", "until"))
            elif word in _CLOSES:
                blocks.append((start, token.start()))
                pos = text.rfind("\n", 0, token.start()) + 1  # `else -- cold` may open the next
                break
        else:
            raise ValueError(f"unclosed cold block: {marker.group(0).strip()!r}")
    return blocks


def _warm(text: str) -> str:
    """The text without the inside of its cold blocks."""
    pieces, pos = [], 0
    for start, end in _cold_blocks(text):
        pieces.append(text[pos:start])
        pos = end
    return "".join(pieces) + text[pos:]


def _definitions(library: str) -> list[tuple[set[str], str]]:
    """The library's top-level definitions in order: (names defined, text)."""
    lines = library.splitlines(keepends=True)
    out: list[tuple[set[str], str]] = []
    pending: list[str] = []  # comment lines waiting for the definition they describe
    for line in lines:
        match = _START.match(line)
        if match:
            fn, names = match.groups()
            defined = {fn} if fn else {n.strip() for n in names.split(",")}
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
    """The library's definitions, and for each name it defines the names its text uses outside
    its cold blocks.

    Each definition may use only those above it: a script gets its definitions in the library's
    order, some of them inside cold blocks, and Lua reads a name defined below as a global
    (an error only when that line runs)."""
    definitions = _definitions(library)
    uses: dict[str, set[str]] = {}
    defined_so_far: set[str] = set()
    every = set().union(*(defined for defined, _ in definitions))
    for defined, text in definitions:
        later = (_names(text) & every) - defined_so_far - defined
        if later:
            raise ValueError(f"{sorted(defined)} use {sorted(later)}, defined below them")
        defined_so_far |= defined
        names = _names(_warm(text))
        for name in defined:
            uses[name] = names
    return definitions, uses


def _closure(names: set[str], uses: dict[str, set[str]]) -> set[str]:
    """The names, and those their definitions use, through each other."""
    needed: set[str] = set()
    todo = set(names)
    while todo:
        name = todo.pop()
        if name not in needed:
            needed.add(name)
            todo |= uses.get(name, set())
    return needed


def _fill(library: str, text: str, available: set[str]) -> str:
    """The text with, at the top of each cold block, the definitions the block needs that are
    not `available` (already defined around it), in the library's order."""
    definitions, uses = _uses(library)
    pieces, pos = [], 0
    for start, end in _cold_blocks(text):
        block = text[start:end]
        needed = _closure(_names(_warm(block)), uses) - available
        inner = available | needed
        linked = [_fill(library, t, inner) for defined, t in definitions if defined & needed]
        pieces += [text[pos:start], *linked, _fill(library, block, inner)]
        pos = end
    return "".join(pieces) + text[pos:]


def _link(library: str, body: str) -> str:
    """The body after the library's definitions it needs, directly or through each other, in
    order; those only its cold blocks need are written in them."""
    definitions, uses = _uses(library)
    needed = _closure(_names(_warm(body)), uses)
    linked = [_fill(library, t, needed) for defined, t in definitions if defined & needed]
    return "".join(linked) + _fill(library, body, needed)


def _call_arguments(text: str, start: int) -> tuple[list[str], int]:
    """The comma-separated arguments of the call whose '(' is just before `start`, and the
    index just past its ')'. Knows Lua's brackets and quoted strings, not long brackets."""
    args: list[str] = []
    stack = [")"]
    piece_start, i = start, start
    while stack:
        if i >= len(text):
            raise ValueError(f"unclosed key call: {text[start - 10 : start + 40]!r}")
        c = text[i]
        if c in "'\"":
            i += 1
            while i < len(text) and text[i] != c:
                i += 2 if text[i] == "\\" else 1
        elif c in _CLOSING:
            stack.append(_CLOSING[c])
        elif c in ")]}":
            if c != stack.pop():
                raise ValueError(f"unbalanced key call: {text[start - 10 : i + 1]!r}")
        elif c == "," and len(stack) == 1:
            args.append(text[piece_start:i])
            piece_start = i + 1
        i += 1
    last = text[piece_start : i - 1]
    if args or last.strip():
        args.append(last)
    return [a.strip() for a in args], i


def _expand_keys(text: str) -> str:
    """Every `K.name(args)` of the text written as the key's concatenation (keys.lua_key)."""
    out: list[str] = []
    pos = 0
    while match := _KEY_CALL.search(text, pos):
        name = match.group(1)
        if name not in TEMPLATES:
            raise ValueError(f"unknown key K.{name} in a Lua script")
        args, end = _call_arguments(text, match.end())
        out += [text[pos : match.start()], lua_key(name, [_expand_keys(a) for a in args])]
        pos = end
    return "".join(out) + text[pos:]


def _assemble(body: str, *libraries: str) -> str:
    return _expand_keys(_HEADER + "\n" + _link("\n".join(libraries) + "\n", "\n" + body))


@cache
def source(name: str) -> str:
    """The full text of a transition script: the shared definitions it uses, then its body."""
    return _assemble(_read(name), _read("staff_share"), _read("prelude"))


@cache
def snapshot_source() -> str:
    """The read-only script that copies the whole live state at one instant."""
    return _assemble(_read("snapshot"))


@cache
def volunteers_source() -> str:
    """The read-only script that returns a batch of volunteers' hashes in one reply."""
    return _assemble(_read("volunteers"))


@cache
def staffing_source() -> str:
    """The script that reads the staffing counts (and makes them once when absent)."""
    return _assemble(_read("staffing"), _read("staff_share"))
