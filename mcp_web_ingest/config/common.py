"""Helpers shared by the settings groups."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import platformdirs

MIN_TOKEN_LENGTH = 16
_SPAN = re.compile(r"^\s*(\d+)\s*(s|m|min|h|d|w)\s*$", re.I)
_SPAN_UNITS = {"s": "seconds", "m": "minutes", "min": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_span(text: str) -> timedelta | None:
    """A span written as 30s, 90m, 12h, 7d or 2w; None when the text is not one."""
    match = _SPAN.match(text)
    return timedelta(**{_SPAN_UNITS[match.group(2).lower()]: int(match.group(1))}) if match else None


def default_data_dir() -> Path:
    """The per-user data directory (XDG on Linux) used when DATA_DIR is not set."""
    return Path(platformdirs.user_data_dir("mcp-web-ingest", appauthor=False))


def split_list(v: object) -> object:
    """A comma-separated or JSON-list environment value as a list; anything else unchanged."""
    if isinstance(v, str):
        if v.strip().startswith("["):
            return json.loads(v)
        return [part.strip() for part in v.split(",") if part.strip()]
    return v
