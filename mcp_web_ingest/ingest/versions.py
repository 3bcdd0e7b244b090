"""Documentation versions: a label found in a URL's path, how labels order, and which labels a request selects.

Labels are what sites write: ``3.11``, ``5`` (from ``/v5/``), ``2.x``, ``stable``, ``latest``, ``dev``. They order by
PEP 440 (packaging) where they parse; of the named ones, ``stable`` and ``latest`` count as the newest release.
A request asks for an exact label (``5.2``, ``v5.2``), a range (``5.x``, ``>=4.2,<5``), ``latest`` (the newest label
of each collection; pages without a label always match) or ``all``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from mcp_web_ingest.errors import InvalidInputError

__all__ = [
    "MAX_LABEL",
    "clean_label",
    "detect_version",
    "newest",
    "select_versions",
    "validate_version_request",
    "version_key",
]

MAX_LABEL = 64
_NUMERIC = re.compile(r"^v?((?:0|[1-9]\d*)(?:\.\d+){0,3}(?:\.x)?)$", re.I)
_LANGUAGE = re.compile(r"^[a-z]{2}(?:[-_][A-Za-z]{2,4})?$")  # /en/, /pt-br/, /zh_CN/
_NAMED = frozenset({"stable", "latest", "dev", "main", "master", "nightly", "next"})
_RELEASED = ("stable", "latest")  # a site's pointer to its newest release
_X_RANGE = re.compile(r"^v?(\d+(?:\.\d+)*)\.x$", re.I)
_LABEL = re.compile(r"^[\w.+\-]{1,64}$")


def clean_label(label: str) -> str:
    """A version label as stored: stripped, a leading 'v' dropped before a digit (v5.2 → 5.2); InvalidInputError."""
    label = label.strip()
    if re.match(r"^[vV]\d", label):
        label = label[1:]
    if not _LABEL.match(label):
        raise InvalidInputError(
            f"Invalid version {label!r}: use up to {MAX_LABEL} letters, digits, '.', '_', '+' or '-' (e.g. 5.2)"
        )
    return label


def detect_version(url: str) -> str | None:
    """The version a documentation URL's path names (/3.11/, /v5/, /en/stable/, /2.x/, /3/), or None.

    A dotted number, a v-number or an x-range counts anywhere in the folders; a bare number or a name such as
    ``stable`` only at the top of the path or right under a language folder (/3/, /en/stable/), since deeper down
    they are chapters (/chapter/3/) and sections (/guide/dev/) far more often than versions.
    """
    try:
        segments = [unquote(s) for s in urlsplit(url).path.split("/")[1:-1]]  # the last one is the page
    except ValueError:
        return None
    top = 1 if segments and _LANGUAGE.match(segments[0]) else 0
    for position, segment in enumerate(segments):
        match = _NUMERIC.match(segment)
        if match:
            label = match.group(1)
            if re.fullmatch(r"(19|20)\d\d", label):
                return None  # a date path (/2024/05/), not a version
            if "." in label or segment[:1] in "vV" or position == top:
                return label
        elif segment.lower() in _NAMED and position == top:
            return segment.lower()
    return None


def version_key(label: str) -> tuple[int, Version | str]:
    """Order of labels: unparsed names first, then PEP 440 versions, then stable/latest (newest release)."""
    if label in _RELEASED:
        return (2, label)
    try:
        return (1, Version(label.removesuffix(".x")))
    except InvalidVersion:
        return (0, label)


def newest(labels: Iterable[str]) -> str | None:
    """The newest of some labels (None for none)."""
    return max(labels, key=version_key, default=None)


def validate_version_request(spec: str) -> str:
    """A version request, checked: all, latest, a label, an x-range or a PEP 440 specifier set."""
    spec = spec.strip()
    if spec.lower() in ("all", "latest") or _X_RANGE.match(spec):
        return spec.lower() if spec.lower() in ("all", "latest") else spec
    if spec[:1] in "<>=!~":
        try:
            SpecifierSet(spec)
        except InvalidSpecifier:
            raise InvalidInputError(
                f"version={spec!r} is not a valid range; write e.g. '>=4.2,<5', '5.x', '5.2', 'latest' or 'all'"
            ) from None
        return spec
    return clean_label(spec)


def _matches(label: str, spec: str) -> bool:
    if x_range := _X_RANGE.match(spec):
        prefix = x_range.group(1)
        return label in (spec, prefix) or label.startswith(prefix + ".")
    if spec[:1] in "<>=!~":
        try:
            return Version(label.removesuffix(".x")) in SpecifierSet(spec)
        except InvalidVersion:
            return False
    return label == spec


def select_versions(labels: dict[str, list[str]], spec: str | None) -> tuple[tuple[str, str], ...] | None:
    """The (collection, label) pairs a request allows, from each collection's labels; None: no filter at all.

    Pages without a label always match, so collections that label nothing are never filtered out.
    """
    spec = spec or "latest"
    if spec == "all" or not any(labels.values()):
        return None
    if spec == "latest":
        return tuple((c, top) for c, found in labels.items() if (top := newest(found)) is not None)
    return tuple((c, label) for c, found in labels.items() for label in found if _matches(label, spec))
