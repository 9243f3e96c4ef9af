"""The script linker: each transition carries the prelude definitions it uses, and only those,
with every key written where it is used."""

from __future__ import annotations

import json
import re

import pytest
from redis.asyncio import Redis

from routing import scripts
from routing.keys import TEMPLATES, Keys
from routing.models import Presence

LIBRARY = """local NOW = tonumber(ARGV[1])
-- Says why.
local function load(id)
  return redis.call('HGETALL', K.task(id))
end

local function unused() return NOW end
local function ready(id) return load(id) ~= nil end
"""
# What a body using `ready` gets of LIBRARY: `ready` and what it uses, with their comments.
READY_LINKED = (
    "-- Says why.\n"
    "local function load(id)\n"
    "  return redis.call('HGETALL', K.task(id))\n"
    "end\n"
    "\n"
    "local function ready(id) return load(id) ~= nil end\n"
)


def test_a_body_gets_what_it_uses_through_each_other_in_order() -> None:
    linked = scripts._link(LIBRARY, "return ready(ARGV[4])")
    assert linked == READY_LINKED + "return ready(ARGV[4])"


def test_names_in_comments_and_strings_link_nothing() -> None:
    body = "-- ready? load(id) would do\nreturn redis.call('GET', 'unused', \"it's ready\")"
    assert scripts._link(LIBRARY, body) == body
    assert scripts._link(LIBRARY, "return 'x' .. unused() -- load") == (
        "local NOW = tonumber(ARGV[1])\nlocal function unused() return NOW end\n"
        "return 'x' .. unused() -- load"
    )


def test_a_body_using_nothing_gets_nothing() -> None:
    assert scripts._link(LIBRARY, "return 1") == "return 1"


def test_what_only_a_cold_block_needs_is_made_in_it() -> None:
    body = "if ARGV[3] == '' then -- cold: rarely\n  return ready(ARGV[4])\nend\nreturn unused()\n"
    assert scripts._link(LIBRARY, body) == (
        "local NOW = tonumber(ARGV[1])\n"
        "local function unused() return NOW end\n"
        "if ARGV[3] == '' then -- cold: rarely\n"
        f"{READY_LINKED}"
        "  return ready(ARGV[4])\n"
        "end\n"
        "return unused()\n"
    )


def test_a_cold_block_ends_where_its_branch_does() -> None:
    # Nested blocks, an else and the definitions' own cold blocks: each gets what only it needs,
    # and what is already made around it is not made again.
    library = (
        "local function a() return 1 end\n"
        "local function b() return a() end\n"
        "local function c(x)\n"
        "  if x then -- cold\n"
        "    return b()\n"
        "  end\n"
        "  return 0\n"
        "end\n"
    )
    body = (
        "if ARGV[1] then -- cold\n"
        "  for i = 1, 2 do if i then a() end end\n"
        "else\n"
        "  return c(true)\n"
        "end\n"
    )
    assert scripts._link(library, body) == (
        "local function c(x)\n"
        "  if x then -- cold\n"
        "local function a() return 1 end\n"
        "local function b() return a() end\n"
        "    return b()\n"
        "  end\n"
        "  return 0\n"
        "end\n"
        "if ARGV[1] then -- cold\n"
        "local function a() return 1 end\n"
        "  for i = 1, 2 do if i then a() end end\n"
        "else\n"
        "  return c(true)\n"
        "end\n"
    )


def test_an_unclosed_cold_block_stops_the_linker() -> None:
    with pytest.raises(ValueError, match="unclosed cold block"):
        scripts._link(LIBRARY, "if x then -- cold\n  return ready(1)\n")


def test_a_cold_else_after_a_cold_branch_and_a_comment_naming_a_marker() -> None:
    library = "local function a() return 1 end\nlocal function b() return 2 end\n"
    body = (
        "-- if x then -- cold: a comment, not a block\n"
        "local function f(x)\n"
        "  if x then -- cold\n"
        "    return a()\n"
        "  else -- cold\n"
        "    return b()\n"
        "  end\n"
        "end\n"
    )
    assert scripts._link(library, body) == (
        "\n".join(body.splitlines()[:3])
        + "\nlocal function a() return 1 end\n    return a()\n  else -- cold\n"
        + "local function b() return 2 end\n    return b()\n  end\nend\n"
    )


def test_a_definition_using_one_below_it_stops_the_linker() -> None:
    # Linked into a cold block above its helper, it would read the helper as a global.
    library = "local function h() return d() end\nlocal function d() return 1 end\n"
    with pytest.raises(ValueError, match=r"\['h'\] use \['d'\], defined below them"):
        scripts._link(library, "return h()")


def _scopes(text: str) -> list[str]:
    """The text outside its cold blocks, then each cold block's the same way, recursively."""
    inside = [_scopes(text[start:end]) for start, end in scripts._cold_blocks(text)]
    return [scripts._warm(text)] + [scope for block in inside for scope in block]


def test_every_transition_carries_only_definitions_it_uses() -> None:
    for name in scripts.TRANSITIONS:
        text = scripts.source(name)
        assert re.search(r"^local function \w+", text, re.M), name
        # Each scope (the script's top level, each cold block) defines only functions it uses:
        # a function is referenced in its scope besides its own definition line.
        for scope in _scopes(text):
            for fn in re.findall(r"^local function (\w+)", scope, re.M):
                uses = re.findall(rf"\b{fn}\b", scope)
                assert len(uses) > 1, f"{name}: {fn} is linked but never used"
        assert len(text) < len(scripts._read("prelude")) + len(scripts._read(name)), name


def test_keys_are_written_where_they_are_used() -> None:
    lua = "redis.call('ZADD', K.wait(t.cls, 'p:' .. f(a, b)), s, K.task(ids[K.n]))"
    assert scripts._expand_keys(lua) == (
        "redis.call('ZADD', (B .. 'w:' .. (t.cls) .. ':' .. ('p:' .. f(a, b))), s, "
        "(B .. 't:' .. (ids[K.n])))"
    )
    assert scripts._expand_keys("x = K.timers() .. ')'") == "x = (B .. 'timers') .. ')'"
    assert scripts._expand_keys("K.vol(v.id .. ',)')") == "(B .. 'v:' .. (v.id .. ',)'))"


@pytest.mark.parametrize(
    "lua, error",
    [
        ("K.tasks(id)", "unknown key K.tasks"),
        ("K.task(a, b)", "key task takes 1 parts, given 2"),
        ("K.timers(", "unclosed key call"),
        ("K.task(a])", "unbalanced key call"),
        ("K.task('a)", "unclosed key call"),
    ],
)
def test_a_wrong_key_call_stops_the_linker(lua: str, error: str) -> None:
    with pytest.raises(ValueError, match=re.escape(error)):
        scripts._expand_keys(lua)


def test_no_script_calls_a_key_builder_any_more() -> None:
    sources = [scripts.source(name) for name in scripts.TRANSITIONS]
    sources += [scripts.snapshot_source(), scripts.volunteers_source(), scripts.staffing_source()]
    for text in sources:
        assert not re.search(r"\bK\.\w+\(", text)


async def test_lua_builds_every_key_as_python_names_it(redis: Redis, line: str) -> None:
    keys = Keys(line)
    for name, template in TEMPLATES.items():
        parts = ["a1", "b:2"][: template.count("{}")]
        args = ", ".join(f"ARGV[{i + 1}]" for i in range(len(parts)))
        script = scripts._expand_keys(
            f"local B = string.sub(KEYS[1], 1, #KEYS[1] - 3)\nreturn K.{name}({args})"
        )
        built = await redis.eval(script, 1, keys.cfg, *parts)
        expected = getattr(keys, name)
        assert built == (expected(*parts) if parts else expected), name


async def test_transitions_load_their_scripts_again_after_a_flush(desk, redis: Redis) -> None:
    await desk.volunteer("v05", "05")
    await redis.script_flush()  # a restarted or flushed server: EVALSHA answers NOSCRIPT
    task = await desk.call("t1", "05", caller_key="k1")
    assert (task.state.value, task.volunteer) == ("reserved", "v05")
    await redis.script_flush()
    await desk.engine.accept("v05", "t1")
    assert (await desk.task("t1")).state.value == "assigned"


async def read_by_load_vol(engine, vid: str) -> dict[str, str] | None:
    """What the scripts' load_vol makes of a volunteer's hash (None: no such volunteer)."""
    source = scripts._assemble(
        "local v = load_vol(ARGV[2]) return v and cjson.encode(v) or ''",
        scripts._read("prelude"),
    )
    stamp = f"{engine.clock.now_ms()}|2026-11-23T09:00"  # as the engine sends it
    raw = await engine.redis.eval(source, 1, engine.keys.cfg, stamp, vid)
    return json.loads(raw) if raw else None


async def test_load_vol_reads_every_field_the_scripts_write(desk, engine) -> None:
    await desk.volunteer("idle", "05")
    await desk.volunteer("paused", "05")
    await engine.set_presence("paused", Presence.PAUSED, "café")
    await desk.volunteer("off", "13", available=False)
    await desk.volunteer("chats", "13", chat_capacity=3)
    await desk.chat("c1", "13")
    await engine.accept("chats", "c1")  # one chat in hand, room for more
    await desk.volunteer("missed", "38")
    await desk.call("t1", "38")
    await desk.wait((await engine.config()).ring_s)  # no answer: a miss, then blocked
    await desk.volunteer("wrapup", "73")
    await desk.call("t2", "73")
    await engine.accept("wrapup", "t2")
    await engine.complete("wrapup", "t2")
    volunteers = ["idle", "paused", "off", "chats", "missed", "wrapup"]
    written: set[str] = set()
    for vid in volunteers:
        stored = await engine.redis.hgetall(engine.keys.vol(vid))
        written |= set(stored)
        assert await read_by_load_vol(engine, vid) == {"id": vid, **stored}, vid
    # These states between them write every field a volunteer has.
    assert {"fs", "blocked_until", "misses", "reserved", "reason", "load_chat"} <= written
    assert await read_by_load_vol(engine, "nobody") is None
