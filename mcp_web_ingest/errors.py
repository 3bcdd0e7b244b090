"""One small error tree; each pipeline boundary translates foreign exceptions into these."""

from __future__ import annotations


class WebIngestError(Exception):
    """Base of every error this package raises on purpose; its message is written for the user or model."""


class ConfigError(WebIngestError):
    """The settings are invalid or inconsistent."""


class InvalidInputError(WebIngestError):
    """A caller passed a value that cannot be used (bad URL, empty query, k out of range...)."""


class FetchError(WebIngestError):
    """A page could not be fetched: unreachable host, HTTP error status, wrong content type, too large."""

    def __init__(self, message: str, *, url: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status


class UnsupportedContentError(FetchError):
    """The URL answered with something other than an HTML page (PDF, image, binary...)."""


class ExtractError(WebIngestError):
    """A fetched document held no usable content."""


class EmbeddingError(WebIngestError):
    """The embedding model or service failed."""


class StoreError(WebIngestError):
    """The database failed or is unreachable."""


class SchemaMismatchError(StoreError):
    """The stored data was embedded with another model or dimension than the one configured."""


class VectorStoreError(StoreError):
    """The external vector store (Qdrant) failed or is unreachable; PostgreSQL still holds every page."""
