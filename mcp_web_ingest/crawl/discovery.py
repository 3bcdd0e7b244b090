"""A crawl job's robots.txt rules (fetched once per origin) and its seed URLs from sitemaps and llms.txt, with notes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from urllib.parse import urlsplit

import aiohttp

from mcp_web_ingest.config import Settings
from mcp_web_ingest.crawl.robots import RobotsRules, fetch_robots

__all__ = ["MAX_NOTES", "JobNotes", "RobotsCache", "discover_seeds"]

log = logging.getLogger(__name__)

MAX_NOTES = 20
# A sitemap or llms.txt that does not exist is the common case, not news.
_MISSING = (": HTTP 404", ": HTTP 410")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class JobNotes:
    """Caveats about a job that its status reports (robots.txt treated as absent, sitemaps skipped), in order."""

    def __init__(self, limit: int = MAX_NOTES) -> None:
        self.lines: list[str] = []
        self.dropped = 0
        self._limit = limit

    def add(self, line: str) -> None:
        """Keep a note (once); past the limit only count it."""
        if line in self.lines:
            return
        if len(self.lines) >= self._limit:
            self.dropped += 1
        else:
            self.lines.append(line)

    def all(self) -> tuple[str, ...]:
        """The notes kept, and a last line counting those dropped."""
        return (*self.lines, f"and {self.dropped} more") if self.dropped else tuple(self.lines)


class RobotsCache:
    """The robots.txt rules of each origin one job touches, each fetched once through the crawl's (guarded) session."""

    def __init__(
        self,
        settings: Settings,
        session: Callable[[], aiohttp.ClientSession],
        notes: JobNotes,
        *,
        respect: bool = True,
        on_rules: Callable[[str, RobotsRules], None] | None = None,
    ) -> None:
        self._settings = settings
        self._session = session
        self._notes = notes
        self._respect = respect
        self._on_rules = on_rules
        self._rules: dict[str, RobotsRules] = {}
        self._lock = asyncio.Lock()

    async def rules(self, url: str) -> RobotsRules:
        """The rules for ``url``'s origin; fetch_robots never raises, so neither does this."""
        if not self._respect:
            return RobotsRules.allow_all("robots.txt ignored (respect_robots=false)")
        origin = _origin(url)
        async with self._lock:
            if origin not in self._rules:
                s = self._settings
                rules = await fetch_robots(self._session(), origin, s.user_agent, s.fetch_timeout_s)
                self._rules[origin] = rules
                if rules.note:
                    self._notes.add(rules.note)
                if self._on_rules is not None:
                    self._on_rules(url, rules)
            return self._rules[origin]


async def discover_seeds(
    session: aiohttp.ClientSession, start_url: str, robots: RobotsCache, notes: JobNotes
) -> list[tuple[str, str, str | None]]:
    """(url, source, lastmod) from the start URL's sitemaps and llms.txt, every fetch under robots.txt.

    Each file stands alone: one that is disallowed, blocked or failing is skipped with a note; the rest are read.
    """
    from mcp_web_ingest.crawl.seeds import discover_sitemap_urls, fetch_llms_txt  # imported here to keep start-up light

    rules = await robots.rules(start_url)
    problems: list[str] = []
    found: list[tuple[str, str, str | None]] = []
    try:
        pairs = await discover_sitemap_urls(session, start_url, rules, robots_for=robots.rules, problems=problems)
        found += [(u, "sitemap", lastmod) for u, lastmod in pairs]
    except Exception as exc:  # a bug here must not cost the crawl its start page and llms.txt
        log.warning("sitemap discovery for %s failed", start_url, exc_info=True)
        problems.append(f"sitemap discovery failed: {type(exc).__name__}: {exc}")
    try:
        urls = await fetch_llms_txt(session, start_url, robots=rules, robots_for=robots.rules, problems=problems)
        found += [(u, "llms.txt", None) for u in urls]
    except Exception as exc:
        log.warning("llms.txt discovery for %s failed", start_url, exc_info=True)
        problems.append(f"llms.txt discovery failed: {type(exc).__name__}: {exc}")
    for line in problems:
        if not line.endswith(_MISSING):
            notes.add(line)
    return found
