"""HTTP model runner: SPLADE sparse vectors (POST /sparse/batch) and TEI-compatible reranking (POST /rerank).

Run: python -m tools.model_runner [--host 127.0.0.1] [--port 8000]   (or python tools/model_runner/app.py ...)
Environment: MODEL_NAME, RERANK_MODEL, DEVICE, BATCH_SIZE, MAX_CLIENT_BATCH_SIZE, AUTO_TRUNCATE,
MAX_CONCURRENT_REQUESTS (see models.RunnerConfig).
Fault injection for reliability tests (off by default): --enable-fault-control, --fault-delay-s, --fault-drip-s
(see faults.py and README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

from aiohttp import web

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tools import faults as fault_injection
from tools.model_runner.models import InputError, ModelHost, RunnerConfig

log = logging.getLogger("model_runner")

# TEI's ErrorType → HTTP status (router/src/http/server.rs).
STATUS = {"empty": 400, "validation": 413, "tokenizer": 422, "backend": 424, "overloaded": 429, "unhealthy": 503}
HOST: web.AppKey[ModelHost] = web.AppKey("host", ModelHost)
STATE: web.AppKey[dict[str, Any]] = web.AppKey("state", dict)
EXECUTOR: web.AppKey[ThreadPoolExecutor] = web.AppKey("executor", ThreadPoolExecutor)


class HttpError(Exception):
    """An error answered as TEI's JSON body {"error": ..., "error_type": ...}."""

    def __init__(self, message: str, error_type: str, status: int | None = None) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.status = status or STATUS[error_type]


def _error(message: str, error_type: str, status: int) -> web.Response:
    return web.json_response({"error": message, "error_type": error_type}, status=status)


@web.middleware
async def errors_as_json(request: web.Request, handler: Any) -> web.StreamResponse:
    """Every refusal, including unknown routes and crashes, answers JSON."""
    try:
        return await handler(request)
    except HttpError as exc:
        return _error(str(exc), exc.error_type, exc.status)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _error(exc.reason, "validation", exc.status)
    except Exception as exc:  # a model failure must not surface as aiohttp's HTML 500 page
        log.exception("request failed")
        return _error(f"Inference failed: {exc}", "backend", STATUS["backend"])


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HttpError(f"Failed to parse the request body as JSON: {exc}", "validation", 422) from exc
    if not isinstance(body, dict):
        raise HttpError("Failed to deserialize the JSON body: expected an object", "validation", 422)
    return body


def _field(body: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
    """A typed body field; a missing or mistyped one is a 422, as axum's Json extractor answers."""
    if name not in body or body[name] is None:
        if default is ...:
            raise HttpError(f"Failed to deserialize the JSON body: missing field `{name}`", "validation", 422)
        return default
    value, kinds = body[name], kind if isinstance(kind, tuple) else (kind,)
    # bool is an int subclass: never accept true/false where a number is expected.
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise HttpError(f"Failed to deserialize the JSON body: `{name}` has the wrong type", "validation", 422)
    return value


def _texts(body: dict[str, Any], limit: int) -> list[str]:
    texts = _field(body, "texts", list)
    if not all(isinstance(t, str) for t in texts):
        raise HttpError("Failed to deserialize the JSON body: `texts` must be a list of strings", "validation", 422)
    if not texts:
        raise HttpError("`texts` cannot be empty", "empty")
    if len(texts) > limit:
        raise HttpError(f"batch size {len(texts)} > maximum allowed batch size {limit}", "validation")
    return texts


async def _run(request: web.Request, fn: Any) -> Any:
    """Run blocking model work on the worker thread, refusing when the model is not ready or overloaded."""
    state = request.app[STATE]
    if state["status"] != "ok":
        raise HttpError(state.get("error") or "model is loading", "unhealthy")
    if state["in_flight"] >= request.app[HOST].config.max_concurrent_requests:
        raise HttpError("Model is overloaded", "overloaded")
    state["in_flight"] += 1
    try:
        return await asyncio.get_running_loop().run_in_executor(request.app[EXECUTOR], fn)
    except InputError as exc:
        raise HttpError(str(exc), exc.error_type) from exc
    finally:
        state["in_flight"] -= 1


async def sparse_batch(request: web.Request) -> web.Response:
    """POST /sparse/batch {"texts", "kind", "top_k"?, "truncate"?} → {"vectors", "model", "dim"}."""
    host = request.app[HOST]
    body = await _body(request)
    texts = _texts(body, host.config.max_client_batch_size)
    if any(not t.strip() for t in texts):
        raise HttpError("`texts` must not contain empty strings", "empty")
    kind = _field(body, "kind", str, "document")
    if kind not in ("query", "document"):
        raise HttpError("`kind` must be 'query' or 'document'", "validation", 422)
    top_k = _field(body, "top_k", int, None)
    if top_k is not None and top_k < 1:
        raise HttpError("`top_k` must be at least 1", "validation", 422)
    # SPLADE documents are conventionally truncated to the model's window, so truncation defaults on here.
    truncate = _field(body, "truncate", bool, True)
    vectors = await _run(request, partial(host.sparse, texts, kind, top_k, truncate))
    return web.json_response(
        {
            "vectors": [{"indices": i, "values": v} for i, v in vectors],
            "model": host.config.model_name,
            "dim": host.dim,
        }
    )


async def rerank(request: web.Request) -> web.Response:
    """POST /rerank, as TEI: {"query", "texts", "truncate"?, "raw_scores"?, "return_text"?} → [{"index", "score"}]."""
    host = request.app[HOST]
    body = await _body(request)
    query = _field(body, "query", str)
    texts = _texts(body, host.config.max_client_batch_size)
    truncate = _field(body, "truncate", bool, host.config.auto_truncate)
    raw_scores = _field(body, "raw_scores", bool, False)
    return_text = _field(body, "return_text", bool, False)
    _field(body, "truncation_direction", str, "Right")  # accepted for TEI compatibility; truncation keeps the start
    if host.config.rerank_model is None:
        raise HttpError("model is not a re-ranker model (set RERANK_MODEL)", "backend")
    scores = await _run(request, partial(host.rerank, query, texts, truncate, raw_scores))
    ranks = [{"index": i, "score": s} | ({"text": texts[i]} if return_text else {}) for i, s in enumerate(scores)]
    ranks.sort(key=lambda r: r["score"], reverse=True)
    return web.json_response(ranks)


async def health(request: web.Request) -> web.Response:
    """GET /health: model names, dimensions, device; 200 once loaded, 503 while loading or after a load failure."""
    state = request.app[STATE]
    body = {"status": state["status"], **request.app[HOST].describe()}
    if state["status"] != "ok":
        body.update(error=state.get("error") or "model is loading", error_type="unhealthy")
    return web.json_response(body, status=200 if state["status"] == "ok" else 503)


async def _load(app: web.Application) -> None:
    state = app[STATE]
    try:
        await asyncio.get_running_loop().run_in_executor(app[EXECUTOR], app[HOST].load)
    except Exception as exc:
        log.exception("model load failed")
        state.update(status="error", error=f"model load failed: {exc}")
        return
    state["status"] = "ok"
    log.info("models loaded: %s", app[HOST].describe())


async def _on_startup(app: web.Application) -> None:
    # Load in the background so /health answers (503 "loading") while the weights are read.
    app[STATE]["load_task"] = asyncio.create_task(_load(app))


async def _on_cleanup(app: web.Application) -> None:
    app[EXECUTOR].shutdown(wait=False, cancel_futures=True)


def create_app(config: RunnerConfig | None = None, faults: fault_injection.Faults | None = None) -> web.Application:
    """The aiohttp application (models start loading when it starts); faults: injected slowness, for tests only."""
    app = web.Application(middlewares=[errors_as_json], client_max_size=64 * 1024 * 1024)
    app[HOST] = ModelHost(config or RunnerConfig.from_env())
    app[STATE] = {"status": "loading", "in_flight": 0}
    # One worker: torch already uses every core per call, and one thread keeps model state single-threaded.
    app[EXECUTOR] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
    app.router.add_post("/sparse/batch", sparse_batch)
    app.router.add_post("/rerank", rerank)
    app.router.add_get("/health", health)
    app.on_startup.append(_on_startup)
    app.on_cleanup.append(_on_cleanup)
    fault_injection.install(app, faults)
    return app


def main(argv: list[str] | None = None) -> None:
    """Parse --host/--port (and the fault-injection flags) and serve."""
    parser = argparse.ArgumentParser(description="SPLADE + reranker model runner")
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    fault_injection.add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        faults = fault_injection.from_arguments(args)
    except ValueError as exc:
        parser.error(str(exc))
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), stream=sys.stderr)
    web.run_app(create_app(faults=faults), host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
