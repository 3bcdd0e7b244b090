"""The Qdrant collection of the Qdrant store: vector names, creation options, and the check-or-create at first use."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mcp_web_ingest.config import Settings
from mcp_web_ingest.errors import SchemaMismatchError

if TYPE_CHECKING:
    from qdrant_client import AsyncQdrantClient
    from qdrant_client import models as qm

DENSE, LEXICAL, SPLADE = "dense", "lexical", "splade"
BATCH = 256  # points per upsert request


def collection_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of create_collection that come from settings (sharding, replication, storage)."""
    options: dict[str, Any] = {"on_disk_payload": settings.qdrant_on_disk_payload}
    for name in ("shard_number", "replication_factor", "write_consistency_factor"):
        value = getattr(settings, f"qdrant_{name}")
        if value is not None:
            options[name] = value
    return options


async def ensure_qdrant_collection(
    client: AsyncQdrantClient, name: str, dimension: int, settings: Settings, *, local: bool
) -> bool:
    """Check an existing collection's dense size, or create the collection; True when it was created."""
    from qdrant_client import models as qm

    if await client.collection_exists(name):
        info = await client.get_collection(name)
        vectors = info.config.params.vectors
        size = vectors[DENSE].size if isinstance(vectors, dict) and DENSE in vectors else None
        if size != dimension:
            raise SchemaMismatchError(
                f"Qdrant collection {name!r} holds {size}-dimensional dense vectors but the embedder "
                f"makes {dimension}. Run `mcp-web-ingest reembed` (recreates it) or set QDRANT_COLLECTION "
                "to another name"
            )
        return False
    quantization: qm.QuantizationConfig | None = None
    if settings.qdrant_quantization == "scalar":
        quantization = qm.ScalarQuantization(
            scalar=qm.ScalarQuantizationConfig(type=qm.ScalarType.INT8, always_ram=True)
        )
    elif settings.qdrant_quantization == "binary":
        quantization = qm.BinaryQuantization(binary=qm.BinaryQuantizationConfig(always_ram=True))
    await client.create_collection(
        name,
        vectors_config={
            DENSE: qm.VectorParams(
                size=dimension,
                distance=qm.Distance.COSINE,
                on_disk=settings.qdrant_on_disk,
                hnsw_config=qm.HnswConfigDiff(on_disk=settings.qdrant_hnsw_on_disk),
            )
        },
        sparse_vectors_config={
            LEXICAL: qm.SparseVectorParams(modifier=qm.Modifier.IDF),  # BM25: we send TF, Qdrant adds IDF
            SPLADE: qm.SparseVectorParams(),
        },
        quantization_config=quantization,
        **collection_options(settings),
    )
    if not local:  # local mode ignores payload indexes (and warns)
        schema = qm.KeywordIndexParams(type=qm.KeywordIndexType.KEYWORD, is_tenant=True)
        await client.create_payload_index(name, "collection", field_schema=schema)
        await client.create_payload_index(name, "url", field_schema=qm.PayloadSchemaType.KEYWORD)
    return True
