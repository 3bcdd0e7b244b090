"""Property-based tests the per-module suites lack: arbitrary URL text, arbitrary tag soup, and extract → chunk.

test_urls.py already proves idempotence on well-formed URLs and test_chunking.py the chunk limits on generated
markdown; here the inputs are hostile (any text, any markup) and the stages are chained as the pipeline chains them.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcp_web_ingest.errors import ExtractError, InvalidInputError
from mcp_web_ingest.ingest.chunking import chunk_page, count_tokens, strip_link_targets
from mcp_web_ingest.ingest.extract import extract_page
from mcp_web_ingest.ingest.urls import normalize_url, validate_url

_FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- URLs -------------------------------------------------------------------------------------------------------

_url_char = st.one_of(
    st.sampled_from(list("aZ09-._~%/?#&=+:@[]!$'()*,; \\\t\x00éü€😀")),
    st.characters(codec="utf-8", exclude_categories=["Cs"]),
)
_junk = st.text(alphabet=_url_char, max_size=60)
_hostish = st.one_of(
    st.sampled_from(["example.com", "EXAMPLE.org.", "bücher.example", "xn--bcher-kva.example", "127.0.0.1", "[::1]"]),
    st.sampled_from(["[fe80::1%25eth0]", "user:pw@example.com", "example.com:0", "example.com:65536", "[::1"]),
    st.text(alphabet=_url_char, max_size=15),
)


def _dot_host(url: str) -> bool:
    """A host of only '.' (see test_dot_host_is_rejected): excluded from the properties until urls.py refuses it."""
    netloc = url.split("://", 1)[-1].split("/", 1)[0].rsplit("@", 1)[-1]
    return netloc.split(":", 1)[0] == "."


@_FAST
@given(text=_junk)
def test_validate_and_normalize_never_crash_on_any_text(text: str) -> None:
    for candidate in (text, "http://" + text, "https://example.com/" + text):
        try:
            once = normalize_url(candidate)
        except InvalidInputError:
            continue
        if not _dot_host(candidate.strip()):
            assert normalize_url(once) == once


def test_dot_host_is_rejected() -> None:
    with pytest.raises(InvalidInputError):
        normalize_url("http://.:80/x")


@_FAST
@given(
    scheme=st.sampled_from(["http", "https", "HtTpS"]),
    host=_hostish,
    rest=_junk,
)
def test_normalize_is_idempotent_on_messy_urls(scheme: str, host: str, rest: str) -> None:
    url = f"{scheme}://{host}/{rest}"
    if _dot_host(url.strip()):
        return
    try:
        once = normalize_url(url)
    except InvalidInputError:
        return
    assert normalize_url(once) == once
    assert validate_url(once) == once
    assert "#" not in once and once.split("://", 1)[0] in ("http", "https")


# --- extraction ---------------------------------------------------------------------------------------------------

_TAGS = ["div", "p", "span", "b", "i", "a", "h1", "h2", "h3", "ul", "ol", "li", "pre", "code", "table", "tr", "td"]
_TAGS += ["th", "nav", "header", "footer", "main", "article", "section", "script", "style", "br", "img", "dl", "dt"]
# No '<' in words: "<" + a permalink's "<a ...>" would make one bogus tag and turn the anchor's '¶' into page text.
_word = st.text(alphabet=st.sampled_from("abcdefghij klm>&;#\"'`*_[]()|\\-\n"), min_size=1, max_size=20)
# Sphinx and MkDocs permalink markers: the only '¶' the soup contains, and none may reach the markdown.
_permalink = st.sampled_from(
    ['<a class="headerlink" href="#x" title="Link to this heading">¶</a>', '<a class="headerlink" href="#y">¶</a>']
)
_attr = st.sampled_from(["", ' id="x"', ' class="language-python"', ' href="/a b"', ' role="navigation"', " hidden"])
_piece = st.one_of(
    _word,
    _permalink,
    st.builds(lambda t, a: f"<{t}{a}>", st.sampled_from(_TAGS), _attr),
    st.builds(lambda t: f"</{t}>", st.sampled_from(_TAGS)),
    st.sampled_from(["<!--", "-->", "<![CDATA[", "&amp", "&#0;", "&#x110000;", "<!DOCTYPE html>", "\x00", "\ufeff"]),
)
_soup = st.lists(_piece, max_size=80).map("".join)


@_FAST
@given(html=_soup)
def test_extraction_of_any_markup_never_crashes_and_has_no_pilcrow(html: str) -> None:
    try:
        page = extract_page(html, "https://example.com/soup")
    except ExtractError:
        return
    assert page.markdown.strip()
    assert "\x00" not in page.markdown
    if "<!-" not in html and "<![" not in html:  # a comment or CDATA opener swallows a permalink's start tag
        assert "¶" not in page.markdown and all("¶" not in s.heading for s in page.sections)


_text_block = st.lists(st.text(alphabet="abcdefgh ijkl", min_size=1, max_size=12), min_size=1, max_size=30)


@_FAST
@given(
    blocks=st.lists(
        st.tuples(st.sampled_from(["h2", "h3", "p", "pre", "li"]), _text_block.map(" ".join)), min_size=1, max_size=12
    ),
    max_tokens=st.integers(min_value=32, max_value=200),
    overlap=st.integers(min_value=0, max_value=31),
)
def test_extract_then_chunk_covers_the_text_within_limits(
    blocks: list[tuple[str, str]], max_tokens: int, overlap: int
) -> None:
    """The pipeline's own chain: every word of the extracted page lands in some chunk; sizes hold."""
    body = "".join(f"<ul><li>{t}</li></ul>" if tag == "li" else f"<{tag}>{t}</{tag}>" for tag, t in blocks)
    try:
        page = extract_page(f"<html><head><title>T</title></head><body><main>{body}</main></body></html>", "http://e/")
    except ExtractError:
        return
    chunks = chunk_page(page, max_tokens=max_tokens, overlap_tokens=overlap)
    assert chunks and [c.ordinal for c in chunks] == list(range(len(chunks)))
    words_in = {w for s in page.sections for w in strip_link_targets(s.markdown).split() if w.strip("`#-*")}
    words_out = {w for c in chunks for w in c.text.split()}
    assert {w.strip("`") for w in words_in} <= {w.strip("`") for w in words_out}
    for c in chunks:
        assert c.text.strip() and c.token_count == count_tokens(c.text)
        if c.token_count > max_tokens:  # only one unsplittable line (with its code fences) may exceed the limit
            lines = [ln for ln in c.text.split("\n") if ln.strip() and not ln.startswith("```")]
            assert len(lines) == 1, c.text
