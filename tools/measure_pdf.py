"""Compare pypdf and pdfminer.six on real PDFs: speed, text quality, outline support, licence.

Usage: python tools/measure_pdf.py [PDF ...] [--repeat N]
Without arguments it measures the PDFs Debian ships here (shared-mime-info, libtasn1). Prints one table row per
(document, extractor) and, per document, the tokens each extractor produced that the others did not.
"""

from __future__ import annotations

import argparse
import collections
import importlib.metadata
import re
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

DEFAULT_PDFS = [
    "/usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf",
    "/usr/share/doc/libtasn1-doc/libtasn1.pdf",
]

# Passages checked verbatim (whitespace collapsed, hyphenated line breaks joined): a passage found proves the
# words are neither run together nor split and are read in order, across line breaks.
PROBES = {
    "shared-mime-info-spec.pdf": [
        "This is version 0.21 of the Shared MIME-info Database specification, last updated 2 October 2018.",
        "This is generally done by examining the file’s name or contents, and looking up the correct MIME type",
        "Applications must be able to extend the database in any way when they are installed, to add both new "
        "rules for determining type",
        'The key words "MUST", "MUST NOT", "REQUIRED"',
        "2.12. Recommended checking order",
        "Incompatible changes will be handled by creating both the current ‘treemagic’ and a newer ‘treemagic2’ "
        "in the new format.",
    ],
    "libtasn1.pdf": [
        "int asn1_parser2tree (const char * file, asn1 node * definitions, char * error_desc)",
        "int asn1_array2tree (const asn1 static node * array, asn1 node * definitions, char * errorDescription)",
        "inputFileName: specify the path and the name of file that contains ASN.1 declarations.",
        "The notation to access the ‘Group’ type of the ‘Example’ definition above is ‘Example.Group’",
        "Add functions for a C code file generation containing equivalent data structures (not a single array "
        "like now).",
        "For an example of the syntax, check the pkix.asn file distributed with the library.",
    ],
}

_WS = re.compile(r"\s+")
_HYPHEN_BREAK = re.compile(r"(?<=[a-z])-\n[ \t]*(?=[a-z])")
_TOKEN = re.compile(r"\S+")


def _norm(text: str) -> str:
    return _WS.sub(" ", _HYPHEN_BREAK.sub("", text)).strip()


def pypdf_plain(path: Path) -> list[str]:
    """Text of each page, pypdf's default (plain) mode."""
    import pypdf

    return [page.extract_text() for page in pypdf.PdfReader(path).pages]


def pypdf_layout(path: Path) -> list[str]:
    """Text of each page, pypdf's layout mode (keeps vertical gaps and horizontal positions)."""
    import pypdf

    return [page.extract_text(extraction_mode="layout") for page in pypdf.PdfReader(path).pages]


def pdfminer_text(path: Path) -> list[str]:
    """Text of each page, pdfminer.six's layout analysis with default LAParams."""
    from pdfminer.high_level import extract_text

    return extract_text(path).split("\f")[:-1]  # each page ends with a form feed


EXTRACTORS: dict[str, Callable[[Path], list[str]]] = {
    "pypdf plain": pypdf_plain,
    "pypdf layout": pypdf_layout,
    "pdfminer.six": pdfminer_text,
}


def pypdf_outline(path: Path) -> list[tuple[int, str, int | None]]:
    """(level, title, 1-based page) of each outline entry, via pypdf."""
    import pypdf

    reader = pypdf.PdfReader(path)
    out: list[tuple[int, str, int | None]] = []

    def walk(items: list, level: int) -> None:
        for item in items:
            if isinstance(item, list):
                walk(item, level + 1)
            else:
                page = reader.get_destination_page_number(item)
                out.append((level, str(item.title), page + 1 if page is not None and page >= 0 else None))

    walk(reader.outline, 1)
    return out


def pdfminer_outline(path: Path) -> list[tuple[int, str, int | None]]:
    """(level, title, 1-based page) of each outline entry, via pdfminer.six (destinations resolved by hand)."""
    from pdfminer.pdfdocument import PDFDocument, PDFNoOutlines
    from pdfminer.pdfpage import PDFPage
    from pdfminer.pdfparser import PDFParser
    from pdfminer.pdftypes import resolve1

    with open(path, "rb") as f:
        doc = PDFDocument(PDFParser(f))
        pages = {page.pageid: n for n, page in enumerate(PDFPage.create_pages(doc), 1)}
        out: list[tuple[int, str, int | None]] = []
        try:
            entries = list(doc.get_outlines())
        except PDFNoOutlines:
            return []
        for level, title, dest, action, _se in entries:
            # pdfminer hands back the raw /Dest or /A (GoTo action); named destinations must be looked up.
            if dest is None and action is not None:
                dest = resolve1(action).get("D")
            dest = resolve1(dest)
            if isinstance(dest, bytes | str):
                try:
                    dest = resolve1(doc.get_dest(dest))
                except Exception:
                    dest = None
            if isinstance(dest, dict):
                dest = resolve1(dest.get("D"))
            page = None
            if isinstance(dest, list) and dest:
                page = pages.get(getattr(dest[0], "objid", None))
            out.append((level, str(title), page))
        return out


def licence(dist: str) -> str:
    """The licence an installed distribution declares in its metadata."""
    meta = importlib.metadata.metadata(dist)
    return meta.get("License-Expression") or meta.get("License") or "?"


def measure(path: Path, repeat: int) -> None:
    """Print the comparison rows for one PDF."""
    outputs: dict[str, list[str]] = {}
    rows = []
    outline = pypdf_outline(path)
    for name, fn in EXTRACTORS.items():
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            pages = fn(path)
            times.append(time.perf_counter() - t0)
        tracemalloc.start()
        fn(path)
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        outputs[name] = pages
        text = "\n".join(pages)
        tokens = _TOKEN.findall(_WS.sub(" ", text))
        flat = _norm(text)
        probes = PROBES.get(path.name, [])
        found = sum(1 for p in probes if _norm(p) in flat)
        # A heading is "on its page" when its title is found on the page its outline entry points to.
        on_page = sum(
            1
            for _lvl, title, page in outline
            if page and _norm(title) in _norm(pages[page - 1] if page <= len(pages) else "")
        )
        rows.append(
            (
                name,
                f"{statistics.median(times) * 1000:.0f}",
                f"{statistics.median(times) * 1000 / max(1, len(pages)):.1f}",
                f"{peak:.1f}",
                str(len(tokens)),
                str(sum(1 for t in tokens if len(t) > 25)),
                str(len(re.findall(r"\(cid:\d+\)", text))),
                str(len(re.findall("[\ufb00-\ufb06]", text))),
                str(len(_HYPHEN_BREAK.findall(text))),
                str(len(re.findall(r"\n[ \t]*\n", text))),
                f"{found}/{len(probes)}",
                f"{on_page}/{len(outline)}",
            )
        )
    # Tokens an extractor produced that no other did: words run together or split show up here.
    counts = {name: collections.Counter(_TOKEN.findall(_norm("\n".join(p)))) for name, p in outputs.items()}
    odd: dict[str, collections.Counter[str]] = {}
    for name, c in counts.items():
        others = collections.Counter()
        for other, oc in counts.items():
            if other != name:
                others |= oc
        odd[name] = c - others
    print(f"\n## {path.name} ({len(outputs['pypdf plain'])} pages, {path.stat().st_size // 1024} KiB)\n")
    head = (
        "extractor",
        "ms/doc",
        "ms/page",
        "peak MiB",
        "tokens",
        ">25 chars",
        "(cid:)",
        "ligatures",
        "hyphen breaks",
        "blank lines",
        "probes found",
        "headings on page",
        "odd tokens",
    )
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for row in rows:
        print("| " + " | ".join((*row, str(sum(odd[row[0]].values())))) + " |")
    for name, c in odd.items():
        sample = ", ".join(f"`{t}`×{n}" for t, n in c.most_common(8))
        print(f"- odd tokens, {name}: {sample or 'none'}")
    for name, fn in (("pypdf", pypdf_outline), ("pdfminer.six", pdfminer_outline)):
        entries = fn(path)
        resolved = sum(1 for _lvl, _t, page in entries if page)
        levels = max((lvl for lvl, _t, _p in entries), default=0)
        print(f"- outline via {name}: {len(entries)} entries, {resolved} with a page number, {levels} levels")


def measure_extractor(path: Path, repeat: int) -> list[tuple[str, ...]]:
    """Rows for extract_pdf on the file as is (outline) and rewritten without its outline (font sizes)."""
    import io

    import pypdf

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from mcp_web_ingest.ingest.formats.pdf import extract_pdf

    writer = pypdf.PdfWriter()
    writer.append(pypdf.PdfReader(path), import_outline=False)
    stripped = io.BytesIO()
    writer.write(stripped)
    key = re.compile(r"[\W_]+")
    # Outline titles, keyed without punctuation: a font-size heading matches one on the same page when it ends
    # with the title ("2.1 ASN.1 syntax" for the bookmark "ASN.1 syntax").
    wanted = [(key.sub("", t).casefold(), page) for _lvl, t, page in pypdf_outline(path)]
    rows = []
    for label, body in (("outline", path.read_bytes()), ("font sizes", stripped.getvalue())):
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            page = extract_pdf(body, path.as_uri())
            times.append(time.perf_counter() - t0)
        got = [(key.sub("", s.heading).casefold(), s.anchor) for s in page.sections if s.level]
        matched = {
            i for i, (kt, pg) in enumerate(wanted) for k, anchor in got if anchor == f"page={pg}" and k.endswith(kt)
        }
        rows.append(
            (
                path.name,
                label,
                f"{statistics.median(times) * 1000:.0f}",
                str(len(page.sections)),
                f"{len(matched)}/{len(wanted)}",
                str(max(0, len(got) - len(matched))),
            )
        )
    return rows


def main() -> None:
    """Run the comparison and print markdown tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pdfs", nargs="*", default=DEFAULT_PDFS)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for dist in ("pypdf", "pdfminer.six"):
        needs = [
            r for r in importlib.metadata.requires(dist) or [] if "extra ==" not in r and "python_version" not in r
        ]
        print(f"- {dist} {importlib.metadata.version(dist)}: licence {licence(dist)}, requires {needs or 'nothing'}")
    for pdf in args.pdfs:
        path = Path(pdf)
        if not path.is_file():
            sys.exit(f"no such PDF: {path}")
        measure(path, args.repeat)
    print("\n## The chosen extractor (mcp_web_ingest.ingest.formats.pdf, pypdf) with and without the outline\n")
    print("| document | sections from | ms/doc | sections | outline headings matched | other headings |")
    print("|---|---|---|---|---|---|")
    for pdf in args.pdfs:
        for row in measure_extractor(Path(pdf), args.repeat):
            print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
