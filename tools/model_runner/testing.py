"""Test and smoke-check helpers: tiny random models (no download) and the runner as a real subprocess."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[2]
SENTENCES = [
    "the quick brown fox jumps over the lazy dog",
    "python json module parses and serialises json strings",
    "asyncio runs coroutines concurrently with tasks and gather",
    "postgresql stores vectors with the pgvector extension",
    "a cross encoder scores a query and a passage together",
]


def build_tiny_models(root: Path) -> tuple[Path, Path]:
    """Randomly initialised BertForMaskedLM (SPLADE) and 1-label BertForSequenceClassification (reranker).

    32 hidden units, 2 layers, a WordPiece tokenizer trained on a few sentences: real code paths, meaningless
    scores. Returns (mlm_dir, cross_encoder_dir).
    """
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertForMaskedLM, BertForSequenceClassification, PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(SENTENCES * 3, trainers.WordPieceTrainer(vocab_size=300, special_tokens=specials))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=128,
    )
    shape = dict(
        vocab_size=tok.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    torch.manual_seed(0)
    mlm_dir, ce_dir = root / "tiny-mlm", root / "tiny-cross-encoder"
    BertForMaskedLM(BertConfig(**shape)).save_pretrained(mlm_dir)
    BertForSequenceClassification(BertConfig(**shape, num_labels=1)).save_pretrained(ce_dir)
    for d in (mlm_dir, ce_dir):
        fast.save_pretrained(d)
    return mlm_dir, ce_dir


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RunnerProcess:
    """`python -m tools.model_runner` on 127.0.0.1 as a child process, with its log in a file."""

    def __init__(self, env: dict[str, str], log_path: Path, port: int | None = None) -> None:
        self.env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **env}
        self.log_path = log_path
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL of the runner."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Spawn the runner (returns at once; see wait_ready)."""
        log = self.log_path.open("ab")
        cmd = [sys.executable, "-m", "tools.model_runner", "--host", "127.0.0.1", "--port", str(self.port)]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()

    async def wait_ready(self, timeout_s: float = 90.0) -> dict:
        """Poll GET /health until it answers 200 (models loaded); fail with the log tail if the process exits."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            while asyncio.get_running_loop().time() < deadline:
                if self.proc is None or self.proc.poll() is not None:
                    raise RuntimeError(f"model runner exited: {self.log_tail()}")
                try:
                    async with session.get(self.url + "/health") as resp:
                        body = await resp.json()
                        if resp.status == 200:
                            return body
                        if body.get("status") == "error":
                            raise RuntimeError(f"model runner failed to load: {body}")
                except (aiohttp.ClientError, TimeoutError):
                    pass
                await asyncio.sleep(0.2)
        raise TimeoutError(f"model runner not ready after {timeout_s} s: {self.log_tail()}")

    def log_tail(self) -> str:
        """The end of the runner's log."""
        return self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL the runner (a crash, as far as clients can tell)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        """Terminate the runner gracefully."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


async def set_fault(
    base_url: str,
    *,
    delay_s: float = 0.0,
    drip_s: float = 0.0,
    paths: Iterable[str] | None = None,
    reset_counts: bool = False,
) -> dict[str, Any]:
    """Replace the injected slowness of a runner started with --enable-fault-control (faults.py); returns its state.

    Works for the model runner and the Crawl4AI runner alike. No arguments: the runner is fast again.
    """
    body: dict[str, Any] = {"delay_s": delay_s, "drip_s": drip_s, "reset_counts": reset_counts}
    if paths is not None:
        body["paths"] = list(paths)
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
        session.post(base_url.rstrip("/") + "/_fault", json=body) as resp,
    ):
        state = await resp.json()
        if resp.status != 200:
            raise RuntimeError(f"POST /_fault answered HTTP {resp.status}: {state}")
        return dict(state)


async def fault_state(base_url: str) -> dict[str, Any]:
    """GET /_fault: {"delay_s", "drip_s", "paths", "requests": {path: count}} of a runner with fault control."""
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
        session.get(base_url.rstrip("/") + "/_fault") as resp,
    ):
        resp.raise_for_status()
        return dict(await resp.json())
