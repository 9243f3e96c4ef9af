"""The web app (web.app) and the ``permanence`` command (web.cli)."""

import sys

# httpx imports its command-line client (rich, pygments: ~3 MB resident) whenever those
# are installed, and typer requires them; no process of ours runs that client. None in
# sys.modules makes the import fail, and httpx then offers a stub ``httpx.main``, as it
# does without its [cli] extra. Set here, before any of our modules imports httpx: a
# process that already loaded it keeps it.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
