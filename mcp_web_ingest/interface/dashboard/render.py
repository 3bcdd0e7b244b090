"""HTML of the dashboard: Jinja2 templates, autoescaped, with filters that keep links safe and times readable."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.requests import Request
from starlette.responses import HTMLResponse

__all__ = ["SECURITY_HEADERS", "STATIC_DIR", "ago", "render", "safe_href"]

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
# Only this package's own script and style run: text that came from indexed pages can never become markup or code.
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    # no-referrer would make Chromium send "Origin: null" with our own form posts, which the Origin guard refuses.
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}
NAV = (("sources", "Sources", "/ui/sources"), ("index", "Index", "/ui/index"), ("search", "Search", "/ui/search"),
       ("health", "Health", "/ui/health"))  # fmt: skip


def safe_href(url: object) -> str:
    """``url`` when it is an http(s) URL, else "#": no javascript:, data: or other schemes reach an href."""
    text = str(url or "")
    try:
        scheme = urlsplit(text).scheme.lower()
    except ValueError:
        return "#"
    return text if scheme in ("http", "https") else "#"


def _when(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _span(seconds: float) -> str:
    seconds = abs(seconds)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def ago(value: object, now: datetime | None = None) -> str:
    """'5 min ago' / 'in 2 h' for a datetime or ISO 8601 string; '—' when there is none."""
    when = _when(value)
    if when is None:
        return "—"
    delta = ((now or datetime.now(UTC)) - when).total_seconds()
    if abs(delta) < 5:
        return "just now"
    return f"{_span(delta)} ago" if delta > 0 else f"in {_span(delta)}"


def duration(seconds: object) -> str:
    """A number of seconds as '42 s', '3 min', '2 h'; '—' when unknown."""
    return "—" if not isinstance(seconds, int | float) else _span(float(seconds))


def _env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"), autoescape=True, undefined=StrictUndefined, trim_blocks=True
    )
    env.filters.update(href=safe_href, ago=ago, duration=duration)
    env.globals["nav"] = NAV
    return env


ENV = _env()


def render(request: Request, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    """A dashboard page with the security headers; ``context`` fills the template."""
    html = ENV.get_template(template).render(request=request, **context)
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
