"""Jupyter notebooks: markdown cells as written, code cells as fenced blocks in the kernel's language, no outputs."""

from __future__ import annotations

import re
import warnings

from mcp_web_ingest.errors import ExtractError
from mcp_web_ingest.ingest.formats.markdown_doc import extract_markdown, jupyter_slug
from mcp_web_ingest.models import ExtractedPage

__all__ = ["extract_notebook"]

_LINE_TICKS = re.compile(r"^ {0,3}(`{3,})", re.M)


def _language(metadata: dict[str, object]) -> str:
    for key in ("kernelspec", "language_info"):
        info = metadata.get(key)
        if isinstance(info, dict):
            name = info.get("language") or info.get("name")
            if isinstance(name, str) and name.strip().isidentifier():
                return name.strip().lower()
    return "python"


def _fence(code: str) -> str:
    """A fence longer than any backtick run that opens a line of the code, so the block cannot end early."""
    longest = max((len(run) for run in _LINE_TICKS.findall(code)), default=0)
    return "`" * max(3, longest + 1)


def extract_notebook(source: str, url: str) -> tuple[ExtractedPage, list[str]]:
    """A notebook's markdown and code cells as one markdown document split at its headings (outputs skipped)."""
    import nbformat

    try:
        with warnings.catch_warnings():  # notebooks written before cell ids existed are fine to read
            warnings.simplefilter("ignore")
            notebook = nbformat.reads(source, as_version=4)
            nbformat.validate(notebook)
    except Exception as exc:  # nbformat raises JSON, validation and version errors of several types
        reason = str(exc).strip().split("\n", 1)[0][:300]
        raise ExtractError(
            f"The notebook at {url} is not a valid Jupyter notebook ({type(exc).__name__}: {reason})"
        ) from exc
    language = _language(notebook.get("metadata", {}))
    parts: list[str] = []
    for cell in notebook.cells:
        text = cell.get("source", "")
        text = "".join(text) if isinstance(text, list) else str(text)
        if not text.strip():
            continue
        if cell.cell_type == "markdown":
            parts.append(text.strip("\n"))
        elif cell.cell_type == "code":
            fence = _fence(text)
            parts.append(f"{fence}{language}\n{text.strip(chr(10))}\n{fence}")
    if not parts:
        raise ExtractError(f"The notebook at {url} has no markdown or code cells with text.")
    return extract_markdown("\n\n".join(parts), url, slug=jupyter_slug)
