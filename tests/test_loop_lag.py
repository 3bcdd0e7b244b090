"""The event-loop lag monitor (Metrics.watch_loop_lag) and load.py's reading of it, against real blocking work."""

from __future__ import annotations

import asyncio
import time

from mcp_web_ingest.encoders.dense import ThreadedLocalEmbedder
from mcp_web_ingest.metrics import Metrics
from mcp_web_ingest.runtime import Runtime
from tools.load import loop_lag_between


def _render(metrics: Metrics) -> str:
    return metrics.render().decode()


async def test_blocking_the_loop_shows_up_as_lag() -> None:
    metrics = Metrics()
    before = _render(metrics)
    async with metrics.watch_loop_lag(0.02):
        await asyncio.sleep(0.2)  # a free loop: wake-ups on time
        free = loop_lag_between(before, _render(metrics))
        time.sleep(0.3)  # noqa: ASYNC251 - the blocking call being measured
        await asyncio.sleep(0.05)
    after = _render(metrics)
    assert free is not None and free["samples"] >= 3 and free["over_100ms"] == 0
    lag = loop_lag_between(before, after)
    assert lag is not None and lag["over_100ms"] == 1
    assert lag["max_le"] in (500.0, 1000.0)  # the 0.3 s block: the (0.25, 0.5] bucket, (0.5, 1] when loaded
    assert lag["p50_le"] != lag["max_le"]
    assert loop_lag_between(after, after) == {"samples": 0}  # measured, but nothing between the two scrapes
    count = metrics.registry.get_sample_value("event_loop_lag_seconds_count")
    await asyncio.sleep(0.1)  # the watcher stopped with the block: nothing more is recorded
    assert count == lag["samples"] and metrics.registry.get_sample_value("event_loop_lag_seconds_count") == count


def test_loop_lag_between_without_the_metric() -> None:
    assert loop_lag_between(None, None) is None
    assert loop_lag_between("", "# no metrics\n") is None
    empty = Metrics().render().decode()
    assert loop_lag_between(empty, empty) is None  # exported but never observed: the watcher is not running


async def test_model_work_does_not_block_the_loop(runtime: Runtime) -> None:
    """Embedding runs on the model thread: the loop's lag stays far below the time the model was busy."""
    emb = runtime.embedder
    assert isinstance(emb, ThreadedLocalEmbedder)
    metrics = Metrics()
    before = _render(metrics)
    async with metrics.watch_loop_lag(0.01):
        started = time.perf_counter()
        await asyncio.gather(
            emb.embed_documents(["A long chunk of documentation text. " * 40] * 16),
            *(emb.embed_query(f"query number {i}") for i in range(20)),
        )
        busy_s = time.perf_counter() - started
    lag = loop_lag_between(before, _render(metrics))
    assert lag is not None and lag["samples"] >= 5
    assert lag["mean"] / 1000 < busy_s / 4, (lag, busy_s)  # model work on the loop would make lag ≈ busy_s
