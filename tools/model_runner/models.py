"""Model runner configuration, model loading and inference; everything here blocks (run it on the worker thread)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT_SPLADE = "naver/splade-cocondenser-ensembledistil"
# TEI refuses inputs longer than max_input_length * 250 characters before tokenizing (MAX_CHAR_MULTIPLIER).
CHARS_PER_TOKEN_LIMIT = 250


class InputError(Exception):
    """A request the models cannot serve; error_type follows TEI's ErrorType (empty, validation, tokenizer, backend)."""

    def __init__(self, message: str, error_type: str = "validation") -> None:
        super().__init__(message)
        self.error_type = error_type


def _env_bool(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class RunnerConfig:
    """Settings of the runner, read from the environment."""

    model_name: str = DEFAULT_SPLADE
    rerank_model: str | None = None
    device: str = "auto"
    batch_size: int = 32
    max_client_batch_size: int = 32
    auto_truncate: bool = False
    max_concurrent_requests: int = 512

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> RunnerConfig:
        """The configuration from MODEL_NAME, RERANK_MODEL, DEVICE, BATCH_SIZE and the TEI-style limits."""
        config = cls(
            model_name=env.get("MODEL_NAME") or DEFAULT_SPLADE,
            rerank_model=env.get("RERANK_MODEL") or None,
            device=env.get("DEVICE") or "auto",
            batch_size=int(env.get("BATCH_SIZE", "32")),
            max_client_batch_size=int(env.get("MAX_CLIENT_BATCH_SIZE", "32")),
            auto_truncate=_env_bool(env.get("AUTO_TRUNCATE", "false")),
            max_concurrent_requests=int(env.get("MAX_CONCURRENT_REQUESTS", "512")),
        )
        for name in ("batch_size", "max_client_batch_size", "max_concurrent_requests"):
            if getattr(config, name) < 1:
                raise ValueError(f"{name.upper()} must be at least 1")
        return config


def resolve_device(requested: str) -> str:
    """'auto' becomes cuda, mps or cpu, whichever torch can use."""
    import torch

    if requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


@dataclass
class ModelHost:
    """The loaded SPLADE encoder and optional cross-encoder."""

    config: RunnerConfig
    device: str | None = None
    splade: Any = None
    reranker: Any = None
    _dim: int = 0

    def load(self) -> None:
        """Load the models (slow: imports torch and reads the weights)."""
        from sentence_transformers import CrossEncoder, SparseEncoder

        self.device = resolve_device(self.config.device)
        self.splade = SparseEncoder(self.config.model_name, device=self.device)
        # SpladePooling learns its output size on the first forward pass; before it, the reported dimension is the
        # hidden size. One warm-up encode fixes the vocabulary size for /health and every response.
        self._dim = int(self.splade.encode_document(["warm-up"], convert_to_sparse_tensor=True).shape[-1])
        if self.config.rerank_model:
            reranker = CrossEncoder(self.config.rerank_model, device=self.device)
            labels = getattr(reranker.model.config, "num_labels", 1)
            if labels != 1:
                # TEI serves /rerank only for single-label sequence classifiers; anything else is a classifier.
                raise ValueError(f"RERANK_MODEL {self.config.rerank_model} has {labels} labels; a reranker has 1")
            self.reranker = reranker

    def describe(self) -> dict[str, Any]:
        """Model names, dimensions and limits for /health."""
        sparse = {"model": self.config.model_name, "loaded": self.splade is not None}
        if self.splade is not None:
            sparse.update(dim=self.dim, max_input_length=self.splade.max_seq_length)
        rerank: dict[str, Any] | None = None
        if self.config.rerank_model:
            rerank = {"model": self.config.rerank_model, "loaded": self.reranker is not None}
            if self.reranker is not None:
                rerank["max_input_length"] = self.reranker.max_seq_length
        return {
            "device": self.device,
            "sparse": sparse,
            "reranker": rerank,
            "batch_size": self.config.batch_size,
            "max_client_batch_size": self.config.max_client_batch_size,
            "auto_truncate": self.config.auto_truncate,
        }

    @property
    def dim(self) -> int:
        """Vocabulary size of the SPLADE model (length of its vectors)."""
        return self._dim

    def _check_length(self, tokenizer: Any, max_len: int, pairs: Sequence[tuple[str, ...]], truncate: bool) -> None:
        """TEI's rules: over max_len*250 chars or max_len tokens is refused unless truncate."""
        if truncate:
            return
        char_limit = max_len * CHARS_PER_TOKEN_LIMIT
        for parts in pairs:
            chars = sum(len(p) for p in parts)
            if chars > char_limit:
                raise InputError(f"`inputs` must have less than {char_limit} characters. Given: {chars}")
        encoded = tokenizer(*[list(col) for col in zip(*pairs, strict=True)], truncation=False)["input_ids"]
        for ids in encoded:
            if len(ids) > max_len:
                raise InputError(f"`inputs` must have less than {max_len} tokens. Given: {len(ids)}")

    def sparse(
        self, texts: Sequence[str], kind: str, top_k: int | None, truncate: bool
    ) -> list[tuple[list[int], list[float]]]:
        """SPLADE (indices, values) per text: non-zero entries only, sorted by index."""
        import torch

        model = self.splade
        self._check_length(model.tokenizer, model.max_seq_length, [(t,) for t in texts], truncate)
        encode = model.encode_query if kind == "query" else model.encode_document
        emb = encode(
            list(texts), batch_size=self.config.batch_size, max_active_dims=top_k, convert_to_sparse_tensor=True
        )
        emb = emb.coalesce().cpu()  # coalesce sorts entries by (row, column)
        rows, cols = emb.indices()
        values = emb.values().float()
        keep = values != 0
        rows, cols, values = rows[keep], cols[keep], values[keep]
        counts = torch.bincount(rows, minlength=len(texts)).tolist()
        out, start = [], 0
        for n in counts:
            out.append((cols[start : start + n].tolist(), values[start : start + n].tolist()))
            start += n
        return out

    def rerank(self, query: str, texts: Sequence[str], truncate: bool, raw_scores: bool) -> list[float]:
        """One cross-encoder score per text, in input order (sigmoid unless raw_scores, as TEI does)."""
        import torch

        model = self.reranker
        if not query and any(not t for t in texts):
            raise InputError("`inputs` cannot be empty")
        self._check_length(model.tokenizer, model.max_seq_length, [(query, t) for t in texts], truncate)
        activation = torch.nn.Identity() if raw_scores else None  # None: the model's default (Sigmoid for 1 label)
        scores = model.predict(
            [(query, t) for t in texts],
            batch_size=self.config.batch_size,
            activation_fn=activation,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        out = [float(s) for s in scores.reshape(-1)]
        if any(math.isnan(s) for s in out):
            raise InputError("score is NaN", "backend")
        return out
