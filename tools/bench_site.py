"""Whole-site figure: the real CLI crawls and indexes the local Python docs, then re-crawls them unchanged.

Usage: python tools/bench_site.py [--docs-dir DIR] [--port 8780] [--data-dir .data/bench/site] [--max-pages 1000]
                                  [--max-depth 20] [--runs 2] [--env KEY=VALUE ...] [--out site.json]

The docs folder is served on 127.0.0.1 at a fixed port (stable URLs) and `mcp-web-ingest index <base>/index.html
--max-depth D --max-pages N --scope path --json` runs as a subprocess on a fresh DATA_DIR (wiped first), with the
server's default settings (embedding backend included) plus ALLOW_PRIVATE_NETWORKS=true, MODEL_CACHE_DIR=.data/models
(unless set) and any --env. Each run
reports wall time (start of the command to its exit: database start, model load and crawl), the crawl job's own time,
pages indexed and unchanged, chunks, pages/s and chunks/s, the peak RSS of the CLI process tree (the CLI and its
extraction workers, sampled every 0.2 s and summed; PostgreSQL excluded) and, apart, the embedded PostgreSQL's peak
(PSS summed over its processes: their shared buffers are counted once), and the 1-minute load average before and
after. The first run indexes everything; the second finds every page unchanged. Each run's stderr (the traceback of
a page that failed, for one) is kept in DATA_DIR/run-N.stderr.log.

`python tools/bench_site.py --serve-only DIR [--port P]` serves a folder and prints its base URL (for tools/bench.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools.bench_crawl import in_background  # noqa: E402
from tools.bench_hostile import stop_server  # noqa: E402
from tools.eval import DEFAULT_DOCS, prepare_environment, serve_dir  # noqa: E402

SCRIPT = Path(__file__).resolve()
DEFAULT_PORT = 8780  # eval uses 8765 and up
DEFAULT_DATA_DIR = Path(".data/bench/site")
MODEL_CACHE = Path(".data/models")
SAMPLE_S = 0.2


# --- a folder served from another process ----------------------------------------------------------------------


async def _serve_forever(docs_dir: Path, port: int) -> None:
    async with serve_dir(docs_dir, port) as base_url:
        print(base_url, flush=True)
        await asyncio.Event().wait()


@contextlib.asynccontextmanager
async def served_elsewhere(docs_dir: Path, port: int = 0) -> AsyncIterator[str]:
    """Serve docs_dir from a child process (this script with --serve-only); yields its base URL."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(SCRIPT), "--serve-only", str(docs_dir), "--port", str(port),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        base_url = line.decode().strip()
        if not base_url.startswith("http://"):
            raise RuntimeError(f"the file server did not start (exit {proc.returncode})")
        yield base_url
    finally:
        await stop_server(proc, grace_s=10)


# --- measuring a command's process tree -------------------------------------------------------------------------


def is_postgres(cmdline: Sequence[str], name: str = "") -> bool:
    """Whether a process is a PostgreSQL server process (postmaster or backend)."""
    first = Path(cmdline[0]).name if cmdline else ""
    return name.startswith("postgres") or first.startswith("postgres") or first == "pg_ctl"


def tree_rss_mb(pid: int) -> float:
    """RSS (MiB) summed over a process and its descendants, PostgreSQL's processes left out; 0 once it is gone."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            if not is_postgres(p.cmdline(), p.name()):
                total += p.memory_info().rss
    return round(total / 2**20, 1)


def postgres_mb(pgdata: Path) -> float:
    """PSS (MiB) summed over the PostgreSQL processes serving pgdata (postmaster, backends, background workers)."""
    import psutil

    pgdata_s = str(pgdata.resolve())
    postmasters = []
    for p in psutil.process_iter(["name", "cmdline"]):
        cmd = p.info.get("cmdline") or []
        if is_postgres(cmd, p.info.get("name") or "") and pgdata_s in " ".join(cmd):
            postmasters.append(p)
    total = 0
    for pm in postmasters:
        with contextlib.suppress(psutil.Error):
            for p in (pm, *pm.children(recursive=True)):
                with contextlib.suppress(psutil.Error):
                    total += p.memory_full_info().pss
    return round(total / 2**20, 1)


@contextlib.asynccontextmanager
async def sampling(pid: int, pgdata: Path, interval_s: float = SAMPLE_S) -> AsyncIterator[dict[str, float]]:
    """Peak tree RSS of `pid` (PostgreSQL excluded) and peak PostgreSQL PSS, sampled every interval_s."""
    peaks = {"tree_rss_mb": 0.0, "postgres_pss_mb": 0.0, "samples": 0}

    async def sample() -> None:
        n = 0
        while True:
            peaks["tree_rss_mb"] = max(peaks["tree_rss_mb"], await asyncio.to_thread(tree_rss_mb, pid))
            if n % 5 == 0:  # once a second: reading every backend's smaps costs more
                peaks["postgres_pss_mb"] = max(peaks["postgres_pss_mb"], await asyncio.to_thread(postgres_mb, pgdata))
            n += 1
            peaks["samples"] = n
            await asyncio.sleep(interval_s)

    async with in_background(sample):
        yield peaks


# --- one run of the CLI -----------------------------------------------------------------------------------------


def cli_command(start_url: str, max_pages: int, max_depth: int) -> list[str]:
    """The crawl command: the installed console script beside this interpreter, else the module."""
    script = Path(sys.executable).with_name("mcp-web-ingest")
    head = [str(script)] if script.exists() else [sys.executable, "-m", "mcp_web_ingest.interface.cli"]
    tail = ["--max-depth", str(max_depth), "--max-pages", str(max_pages), "--scope", "path", "--json"]
    return [*head, "index", start_url, *tail]


def cli_env(data_dir: Path, extra: dict[str, str]) -> dict[str, str]:
    """The environment of the CLI: ours, a DATA_DIR of its own, loopback allowed, then the --env pairs."""
    env = dict(os.environ)
    env.update({"DATA_DIR": str(data_dir.resolve()), "ALLOW_PRIVATE_NETWORKS": "true", "LOG_LEVEL": "WARNING"})
    # The ONNX export is made once per machine (MODEL_CACHE_DIR), not by the crawl being measured.
    env.setdefault("MODEL_CACHE_DIR", str(MODEL_CACHE.resolve()))
    env.update(extra)
    return env


def parse_status(stdout: str) -> dict[str, Any]:
    """The crawl status the CLI printed with --json (the last JSON object on stdout)."""
    start = stdout.find("{")
    if start < 0:
        raise ValueError("the CLI printed no JSON status")
    return json.loads(stdout[start:])


def run_figures(status: dict[str, Any], wall_s: float) -> dict[str, Any]:
    """Pages, chunks and rates of one run from the CLI's status and the wall time."""
    c = status["counts"]
    pages = c["indexed"] + c["unchanged"]
    return {
        "state": status["state"],
        "discovered": c["discovered"],
        "indexed": c["indexed"],
        "unchanged": c["unchanged"],
        "failed": c["failed"],
        "skipped": c["skipped"],
        "pages": pages,
        "chunks": c["chunks"],
        "wall_s": round(wall_s, 2),
        "crawl_s": status["elapsed_s"],
        "pages_per_s": round(pages / wall_s, 2) if wall_s else 0.0,
        "chunks_per_s": round(c["chunks"] / wall_s, 2) if wall_s else 0.0,
        "crawl_pages_per_s": status["pages_per_s"],
        "crawl_chunks_per_s": round(c["chunks"] / status["elapsed_s"], 2) if status["elapsed_s"] else 0.0,
        "failures": status.get("failed", [])[:10],
    }


async def run_cli(
    cmd: Sequence[str], env: dict[str, str], pgdata: Path, timeout_s: float, log: Path | None = None
) -> dict[str, Any]:
    """Run the CLI once, sampling its memory; its figures and the load average around it (its stderr into log)."""
    load_before = round(os.getloadavg()[0], 2)
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env, cwd=str(ROOT)
    )
    async with sampling(proc.pid, pgdata) as peaks:
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise RuntimeError(f"the crawl did not finish in {timeout_s:g} s") from None
    wall = time.perf_counter() - started
    if log is not None:
        await asyncio.to_thread(log.write_bytes, err)
    if proc.returncode not in (0, 1):  # 1: the crawl ended in a state other than done (reported below)
        tail = err.decode("utf-8", "replace").strip().splitlines()[-10:]
        raise RuntimeError(f"the CLI exited {proc.returncode}: " + "\n".join(tail))
    figures = run_figures(parse_status(out.decode("utf-8", "replace")), wall)
    figures.update(
        peak_rss_mb=peaks["tree_rss_mb"],
        postgres_peak_pss_mb=peaks["postgres_pss_mb"],
        rss_samples=peaks["samples"],
        load_avg_1m_before=load_before,
        load_avg_1m_after=round(os.getloadavg()[0], 2),
        exit_code=proc.returncode,
        log=str(log) if log is not None else None,
    )
    return figures


# --- the whole figure -------------------------------------------------------------------------------------------


def markdown_table(report: dict[str, Any]) -> str:
    """The runs as a Markdown table."""
    rows = [
        f"whole site: {report['start_url']} (max_pages {report['max_pages']}, max_depth {report['max_depth']}, "
        f"{report['cores']} cores{', env ' + ' '.join(report['env']) if report['env'] else ''})",
        "",
        "| run | pages (indexed / unchanged / failed) | chunks | wall s | pages/s | chunks/s | crawl s (job) | "
        "peak RSS MiB (CLI + workers) | PostgreSQL PSS MiB | load 1m before → after |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, r in report["runs"].items():
        rows.append(
            f"| {name} | {r['pages']} ({r['indexed']} / {r['unchanged']} / {r['failed']}) | {r['chunks']} | "
            f"{r['wall_s']:.1f} | {r['pages_per_s']:.2f} | {r['chunks_per_s']:.1f} | {r['crawl_s']:.1f} | "
            f"{r['peak_rss_mb']:.0f} | {r['postgres_peak_pss_mb']:.0f} | "
            f"{r['load_avg_1m_before']} → {r['load_avg_1m_after']} |"
        )
    return "\n".join(rows)


def parse_env(pairs: Sequence[str]) -> dict[str, str]:
    """KEY=VALUE strings as a dict."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--env wants KEY=VALUE, not {pair!r}")
        out[key] = value
    return out


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    """Serve the docs, run the CLI args.runs times on a fresh DATA_DIR, print the table, write the JSON."""
    extra = parse_env(args.env)
    if args.data_dir.exists():
        shutil.rmtree(args.data_dir)
    args.data_dir.mkdir(parents=True)
    runs: dict[str, Any] = {}
    async with serve_dir(args.docs_dir, args.port) as base_url:
        start_url = f"{base_url}/index.html"
        cmd = cli_command(start_url, args.max_pages, args.max_depth)
        env = cli_env(args.data_dir, extra)
        for i in range(args.runs):
            name = "first" if i == 0 else ("unchanged re-run" if i == 1 else f"re-run {i}")
            log = args.data_dir / f"run-{i + 1}.stderr.log"  # tracebacks of failed pages land here
            runs[name] = await run_cli(cmd, env, args.data_dir / "pgdata", args.timeout, log)
            print(f"{name}: {json.dumps({k: v for k, v in runs[name].items() if k != 'failures'})}", file=sys.stderr)
    report = {
        "start_url": start_url,
        "command": cmd,
        "env": [f"{k}={v}" for k, v in extra.items()],
        "max_pages": args.max_pages,
        "max_depth": args.max_depth,
        "cores": os.cpu_count(),
        "runs": runs,
    }
    print(markdown_table(report))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))
    return report


def site_command(docs_dir: Path, data_dir: Path, max_pages: int, env: Sequence[str]) -> tuple[list[str], Path]:
    """This script's command line for tools/bench.py (absolute paths: it runs in the repository root) and the path
    its JSON report goes to (beside data_dir; removed first)."""
    out = data_dir.resolve().with_name(data_dir.name + "-report.json")
    out.unlink(missing_ok=True)
    cmd = [sys.executable, str(SCRIPT), "--docs-dir", str(docs_dir.resolve()), "--data-dir", str(data_dir.resolve())]
    cmd += ["--max-pages", str(max_pages), "--out", str(out)]
    return cmd + [arg for pair in env for arg in ("--env", pair)], out


def site_result(code: int, cmd: Sequence[str], out: Path) -> dict[str, Any]:
    """The report the subprocess wrote, or {"error": why} when it failed."""
    if code != 0 or not out.exists():
        return {"error": f"tools/bench_site.py exited {code} (its traceback is above)", "command": list(cmd)}
    return dict(json.loads(out.read_text(encoding="utf-8")))


async def site_in_subprocess(docs_dir: Path, data_dir: Path, max_pages: int, env: Sequence[str]) -> dict[str, Any]:
    """Run this script in a process of its own (its progress on our stderr) and return its report."""
    cmd, out = site_command(docs_dir, data_dir, max_pages, env)
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.DEVNULL, cwd=str(ROOT))
    return site_result(await proc.wait(), cmd, out)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--docs-dir", type=Path, default=DEFAULT_DOCS)
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="fixed, so page URLs are the same every run")
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="wiped before the first run")
    p.add_argument("--max-pages", type=int, default=1000)
    p.add_argument("--max-depth", type=int, default=20, help="link levels (20: CRAWL_MAX_DEPTH's default ceiling)")
    p.add_argument("--runs", type=int, default=2, help="first crawl, then unchanged re-runs")
    p.add_argument("--timeout", type=float, default=3600, help="seconds one run may take")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="setting for the CLI (repeatable)")
    p.add_argument("--out", type=Path, default=None, help="write the JSON report here")
    p.add_argument("--serve-only", type=Path, default=None, metavar="DIR", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point."""
    args = parse_args(argv)
    if args.serve_only is not None:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_serve_forever(args.serve_only, args.port))
        return
    prepare_environment()
    asyncio.run(amain(args))


if __name__ == "__main__":
    main()
