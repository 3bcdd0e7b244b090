"""The local sentence-transformers model run by ONNX Runtime: exported once with torch.onnx, then no torch at run time.

The export (and optional dynamic int8 quantisation) is cached under ``<cache_dir>/<model>-<fingerprint>/``; the run
path needs only ``onnxruntime``, ``tokenizers`` and numpy. Pooling and normalisation follow the model's
sentence-transformers config (mean or CLS pooling, then L2 normalisation), so fp32 vectors match
sentence-transformers' to ~1e-6.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from .config import Settings
from .embed import read_local_dimension, resolve_local_model_dir
from .errors import EmbeddingError

log = logging.getLogger(__name__)

ONNX_OPSET = 17
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


def model_fingerprint(model_dir: Path) -> str:
    """A short hash of the model directory's weight and config files (name, size, mtime)."""
    h = hashlib.sha256()
    for p in sorted(model_dir.glob("*")):
        if p.is_file() and p.suffix in (".safetensors", ".bin", ".json"):
            st = p.stat()
            h.update(f"{p.name}:{st.st_size}:{int(st.st_mtime)}".encode())
    return h.hexdigest()[:12]


def read_max_seq_length(model_dir: Path, default: int = 256) -> int:
    """max_seq_length from sentence_bert_config.json (what sentence-transformers truncates to)."""
    cfg = model_dir / "sentence_bert_config.json"
    if cfg.exists():
        value = json.loads(cfg.read_text()).get("max_seq_length")
        if isinstance(value, int):
            return value
    return default


def read_pooling_mode(model_dir: Path) -> str:
    """'mean' or 'cls', from the model's 1_Pooling/config.json (mean when absent)."""
    cfg = model_dir / "1_Pooling" / "config.json"
    if cfg.exists() and json.loads(cfg.read_text()).get("pooling_mode_cls_token"):
        return "cls"
    return "mean"


def export_onnx(model_dir: Path, out: Path) -> Path:
    """Export the transformer of a sentence-transformers directory to ONNX (needs torch + transformers, once)."""
    import torch
    from transformers import AutoModel

    class _Transformer(torch.nn.Module):
        """Positional inputs → last hidden state (transformers' forward takes keyword arguments)."""

        def __init__(self) -> None:
            super().__init__()
            self.model = AutoModel.from_pretrained(str(model_dir), local_files_only=True).eval()

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            return out.last_hidden_state

    model = _Transformer().eval()
    ids = torch.ones((2, 16), dtype=torch.long)
    tmp = out.with_suffix(f".tmp{os.getpid()}")
    with torch.no_grad():
        torch.onnx.export(
            model,
            (ids, torch.ones_like(ids), torch.zeros_like(ids)),
            str(tmp),
            input_names=list(INPUT_NAMES),
            output_names=["last_hidden_state"],
            dynamic_axes={n: {0: "batch", 1: "seq"} for n in INPUT_NAMES}
            | {"last_hidden_state": {0: "batch", 1: "seq"}},
            opset_version=ONNX_OPSET,
            dynamo=False,
        )
    tmp.replace(out)  # atomic: a concurrent process sees either nothing or the whole file
    return out


def quantize_int8(src: Path, out: Path) -> Path:
    """Dynamic int8 quantisation of the weights (per channel) with onnxruntime's quantiser."""
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = out.with_suffix(f".tmp{os.getpid()}")
    # Fused (com.microsoft) nodes defeat shape inference; their outputs are float.
    extra = {"DefaultTensorType": TensorProto.FLOAT}
    quantize_dynamic(str(src), str(tmp), weight_type=QuantType.QInt8, per_channel=True, extra_options=extra)
    tmp.replace(out)
    return out


def ensure_onnx_model(model_dir: Path, cache_dir: Path, quantize: bool = False) -> Path:
    """The cached ONNX file of the model (fp32 or int8), exporting/quantising it on first use."""
    folder = cache_dir / f"{model_dir.name}-{model_fingerprint(model_dir)}"
    folder.mkdir(parents=True, exist_ok=True)
    fp32 = folder / "model.onnx"
    if not fp32.exists():
        log.info("exporting %s to ONNX under %s", model_dir, folder)
        export_onnx(model_dir, fp32)
    if not quantize:
        return fp32
    int8 = folder / "model.int8.onnx"
    if not int8.exists():
        quantize_int8(fp32, int8)
    return int8


def load_tokenizer(model_dir: Path, max_length: int) -> Any:
    """The model's fast tokenizer, truncating to max_length and padding each batch to its longest text."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.enable_truncation(max_length=max_length)
    pad_id = tok.token_to_id("[PAD]") or 0
    tok.enable_padding(pad_id=pad_id, pad_token="[PAD]")
    return tok


def pool(hidden: np.ndarray, mask: np.ndarray, mode: str = "mean") -> np.ndarray:
    """Sentence vectors from token states: masked mean (or CLS), then L2-normalised."""
    if mode == "cls":
        vectors = hidden[:, 0, :]
    else:
        m = mask[..., None].astype(np.float32)
        vectors = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.clip(norms, 1e-12, None)).astype(np.float32)


class OnnxEncoder:
    """Synchronous ONNX Runtime encoder: tokenise, run, pool; batches are length-sorted to minimise padding."""

    def __init__(
        self, model_dir: Path, cache_dir: Path, quantize: bool = False, threads: int | None = None, batch_size: int = 32
    ) -> None:
        import onnxruntime as ort

        self.path = ensure_onnx_model(model_dir, cache_dir, quantize)
        self.tokenizer = load_tokenizer(model_dir, read_max_seq_length(model_dir))
        self.pooling = read_pooling_mode(model_dir)
        self.batch_size = batch_size
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or os.cpu_count() or 1
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle pool threads that spin burn the other core on a 2-core machine (measured: ~1.4× more CPU per chunk).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self.session.get_inputs()}

    def _run(self, texts: Sequence[str]) -> np.ndarray:
        enc = self.tokenizer.encode_batch(list(texts))
        feed = {
            "input_ids": np.asarray([e.ids for e in enc], dtype=np.int64),
            "attention_mask": np.asarray([e.attention_mask for e in enc], dtype=np.int64),
            "token_type_ids": np.asarray([e.type_ids for e in enc], dtype=np.int64),
        }
        hidden = self.session.run(None, {k: v for k, v in feed.items() if k in self._inputs})[0]
        return pool(hidden, feed["attention_mask"], self.pooling)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors of the texts, in input order."""
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        order = np.argsort([len(t) for t in texts], kind="stable")
        out: list[np.ndarray] = [np.empty(0)] * len(texts)
        for start in range(0, len(texts), self.batch_size):
            idx = order[start : start + self.batch_size]
            for i, v in zip(idx, self._run([texts[i] for i in idx]), strict=True):
                out[int(i)] = v
        return np.stack(out)


class OnnxEmbedder:
    """Embedder protocol over OnnxEncoder, run on one worker thread like LocalEmbedder (same model name and space)."""

    def __init__(
        self,
        settings: Settings,
        observe_batch: Any = None,
        *,
        quantize: bool = False,
        cache_dir: Path | None = None,
        batch_size: int = 32,
    ) -> None:
        self.model_name = settings.resolved_embedding_model
        self.quantize = quantize
        self._dir = resolve_local_model_dir(self.model_name)
        self._dimension = read_local_dimension(self._dir)
        self._cache_dir = cache_dir or settings.data_dir / "models"
        self._batch_size = batch_size
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedder-onnx")
        self._encoder: OnnxEncoder | None = None
        self._loading: asyncio.Future[None] | None = None
        self._error: Exception | None = None
        self._observe = observe_batch

    @property
    def dimension(self) -> int:
        """Vector length, known from the model's config before the model loads."""
        return self._dimension

    def _load(self) -> None:
        self._encoder = OnnxEncoder(self._dir, self._cache_dir, self.quantize, batch_size=self._batch_size)

    async def start(self) -> None:
        """Begin exporting/loading the model in the background; the first embed call waits for it."""
        if self._loading is None:
            self._loading = asyncio.get_running_loop().run_in_executor(self._executor, self._load)

    async def _ready(self) -> OnnxEncoder:
        await self.start()
        assert self._loading is not None
        try:
            await asyncio.shield(self._loading)
        except Exception as exc:
            self._error = exc
            raise EmbeddingError(f"The ONNX embedding model for {self._dir} failed to load: {exc}") from exc
        assert self._encoder is not None
        return self._encoder

    async def _encode(self, texts: list[str]) -> np.ndarray:
        encoder = await self._ready()
        started = time.perf_counter()
        try:
            vectors = await asyncio.get_running_loop().run_in_executor(self._executor, encoder.encode, texts)
        except Exception as exc:
            raise EmbeddingError(f"ONNX embedding failed: {exc}") from exc
        if self._observe is not None:
            self._observe(time.perf_counter() - started)
        return vectors

    async def embed_documents(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Vectors for the chunk texts."""
        if not texts:
            return []
        return list(await self._encode(list(texts)))

    async def embed_query(self, text: str) -> np.ndarray:
        """The vector of one query."""
        return (await self._encode([text]))[0]

    async def health(self) -> dict[str, Any]:
        """Loaded, loading or failed."""
        if self._error is not None:
            return {"status": "error", "detail": str(self._error)}
        state = "ok" if self._encoder is not None else "loading"
        backend = "onnx-int8" if self.quantize else "onnx"
        return {
            "status": state,
            "provider": "local",
            "backend": backend,
            "model": self.model_name,
            "dimension": self.dimension,
        }

    async def aclose(self) -> None:
        """Stop the worker thread."""
        if self._loading is not None and not self._loading.done():
            with contextlib.suppress(Exception):
                await self._loading
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._encoder = None
