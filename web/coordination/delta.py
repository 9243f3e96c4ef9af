"""Dashboard deltas: what changed from one version of the dashboard to the next.

With 2,000 volunteers on duty the whole dashboard is ~0.4 MB of JSON, and a change
usually touches one or two rows. So a dashboard socket gets the whole state once, then
deltas: the top-level values that changed, and for the lists of rows with an "id"
(``LIST_ORDERS``) only the rows added or changed and the ids removed; the page puts the
rows back in order with the same keys. ``apply`` is the reference for what
``static/dashboard.js`` does with a delta (tests check that it rebuilds the new state).
"""

from __future__ import annotations

from typing import Any

from web.coordination.live import LIST_ORDERS

_MISSING = object()


class OutOfStep(ValueError):
    """A delta that does not follow the version it is applied to."""


def diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The delta that turns ``old`` into ``new`` (both carry their "version")."""
    changed: dict[str, Any] = {}
    lists: dict[str, dict[str, list[Any]]] = {}
    for key, value in new.items():
        if key == "version":
            continue
        if key in LIST_ORDERS:
            rows = _rows_diff(old.get(key) or [], value)
            if rows is not None:
                lists[key] = rows
        elif old.get(key, _MISSING) != value:
            changed[key] = value
    delta: dict[str, Any] = {"version": new["version"], "base": old["version"], "set": changed}
    if lists:
        delta["lists"] = lists
    removed = [key for key in old if key not in new]
    if removed:
        delta["unset"] = removed
    return delta


def _rows_diff(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> dict[str, list[Any]] | None:
    before = {row["id"]: row for row in old}
    put = [row for row in new if before.get(row["id"]) != row]
    kept = {row["id"] for row in new}
    drop = [row_id for row_id in before if row_id not in kept]
    return {"put": put, "drop": drop} if put or drop else None


def apply(state: dict[str, Any], delta: dict[str, Any]) -> dict[str, Any]:
    """The state after ``delta`` (a new dict; ``state`` is left as it was)."""
    if delta["base"] != state["version"]:
        raise OutOfStep(f"delta from version {delta['base']} applied to {state['version']}")
    new = {k: v for k, v in state.items() if k not in delta.get("unset", ())}
    new.update(delta["set"])
    for key, rows in delta.get("lists", {}).items():
        by_id = {row["id"]: row for row in state.get(key) or []}
        for row_id in rows["drop"]:
            by_id.pop(row_id, None)
        for row in rows["put"]:
            by_id[row["id"]] = row
        new[key] = sorted(by_id.values(), key=LIST_ORDERS[key])
    new["version"] = delta["version"]
    return new


def receive(held: dict[str, Any] | None, message: dict[str, Any]) -> dict[str, Any]:
    """The state a socket's client holds after one message: ``{"full"}`` or ``{"deltas"}``."""
    if "full" in message:
        return message["full"]
    if held is None:
        raise OutOfStep("deltas before the whole state")
    for delta in message["deltas"]:
        held = apply(held, delta)
    return held
