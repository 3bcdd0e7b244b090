"""Tests for URL validation and normalisation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_web_ingest.errors import InvalidInputError
from mcp_web_ingest.ingest.urls import MAX_URL_LENGTH, normalize_url, validate_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("  https://example.com/page  ", "https://example.com/page"),
        ("http://localhost:8080/x", "http://localhost:8080/x"),
        ("HTTPS://Example.com", "HTTPS://Example.com"),
        ("http://[::1]:8000/", "http://[::1]:8000/"),
        ("https://example.com/a b", "https://example.com/a b"),  # normalize_url percent-encodes the space
    ],
)
def test_validate_accepts(url: str, expected: str) -> None:
    assert validate_url(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "empty"),
        ("   \t", "empty"),
        ("foo/bar", "must be absolute and start with http:// or https:// (got 'foo/bar')"),
        ("example.com", "must be absolute"),
        ("localhost:8080/x", "must be absolute"),
        ("//example.com/x", "must be absolute"),
        ("https:/example.com", "must be absolute"),
        ("file:///etc/passwd", "scheme 'file'"),
        ("ftp://example.com/f", "scheme 'ftp'"),
        ("data:text/html,hi", "scheme 'data'"),
        ("javascript:alert(1)", "scheme 'javascript'"),
        ("mailto:a@example.com", "scheme 'mailto'"),
        ("http:///path", "no host"),
        ("http://exa mple.com/", "spaces"),
        ("http://example.com:99999/", "port"),
        ("http://example.com:abc/", "port"),
        ("http://a..b/", "not a valid host"),
        ("http://exa\nmple.com/", "control characters"),
        ("https://example.com/" + "a" * MAX_URL_LENGTH, "limit is 2048"),
    ],
)
def test_validate_rejects_with_actionable_message(url: str, message: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        validate_url(url)
    assert message in str(info.value)


def test_validate_rejects_non_string() -> None:
    with pytest.raises(InvalidInputError):
        validate_url(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("HTTP://Example.COM", "http://example.com/"),
        ("http://example.com:80/a", "http://example.com/a"),
        ("https://example.com:443/a", "https://example.com/a"),
        ("https://example.com:8443/a", "https://example.com:8443/a"),
        ("https://example.com/a#section", "https://example.com/a"),
        ("https://example.com/a/./b/../c", "https://example.com/a/c"),
        ("https://example.com/../../a", "https://example.com/a"),
        ("https://example.com/a/..", "https://example.com/"),
        ("https://example.com/?b=2&a=1", "https://example.com/?a=1&b=2"),
        ("https://example.com/?a=2&b=1&a=1", "https://example.com/?a=2&a=1&b=1"),  # repeated names keep order
        ("https://example.com/?", "https://example.com/"),
        ("https://example.com/?a=1&&b=", "https://example.com/?a=1&b="),
        ("https://example.com/%7euser", "https://example.com/~user"),
        ("https://example.com/a%2fb", "https://example.com/a%2Fb"),
        ("https://example.com/a b", "https://example.com/a%20b"),
        ("https://example.com/100%", "https://example.com/100%25"),
        ("https://example.com/?q=a%2bb&r=a+b", "https://example.com/?q=a%2Bb&r=a+b"),
        ("https://example.com/?x=%26", "https://example.com/?x=%26"),
        ("http://Bücher.example/ä", "http://xn--bcher-kva.example/%C3%A4"),
        ("http://example.com./x", "http://example.com/x"),
        ("http://[::1]:80/x", "http://[::1]/x"),
        ("http://user:pw@Example.com/", "http://example.com/"),  # credentials are never part of a URL kept
    ],
)
def test_normalize(url: str, expected: str) -> None:
    assert normalize_url(url) == expected


def test_normalize_validates() -> None:
    with pytest.raises(InvalidInputError):
        normalize_url("ftp://example.com/")


_segment = st.text(alphabet=st.sampled_from(list("aZ09-._~%/?&=+ #éü.")), max_size=12)
_host = st.sampled_from(["example.com", "EXAMPLE.org", "bücher.example", "localhost", "127.0.0.1", "[::1]"])


@settings(max_examples=300, deadline=None)
@given(
    scheme=st.sampled_from(["http", "https", "HTTP"]),
    host=_host,
    port=st.sampled_from(["", ":80", ":443", ":8080"]),
    path=st.lists(_segment, max_size=4),
    query=st.lists(st.tuples(_segment, _segment), max_size=4),
)
def test_normalize_is_idempotent(
    scheme: str, host: str, port: str, path: list[str], query: list[tuple[str, str]]
) -> None:
    url = f"{scheme}://{host}{port}/" + "/".join(path)
    if query:
        url += "?" + "&".join(f"{k}={v}" for k, v in query)
    once = normalize_url(url)
    assert normalize_url(once) == once
    assert "#" not in once
    assert validate_url(once) == once
