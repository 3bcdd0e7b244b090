"""Helpers shared by the settings groups."""

from __future__ import annotations

import json
from pathlib import Path

import platformdirs

MIN_TOKEN_LENGTH = 16


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
