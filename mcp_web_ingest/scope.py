"""Which URLs a crawl may visit: scope (path prefix, host or registrable domain), user regexes, default exclusions."""

from __future__ import annotations

import contextlib
import ipaddress
import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qsl, urlsplit

from mcp_web_ingest.errors import InvalidInputError
from mcp_web_ingest.urls import normalize_url

__all__ = ["DEFAULT_EXCLUSIONS", "CrawlScope", "ScopeKind", "default_exclusion", "path_prefix", "registrable_domain"]

ScopeKind = Literal["path", "host", "domain"]

# Second-level labels under which registrations happen one level deeper (example.co.uk, example.com.au).
# A heuristic instead of the Public Suffix List: tldextract cannot download its list here.
_SHORT_SLDS = frozenset({"co", "com", "net", "org", "gov", "edu", "ac", "or", "ne", "go", "gob", "mil", "nic", "ltd"})

# Images, archives, documents, fonts, page assets, media, executables and packages.
_ASSET_WORDS = (
    "png jpg jpeg gif webp svg ico bmp tif tiff avif heic zip tar gz tgz bz2 xz 7z rar zst pdf doc docx xls xlsx "
    "ppt pptx odt ods odp epub woff woff2 ttf otf eot css js mjs map wasm mp3 mp4 m4a m4v webm ogg ogv wav flac "
    "avi mov mkv exe dmg iso msi apk deb rpm bin jar whl"
)
_ASSET_EXTENSIONS = frozenset(_ASSET_WORDS.split())
_AUTH = re.compile(r"(?:^|/)(?:log-?out|log-?in|sign-?in|sign-?out|sign-?up|wp-login\.php)(?:[/.;]|$)", re.I)
_FEED = re.compile(r"(?:^|/)(?:feed|rss|atom)(?:/|\.xml|$)|\.(?:rss|atom)$", re.I)
_FEED_QUERY = {"feed", "rss", "atom"}
_PRINT = re.compile(r"(?:^|/)print(?:/|$)", re.I)
_CALENDAR = re.compile(r"(?:^|/)calendar(?:/|$)", re.I)
_SESSION_KEYS = frozenset({"sid", "sessionid", "session_id", "phpsessid", "jsessionid", "sessid", "oscsid"})
_SORT_KEYS = frozenset({"sort", "order", "orderby", "sortby", "sort_by", "order_by"})
_APACHE_SORT = re.compile(r"(?:^|[&;])C=[NMSD][;&]O=[AD](?:$|[&;])", re.I)  # directory listing ?C=N;O=D
_WIKI_ACTIONS = frozenset({"edit", "history", "raw", "info", "delete", "protect", "watch", "unwatch", "purge"})
_PAGE_KEYS = frozenset({"page", "p", "pg", "paged"})
_PAGE_PATH = re.compile(r"/page/(\d+)(?:/|$)", re.I)

DEFAULT_EXCLUSIONS: tuple[tuple[str, str], ...] = (
    ("login/logout", "logout, login, sign-in/out and sign-up pages: side effects or forms, never content"),
    ("feed", "RSS/Atom feeds (/feed, /rss, /atom, .rss, .atom, ?feed=): duplicates of pages in XML"),
    ("binary/asset", "images, archives, PDFs and office documents, fonts, CSS/JS, media, executables (by extension)"),
    ("print view", "print versions (?print=, ?printable=, /print/): duplicates of a page"),
    ("calendar", "/calendar/ paths and ?ical: endless generated dates (date paths are kept: posts live there)"),
    ("sort/order", "?sort=, ?order=, ?orderby= and Apache ?C=&O=: the same listing in another order"),
    ("pagination", "?page=N or /page/N/ beyond the page limit (default 50): listings that never end"),
    ("comment reply", "?replytocom=: WordPress reply forms, one copy of the post per comment"),
    ("session id", "?sid=, ?PHPSESSID=, ;jsessionid=...: the same page under a new URL per visit"),
    ("wiki action", "?action=edit/history/raw..., ?oldid=, ?diff=: revisions and editors, not the page"),
    ("repeated path segment", "a segment occurring 3+ times (/a/b/a/b/a/b): relative-link loops"),
)


def registrable_domain(host: str) -> str:
    """The registrable domain of a host name by a simple rule: last two labels, three under short SLDs (co.uk)."""
    host = host.strip("[]").rstrip(".").lower()
    with contextlib.suppress(ValueError):
        return str(ipaddress.ip_address(host))  # an address is its own "domain"
    labels = host.split(".")
    if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in _SHORT_SLDS:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


def path_prefix(path: str) -> str:
    """The directory of a start path: '/docs/index.html' → '/docs/'; '/docs' (no extension) → '/docs/'."""
    if path.endswith("/"):
        return path
    head, _, last = path.rpartition("/")
    return head + "/" if "." in last else path + "/"


@dataclass(frozen=True)
class CrawlScope:
    """Decides per URL whether a crawl may visit it; build with ``CrawlScope.create``."""

    start_url: str
    kind: ScopeKind
    netloc: str  # host[:port] of the start URL, normalised
    prefix: str  # path prefix (scope "path"), else "/"
    domain: str  # registrable domain of the start host
    include: tuple[re.Pattern[str], ...] = ()
    exclude: tuple[re.Pattern[str], ...] = ()
    max_page: int = 50

    @classmethod
    def create(
        cls,
        start_url: str,
        scope: ScopeKind = "path",
        include: list[str] | tuple[str, ...] = (),
        exclude: list[str] | tuple[str, ...] = (),
        *,
        max_page: int = 50,
    ) -> CrawlScope:
        """Validate the start URL, scope and regexes (InvalidInputError naming the bad one) into a scope."""
        start = normalize_url(start_url)
        if scope not in ("path", "host", "domain"):
            raise InvalidInputError(f"scope must be 'path', 'host' or 'domain' (got {scope!r}).")
        parts = urlsplit(start)
        return cls(
            start_url=start,
            kind=scope,
            netloc=parts.netloc,
            prefix=path_prefix(parts.path) if scope == "path" else "/",
            domain=registrable_domain(parts.hostname or ""),
            include=_compile(include, "include"),
            exclude=_compile(exclude, "exclude"),
            max_page=max_page,
        )

    def check(self, url: str) -> str | None:
        """None when the crawl may visit ``url``, else a short reason it may not."""
        try:
            url = normalize_url(url)
        except InvalidInputError:
            return "invalid URL"
        parts = urlsplit(url)
        if not self._in_scope(parts.netloc, parts.hostname or "", parts.path):
            return f"out of scope ({self.describe})"
        for pattern in self.exclude:
            if pattern.search(url):
                return f"excluded by pattern {pattern.pattern!r}"
        # With include patterns the crawl keeps to URLs matching one; a match is the user asking for that URL, so it
        # also overrides the default exclusions (never the scope or an exclude pattern).
        if self.include:
            return None if any(p.search(url) for p in self.include) else "not matched by any include pattern"
        reason = default_exclusion(url, max_page=self.max_page)
        return f"default exclusion: {reason}" if reason else None

    @property
    def describe(self) -> str:
        """The scope in words, e.g. "path http://h/docs/", "host h:8080", "domain example.co.uk"."""
        if self.kind == "path":
            return f"path {self.start_url.split('://')[0]}://{self.netloc}{self.prefix}"
        return f"host {self.netloc}" if self.kind == "host" else f"domain {self.domain}"

    def _in_scope(self, netloc: str, host: str, path: str) -> bool:
        # The scheme is ignored on purpose: http and https of one host are one site (http → https upgrades).
        if self.kind == "domain":
            return registrable_domain(host) == self.domain
        if netloc != self.netloc:
            return False
        if self.kind == "host":
            return True
        return path.startswith(self.prefix) or path == self.prefix.rstrip("/")


def default_exclusion(url: str, *, max_page: int = 50) -> str | None:
    """The DEFAULT_EXCLUSIONS entry ``url`` (normalised) falls under, with the detail that triggered it, or None."""
    parts = urlsplit(url)
    path = parts.path
    segments = [s for s in path.split("/") if s]
    ext = segments[-1].rpartition(".")[2].lower() if segments and "." in segments[-1] else ""
    query = [(k.lower(), v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    keys = {k for k, _ in query}
    if _AUTH.search(path) or any(k in ("action", "do") and v.lower() in ("logout", "login") for k, v in query):
        return "login/logout"
    if _FEED.search(path) or keys & _FEED_QUERY or any(k == "format" and v.lower() in _FEED_QUERY for k, v in query):
        return "feed"
    if ext in _ASSET_EXTENSIONS:
        return f"binary/asset (.{ext})"
    if _PRINT.search(path) or keys & {"print", "printable"}:
        return "print view"
    if _CALENDAR.search(path) or keys & {"ical", "calendar"}:
        return "calendar"
    if keys & _SORT_KEYS or _APACHE_SORT.search(parts.query):
        return "sort/order"
    for k, v in query:
        if k in _PAGE_KEYS and v.isdigit() and int(v) > max_page:
            return f"pagination ({k}={v} > {max_page})"
    m = _PAGE_PATH.search(path)
    if m and int(m.group(1)) > max_page:
        return f"pagination (/page/{m.group(1)} > {max_page})"
    if "replytocom" in keys:
        return "comment reply"
    if keys & _SESSION_KEYS or ";jsessionid=" in path.lower():
        return "session id"
    if keys & {"oldid", "diff"} or any(k == "action" and v.lower() in _WIKI_ACTIONS for k, v in query):
        return "wiki action"
    if segments and max(segments.count(s) for s in set(segments)) >= 3:
        return "repeated path segment"
    return None


def _compile(patterns: list[str] | tuple[str, ...], what: str) -> tuple[re.Pattern[str], ...]:
    if isinstance(patterns, str):  # a lone string would otherwise become one pattern per character
        patterns = [patterns]
    compiled = []
    for pattern in patterns:
        if not isinstance(pattern, str) or not pattern:
            raise InvalidInputError(f"{what} patterns must be non-empty regular expressions (got {pattern!r}).")
        try:
            compiled.append(re.compile(pattern))
        except re.error as exc:
            raise InvalidInputError(f"Invalid {what} regular expression {pattern!r}: {exc}") from exc
    return tuple(compiled)
