"""Tests for the heading-aware and fixed-size chunkers."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_web_ingest.errors import InvalidInputError
from mcp_web_ingest.ingest.chunking import chunk_fixed, chunk_page, count_tokens, strip_link_targets
from mcp_web_ingest.models import ExtractedPage, Section, sha256_hex


def _page(*sections: Section, title: str = "Guide") -> ExtractedPage:
    return ExtractedPage(title=title, sections=sections)


def _sec(markdown: str, level: int = 2, heading: str = "Usage", anchor: str | None = "usage", path=None) -> Section:
    return Section(level=level, heading=heading, anchor=anchor, markdown=markdown, path=path or (heading,))


def _sentences(n: int, words: int = 9) -> str:
    return " ".join(f"Sentence {i} " + " ".join(f"w{i}x{j}" for j in range(words)) + "." for i in range(n))


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", 0), ("hello world", 2), ("json.dumps(obj)", 6), ("  \n\t ", 0), ("naïve café", 2), ("a_b-c", 3)],
)
def test_count_tokens(text: str, expected: int) -> None:
    assert count_tokens(text) == expected


def test_small_page_is_one_chunk_with_path_anchor_and_hash() -> None:
    page = _page(_sec("Hello there.\n\nSecond paragraph."))
    [chunk] = chunk_page(page)
    assert chunk.text == "Hello there.\n\nSecond paragraph."
    assert chunk.section_path == ("Guide", "Usage")
    assert chunk.anchor == "usage"
    assert chunk.ordinal == 0
    assert chunk.token_count == count_tokens(chunk.text)
    assert chunk.content_hash == sha256_hex(chunk.embed_text)


def test_title_not_duplicated_and_empty_sections_dropped() -> None:
    page = _page(
        Section(level=1, heading="Guide", anchor="top", markdown="Intro text.", path=()),
        Section(level=2, heading="Empty", anchor="empty", markdown="  ", path=("Empty",)),
        Section(level=3, heading="Child", anchor=None, markdown="Child text.", path=("Guide", "Empty", "Child")),
    )
    chunks = chunk_page(page)
    assert [c.text for c in chunks] == ["Intro text.", "Child text."]
    assert chunks[0].section_path == ("Guide",)
    assert chunks[1].section_path == ("Guide", "Empty", "Child")
    assert chunks[1].anchor == "empty"  # nearest ancestor with an anchor
    assert [c.ordinal for c in chunks] == [0, 1]


def test_anchor_inheritance_stops_at_siblings() -> None:
    page = _page(
        Section(level=2, heading="A", anchor="a", markdown="a text", path=("A",)),
        Section(level=2, heading="B", anchor=None, markdown="b text", path=("B",)),
        Section(level=0, heading="", anchor=None, markdown="x", path=()),
    )
    assert [c.anchor for c in chunk_page(page)] == ["a", None, None]


def test_long_section_splits_with_overlap_and_limits() -> None:
    text = _sentences(40)
    chunks = chunk_page(_page(_sec(text)), max_tokens=64, overlap_tokens=16)
    assert len(chunks) > 5
    assert all(c.token_count <= 64 for c in chunks)
    for prev, nxt in itertools.pairwise(chunks):
        first_sentence = re.split(r"(?<=\.)\s", nxt.text)[0]
        assert first_sentence in prev.text  # the next chunk opens with the previous chunk's last sentence
    assert all(c.section_path == ("Guide", "Usage") for c in chunks)


def test_zero_overlap() -> None:
    chunks = chunk_page(_page(_sec(_sentences(30))), max_tokens=64, overlap_tokens=0)
    joined = " ".join(c.text for c in chunks)
    assert joined == _sentences(30)


def test_code_block_kept_whole_when_it_fits() -> None:
    code = "```python\n" + "\n".join(f"x{i} = {i}" for i in range(10)) + "\n```"
    md = _sentences(5) + "\n\nFor example:\n\n" + code + "\n\n" + _sentences(2)
    chunks = chunk_page(_page(_sec(md)), max_tokens=80, overlap_tokens=16)
    holders = [c for c in chunks if "```python" in c.text]
    assert len(holders) == 1
    assert code in holders[0].text
    assert holders[0].text.startswith("For example:")  # the lead-in moves with its code


def test_oversize_code_block_split_on_lines_with_fences() -> None:
    lines = [f"value_{i} = compute({i}, {i + 1})" for i in range(60)]
    md = "```js\n" + "\n".join(lines) + "\n```"
    chunks = chunk_page(_page(_sec(md)), max_tokens=64, overlap_tokens=16)
    assert len(chunks) > 1
    body_lines = []
    for c in chunks:
        assert c.text.startswith("```js\n") and c.text.endswith("\n```")
        assert c.token_count <= 64
        body_lines.extend(c.text.split("\n")[1:-1])
    assert body_lines == lines  # every line once, in order: no overlap inside code


def test_indented_fence_in_list_is_code() -> None:
    md = "- item one\n\n  ```bash\n  echo hi\n\n  echo there\n  ```\n\n- item two"
    chunks = chunk_page(_page(_sec(md)))
    assert "  ```bash\n  echo hi\n\n  echo there\n  ```" in chunks[0].text


def test_long_table_repeats_header() -> None:
    rows = "\n".join(f"| name{i} | value {i} and some words |" for i in range(40))
    md = "| Name | Value |\n| --- | --- |\n" + rows
    chunks = chunk_page(_page(_sec(md)), max_tokens=80, overlap_tokens=0)
    assert len(chunks) > 1
    assert all(c.text.startswith("| Name | Value |\n| --- | --- |") for c in chunks)
    assert all(c.token_count <= 80 for c in chunks)


def test_single_oversize_word_is_alone_and_allowed() -> None:
    word = "-" * 300
    chunks = chunk_page(_page(_sec(f"Before. {word} After.")), max_tokens=50, overlap_tokens=0)
    assert [c.text for c in chunks] == ["Before.", word, "After."]


def test_links_stripped_by_default_and_kept_on_request() -> None:
    md = "See [the docs](https://example.com/docs#x) and ![logo](https://e.com/l.png).\n\n```\n[a](b)\n```"
    assert strip_link_targets(md) == "See the docs and logo.\n\n```\n[a](b)\n```"
    [chunk] = chunk_page(_page(_sec(md)))
    assert "https://" not in chunk.text and "[a](b)" in chunk.text
    [kept] = chunk_page(_page(_sec(md)), keep_links=True)
    assert "(https://example.com/docs#x)" in kept.text


def test_heading_only_page_still_yields_a_chunk() -> None:
    page = _page(Section(level=1, heading="Only A Heading", anchor=None, markdown="", path=("Only A Heading",)))
    [chunk] = chunk_page(page)
    assert chunk.text == "Only A Heading"


@pytest.mark.parametrize(("max_tokens", "overlap"), [(0, 0), (10, -1)])
def test_invalid_sizes(max_tokens: int, overlap: int) -> None:
    with pytest.raises(InvalidInputError):
        chunk_page(_page(_sec("x")), max_tokens=max_tokens, overlap_tokens=overlap)
    with pytest.raises(InvalidInputError):
        chunk_fixed("x", "t", max_tokens=max_tokens, overlap_tokens=overlap)


def test_chunk_fixed_windows_and_overlap() -> None:
    words = [f"w{i}" for i in range(100)]
    chunks = chunk_fixed(" ".join(words), "Title", max_tokens=20, overlap_tokens=5)
    assert all(c.section_path == ("Title",) and c.anchor is None for c in chunks)
    assert all(c.token_count <= 20 for c in chunks)
    assert chunks[0].text.split() == words[:20]
    assert chunks[1].text.split()[:5] == words[15:20]
    assert chunks[-1].text.split()[-1] == "w99"
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    assert chunk_fixed("   ", "T") == []


_word = st.text(alphabet=st.sampled_from(list("abcXYZ019_.,:;!?()-*'\"é")), min_size=1, max_size=12)
_line = st.lists(_word, min_size=1, max_size=25).map(" ".join)
_para = st.lists(_line, min_size=1, max_size=4).map("\n".join)
_list = st.lists(_line, min_size=1, max_size=6).map(lambda items: "\n".join("- " + i for i in items))
_code = st.lists(_line, min_size=0, max_size=30).map(lambda ls: "```py\n" + "\n".join(ls) + "\n```")
_table = st.lists(_line, min_size=1, max_size=8).map(
    lambda r: "| A | B |\n| --- | --- |\n" + "\n".join(f"| {x} |" for x in r)
)
_markdown = st.lists(st.one_of(_para, _list, _code, _table), min_size=1, max_size=8).map("\n\n".join)


@settings(max_examples=200, deadline=None)
@given(
    bodies=st.lists(_markdown, min_size=1, max_size=3),
    max_tokens=st.integers(min_value=16, max_value=120),
    overlap=st.integers(min_value=0, max_value=40),
)
def test_chunk_page_properties(bodies: list[str], max_tokens: int, overlap: int) -> None:
    page = _page(*(_sec(b, heading=f"H{i}", anchor=f"h{i}") for i, b in enumerate(bodies)))
    chunks = chunk_page(page, max_tokens=max_tokens, overlap_tokens=overlap)
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    assert all(c.text.strip() for c in chunks)
    for i, body in enumerate(bodies):
        texts = [c.text for c in chunks if c.anchor == f"h{i}"]
        words_out = {w for t in texts for w in t.split()}
        assert set(body.split()) <= words_out  # every word of the section survives
    for c in chunks:
        assert c.token_count == count_tokens(c.text)
        if c.token_count > max_tokens:
            # Only a single line (or word) that cannot be split may exceed the limit, with its fence lines.
            content = [ln for ln in c.text.split("\n") if not ln.startswith(("```", "| A | B |", "| --- |"))]
            assert len(content) == 1, c.text


@settings(max_examples=100, deadline=None)
@given(text=st.lists(_word, max_size=300).map(" ".join), max_tokens=st.integers(1, 60), overlap=st.integers(0, 30))
def test_chunk_fixed_properties(text: str, max_tokens: int, overlap: int) -> None:
    chunks = chunk_fixed(text, "T", max_tokens=max_tokens, overlap_tokens=overlap)
    assert {w for c in chunks for w in c.text.split()} == set(text.split())
    for c in chunks:
        assert c.token_count <= max_tokens or len(c.text.split()) == 1


def test_no_chunk_is_only_overlap() -> None:
    # A lead-in ("Note") right after an overlap tail must not leave a chunk of overlap alone.
    md = "\n\n".join([_sentences(6, words=7), "Note", _sentences(4, words=7)])  # sentences of 10 tokens
    chunks = chunk_page(_page(_sec(md)), max_tokens=60, overlap_tokens=20)
    assert chunks[-1].text.startswith("Note\n\nSentence 0")
    for prev, nxt in itertools.pairwise(chunks):
        assert not prev.text.endswith(nxt.text) and nxt.text not in prev.text
