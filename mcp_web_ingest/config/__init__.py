"""Settings: one pydantic-settings object, read from the environment (and .env) once at start-up.

The fields are grouped by concern, one small model per group; `Settings` composes the groups by inheritance, so every
field keeps its flat name: the environment variable is the field name in upper case and callers read
`settings.mcp_host`. `.env.example` and docs/configuration.md are generated from these classes (`make docs`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import BaseModel, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mcp_web_ingest.config.common import MIN_TOKEN_LENGTH, default_data_dir, split_list
from mcp_web_ingest.config.crawl import CrawlSettings, LimitsSettings
from mcp_web_ingest.config.models import EmbeddingSettings, RetrievalSettings, ServicesSettings
from mcp_web_ingest.config.server import QdrantSettings, ServerSettings, StorageSettings
from mcp_web_ingest.errors import ConfigError

__all__ = [
    "CONCERNS",
    "MIN_TOKEN_LENGTH",
    "Settings",
    "default_data_dir",
    "load_settings",
    "split_list",
]


# Validator names must differ across the groups: pydantic collects validators by name along the MRO, so a second
# `_check` in another group would silently replace the first.
class Settings(
    ServerSettings,
    StorageSettings,
    EmbeddingSettings,
    RetrievalSettings,
    ServicesSettings,
    CrawlSettings,
    QdrantSettings,
    LimitsSettings,
    BaseSettings,
):
    """Every setting of the server; environment variable names are the field names in upper case."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False)

    @model_validator(mode="after")
    def _check_vector_store(self) -> Self:
        if self.vector_store == "qdrant" and not self.qdrant_url:
            raise ValueError(
                "VECTOR_STORE=qdrant needs QDRANT_URL: a server (http://localhost:6333), ':memory:' or a directory "
                "for qdrant-client's local mode"
            )
        return self

    @property
    def resolved_model_cache_dir(self) -> Path:
        """MODEL_CACHE_DIR, else DATA_DIR/models."""
        return (self.model_cache_dir or self.data_dir / "models").expanduser()


# The groups, in the order docs/configuration.md and .env.example list them: Settings' own bases.
CONCERNS: tuple[type[BaseModel], ...] = tuple(base for base in Settings.__bases__ if base is not BaseSettings)


def load_settings(**overrides: object) -> Settings:
    """Build Settings from the environment, turning validation errors into one readable ConfigError."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]).upper() or "settings"
            lines.append(f"{loc}: {err['msg']}")
        raise ConfigError("Invalid configuration:\n  " + "\n  ".join(lines)) from exc
