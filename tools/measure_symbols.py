"""Measure symbol extraction over a folder of HTML pages (default: Debian's Python 3.11 docs).

Usage: python tools/measure_symbols.py [FOLDER] [--cache FILE]
Prints chunks with at least one defining symbol, symbols per chunk, ms per chunk of extract_page_symbols, and for
well-known APIs which chunks define them (exact qualified name) and whether those sit on the expected page.
``--cache`` keeps the extracted chunks in a pickle, so a rerun after changing symbols.py skips extraction.
"""

from __future__ import annotations

import argparse
import collections
import pickle
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mcp_web_ingest.errors import ExtractError
from mcp_web_ingest.ingest.chunking import chunk_page
from mcp_web_ingest.ingest.extract import extract_page
from mcp_web_ingest.ingest.symbols import extract_page_symbols
from mcp_web_ingest.models import Chunk, symbol_keys

# (qualified name, page that documents it)
KNOWN = [
    ("asyncio.gather", "library/asyncio-task.html"),
    ("asyncio.create_task", "library/asyncio-task.html"),
    ("asyncio.sleep", "library/asyncio-task.html"),
    ("asyncio.TaskGroup", "library/asyncio-task.html"),
    ("itertools.groupby", "library/itertools.html"),
    ("itertools.chain", "library/itertools.html"),
    ("itertools.chain.from_iterable", "library/itertools.html"),
    ("json.dumps", "library/json.html"),
    ("json.loads", "library/json.html"),
    ("json.JSONEncoder.default", "library/json.html"),
    ("functools.lru_cache", "library/functools.html"),
    ("functools.partial", "library/functools.html"),
    ("pathlib.Path.glob", "library/pathlib.html"),
    ("os.path.join", "library/os.path.html"),
    ("re.sub", "library/re.html"),
    ("subprocess.run", "library/subprocess.html"),
    ("collections.Counter", "library/collections.html"),
    ("collections.defaultdict", "library/collections.html"),
    ("dataclasses.dataclass", "library/dataclasses.html"),
    ("typing.Optional", "library/typing.html"),
    ("logging.getLogger", "library/logging.html"),
    ("contextlib.contextmanager", "library/contextlib.html"),
    ("sqlite3.connect", "library/sqlite3.html"),
    ("argparse.ArgumentParser.add_argument", "library/argparse.html"),
    ("datetime.datetime.strptime", "library/datetime.html"),
    ("PyList_New", "c-api/list.html"),
]


def load(folder: Path, cache: Path | None) -> dict[str, list[Chunk]]:
    """Chunks of every page under folder, keyed by relative path (from the cache when it exists)."""
    if cache is not None and cache.exists():
        return pickle.loads(cache.read_bytes())
    pages: dict[str, list[Chunk]] = {}
    for path in sorted(folder.rglob("*.html")):
        rel = path.relative_to(folder).as_posix()
        try:
            page = extract_page(path.read_text(encoding="utf-8", errors="replace"), f"https://docs.python.org/3/{rel}")
        except ExtractError:
            continue
        pages[rel] = chunk_page(page)
    if cache is not None:
        cache.write_bytes(pickle.dumps(pages))
    return pages


def main() -> None:
    """Run the measurement and print the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", default="/usr/share/doc/python3.11/html", type=Path)
    parser.add_argument("--cache", type=Path, default=None)
    args = parser.parse_args()
    pages = load(args.folder, args.cache)

    per_chunk: list[int] = []
    defines_per_chunk: list[int] = []
    langs: collections.Counter[str] = collections.Counter()
    kinds: collections.Counter[str] = collections.Counter()
    definers: dict[str, list[str]] = collections.defaultdict(list)  # exact qualified name -> pages (one per chunk)
    by_key: collections.Counter[str] = collections.Counter()  # lookup key -> defining chunks
    elapsed = 0.0
    for rel, chunks in pages.items():
        start = time.perf_counter()
        symbols = extract_page_symbols(chunks)
        elapsed += time.perf_counter() - start
        for syms in symbols:
            per_chunk.append(len(syms))
            defs = [s for s in syms if s.role == "defines"]
            defines_per_chunk.append(len(defs))
            for s in defs:
                langs[s.language] += 1
                kinds[s.kind] += 1
                definers[s.name].append(rel)
            for key in {k for s in defs for k in symbol_keys(s.name)}:
                by_key[key] += 1

    n = len(per_chunk)
    with_def = sum(1 for d in defines_per_chunk if d)
    print(f"pages {len(pages)}  chunks {n}  chunks with >=1 defining symbol {with_def} ({100 * with_def / n:.1f} %)")
    print(
        f"symbols/chunk mean {statistics.mean(per_chunk):.2f}  p50 {statistics.median(per_chunk):.0f}  "
        f"max {max(per_chunk)};  defines/chunk mean {statistics.mean(defines_per_chunk):.2f}"
    )
    print(f"extract_page_symbols: {1000 * elapsed / n:.3f} ms/chunk ({elapsed:.1f} s in all)")
    print("defining symbols by language:", dict(langs.most_common(8)))
    print("defining symbols by kind:", dict(kinds.most_common(12)))
    print()
    print(f"{'API':40} {'defining chunks':>15} {'on page':>8} {'bare-key defs':>13}  pages")
    found = precise = 0
    for name, expected in KNOWN:
        where = definers.get(name, [])
        right = sum(1 for p in where if p == expected)
        found += right > 0
        precise += right == len(where) and right > 0
        bare = by_key[symbol_keys(name)[-1]]
        shown = ", ".join(sorted(set(where)))[:70]
        print(f"{name:40} {len(where):>15} {right:>8} {bare:>13}  {shown}")
    print()
    print(
        f"recall: {found}/{len(KNOWN)} APIs defined on their page;  "
        f"precision: {precise}/{len(KNOWN)} defined only there"
    )


if __name__ == "__main__":
    main()
