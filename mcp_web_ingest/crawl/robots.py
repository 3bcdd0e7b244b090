"""robots.txt per RFC 9309: group selection by product token, longest-match rules with ``*`` and ``$``, fetch rules.

``urllib.robotparser`` is not used: it matches rules in file order instead of by length and knows neither ``*`` nor
``$``. Protego (Scrapy's parser) is not in the package index this project installs from, so the matcher is here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

import aiohttp

from mcp_web_ingest.errors import BlockedAddressError, FetchError
from mcp_web_ingest.ingest.links import product_token

__all__ = ["MAX_ROBOTS_BYTES", "RobotsRules", "fetch_robots", "parse_robots"]

# RFC 9309 §2.5: a crawler MUST parse at least the first 500 KiB.
MAX_ROBOTS_BYTES = 512 * 1024
MAX_REDIRECTS = 5  # RFC 9309 §2.3.1.2: follow at least five consecutive redirects
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PCT = re.compile(r"%([0-9A-Fa-f]{2})")
_LINE = re.compile(r"^\s*([A-Za-z_-]+)\s*:\s*(.*?)\s*$")
_MAX_RULE_CHARS = 2048  # a longer rule cannot match a URL this package would fetch (urls.MAX_URL_LENGTH)


def _normalize(path: str) -> str:
    """RFC 9309 §2.2.2: escape non-ASCII as UTF-8, decode escaped unreserved characters, upper-case other escapes."""
    out: list[str] = []
    i = 0
    while i < len(path):
        ch = path[i]
        m = _PCT.match(path, i) if ch == "%" else None
        if m:
            decoded = chr(int(m.group(1), 16))
            out.append(decoded if decoded in _UNRESERVED else "%" + m.group(1).upper())
            i += 3
            continue
        if ch.isascii() and ch.isprintable():
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8", errors="replace"))
        i += 1
    return "".join(out)


@dataclass(frozen=True)
class _Rule:
    """One allow/disallow line, pre-split on ``*`` for a linear-time glob match."""

    allow: bool
    pattern: str  # normalised, as written (with any trailing '$')
    pieces: tuple[str, ...]
    anchored: bool  # pattern ended with '$'

    @classmethod
    def create(cls, allow: bool, value: str) -> _Rule:
        """Build a rule from a line value; a value not starting with '/' or '*' is read as starting with '/'."""
        pattern = _normalize(value)
        if not pattern.startswith(("/", "*")):
            pattern = "/" + pattern
        anchored = pattern.endswith("$")
        body = pattern[:-1] if anchored else pattern
        # '$' is only special at the end (RFC 9309 §2.2.3); elsewhere it is a literal character.
        return cls(allow, pattern, tuple(body.split("*")), anchored)

    def matches(self, path: str) -> bool:
        """Glob match anchored at the start: leftmost-first placement of each piece is optimal for '*' globs."""
        first, *rest = self.pieces
        if not path.startswith(first):
            return False
        if not rest:
            return not self.anchored or len(path) == len(first)
        pos = len(first)
        middle, last = rest[:-1], rest[-1]
        for piece in middle:
            found = path.find(piece, pos)
            if found < 0:
                return False
            pos = found + len(piece)
        if self.anchored:
            return path.endswith(last) and len(path) - len(last) >= pos
        return path.find(last, pos) >= 0


@dataclass(frozen=True)
class RobotsRules:
    """The rules of one robots.txt for one user agent."""

    rules: tuple[_Rule, ...] = ()
    crawl_delay: float | None = None
    sitemaps: tuple[str, ...] = ()
    reason: str = "robots.txt parsed"  # why these rules apply, for crawl reports
    note: str | None = None  # an outcome worth telling the user (unreachable, blocked), for the job's status

    @classmethod
    def allow_all(cls, reason: str = "no robots.txt rules: everything allowed") -> RobotsRules:
        """Rules that allow every URL."""
        return cls(reason=reason)

    @classmethod
    def disallow_all(cls, reason: str = "robots.txt unreachable: nothing allowed") -> RobotsRules:
        """Rules that disallow every URL (except /robots.txt itself)."""
        return cls(rules=(_Rule.create(False, "/"),), reason=reason, note=reason)

    def allowed(self, url_or_path: str) -> bool:
        """Whether the URL (absolute) or path (with optional query) may be fetched."""
        if url_or_path[:8].lower().startswith(("http://", "https://")):
            try:
                parts = urlsplit(url_or_path)
            except ValueError:
                return False
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        else:
            path = url_or_path or "/"
        path = _normalize(path)
        if path == "/robots.txt":  # RFC 9309 §2.2.2: always allowed
            return True
        best: _Rule | None = None
        for rule in self.rules:
            if not rule.matches(path):
                continue
            # Most octets wins; on a tie, allow wins (RFC 9309 §2.2.2).
            if (
                best is None
                or len(rule.pattern) > len(best.pattern)
                or (len(rule.pattern) == len(best.pattern) and rule.allow and not best.allow)
            ):
                best = rule
        return best is None or best.allow


def parse_robots(text: str, user_agent: str) -> RobotsRules:
    """Rules of ``text`` for ``user_agent``: its own groups merged, else the ``*`` groups, else allow all."""
    token = product_token(user_agent)
    own: list[_Rule] = []
    star: list[_Rule] = []
    own_delay: float | None = None
    star_delay: float | None = None
    own_seen = star_seen = False
    sitemaps: list[str] = []
    agents: list[str] = []
    in_rules = False  # a user-agent line after rule lines starts a new group
    for raw in text.splitlines():
        line = raw.split("#", 1)[0]
        m = _LINE.match(line)
        if not m:
            continue
        key, value = m.group(1).lower().replace("_", "-"), m.group(2)
        if key in ("user-agent", "useragent"):
            if in_rules:
                agents, in_rules = [], False
            agent = value.strip()
            agents.append("*" if agent.startswith("*") else product_token(agent))
            own_seen = own_seen or (bool(token) and agents[-1] == token)
            star_seen = star_seen or agents[-1] == "*"
        elif key == "sitemap":
            if value:
                sitemaps.append(value)
        elif key in ("allow", "disallow", "crawl-delay"):
            in_rules = True
            if not agents:
                continue  # rules before any user-agent line belong to no group
            mine, anyone = bool(token) and token in agents, "*" in agents
            if key == "crawl-delay":
                delay = _parse_delay(value)
                if delay is not None:
                    own_delay = delay if mine else own_delay
                    star_delay = delay if anyone else star_delay
                continue
            if not value or len(value) > _MAX_RULE_CHARS:
                continue  # an empty disallow allows everything: it adds no rule
            rule = _Rule.create(key == "allow", value)
            if mine:
                own.append(rule)
            if anyone:
                star.append(rule)
    if own_seen:
        rules, delay, who = own, own_delay, f"group {token!r}"
    elif star_seen:
        rules, delay, who = star, star_delay, "group '*'"
    else:
        rules, delay, who = [], None, "no matching group"
    return RobotsRules(
        rules=tuple(rules),
        crawl_delay=delay,
        sitemaps=tuple(dict.fromkeys(sitemaps)),
        reason=f"robots.txt parsed ({who}, {len(rules)} rules)",
    )


def _parse_delay(value: str) -> float | None:
    try:
        delay = float(value)
    except ValueError:
        return None
    return delay if 0 <= delay < float("inf") else None


async def fetch_robots(session: aiohttp.ClientSession, origin: str, user_agent: str, timeout_s: float) -> RobotsRules:
    """GET ``origin``/robots.txt and apply RFC 9309 §2.3.1: 2xx parse, 4xx allow all, 5xx/unreachable disallow all."""
    url = origin.rstrip("/") + "/robots.txt"
    try:
        async with session.get(
            url,
            headers={"User-Agent": user_agent},
            max_redirects=MAX_REDIRECTS + 1,  # aiohttp raises on reaching the count, not on passing it
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        ) as resp:
            status = resp.status
            if 200 <= status < 300:
                body = await _read_capped(resp)
                # Only complete lines: a rule cut in half at the cap could disallow more than the author meant.
                if len(body) >= MAX_ROBOTS_BYTES and b"\n" in body:
                    body = body[: body.rindex(b"\n")]
                text = body.decode("utf-8", errors="replace").lstrip("\ufeff")
                rules = parse_robots(text, user_agent)
                return replace(rules, reason=f"{url}: HTTP {status}, {rules.reason}")
    except aiohttp.TooManyRedirects:
        # §2.3.1.2: more than five redirects may be treated as "unavailable", which allows everything.
        return RobotsRules.allow_all(f"{url}: more than {MAX_REDIRECTS} redirects, treated as unavailable (allow all)")
    except BlockedAddressError as exc:
        # A file we may not fetch (the SSRF guard refused the host or a redirect hop) is one we cannot read, like a
        # redirect chain too long to follow: "unavailable" (§2.3.1.2), as for a 4xx. Pages on a blocked host are
        # refused by the fetcher anyway; pages on this one stay crawlable.
        reason = f"{url} not fetched (blocked address: {exc}): treated as unavailable, everything allowed"
        return replace(RobotsRules.allow_all(reason), note=reason)
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError, FetchError) as exc:
        detail = str(exc) or type(exc).__name__
        return RobotsRules.disallow_all(f"{url} unreachable ({detail}): nothing allowed until it can be read")
    # 429 is "slow down", not "there is no file": treat it like a server error, as the major crawlers do.
    # A 3xx left over here had no usable Location: the file is unavailable, like a 4xx.
    if 300 <= status < 500 and status != 429:
        return RobotsRules.allow_all(f"{url} returned HTTP {status}: unavailable, everything allowed")
    return RobotsRules.disallow_all(f"{url} returned HTTP {status}: server error or rate limit, nothing allowed")


async def _read_capped(resp: aiohttp.ClientResponse) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(64 * 1024):
        chunks.append(chunk)
        size += len(chunk)
        if size >= MAX_ROBOTS_BYTES:
            break
    return b"".join(chunks)[:MAX_ROBOTS_BYTES]
