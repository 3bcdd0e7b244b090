"""What a crawler reads from one HTML page: its links, canonical URL and meta robots directives."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from selectolax.lexbor import LexborHTMLParser

from mcp_web_ingest.errors import InvalidInputError
from mcp_web_ingest.ingest.urls import normalize_url

__all__ = [
    "PageLinks",
    "absolute_url",
    "analyze_page",
    "analyze_tree",
    "canonical_url",
    "extract_links",
    "product_token",
]

_URL_WS = re.compile(r"[\t\n\r]")  # the URL standard strips these anywhere in an href
_TOKEN = re.compile(r"[A-Za-z_-]+")


def product_token(user_agent: str) -> str:
    """The product token of a User-Agent ("mcp-web-ingest/0.1 (+…)" → "mcp-web-ingest"), lower-cased."""
    m = _TOKEN.match(user_agent.strip())
    return m.group(0).lower() if m else ""


def absolute_url(href: str, base: str) -> str | None:
    """``href`` resolved against ``base`` and normalised, or None unless it is a valid http(s) URL."""
    href = _URL_WS.sub("", href).strip()
    if not href or href.startswith("#"):
        return None
    try:
        url = urljoin(base, href)
        if urlsplit(url).scheme.lower() not in ("http", "https"):
            return None
        return normalize_url(url)
    except (ValueError, InvalidInputError):
        return None


@dataclass(frozen=True)
class PageLinks:
    """What a crawler needs from one HTML page: where it links, its canonical URL, its robots directives."""

    links: tuple[str, ...]
    canonical: str | None
    robots: frozenset[str]  # <meta name=robots> (and our own product token) directives, e.g. {"noindex"}

    @property
    def noindex(self) -> bool:
        """The page asks not to be indexed."""
        return bool(self.robots & {"noindex", "none"})


def analyze_page(
    html: str, base_url: str, *, user_agent: str = "mcp-web-ingest", follow_nofollow: bool = False
) -> PageLinks:
    """Links (absolute, normalised, http(s), deduplicated in order), canonical URL and meta robots of a page.

    ``rel=nofollow`` links are skipped unless ``follow_nofollow``: owners put it on links they do not vouch for
    (logins, comments, edits, user content), seldom on documentation. A page-wide ``<meta name=robots
    content=nofollow>`` yields no links at all.
    """
    return analyze_tree(LexborHTMLParser(html), base_url, user_agent=user_agent, follow_nofollow=follow_nofollow)


def analyze_tree(
    tree: LexborHTMLParser, base_url: str, *, user_agent: str = "mcp-web-ingest", follow_nofollow: bool = False
) -> PageLinks:
    """analyze_page of an already parsed page (the tree is only read)."""
    base = base_url
    base_node = tree.css_first("base[href]")
    if base_node is not None:
        base = absolute_url(base_node.attributes.get("href") or "", base_url) or base_url
    names = {"robots", product_token(user_agent)}
    directives: set[str] = set()
    for meta in tree.css("meta[name][content]"):
        if (meta.attributes.get("name") or "").strip().lower() in names:
            content = (meta.attributes.get("content") or "").lower()
            directives.update(d.strip() for d in content.split(",") if d.strip())
    canonical = None
    node = tree.css_first("link[rel~=canonical i][href]")
    if node is not None:
        canonical = absolute_url(node.attributes.get("href") or "", base)
    links: dict[str, None] = {}
    if not directives & {"nofollow", "none"}:
        for a in tree.css("a[href], area[href]"):
            rel = (a.attributes.get("rel") or "").lower().split()
            if "nofollow" in rel and not follow_nofollow:
                continue
            url = absolute_url(a.attributes.get("href") or "", base)
            if url is not None:
                links.setdefault(url)
    return PageLinks(tuple(links), canonical, frozenset(directives))


def extract_links(html: str, base_url: str) -> list[str]:
    """Absolute, normalised http(s) links of a page in document order, deduplicated (see analyze_page)."""
    return list(analyze_page(html, base_url).links)


def canonical_url(html: str, base_url: str) -> str | None:
    """The normalised ``<link rel=canonical>`` URL of a page, or None when absent or not http(s)."""
    return analyze_page(html, base_url).canonical
