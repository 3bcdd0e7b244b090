"""Credentials for private pages: named profiles from a TOML file (AUTH_PROFILES_FILE), or user-info in a URL.

A profile names the hosts it applies to and what to send them: headers, cookies, HTTP Basic. A fetch sends it
only to those hosts (a redirect elsewhere drops it) and never over plain HTTP after an HTTPS start. Values may
name environment variables (``${WIKI_TOKEN}``) so the file itself can hold no secret. Nothing here is ever stored,
logged or shown: the representation of a profile names its hosts, never its values.

    [profiles.intranet]
    hosts = ["wiki.corp.example", "*.docs.corp.example"]
    headers = { Authorization = "Bearer ${WIKI_TOKEN}" }
    cookies = { session = "${WIKI_SESSION}" }
    basic = { username = "reader", password = "${WIKI_PASSWORD}" }
"""

from __future__ import annotations

import base64
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mcp_web_ingest.errors import ConfigError, InvalidInputError
from mcp_web_ingest.ingest.urls import Credentials

__all__ = ["RequestAuth", "choose_profile", "load_auth_profiles"]

_PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110 field names and cookie names
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_HOST = re.compile(r"^(?:\*\.)?[a-z0-9.\-\[\]:]+$")
# Headers that describe the request itself; a profile setting them would break or smuggle requests.
_RESERVED = frozenset({"host", "content-length", "transfer-encoding", "connection", "upgrade", "te", "trailer"})
_KEYS = frozenset({"hosts", "headers", "cookies", "basic"})


@dataclass(frozen=True, repr=False)
class RequestAuth:
    """What to send to some hosts: headers, cookies, HTTP Basic; empty ``hosts`` means ``origin`` only."""

    name: str  # the profile's name; "" for credentials written in a URL
    hosts: tuple[str, ...] = ()  # lower-case host names; "*.example.com" also matches its subdomains
    headers: tuple[tuple[str, str], ...] = field(default=(), compare=False)
    cookies: tuple[tuple[str, str], ...] = field(default=(), compare=False)
    basic: Credentials | None = field(default=None, compare=False)
    origin: str | None = None  # for URL credentials: scheme://host:port they were given for

    def __repr__(self) -> str:
        return f"RequestAuth(name={self.name!r}, hosts={self.hosts!r}, origin={self.origin!r})"

    @classmethod
    def for_url(cls, url: str, credentials: Credentials) -> RequestAuth:
        """HTTP Basic credentials taken from ``url``: sent to that URL's origin only, as browsers do."""
        return cls(name="", basic=credentials, origin=_origin(url))

    def applies_to(self, url: str) -> bool:
        """Whether a request to ``url`` may carry these credentials."""
        if self.origin is not None:
            return _origin(url) == self.origin
        host = (urlsplit(url).hostname or "").lower()
        return any(host == h or (h.startswith("*.") and host.endswith(h[1:])) for h in self.hosts)

    def require_for(self, url: str) -> None:
        """InvalidInputError unless these credentials may go to ``url`` (the message names the profile's hosts)."""
        if not self.applies_to(url):
            hosts = ", ".join(self.hosts)
            raise InvalidInputError(f"Auth profile {self.name!r} is for {hosts}, not for {url}; choose another profile")

    def headers_for(self, url: str) -> dict[str, str]:
        """The headers to add to a request to ``url`` (none when the profile does not apply there)."""
        if not self.applies_to(url):
            return {}
        headers = dict(self.headers)
        if self.basic is not None:
            pair = f"{self.basic.username}:{self.basic.password}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies)
        return headers

    def runner_cookies(self, url: str) -> list[dict[str, str]] | None:
        """The cookies to hand a browser for ``url`` when cookies are all this sends there, else None.

        A browser keeps cookies to their host across redirects; headers and HTTP Basic it would send on to any host
        a redirect or a subresource leads to, so those stay with the built-in fetcher.
        """
        if self.headers or self.basic is not None or not self.cookies or not self.applies_to(url):
            return None
        return [{"name": name, "value": value} for name, value in self.cookies]


def _origin(url: str) -> str:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{parts.scheme.lower()}://{(parts.hostname or '').lower()}:{port or ''}"


def _expand(value: object, where: str) -> str:
    """A string value with ``${NAME}`` replaced from the environment; ConfigError names a missing variable."""
    if not isinstance(value, str):
        raise ConfigError(f"{where} must be a string")

    def lookup(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise ConfigError(f"{where} refers to ${{{name}}}, which is not set in the environment")
        return os.environ[name]

    expanded = _ENV.sub(lookup, value)
    if "\r" in expanded or "\n" in expanded or "\x00" in expanded:
        raise ConfigError(f"{where} contains a line break or NUL, which a header cannot carry")
    return expanded


def _pairs(table: object, where: str, *, headers: bool) -> tuple[tuple[str, str], ...]:
    if table is None:
        return ()
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table of name = value")
    pairs = []
    for key, value in table.items():
        if not _TOKEN.match(key):
            raise ConfigError(f"{where}: {key!r} is not a valid name")
        if headers and key.lower() in _RESERVED:
            raise ConfigError(f"{where}: {key} describes the request itself and cannot be set by a profile")
        pairs.append((key, _expand(value, f"{where}.{key}")))
    return tuple(pairs)


def _profile(name: str, data: object, source: Path) -> RequestAuth:
    where = f"{source}: profile {name!r}"
    if not _PROFILE_NAME.match(name):
        raise ConfigError(f"{where}: use 1-64 letters, digits, '.', '_' or '-' for a profile name")
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a table")
    unknown = set(data) - _KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}; a profile has {sorted(_KEYS)}")
    hosts = data.get("hosts")
    if not isinstance(hosts, list) or not hosts or not all(isinstance(h, str) for h in hosts):
        raise ConfigError(f'{where} needs hosts = ["host.example", ...]: the hosts its credentials may go to')
    cleaned = tuple(h.strip().lower() for h in hosts)
    bad = [h for h in cleaned if not _HOST.match(h) or h in ("*", "*.")]
    if bad:
        raise ConfigError(f"{where}: invalid hosts {bad} (a host name, or *.domain for its subdomains)")
    basic = data.get("basic")
    credentials = None
    if basic is not None:
        if not isinstance(basic, dict) or set(basic) != {"username", "password"}:
            raise ConfigError(f'{where}: basic = {{ username = "...", password = "..." }}')
        user, password = _expand(basic["username"], f"{where}.basic"), _expand(basic["password"], f"{where}.basic")
        if ":" in user:
            raise ConfigError(f"{where}.basic: a Basic-auth user name cannot contain ':'")
        credentials = Credentials(user, password)
    headers = _pairs(data.get("headers"), f"{where}.headers", headers=True)
    cookies = _pairs(data.get("cookies"), f"{where}.cookies", headers=False)
    if credentials is not None and any(k.lower() == "authorization" for k, _ in headers):
        raise ConfigError(f"{where}: set either basic or an Authorization header, not both")
    if not (headers or cookies or credentials):
        raise ConfigError(f"{where} sends nothing: give it headers, cookies or basic")
    return RequestAuth(name=name, hosts=cleaned, headers=headers, cookies=cookies, basic=credentials)


def load_auth_profiles(path: Path | None) -> dict[str, RequestAuth]:
    """The profiles of an AUTH_PROFILES_FILE ({} without one); ConfigError says what is wrong, never a secret."""
    if path is None:
        return {}
    try:
        data: dict[str, Any] = tomllib.loads(Path(path).expanduser().read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"AUTH_PROFILES_FILE {path} cannot be read: {exc.strerror or exc}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"AUTH_PROFILES_FILE {path} is not valid TOML: {exc}") from exc
    profiles = data.get("profiles")
    if not isinstance(profiles, dict) or set(data) - {"profiles"}:
        raise ConfigError(f"AUTH_PROFILES_FILE {path} must hold [profiles.NAME] tables and nothing else")
    return {name: _profile(name, body, Path(path)) for name, body in profiles.items()}


def choose_profile(profiles: dict[str, RequestAuth], name: str, url: str | None = None) -> RequestAuth:
    """The named profile, checked to apply to ``url`` when given; InvalidInputError names the choices."""
    profile = profiles.get(name)
    if profile is None:
        known = ", ".join(sorted(profiles)) or "none (the server has no AUTH_PROFILES_FILE)"
        raise InvalidInputError(f"Unknown auth profile {name!r}; configured profiles: {known}")
    if url is not None:
        profile.require_for(url)
    return profile
