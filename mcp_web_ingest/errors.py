"""Every error this package raises on purpose, as one tree; each boundary translates foreign exceptions into these.

    WebIngestError
    ├── ConfigError
    ├── NotReadyError
    ├── InvalidInputError
    ├── FetchError                  url, status
    │   ├── UnsupportedContentError
    │   └── BlockedAddressError
    ├── ExtractError
    ├── EmbeddingError
    ├── ServiceError                service, status
    │   └── ServiceUnavailable      short_circuited
    │       ├── SparseUnavailable
    │       └── RerankUnavailable
    └── StoreError
        ├── SchemaMismatchError
        └── VectorStoreError

Only the standard library may be imported here: the Crawl4AI runner image copies this file without the package.
"""

from __future__ import annotations


class WebIngestError(Exception):
    """Base of every error this package raises on purpose; its message is written for the user or model."""


class ConfigError(WebIngestError):
    """The settings are invalid or inconsistent."""


class NotReadyError(WebIngestError):
    """The server is starting or stopping: its runtime is not open."""


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


class BlockedAddressError(FetchError):
    """The URL's host is, or resolves to, an address the SSRF policy forbids."""


class ExtractError(WebIngestError):
    """A fetched document held no usable content."""


class EmbeddingError(WebIngestError):
    """The embedding model or service failed."""


class ServiceError(WebIngestError):
    """An optional service refused a request (HTTP 4xx): the service is up, the request was unusable."""

    def __init__(self, message: str, *, service: str, status: int | None = None) -> None:
        super().__init__(message)
        self.service = service
        self.status = status


class ServiceUnavailable(ServiceError):
    """An optional service is unreachable, failing (5xx, 429, timeouts), or its circuit is open."""

    def __init__(self, message: str, *, service: str, status: int | None = None, short_circuited: bool = False) -> None:
        super().__init__(message, service=service, status=status)
        self.short_circuited = short_circuited


class SparseUnavailable(ServiceUnavailable):
    """The SPLADE service is unreachable, failing, or its circuit is open: search should go on without it."""


class RerankUnavailable(ServiceUnavailable):
    """The reranker is unreachable, failing, or its circuit is open: keep the fused order instead."""


class StoreError(WebIngestError):
    """The database failed or is unreachable."""


class SchemaMismatchError(StoreError):
    """The stored data was embedded with another model or dimension than the one configured."""


class VectorStoreError(StoreError):
    """The external vector store (Qdrant) failed or is unreachable; PostgreSQL still holds every page."""
