"""Measure extract_page + chunk_page over a folder of HTML pages (default: Debian's Python 3.11 docs).

Usage: python tools/measure_extract.py [FOLDER] [--max-tokens N] [--overlap N] [--keep-links]
Prints pages, ms/page for extraction and chunking, <pre> blocks in vs fenced blocks out, chunk count and
the p50/p95/max of chunk token counts.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mcp_web_ingest.errors import ExtractError
from mcp_web_ingest.ingest.chunking import chunk_page
from mcp_web_ingest.ingest.extract import extract_page

_FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
_PRE = re.compile(r"<pre[\s>]", re.IGNORECASE)


def _closes(line: str, fence: str) -> bool:
    closing = line.strip()
    return closing == fence[0] * len(closing) and len(closing) >= len(fence)


def count_fenced_blocks(markdown: str) -> int:
    """Number of fenced code blocks (opening fences) in markdown."""
    count, fence = 0, None
    for line in markdown.split("\n"):
        m = _FENCE.match(line)
        if fence is None and m:
            fence, count = m.group(1), count + 1
        elif fence is not None and m and _closes(line, fence):
            fence = None
    return count


def _pct(values: list[int], q: float) -> int:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))] if values else 0


def main() -> None:
    """Run the measurement and print a small report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", default="/usr/share/doc/python3.11/html")
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--overlap", type=int, default=32)
    parser.add_argument("--keep-links", action="store_true")
    args = parser.parse_args()
    root = Path(args.folder)
    files = sorted(root.rglob("*.html"))
    if not files:
        sys.exit(f"no .html files under {root}")
    t_extract = t_chunk = 0.0
    pre_in = fenced_out = sections = empty_sections = errors = 0
    tokens: list[int] = []
    for path in files:
        html = path.read_text(encoding="utf-8", errors="replace")
        url = "https://docs.example.org/" + path.relative_to(root).as_posix()
        t0 = time.perf_counter()
        try:
            page = extract_page(html, url)
        except ExtractError:
            errors += 1
            continue
        t1 = time.perf_counter()
        chunks = chunk_page(page, args.max_tokens, args.overlap, keep_links=args.keep_links)
        t2 = time.perf_counter()
        t_extract += t1 - t0
        t_chunk += t2 - t1
        pre_in += len(_PRE.findall(html))
        fenced_out += count_fenced_blocks(page.markdown)
        sections += len(page.sections)
        empty_sections += sum(1 for s in page.sections if not s.markdown.strip())
        tokens.extend(c.token_count for c in chunks)
    n = len(files) - errors
    print(f"pages: {len(files)} ({errors} raised ExtractError)")
    print(f"extract: {1000 * t_extract / max(n, 1):.1f} ms/page   chunk: {1000 * t_chunk / max(n, 1):.1f} ms/page")
    print(f"<pre> in: {pre_in}   fenced blocks out: {fenced_out}")
    print(f"sections: {sections} ({empty_sections} with an empty body)")
    print(
        f"chunks: {len(tokens)} (max_tokens={args.max_tokens}, overlap={args.overlap}, keep_links={args.keep_links})"
        f"   tokens p50/p95/max: {_pct(tokens, 0.5)}/{_pct(tokens, 0.95)}/{max(tokens, default=0)}"
        f"   mean: {statistics.fmean(tokens) if tokens else 0:.0f}"
    )
    print(f"chunks under 32 tokens: {sum(1 for t in tokens if t < 32)}")


if __name__ == "__main__":
    main()
