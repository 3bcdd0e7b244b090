"""Format detection and the text-format extractors as pure functions: what decides a format, how sections split."""

from __future__ import annotations

import json

import pytest

from mcp_web_ingest.errors import ExtractError, UnsupportedContentError
from mcp_web_ingest.ingest.extract_worker import extract_document_isolated
from mcp_web_ingest.ingest.formats import extract_document
from mcp_web_ingest.ingest.formats.detect import document_format
from mcp_web_ingest.ingest.formats.llms_full import split_llms_full
from mcp_web_ingest.ingest.formats.markdown_doc import extract_markdown, github_slug
from mcp_web_ingest.ingest.formats.notebook import extract_notebook
from mcp_web_ingest.ingest.formats.rst import extract_rst
from mcp_web_ingest.ingest.formats.text import extract_text

BASE = "https://docs.example.org/guide/"


@pytest.mark.parametrize(
    ("name", "media_type", "body", "fmt"),
    [
        ("page", "text/html", b"<p>x</p>", "html"),
        ("page.md", "text/html", b"<p>x</p>", "html"),  # a specific Content-Type wins over the name
        ("page.md", "text/plain", b"# x", "markdown"),  # a generic one leaves it to the extension
        ("page.mdx", None, b"# x", "markdown"),
        ("_sources/page.rst.txt", "text/plain", b"Title\n=====", "rst"),
        ("notes.txt", "text/plain", b"plain words", "text"),
        ("llms-full.txt", "text/plain", b"# x", "llms-full"),
        ("llms-full.txt", "text/markdown", b"# x", "llms-full"),
        ("book.ipynb", "application/json", b'{"cells": [], "nbformat": 4}', "notebook"),
        ("download", None, b"%PDF-1.7\n...", "pdf"),  # sniffed
        ("download", "application/octet-stream", b'{"cells": [], "nbformat": 4, "metadata": {}}', "notebook"),
        ("download", None, b"<!doctype html><title>t</title>", "html"),
        ("download", None, b"## Heading\n\ntext", "markdown"),
        ("download", None, b"just words", "text"),
    ],
)
def test_document_format(name: str, media_type: str | None, body: bytes, fmt: str) -> None:
    assert document_format(BASE + name, 200, media_type, body, None) == fmt


@pytest.mark.parametrize(
    ("name", "media_type", "body", "message"),
    [
        ("logo.png", "image/png", b"\x89PNG", "not a document that can be indexed (Content-Type: image/png)"),
        ("data", "application/json", b'{"a": 1}', "no format that can be indexed"),
        ("doc.pdf", "application/pdf", b"<html>oops</html>", "does not start with %PDF-"),
        ("page", "text/html", b"%PDF-1.4 binary", "claims to be text/html but its body is binary"),
        ("blob", None, bytes(range(256)), "no format that can be indexed"),
    ],
)
def test_unreadable_documents_are_refused(name: str, media_type: str | None, body: bytes, message: str) -> None:
    with pytest.raises(UnsupportedContentError) as info:
        document_format(BASE + name, 200, media_type, body, None)
    assert message in str(info.value)


def test_markdown_headings_anchors_and_code() -> None:
    source = "\n".join(
        [
            "Setext title",
            "============",
            "",
            "```bash",
            "# not a heading inside a fence",
            "```",
            "",
            "## Install",
            "first",
            "## Install",
            "second",
            '## <a id="custom"></a>Custom anchor',
            "## Explicit {#chosen-id}",
            "## `fs.readFile(path[, options])`",
        ]
    )
    page, _ = extract_markdown(source, BASE + "page.md")
    assert page.title == "Setext title"
    assert [(s.heading, s.anchor) for s in page.sections[1:]] == [
        ("Install", "install"),
        ("Install", "install-1"),  # GitHub numbers repeated headings
        ("Custom anchor", "custom"),
        ("Explicit", "chosen-id"),
        ("fs.readFile(path[, options])", "fsreadfilepath-options"),
    ]
    assert "```bash\n# not a heading inside a fence\n```" in page.sections[0].markdown


def test_mdx_statements_and_comments_are_not_text() -> None:
    source = "import Tabs from '@theme/Tabs';\nexport const x = 1;\n\n# Title\n\n<!-- hidden -->\nVisible text.\n"
    page, _ = extract_markdown(source, BASE + "page.mdx")
    assert page.markdown == "# Title\n\nVisible text."


def test_markdown_links_are_absolute_and_collected() -> None:
    source = "# T\n\nSee [next](next.md), [top](/index.html), [x](javascript:alert(1)) and ![img](pic.png).\n"
    page, links = extract_markdown(source, BASE + "page.md")
    assert links == [BASE + "next.md", "https://docs.example.org/index.html"]
    assert f"[next]({BASE}next.md)" in page.markdown and "javascript:" not in page.markdown
    assert f"![img]({BASE}pic.png)" in page.markdown


def test_github_slug() -> None:
    assert github_slug("Class: `FileHandle`") == "class-filehandle"
    assert github_slug("NO_COLOR=<any>") == "no_colorany"
    assert github_slug("Événements ünïcode") == "événements-ünïcode"


def test_plain_text_and_long_lines() -> None:
    page, _ = extract_text("Release notes\n\nVersion 2 fixes *everything*.\n", BASE + "notes.txt")
    assert page.title == "Release notes" and len(page.sections) == 1 and page.sections[0].level == 0
    with pytest.raises(ExtractError, match="generated data"):
        extract_text("word " * 50_000, BASE + "big.txt")


def test_ten_megabyte_single_line_fails_in_the_worker() -> None:
    with pytest.raises(ExtractError, match="line of 10000000 characters"):
        extract_document_isolated("text", BASE + "huge.txt", 60, text="x" * 10_000_000)


def test_rst_with_unknown_directives_and_roles_still_reads() -> None:
    source = "Title\n=====\n\n.. frobnicate:: x\n\n   body\n\nUse :unknownrole:`thing` and :meth:`Obj.go`.\n"
    page, _ = extract_rst(source, BASE + "t.rst")
    assert page.title == "Title" and "`Obj.go`" in page.markdown


def test_notebook_fence_outgrows_backticks_in_code() -> None:
    notebook = {
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": "# Fences"},
            {
                "cell_type": "code",
                "metadata": {},
                "outputs": [],
                "execution_count": None,
                "source": 'md = """\n```\n"""',
            },
        ],
        "metadata": {"kernelspec": {"name": "ir", "language": "R", "display_name": "R"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    page, _ = extract_notebook(json.dumps(notebook), BASE + "n.ipynb")
    assert '````r\nmd = """\n```\n"""\n````' in page.markdown


def test_llms_full_without_sources_is_one_page() -> None:
    parts, _ = split_llms_full("# A\n\ntext a\n\n# B\n\ntext b\n", BASE + "llms-full.txt")
    assert len(parts) == 1 and parts[0][0] is None
    assert [s.heading for s in parts[0][1].sections] == ["A", "B"]


def test_llms_full_every_part_sourced_leaves_a_table_of_contents() -> None:
    found = extract_document(
        "llms-full", BASE + "llms-full.txt", text="# A\nSource: /a.html\n\nalpha\n\n# B\nURL: /b.html\n\nbeta\n"
    )
    assert [u for u, _ in found.parts] == ["https://docs.example.org/a.html", "https://docs.example.org/b.html"]
    assert "[A](https://docs.example.org/a.html)" in found.page.markdown
