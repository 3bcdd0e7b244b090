"""A real OpenAI-compatible /v1/embeddings server on 127.0.0.1, answering with the local MiniLM model.

It stands in for vLLM/Ollama/TEI's OpenAI routes: same request and response shapes, bearer auth, errors.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Behaviour:
    """Knobs a test turns: the accepted key, how many requests to fail with 503 first, and what was received."""

    api_key: str = "sk-local-test"
    fail_first: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)


def make_app(model: Any, behaviour: Behaviour) -> web.Application:
    """The aiohttp app; `model` is the local embedder's loaded model (its `encode(texts)` gives unit vectors)."""

    async def embeddings(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {behaviour.api_key}":
            return web.json_response(
                {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}, status=401
            )
        body = await request.json()
        behaviour.requests.append(body)
        if behaviour.fail_first > 0:
            behaviour.fail_first -= 1
            return web.json_response({"error": {"message": "overloaded"}}, status=503)
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        vectors = await asyncio.to_thread(model.encode, texts)
        dims = body.get("dimensions")
        data = [
            {"object": "embedding", "index": i, "embedding": [float(x) for x in (v[:dims] if dims else v)]}
            for i, v in enumerate(vectors)
        ]
        data.reverse()  # the API does not promise order; clients must sort by index
        return web.json_response(
            {"object": "list", "data": data, "model": body["model"], "usage": {"prompt_tokens": 0}}
        )

    app = web.Application()
    app.router.add_post("/v1/embeddings", embeddings)
    return app


@contextlib.asynccontextmanager
async def serve(model: Any, behaviour: Behaviour) -> AsyncIterator[str]:
    """Run the server on a free port; yields its base URL ending in /v1."""
    runner = web.AppRunner(make_app(model, behaviour), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    finally:
        await runner.cleanup()
