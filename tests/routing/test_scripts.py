"""The script linker: each transition carries the prelude definitions it uses, and only those."""

from __future__ import annotations

import re

from routing import scripts

LIBRARY = """local K = {}
K.task = function(a0) return B .. 't:' .. a0 end
K.vol = function(a0) return B .. 'v:' .. a0 end
local NOW = tonumber(ARGV[1])
-- Says why.
local function load(id)
  return redis.call('HGETALL', K.task(id))
end

local function unused() return NOW end
local function ready(id) return load(id) ~= nil end
"""


def test_a_body_gets_what_it_uses_through_each_other_in_order() -> None:
    linked = scripts._link(LIBRARY, "return ready(ARGV[4])")
    assert linked == (
        "local K = {}\n"
        "K.task = function(a0) return B .. 't:' .. a0 end\n"
        "-- Says why.\n"
        "local function load(id)\n"
        "  return redis.call('HGETALL', K.task(id))\n"
        "end\n"
        "\n"
        "local function ready(id) return load(id) ~= nil end\n"
    )


def test_a_body_using_nothing_gets_nothing() -> None:
    assert scripts._link(LIBRARY, "return 1") == ""


def test_every_transition_carries_only_definitions_it_uses() -> None:
    for name in scripts.TRANSITIONS:
        text = scripts.source(name)
        defined = re.findall(r"^local function (\w+)", text, re.M)
        assert defined, name
        for fn in defined:
            # Referenced somewhere besides its own definition line.
            uses = re.findall(rf"\b{fn}\b", text)
            assert len(uses) > 1, f"{name}: {fn} is linked but never used"
        assert len(text) < len(scripts._read("prelude")) + len(scripts._read(name)), name
