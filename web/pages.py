"""The home page: where to go (callers, volunteers, coordinators)."""

from __future__ import annotations

from html import escape

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

router = APIRouter()

_PAGE = """<!doctype html>
<html lang="fr">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Permanence</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 40rem; margin: 2rem auto;
       padding: 0 1rem; line-height: 1.5; color: #1a1a1a; background: #fff; }}
a {{ color: #0b4f9c; }}
a:focus {{ outline: 3px solid #ffbf47; }}
li {{ margin: .5rem 0; font-size: 1.15rem; }}
</style>
</head>
<body>
<main>
<h1>Permanence</h1>
<p>Une aide gratuite, par téléphone ou par écrit, pour vos démarches en ligne.</p>
{content}
</main>
</body>
</html>
"""


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def home(request: Request) -> HTMLResponse:
    """Links to the parts of the app that exist on this server."""
    links: list[tuple[str, str]] = request.app.state.links
    if links:
        items = "".join(
            f'<li><a href="{escape(path)}">{escape(label)}</a></li>' for label, path in links
        )
        content = f"<nav aria-label=\"Espaces\"><ul>{items}</ul></nav>"
    else:
        content = "<p>Le service est en cours d'installation.</p>"
    return HTMLResponse(_PAGE.format(content=content))
