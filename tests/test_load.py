"""tools/load.py against a real `mcp-web-ingest serve` process: a 3-client, 3-second smoke run (no timing claims)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mcp_web_ingest.runtime import Runtime
from tools.load import percentiles, run_load

from .servers import running_server


@pytest.fixture
async def server(data_dir: Path, runtime: Runtime) -> AsyncIterator[tuple[str, int]]:
    """A server process on a free port: (base URL, pid)."""
    async with running_server(data_dir) as srv:
        yield srv.base, srv.pid


async def test_load_smoke(clean: Runtime, server: tuple[str, int], site_url: str) -> None:
    base, pid = server
    page = f"{site_url}/guide/install.html"
    await clean.pipeline.index_page(page)
    report = await run_load(base, clients=3, seconds=3, index_urls=[page])
    expected = {"requests", "throughput_rps", "latency_ms", "errors", "index", "rss_mb", "health_latency_ms", "note"}
    expected |= {"loop_lag_ms"}
    assert expected <= report.keys()
    assert report["errors"] == 0, report["error_samples"]
    assert report["index"]["errors"] == 0, report["index"]["error_samples"]
    assert report["requests"] > 0 and report["index"]["calls"] > 0
    assert set(report["latency_ms"]) == {"p50", "p95", "p99", "max", "mean"}
    assert report["server_pid"] == pid and report["rss_mb"]["peak"] > 0  # found by the listening port
    assert report["health_latency_ms"]["samples"] > 0 and report["health_errors"] == 0
    # the server's event_loop_lag_seconds histogram, sampled every 100 ms, once the runtime runs the watcher
    lag = report["loop_lag_ms"]
    assert lag is not None and lag["samples"] > 0 and {"mean", "p50_le", "p99_le", "max_le"} <= lag.keys()


def test_percentiles() -> None:
    assert percentiles([]) is None
    stats = percentiles([float(v) for v in range(1, 101)])
    assert stats == {"p50": 50.0, "p95": 95.0, "p99": 99.0, "max": 100.0, "mean": 50.5}
