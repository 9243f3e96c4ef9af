"""The lock files pin every dependency of pyproject.toml, at versions it allows."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)")


def pins(lock: Path) -> dict[str, str]:
    found = {}
    for line in lock.read_text(encoding="utf-8").splitlines():
        match = PIN.match(line)
        if match:
            found[canonicalize_name(match[1])] = match[2]
    return found


def declared() -> tuple[list[Requirement], list[Requirement]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    runtime = [Requirement(r) for r in project["dependencies"]]
    test = [Requirement(r) for r in project["optional-dependencies"]["test"]]
    return runtime, test


def unpinned(requirements: list[Requirement], locked: dict[str, str]) -> list[str]:
    problems = []
    for req in requirements:
        version = locked.get(canonicalize_name(req.name))
        if version is None:
            problems.append(f"{req.name} is not in the lock")
        elif not req.specifier.contains(version, prereleases=True):
            problems.append(f"{req.name}=={version} does not satisfy {req.specifier}")
    return problems


def test_requirements_lock_covers_runtime_and_test_dependencies() -> None:
    runtime, test = declared()
    problems = unpinned(runtime + test, pins(ROOT / "requirements.lock"))
    assert problems == [], f"{problems}: run `python3 dev.py lock` (see README)"


def test_production_lock_covers_runtime_at_the_same_versions() -> None:
    runtime, _ = declared()
    prod, full = pins(ROOT / "requirements-prod.lock"), pins(ROOT / "requirements.lock")
    assert unpinned(runtime, prod) == [], "run `python3 dev.py lock` (see README)"
    assert {name: v for name, v in prod.items() if full.get(name) != v} == {}
