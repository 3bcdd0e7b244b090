"""SPLADE in-process: a BertForMaskedLM SPLADE exported once to ONNX (pooling included), run by ONNX Runtime.

sentence-transformers' ``SparseEncoder`` (fill-mask Transformer + ``SpladePooling('max', 'relu')``, its default for
a bare ``*ForMaskedLM`` dir) gives ``max_t log1p(relu(logits[t] * mask[t]))`` = ``log1p(relu(max_t(logits * mask)))``
(monotonic): the graph ends with relu(max), so only batch × vocab leaves it; log1p runs in numpy. Queries and
documents share the encoder. The export (torch, once, in a child process) and int8 model are cached in
``<cache_dir>/<model>-<hash>/``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from mcp_web_ingest.encoders.loading import BackgroundLoad
from mcp_web_ingest.encoders.onnx import ensure_onnx_model, export_in_child, export_module, read_max_seq_length
from mcp_web_ingest.encoders.splade import SparseKind
from mcp_web_ingest.errors import InvalidInputError, SparseUnavailable
from mcp_web_ingest.models import SparseVec

log = logging.getLogger(__name__)


def export_splade_onnx(model_dir: Path, out: Path) -> Path:
    """Export the MLM + max pooling to ONNX: (ids, mask, type ids) → (batch, vocab) relu(max logit). Needs torch."""
    import torch
    from transformers import AutoModelForMaskedLM

    class _Splade(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mlm = AutoModelForMaskedLM.from_pretrained(
                str(model_dir), local_files_only=True, attn_implementation="eager"
            ).eval()

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            logits = self.mlm(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits
            masked = logits * attention_mask.unsqueeze(-1).to(logits.dtype)
            return torch.relu(masked.amax(dim=1))  # log1p in numpy: log(1 + x) in fp32 would zero tiny x

    return export_module(_Splade().eval(), out, "sparse", {0: "batch"})


def export_splade_in_child(model_dir: Path, out: Path) -> Path:
    """export_splade_onnx in a child process (see onnx.export_in_child)."""
    return export_in_child(model_dir, out, "mcp_web_ingest.encoders.splade_local")


def top_k_row(row: np.ndarray, top_k: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(ascending indices, values) of the positive entries of row, the top_k largest only when given."""
    idx = np.flatnonzero(row > 0)
    if top_k is not None and len(idx) > top_k:
        idx = np.sort(idx[np.argpartition(row[idx], len(idx) - top_k)[len(idx) - top_k :]])
    return idx, row[idx]


class SpladeOnnxRunner:
    """Synchronous SPLADE on ONNX Runtime: tokenise, run in length-sorted batches, return (batch, vocab) weights."""

    def __init__(
        self,
        model_dir: Path,
        cache_dir: Path | None = None,
        *,
        quantize: bool = False,
        threads: int | None = None,
        batch_size: int = 32,
        max_batch_tokens: int = 2048,
        max_length: int | None = None,
    ) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.model_dir = Path(model_dir)
        cache = Path(cache_dir or self.model_dir.parent)
        self.path = ensure_onnx_model(self.model_dir, cache, quantize, export=export_splade_in_child, stem="splade")
        # sentence_bert_config.json's max_seq_length, else the tokenizer's model_max_length (what ST truncates to).
        tok_cfg = self.model_dir / "tokenizer_config.json"
        default = json.loads(tok_cfg.read_text()).get("model_max_length", 512) if tok_cfg.exists() else 512
        self.max_length = max_length or read_max_seq_length(self.model_dir, default=min(int(default), 8192))
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        tok = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        tok.enable_truncation(max_length=self.max_length)
        tok.no_padding()  # batches are padded here, to their longest text
        self.pad_id, self.tokenizer = tok.token_to_id("[PAD]") or 0, tok
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or os.cpu_count() or 1
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # spare the other core when idle
        self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self.session.get_inputs()}
        self.dim = int(self._run(self._tokenize(["warm-up"])).shape[1])

    def _tokenize(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Token ids per text, 1024 texts at a time (tokenizers' Encoding objects weigh ~200 bytes a token)."""
        chunks = (self.tokenizer.encode_batch(list(texts[i : i + 1024])) for i in range(0, len(texts), 1024))
        return [np.asarray(e.ids, dtype=np.int64) for chunk in chunks for e in chunk]

    def _run(self, token_ids: Sequence[np.ndarray]) -> np.ndarray:
        ids = np.full((len(token_ids), max(len(t) for t in token_ids)), self.pad_id, dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, t in enumerate(token_ids):  # one text per row: token type ids are all 0
            ids[row, : len(t)], mask[row, : len(t)] = t, 1
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        out = self.session.run(None, {k: v for k, v in feed.items() if k in self._inputs})[0]
        return np.log1p(out, out=out)

    def _batches(self, texts: Sequence[str]) -> list[tuple[np.ndarray, list[np.ndarray]]]:
        """(text indices, token ids) batches, shortest first: at most batch_size texts, ~max_batch_tokens tokens."""
        token_ids = self._tokenize(texts)
        lengths = np.asarray([len(t) for t in token_ids])
        order = np.argsort(lengths, kind="stable")
        batches: list[list[int]] = [[]]
        for i in order:
            size = len(batches[-1])
            if size and (size == self.batch_size or (size + 1) * lengths[i] > self.max_batch_tokens):
                batches.append([])
            batches[-1].append(int(i))
        return [(np.asarray(b), [token_ids[i] for i in b]) for b in batches if b]

    def run_batches(self, texts: Sequence[str]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(text indices, (len(indices), vocab) float32 weights) per batch, shortest texts first."""
        for idx, token_ids in self._batches(texts):
            yield idx, self._run(token_ids)

    def encode(self, texts: Sequence[str], top_k: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """(ascending indices, positive values) per text, in input order."""
        out: list[tuple[np.ndarray, np.ndarray]] = [(np.empty(0, np.int64), np.empty(0, np.float32))] * len(texts)
        for idx, weights in self.run_batches(texts):
            for i, row in zip(idx, weights, strict=True):
                out[int(i)] = top_k_row(row, top_k)
        return out


class LocalSpladeEncoder:
    """The SparseEncoder protocol in-process: SPLADE on ONNX Runtime in one worker thread (no torch at run time)."""

    def __init__(
        self,
        model_dir: Path | str,
        *,
        cache_dir: Path | str | None = None,
        quantize: bool = False,
        top_k: int | None = None,
        threads: int | None = None,
        batch_size: int = 32,
        max_batch_tokens: int = 2048,
        max_length: int | None = None,
        query_timeout_s: float | None = None,
    ) -> None:
        if top_k is not None and top_k < 1:
            raise ValueError("top_k must be at least 1")
        self.model_dir = Path(model_dir)
        self.url = f"in-process:{self.model_dir.name}"
        self.top_k = top_k
        self.query_timeout_s = query_timeout_s  # like SpladeClient: a search skips the leg rather than wait longer
        self.backend = "onnx-int8" if quantize else "onnx"
        options = {"threads": threads, "batch_size": batch_size, "max_batch_tokens": max_batch_tokens}
        cache = Path(cache_dir) if cache_dir else None
        self._make_runner = partial(
            SpladeOnnxRunner, self.model_dir, cache, quantize=quantize, max_length=max_length, **options
        )
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="splade-onnx")
        self._runner: BackgroundLoad[SpladeOnnxRunner] = BackgroundLoad(self._executor, self._make_runner)

    async def start(self) -> None:
        """Begin loading (exporting on first use) in the worker thread; encode waits for it."""
        self._runner.start()

    async def _ready(self) -> SpladeOnnxRunner:
        try:
            return await self._runner.get()
        except Exception as exc:
            raise SparseUnavailable(f"SPLADE model {self.model_dir} failed to load: {exc}", service="splade") from exc

    def _encode_sync(self, runner: SpladeOnnxRunner, texts: list[str]) -> list[SparseVec]:
        pairs = runner.encode(texts, self.top_k)
        return [SparseVec(tuple(i.tolist()), tuple(v.tolist()), runner.dim) for i, v in pairs]

    async def encode(self, texts: Sequence[str], kind: SparseKind = "document") -> list[SparseVec]:
        """One vector per text, in order (queries and documents share the encoder); queries wait query_timeout_s."""
        if kind not in ("query", "document"):
            raise InvalidInputError(f"kind must be 'query' or 'document' (got {kind!r})")
        if any(not t.strip() for t in texts):
            raise InvalidInputError("Cannot compute a SPLADE vector of an empty text")
        if not texts:
            return []
        if kind == "query" and self.query_timeout_s is not None:
            try:  # still loading (or busy with a document batch): the search goes on without this leg
                return await asyncio.wait_for(self._encode(texts), self.query_timeout_s)
            except TimeoutError as exc:
                raise SparseUnavailable(
                    f"In-process SPLADE busy or loading for over {self.query_timeout_s} s", service="splade"
                ) from exc
        return await self._encode(texts)

    async def _encode(self, texts: Sequence[str]) -> list[SparseVec]:
        runner = await self._ready()
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, self._encode_sync, runner, list(texts))
        except Exception as exc:
            raise SparseUnavailable(f"In-process SPLADE failed: {exc}", service="splade") from exc

    async def health(self) -> dict[str, Any]:
        """Loaded, loading, not started or failed."""
        runner = self._runner.value
        out: dict[str, Any] = {"url": self.url, "backend": self.backend, "model": self.model_dir.name}
        out["dim"] = runner.dim if runner is not None else None
        if self._runner.error is not None:
            return {**out, "status": "error", "detail": str(self._runner.error)}
        status = "ok" if runner is not None else ("loading" if self._runner.started else "not loaded")
        return {**out, "status": status}

    async def aclose(self) -> None:
        """Wait for a load in progress, then stop the worker thread."""
        await self._runner.settle()
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._runner.value = None


if __name__ == "__main__":  # export_in_child: python -m mcp_web_ingest.encoders.splade_local MODEL_DIR OUT
    export_splade_onnx(Path(sys.argv[1]), Path(sys.argv[2]))
