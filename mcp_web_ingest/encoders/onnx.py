"""The local sentence-transformers model run by ONNX Runtime: exported once with torch.onnx, then no torch at run time.

The export (and optional dynamic int8 quantisation) is cached under ``<cache_dir>/<model>-<fingerprint>/``; the run
path needs only ``onnxruntime``, ``tokenizers`` and numpy. Pooling and normalisation follow the model's
sentence-transformers config (mean or CLS pooling, then L2 normalisation), so fp32 vectors match
sentence-transformers' to ~1e-6.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mcp_web_ingest.config import Settings
from mcp_web_ingest.encoders.batching import QUERY_BATCH_MAX, QUERY_BATCH_WINDOW_S
from mcp_web_ingest.encoders.dense import ThreadedLocalEmbedder

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

    return export_module(_Transformer().eval(), out, "last_hidden_state", {0: "batch", 1: "seq"})


def export_in_child(model_dir: Path, out: Path, module: str = "mcp_web_ingest.encoders.onnx") -> Path:
    """Run ``python -m module MODEL_DIR OUT`` (an export with torch) in a child process, so torch never loads here.

    torch costs the server ~500 MB of memory for the rest of its life, and transformers' from_pretrained patches
    process-wide state while it loads (a SPLADE export beside the torch embedder's background load left decoder
    weights on the meta device).
    """
    return _in_child([module, str(model_dir), str(out)], out, f"ONNX export of {model_dir}")


def quantize_in_child(src: Path, out: Path) -> Path:
    """quantize_int8 in a child process: the quantiser's peak memory (hundreds of MB) never becomes the server's."""
    return _in_child(["mcp_web_ingest.encoders.onnx", "--quantize", str(src), str(out)], out, f"Quantising {src}")


def _in_child(args: list[str], out: Path, what: str) -> Path:
    proc = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"{what} failed: {(proc.stderr or proc.stdout).strip()[-800:]}")
    return out


def export_module(module: Any, out: Path, output: str, output_axes: dict[int, str]) -> Path:
    """torch.onnx.export of a module taking (input ids, attention mask, token type ids), batch and sequence dynamic."""
    import torch

    ids = torch.ones((2, 16), dtype=torch.long)
    tmp = out.with_suffix(f".tmp{os.getpid()}")
    with torch.no_grad():
        torch.onnx.export(
            module,
            (ids, torch.ones_like(ids), torch.zeros_like(ids)),
            str(tmp),
            input_names=list(INPUT_NAMES),
            output_names=[output],
            dynamic_axes={n: {0: "batch", 1: "seq"} for n in INPUT_NAMES} | {output: output_axes},
            opset_version=ONNX_OPSET,
            dynamo=False,
        )
    return tmp.replace(out)  # atomic: a concurrent process sees either nothing or the whole file


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


def ensure_onnx_model(
    model_dir: Path,
    cache_dir: Path,
    quantize: bool = False,
    *,
    export: Callable[[Path, Path], Path] | None = None,
    stem: str = "model",
) -> Path:
    """The cached ONNX file of a model (fp32 or int8), exported (by `export`, default export_onnx in a child process)
    and quantised on first use, under ``<cache_dir>/<model>-<fingerprint>/<stem>[.int8].onnx``."""
    folder = cache_dir / f"{model_dir.name}-{model_fingerprint(model_dir)}"
    folder.mkdir(parents=True, exist_ok=True)
    fp32 = folder / f"{stem}.onnx"
    if not fp32.exists():
        log.info("exporting %s to ONNX under %s", model_dir, folder)
        (export or export_in_child)(model_dir, fp32)
    if not quantize:
        return fp32
    int8 = folder / f"{stem}.int8.onnx"
    if not int8.exists():
        quantize_in_child(fp32, int8)
    return int8


def load_tokenizer(model_dir: Path, max_length: int) -> Any:
    """The model's fast tokenizer, truncating to max_length, no padding (OnnxEncoder runs one text at a time)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.enable_truncation(max_length=max_length)
    tok.no_padding()
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
    """Synchronous ONNX Runtime encoder: tokenise, run, pool, one text per run.

    One text a run is both the fastest and the only deterministic way here. Measured on the Python docs' chunks on
    2 AVX2 cores: int8 27.5 chunks/s one at a time, 19.8 in batches of 8, 21.2 in length-sorted batches of up to
    8,192 padded tokens (fp32: 13.8 vs 10.9). And dynamic int8 quantises each run's activations with one scale, so
    in a batch a text's vector depended on its batch-mates (cosine down to 0.978 against the same text alone).
    """

    def __init__(self, model_dir: Path, cache_dir: Path, quantize: bool = False, threads: int | None = None) -> None:
        import onnxruntime as ort

        self.path = ensure_onnx_model(model_dir, cache_dir, quantize)
        self.tokenizer = load_tokenizer(model_dir, read_max_seq_length(model_dir))
        self.pooling = read_pooling_mode(model_dir)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or os.cpu_count() or 1
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle pool threads that spin burn the other core on a 2-core machine (measured: ~1.4× more CPU per chunk).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self.session.get_inputs()}

    def _run(self, encoding: Any) -> np.ndarray:
        feed = {
            "input_ids": np.asarray([encoding.ids], dtype=np.int64),
            "attention_mask": np.asarray([encoding.attention_mask], dtype=np.int64),
            "token_type_ids": np.asarray([encoding.type_ids], dtype=np.int64),
        }
        hidden = self.session.run(None, {k: v for k, v in feed.items() if k in self._inputs})[0]
        return pool(hidden, feed["attention_mask"], self.pooling)[0]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors of the texts, in input order."""
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([self._run(e) for e in self.tokenizer.encode_batch(list(texts))])


class OnnxEmbedder(ThreadedLocalEmbedder):
    """The same model through ONNX Runtime (same model name and vector space as the torch backend)."""

    def __init__(
        self,
        settings: Settings,
        observe_batch: Any = None,
        *,
        quantize: bool = False,
        cache_dir: Path | None = None,
        query_batch_max: int = QUERY_BATCH_MAX,
        query_window_s: float = QUERY_BATCH_WINDOW_S,
    ) -> None:
        self.quantize = quantize
        self.backend = "onnx-int8" if quantize else "onnx"
        super().__init__(settings, observe_batch, query_batch_max=query_batch_max, query_window_s=query_window_s)
        self._cache_dir = cache_dir or settings.resolved_model_cache_dir

    def _load(self) -> OnnxEncoder:
        return OnnxEncoder(self._dir, self._cache_dir, self.quantize)

    def _encode_batch(self, model: OnnxEncoder, texts: list[str]) -> np.ndarray:
        return model.encode(texts)


if __name__ == "__main__":  # python -m mcp_web_ingest.encoders.onnx [--quantize] SRC OUT (see export_in_child)
    if sys.argv[1] == "--quantize":
        quantize_int8(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        export_onnx(Path(sys.argv[1]), Path(sys.argv[2]))
