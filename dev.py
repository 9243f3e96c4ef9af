#!/usr/bin/env python3
"""Bootstrap for a bare machine with only Python 3.11+ (standard library only).

    python3 dev.py demo        # install (first time) and start the demo
    python3 dev.py test        # install with test tools and run the whole test suite
    python3 dev.py lock        # refresh requirements*.lock after changing pyproject.toml
    python3 dev.py lock --upgrade   # same, moving every package to its newest version

Installs into ./.venv from the lock files, then the project itself (editable). A stamp in
the venv skips reinstalling when neither the lock nor pyproject.toml changed. Extra
arguments go to the command: `python3 dev.py test -k healthz`, `python3 dev.py demo --port
8080`.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
LOCK = ROOT / "requirements.lock"  # runtime + test tools: what dev.py installs
PROD_LOCK = ROOT / "requirements-prod.lock"  # runtime only, same versions: the Docker image
PYPROJECT = ROOT / "pyproject.toml"
STAMP = VENV / ".permanence-installed"
MIN_PYTHON = (3, 11)


def fail(message: str) -> None:
    print(f"dev.py: {message}", file=sys.stderr)
    raise SystemExit(1)


def run(*args: str | Path) -> None:
    print("+", " ".join(str(a) for a in args), flush=True)
    result = subprocess.run([str(a) for a in args], cwd=ROOT)
    if result.returncode:
        fail(f"command failed with exit code {result.returncode}")


def bin_path(name: str) -> Path:
    folder = "Scripts" if os.name == "nt" else "bin"
    return VENV / folder / name


def venv_python() -> Path:
    return bin_path("python.exe" if os.name == "nt" else "python")


def ensure_venv() -> None:
    """Create .venv with this interpreter unless a usable one exists."""
    python = venv_python()
    if python.exists():
        probe = subprocess.run(
            [str(python), "-c", "import sys; print(sys.version_info >= (3, 11))"],
            capture_output=True,
            text=True,
        )
        if probe.stdout.strip() == "True":
            return
        fail(f"{VENV} uses a Python older than 3.11 or is broken: delete it and run again")
    print(f"creating {VENV}", flush=True)
    try:
        venv.EnvBuilder(with_pip=True).create(VENV)
    except Exception as exc:  # e.g. Debian without python3-venv
        fail(f"could not create the virtual environment ({exc}); on Debian/Ubuntu: "
             "apt-get install python3-venv")


def fingerprint() -> str:
    digest = hashlib.sha256()
    for path in (LOCK, PYPROJECT):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def install() -> None:
    """Install the locked dependencies and the project, unless already done for this lock."""
    ensure_venv()
    if STAMP.exists() and STAMP.read_text().strip() == fingerprint():
        return
    if not LOCK.exists():
        fail(f"{LOCK.name} is missing: run `python3 dev.py lock`")
    python = venv_python()
    run(python, "-m", "pip", "install", "--disable-pip-version-check", "-r", LOCK)
    # The project itself, editable so that edits need no reinstall. Dependencies come
    # from the lock above; pip adds only something pyproject.toml gained since the lock.
    run(python, "-m", "pip", "install", "--disable-pip-version-check", "-e", f"{ROOT}[test]")
    STAMP.write_text(fingerprint() + "\n")


def lock(upgrade: bool) -> None:
    """Re-resolve requirements.lock and requirements-prod.lock from pyproject.toml.

    Versions already in the lock are kept unless ``upgrade``; new dependencies are added.
    """
    ensure_venv()
    python = venv_python()
    if not bin_path("uv").exists():
        run(python, "-m", "pip", "install", "--disable-pip-version-check", "uv")
    uv = bin_path("uv")
    common = ["--universal", "--python-version", "3.11", "--quiet",
              "--custom-compile-command", "python3 dev.py lock"]
    run(uv, "pip", "compile", PYPROJECT, "--extra", "test", *common,
        *(["--upgrade"] if upgrade else []), "-o", LOCK)
    # Runtime only, held to the versions just chosen so the image runs what the tests ran.
    PROD_LOCK.unlink(missing_ok=True)
    run(uv, "pip", "compile", PYPROJECT, "-c", LOCK, *common, "-o", PROD_LOCK)


def exec_in_venv(program: Path, *args: str) -> None:
    """Replace this process, so Ctrl-C and signals reach the program directly."""
    sys.stdout.flush()
    os.chdir(ROOT)
    os.execv(str(program), [str(program), *args])


def main(argv: list[str]) -> None:
    if sys.version_info < MIN_PYTHON:
        needed = ".".join(map(str, MIN_PYTHON))
        fail(f"Python {needed}+ is needed; this is {sys.version.split()[0]}")
    if not argv or argv[0] not in {"demo", "test", "lock", "install"}:
        print(__doc__)
        raise SystemExit(2)
    command, rest = argv[0], argv[1:]
    if command == "lock":
        lock(upgrade="--upgrade" in rest)
        return
    install()
    if command == "demo":
        exec_in_venv(bin_path("permanence"), "demo", *rest)
    elif command == "test":
        exec_in_venv(venv_python(), "-m", "pytest", *rest)


if __name__ == "__main__":
    main(sys.argv[1:])
