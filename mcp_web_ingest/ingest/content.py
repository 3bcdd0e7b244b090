"""What an HTTP answer holds, judged alike by both fetchers: status hints, media type, HTML sniffing, charset."""

from __future__ import annotations

import codecs
import re
from http import HTTPStatus

from mcp_web_ingest.errors import UnsupportedContentError

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_SNIFF_BYTES = 1024
_META_SCAN_BYTES = 4096
_META_CHARSET = re.compile(rb"""<meta[^>]+?charset\s*=\s*["']?\s*([A-Za-z0-9_.:\-]+)""", re.IGNORECASE)
_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
# Magic numbers of formats that sometimes arrive mislabelled as text/html.
_BINARY_MAGIC = (b"%PDF", b"\x89PNG", b"GIF8", b"\xff\xd8\xff", b"PK\x03\x04", b"\x1f\x8b", b"\x7fELF")
# Browsers decode these labels as windows-1252 (WHATWG Encoding Standard); so do we, for the same text.
_LATIN1_ALIASES = frozenset({"latin-1", "iso8859-1", "ascii"})

_STATUS_HINTS = {
    400: "the server rejected the request",
    401: "the page needs a login; only public pages can be indexed",
    403: "access is forbidden; only public pages can be indexed",
    404: "the page does not exist; check the URL",
    410: "the page has been removed",
    451: "the page is unavailable for legal reasons",
}


def status_phrase(status: int) -> str:
    """The standard reason phrase of an HTTP status ("Not Found"), or "Unknown Status"."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown Status"


def status_hint(status: int) -> str:
    """What an unusable final status means for the user ("the page does not exist; check the URL")."""
    if hint := _STATUS_HINTS.get(status):
        return hint
    if status == 204:
        return "the server returned no content"
    if 300 <= status < 400:
        return "the server answered with a redirect status but no usable Location"
    if 400 <= status < 500:
        return "the server refused the request"
    return "the server failed"


def not_html_message(url: str, media_type: str) -> str:
    """The message for a page whose Content-Type is not HTML."""
    return f"{url} is not an HTML page (Content-Type: {media_type}); only HTML pages can be indexed"


def too_large_message(url: str, limit: int, detail: str) -> str:
    """The message for a page over FETCH_MAX_BYTES."""
    return f"{url} is larger than the limit of {limit} bytes (FETCH_MAX_BYTES): {detail}"


def html_media_type(url: str, status: int, media_type: str | None, body: bytes, charset: str | None) -> str:
    """The media type of a body labelled HTML (or sniffed as HTML when unlabelled); UnsupportedContentError if not."""
    if media_type is None:
        if not looks_like_html(body):
            raise UnsupportedContentError(
                f"{url} sent no Content-Type and does not look like HTML; only HTML pages can be indexed",
                url=url,
                status=status,
            )
        return "text/html"
    if looks_binary(body, charset):
        raise UnsupportedContentError(
            f"{url} claims to be {media_type} but its body is binary data; only HTML pages can be indexed",
            url=url,
            status=status,
        )
    return media_type


def parse_content_type(value: str | None) -> tuple[str | None, str | None]:
    """Split a Content-Type header into (lower-case media type, charset label); None where absent."""
    if not value or not value.strip():
        return None, None
    media, *params = value.split(";")
    charset = None
    for param in params:
        key, _, val = param.partition("=")
        if key.strip().lower() == "charset" and val.strip():
            charset = val.strip().strip("\"'").strip() or None
    return media.strip().lower() or None, charset


def looks_like_html(body: bytes) -> bool:
    """Sniff an unlabelled body: an HTML doctype or tag near the start."""
    head = body[:_SNIFF_BYTES]
    for bom, enc in _BOMS:
        if head.startswith(bom):
            head = head.decode(enc, errors="ignore").encode("ascii", errors="ignore")
            break
    head = head.lstrip().lower()
    if looks_binary(head, None):
        return False
    return head.startswith((b"<!doctype html", b"<html")) or b"<html" in head


def looks_binary(body: bytes, charset: str | None) -> bool:
    """True for a known binary magic number, or NUL bytes in a body that is not UTF-16/32."""
    head = body[:_SNIFF_BYTES].lstrip()
    if head.startswith(_BINARY_MAGIC):
        return True
    wide = (charset or "").lower().replace("_", "-").startswith(("utf-16", "utf-32"))
    if wide or body.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return False
    return b"\x00" in head


def _codec_name(label: str | None) -> str | None:
    """Python's codec name for a charset label, or None when unknown."""
    if not label:
        return None
    try:
        name = codecs.lookup(label.strip().lower()).name
    except LookupError:
        return None
    return "cp1252" if name in _LATIN1_ALIASES else name


def meta_charset(body: bytes) -> str | None:
    """The charset of a <meta charset> or <meta http-equiv=Content-Type> tag in the first 4 KB."""
    match = _META_CHARSET.search(body[:_META_SCAN_BYTES])
    if not match:
        return None
    name = _codec_name(match.group(1).decode("ascii", errors="ignore"))
    # A meta tag readable as ASCII cannot really be UTF-16; the HTML spec reads such a claim as UTF-8.
    if name and name.startswith(("utf-16", "utf-32")):
        return "utf-8"
    return name


def decode_html(body: bytes, header_charset: str | None) -> tuple[str, str]:
    """Decode an HTML body, returning (text, codec used); never raises.

    Order: BOM (definitive, as in browsers), the Content-Type charset, the <meta> charset, then UTF-8. The
    first that decodes strictly wins. When none does, a declared legacy charset is used with replacement
    characters; otherwise cp1252 (a page labelled UTF-8 that is not is usually cp1252). No statistical
    detection: charset_normalizer is not a dependency, and short pages make its guesses unreliable.
    """
    candidates: list[tuple[str, bytes]] = []
    for bom, enc in _BOMS:
        if body.startswith(bom):
            candidates.append((enc, body[len(bom) :]))
            break
    for name in (_codec_name(header_charset), meta_charset(body), "utf-8"):
        if name and name not in (c for c, _ in candidates):
            candidates.append((name, body))
    for name, data in candidates:
        try:
            return data.decode(name), name
        except (UnicodeDecodeError, LookupError):
            continue
    legacy = [c for c, _ in candidates if c not in ("utf-8", "utf-16-le", "utf-16-be")]
    fallback = legacy[0] if legacy else "cp1252"
    return body.decode(fallback, errors="replace"), fallback
