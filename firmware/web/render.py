"""Server-side pages from small HTML templates; every value is escaped unless marked safe."""

from __future__ import annotations

import html
import json
from functools import cache
from pathlib import Path
from string import Template
from typing import Any

from aiohttp import web


class Safe(str):
    """Markup the page itself produced (never anything a vehicle or a request sent)."""


def json_script(data: Any) -> Safe:
    """JSON for a ``<script type="application/json">`` block: no ``<``, so no tag can close it."""
    text = json.dumps(data, separators=(",", ":"))
    return Safe(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


@cache
def _template(directory: Path, name: str) -> Template:
    return Template((directory / name).read_text(encoding="utf-8"))


def render(directory: Path, template: str, status: int = 200, **values: Any) -> web.Response:
    escaped = {k: v if isinstance(v, Safe) else html.escape(str(v)) for k, v in values.items()}
    body = _template(directory, template).substitute(escaped)
    return web.Response(
        text=body,
        status=status,
        content_type="text/html",
        headers={
            "Content-Security-Policy": (
                "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                "script-src 'self'; connect-src 'self'; frame-ancestors 'none'"
            ),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
        },
    )
