"""URL checks and normalisation: one spelling per page, so a page is stored and fetched once."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit, urlunsplit

from mcp_web_ingest.errors import InvalidInputError

__all__ = [
    "MAX_URL_LENGTH",
    "Credentials",
    "normalize_url",
    "redact_credentials",
    "same_origin",
    "split_credentials",
    "validate_url",
]

MAX_URL_LENGTH = 2048
_DEFAULT_PORTS = {"http": 80, "https": 443}
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):(?!\d)")  # "localhost:8080/x" is a host and port, not a scheme
_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f]")
_HOST_CHARS = re.compile(r"^[^\s/\\?#@<>\"'`{}|^%]+$")
_PCT = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_SUB_DELIMS = "!$&'()*+,;="
_PATH_SAFE = frozenset(_UNRESERVED | set(_SUB_DELIMS) | set(":@/"))
# Inside one query parameter '&' and '=' are delimiters and must stay encoded when they were encoded.
_QUERY_PART_SAFE = frozenset(_UNRESERVED | set("!$'()*+,;:@/?"))


_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@?#]*@")


@dataclass(frozen=True)
class Credentials:
    """HTTP Basic credentials taken out of a URL: sent with that fetch only, never stored, shown or logged."""

    username: str
    password: str = field(repr=False)


def redact_credentials(text: str) -> str:
    """``text`` with the user-info of every URL in it masked: http://alice:pw@host/ → http://***@host/."""
    return _USERINFO.sub(r"\1***@", text)


def split_credentials(url: str) -> tuple[str, Credentials | None]:
    """The URL without its user-info, and the credentials it carried (None when it had none)."""
    parts = urlsplit(url)
    if parts.username is None and "@" not in parts.netloc:
        return url, None
    host = parts.netloc.rpartition("@")[2]
    credentials = Credentials(unquote(parts.username or ""), unquote(parts.password or ""))
    return urlunsplit(parts._replace(netloc=host)), credentials


def same_origin(a: str, b: str) -> bool:
    """True when two URLs share scheme, host and port (where credentials may go)."""
    pa, pb = urlsplit(a), urlsplit(b)
    try:
        return (pa.scheme.lower(), pa.hostname, pa.port) == (pb.scheme.lower(), pb.hostname, pb.port)
    except ValueError:  # an invalid port
        return False


def _show(url: str) -> str:
    url = redact_credentials(url)
    return repr(url if len(url) <= 100 else url[:100] + "…")


def validate_url(url: str) -> str:
    """Return ``url`` stripped, or raise InvalidInputError unless it is an absolute http(s) URL with a host."""
    if not isinstance(url, str):
        raise InvalidInputError(f"URL must be a string (got {type(url).__name__}).")
    url = url.strip()
    if not url:
        raise InvalidInputError("URL is empty: give an absolute URL such as https://example.com/page.")
    if len(url) > MAX_URL_LENGTH:
        raise InvalidInputError(f"URL is {len(url)} characters long; the limit is {MAX_URL_LENGTH}.")
    if re.search(r"[\x00-\x1f\x7f]", url):
        raise InvalidInputError(f"URL contains control characters (got {_show(url)}).")
    m = _SCHEME.match(url)
    scheme = m.group(1).lower() if m else ""
    if scheme and scheme not in _DEFAULT_PORTS:
        raise InvalidInputError(
            f"Unsupported URL scheme '{scheme}': only http:// and https:// pages can be ingested (got {_show(url)})."
        )
    if not scheme or not url[len(scheme) + 1 :].startswith("//"):
        raise InvalidInputError(f"URL must be absolute and start with http:// or https:// (got {_show(url)}).")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # bad port or malformed IPv6 literal
        raise InvalidInputError(f"URL has an invalid host or port: {exc} (got {_show(url)}).") from exc
    host = parts.hostname or ""
    if not host:
        raise InvalidInputError(f"URL has no host name (got {_show(url)}); expected e.g. https://example.com/.")
    if _CONTROL_OR_SPACE.search(parts.netloc):
        raise InvalidInputError(f"URL host must not contain spaces (got {_show(url)}).")
    if not (host.startswith("[") or ":" in host) and (
        not _HOST_CHARS.match(host) or ".." in host or not host.strip(".")
    ):
        raise InvalidInputError(f"URL host {host!r} is not a valid host name (got {_show(url)}).")
    if port == 0:
        raise InvalidInputError(f"URL port 0 is not a usable port (got {_show(url)}).")
    return url


def _encode_host(host: str) -> str:
    """Lower-case an ASCII host; IDNA-encode a non-ASCII one (UTS #46 via the idna package when installed)."""
    host = host.rstrip(".").lower()  # "example.com." names the same host as "example.com"
    if host.isascii():
        return host
    try:
        import idna

        return idna.encode(host, uts46=True).decode("ascii")
    except ImportError:
        pass
    except Exception as exc:
        raise InvalidInputError(f"URL host {host!r} is not a valid internationalised domain name: {exc}") from exc
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise InvalidInputError(f"URL host {host!r} is not a valid internationalised domain name: {exc}") from exc


def _normalize_pct(text: str, safe: frozenset[str]) -> str:
    """Decode escapes of unreserved characters, upper-case other escapes, and escape what ``safe`` excludes."""
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "%":
            m = _PCT.match(text, i)
            if m:
                decoded = chr(int(m.group(1), 16))
                out.append(decoded if decoded in _UNRESERVED else "%" + m.group(1).upper())
                i += 3
                continue
            out.append("%25")  # a stray '%' is a literal percent sign
        elif ch in safe:
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8"))
        i += 1
    return "".join(out)


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4: resolve '.' and '..' segments of an absolute path."""
    output: list[str] = []
    segments = path.split("/")
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        if segment == ".":
            if last:
                output.append("")
        elif segment == "..":
            if len(output) > 1:
                output.pop()
            if last:
                output.append("")
        else:
            output.append(segment)
    result = "/".join(output)
    return result if result.startswith("/") else "/" + result


def _normalize_query(query: str) -> str:
    """Sort parameters by name (stable: repeated names keep their order) and drop empty ones."""
    params = [p for p in query.split("&") if p]
    normalized = []
    for param in params:
        name, sep, value = param.partition("=")
        normalized.append(
            (_normalize_pct(name, _QUERY_PART_SAFE), sep + _normalize_pct(value, _QUERY_PART_SAFE | {"="}))
        )
    normalized.sort(key=lambda p: p[0])
    return "&".join(name + rest for name, rest in normalized)


def normalize_url(url: str) -> str:
    """Canonical spelling of an http(s) URL: lower-case scheme/host, IDNA host, no default port, fragment or
    user-info (credentials are never part of a page's identity), dot segments resolved, percent-encoding normalised,
    query parameters sorted, empty path as "/"."""
    parts = urlsplit(validate_url(url))
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    # An IPv6 literal (urlsplit drops its brackets) is not a name to IDNA-encode.
    host = f"[{host.lower()}]" if ":" in host else _encode_host(host)
    netloc = host
    port = parts.port
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc = f"{host}:{port}"
    path = _remove_dot_segments(_normalize_pct(parts.path or "/", _PATH_SAFE))
    return urlunsplit((scheme, netloc, path, _normalize_query(parts.query), ""))
