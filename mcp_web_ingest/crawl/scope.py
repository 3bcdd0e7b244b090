"""Which URLs a crawl may visit: scope (path prefix, host or registrable domain), user regexes, default exclusions."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

import re2

from mcp_web_ingest.errors import InvalidInputError
from mcp_web_ingest.ingest.urls import normalize_url

__all__ = [
    "CHECK_BUDGET_S",
    "DEFAULT_EXCLUSIONS",
    "MAX_PATTERNS",
    "MAX_PATTERN_CHARS",
    "MAX_PROGRAM_SIZE",
    "CrawlScope",
    "ScopeKind",
    "default_exclusion",
    "path_prefix",
    "registrable_domain",
]

log = logging.getLogger(__name__)

ScopeKind = Literal["path", "host", "domain"]

# User regexes come from the model or a remote client, and the URLs they run on from the crawled site: both are
# untrusted. RE2 matches in time linear in the URL, but the factor is the size of the compiled program (about 5 ns per
# instruction per character on adversarial input), so the program is capped as well as the pattern count and length.
MAX_PATTERNS = 100  # per list (include, exclude)
MAX_PATTERN_CHARS = 1000
MAX_PROGRAM_SIZE = 5000  # RE2 instructions per list; 100 ordinary patterns need ~2,500, one '.{600}' needs 4,800
CHECK_BUDGET_S = 5.0  # most time one batch of links may spend in check(): the rest is dropped with a warning
_PATTERN_MEM = 1 << 20  # RE2 memory per pattern: bounds compile time, a bigger one fails as "pattern too large"
_RE2_UNSUPPORTED = (
    "backreferences (\\1, (?P=name)), lookarounds ((?=, (?!, (?<=, (?<!), atomic groups, possessive quantifiers, "
    "conditionals, comments, or the (?x) (?a) (?L) flags; write \\z instead of \\Z"
)
# Python reads 'a{,3}' as 'a{0,3}', RE2 as literal text: refused rather than silently matching something else.
_OPEN_MIN_REPEAT = re.compile(r"(?<!\\)(?:\\\\)*\{,\d*\}")
# Checks run here, not on the event loop: RE2 releases the GIL, and two threads keep one crawl's slow patterns from
# occupying the default executor that page extraction uses.
_CHECKER = ThreadPoolExecutor(max_workers=2, thread_name_prefix="crawl-scope")

# Second-level labels under which registrations happen one level deeper (example.co.uk, example.com.au).
# A heuristic instead of the Public Suffix List: tldextract cannot download its list here.
_SHORT_SLDS = frozenset({"co", "com", "net", "org", "gov", "edu", "ac", "or", "ne", "go", "gob", "mil", "nic", "ltd"})

# Images, archives, office documents, fonts, page assets, media, executables and packages (PDFs, Markdown, text,
# reST and notebooks are documents we read: ingest/formats).
_ASSET_WORDS = (
    "png jpg jpeg gif webp svg ico bmp tif tiff avif heic zip tar gz tgz bz2 xz 7z rar zst doc docx xls xlsx "
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
    ("binary/asset", "images, archives, office documents, fonts, CSS/JS, media, executables (by extension)"),
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
    include: tuple[Any, ...] = ()  # re2 patterns (they have .pattern and .search, like re's)
    exclude: tuple[Any, ...] = ()
    max_page: int = 50
    # Each list as one RE2 alternation: one pass over a URL however many patterns there are.
    include_any: Any = field(default=None, repr=False, compare=False)
    exclude_any: Any = field(default=None, repr=False, compare=False)

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
        include_patterns, include_any = _compile(include, "include")
        exclude_patterns, exclude_any = _compile(exclude, "exclude")
        return cls(
            start_url=start,
            kind=scope,
            netloc=parts.netloc,
            prefix=path_prefix(parts.path) if scope == "path" else "/",
            domain=registrable_domain(parts.hostname or ""),
            include=include_patterns,
            exclude=exclude_patterns,
            max_page=max_page,
            include_any=include_any,
            exclude_any=exclude_any,
        )

    def check(self, url: str) -> str | None:
        """None when the crawl may visit ``url``, else a short reason it may not."""
        try:
            url = normalize_url(url)
        except InvalidInputError:
            return "invalid URL"
        return self._reason(url)

    async def check_async(self, url: str) -> str | None:
        """``check`` in a worker thread, leaving the event loop free while the patterns run."""
        return await asyncio.get_running_loop().run_in_executor(_CHECKER, self.check, url)

    async def admissible(self, urls: Sequence[str]) -> list[str | None]:
        """Per URL, its normalised form when the crawl may visit it, else None; worked off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(_CHECKER, self._admissible, list(urls))

    def _admissible(self, urls: list[str]) -> list[str | None]:
        deadline = time.monotonic() + CHECK_BUDGET_S
        out: list[str | None] = []
        for i, url in enumerate(urls):
            if time.monotonic() > deadline:
                # A URL costs up to ~0.1 s at the limits (2 KiB URL); the budget bounds what one page's links cost.
                log.warning(
                    "crawl scope: %d of %d links dropped after %.0f s of checks",
                    len(urls) - i,
                    len(urls),
                    CHECK_BUDGET_S,
                )
                return out + [None] * (len(urls) - i)
            try:
                normal = normalize_url(url)
            except (InvalidInputError, ValueError):
                out.append(None)
                continue
            out.append(normal if self._reason(normal) is None else None)
        return out

    def _reason(self, url: str) -> str | None:
        parts = urlsplit(url)
        if not self._in_scope(parts.netloc, parts.hostname or "", parts.path):
            return f"out of scope ({self.describe})"
        if self.exclude_any is not None and self.exclude_any.search(url):
            pattern = next((p.pattern for p in self.exclude if p.search(url)), "?")
            return f"excluded by pattern {pattern!r}"
        # With include patterns the crawl keeps to URLs matching one; a match is the user asking for that URL, so it
        # also overrides the default exclusions (never the scope or an exclude pattern).
        if self.include_any is not None:
            return None if self.include_any.search(url) else "not matched by any include pattern"
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


def _compile(patterns: list[str] | tuple[str, ...], what: str) -> tuple[tuple[Any, ...], Any]:
    """The patterns compiled with RE2 one by one (to name a match) and as one alternation (to test a URL)."""
    if isinstance(patterns, str):  # a lone string would otherwise become one pattern per character
        patterns = [patterns]
    patterns = list(patterns)
    if len(patterns) > MAX_PATTERNS:
        raise InvalidInputError(
            f"Too many {what} patterns: {len(patterns)}; the limit is {MAX_PATTERNS}. Combine them with '|'."
        )
    compiled = []
    size = 0
    for pattern in patterns:
        if not isinstance(pattern, str) or not pattern:
            raise InvalidInputError(f"{what} patterns must be non-empty regular expressions (got {pattern!r}).")
        if len(pattern) > MAX_PATTERN_CHARS:
            raise InvalidInputError(
                f"{what} pattern is {len(pattern)} characters long; the limit is {MAX_PATTERN_CHARS} "
                f"(got {pattern[:60]!r}...)."
            )
        regex = _re2_compile(pattern, what, _PATTERN_MEM)
        size += regex.programsize
        if size > MAX_PROGRAM_SIZE:  # checked as we go: compiling stops as soon as the list is too big
            raise InvalidInputError(
                f"{what} patterns are too complex: they compile to over {MAX_PROGRAM_SIZE} RE2 instructions "
                f"(the limit), reached at {pattern[:60]!r}. Large counted repetitions such as '.{{500}}' cost most; "
                "use fewer or simpler patterns."
            )
        compiled.append(regex)
    if not compiled:
        return (), None
    try:
        combined = _re2_compile("|".join(f"(?:{p.pattern})" for p in compiled), what, 8 * _PATTERN_MEM)
    except InvalidInputError as exc:  # only RE2's \Q quoting runs past a pattern's end, into the next one
        raise InvalidInputError(f"{what} patterns cannot be combined: end every \\Q quote with \\E.") from exc
    return tuple(compiled), combined


def _re2_compile(pattern: str, what: str, max_mem: int) -> Any:
    options = re2.Options()
    options.max_mem = max_mem
    options.never_capture = True  # only whether a URL matches counts; also lets two patterns share a group name
    options.log_errors = False  # a bad pattern is the caller's error, reported to them, not a server log line
    try:
        regex = re2.compile(pattern, options)
    except (re2.error, UnicodeError) as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        if "pattern too large" in reason:
            raise InvalidInputError(
                f"{what} regular expression {pattern[:60]!r} is too complex: it needs more than the {max_mem >> 10} "
                "KiB RE2 allows one pattern. Large counted repetitions such as '.{500}' cost most."
            ) from exc
        try:
            re.compile(pattern)
        except (re.error, UnicodeError, RecursionError, OverflowError) as py_exc:
            raise InvalidInputError(f"Invalid {what} regular expression {pattern!r}: {py_exc}") from exc
        raise InvalidInputError(
            f"Unsupported {what} regular expression {pattern!r}: {reason}. Crawl patterns run on RE2, which "
            f"matches in linear time and so supports no {_RE2_UNSUPPORTED}."
        ) from exc
    if _OPEN_MIN_REPEAT.search(pattern):
        raise InvalidInputError(
            f"Unsupported {what} regular expression {pattern!r}: write '{{0,n}}' for '{{,n}}' (RE2 reads '{{,n}}' "
            "as literal text)."
        )
    return regex
