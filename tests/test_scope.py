"""Crawl scope: path/host/domain boundaries, user regexes, and the default exclusions with their include override."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_web_ingest.errors import InvalidInputError
from mcp_web_ingest.scope import DEFAULT_EXCLUSIONS, CrawlScope, default_exclusion, path_prefix, registrable_domain

START = "http://docs.example.com/guide/index.html"


@pytest.mark.parametrize(
    ("path", "prefix"),
    [
        ("/docs/index.html", "/docs/"),
        ("/docs/", "/docs/"),
        ("/docs", "/docs/"),  # no extension: read as a directory
        ("/3/library/json.html", "/3/library/"),
        ("/", "/"),
        ("/index.html", "/"),
        ("/v1.2", "/"),  # a dot makes the last segment a file name
    ],
)
def test_path_prefix(path: str, prefix: str) -> None:
    assert path_prefix(path) == prefix


@pytest.mark.parametrize(
    ("host", "domain"),
    [
        ("docs.example.com", "example.com"),
        ("example.com", "example.com"),
        ("a.b.c.example.org", "example.org"),
        ("www.bbc.co.uk", "bbc.co.uk"),
        ("shop.example.com.au", "example.com.au"),
        ("example.co.uk", "example.co.uk"),
        ("co.uk", "co.uk"),
        ("localhost", "localhost"),
        ("127.0.0.1", "127.0.0.1"),
        ("[::1]", "::1"),
        ("Docs.Example.COM.", "example.com"),
        ("x.com.de", "x.com.de"),  # the heuristic: a short SLD under any two-letter TLD
        ("a.b.company.io", "company.io"),
    ],
)
def test_registrable_domain(host: str, domain: str) -> None:
    assert registrable_domain(host) == domain


@pytest.mark.parametrize(
    ("scope", "url", "in_scope"),
    [
        ("path", "http://docs.example.com/guide/install.html", True),
        ("path", "http://docs.example.com/guide/", True),
        ("path", "http://docs.example.com/guide", True),
        ("path", "https://docs.example.com/guide/a.html", True),  # http → https upgrade stays in scope
        ("path", "http://docs.example.com/guide/deep/er/page.html", True),
        ("path", "http://docs.example.com/guidebook/a.html", False),
        ("path", "http://docs.example.com/", False),
        ("path", "http://docs.example.com:8080/guide/a.html", False),
        ("path", "http://www.example.com/guide/a.html", False),
        ("host", "http://docs.example.com/blog/post.html", True),
        ("host", "http://DOCS.example.com:80/x", True),
        ("host", "http://www.example.com/guide/a.html", False),
        ("domain", "http://www.example.com/anything", True),
        ("domain", "https://api.docs.example.com/x", True),
        ("domain", "http://example.org/guide/a.html", False),
        ("domain", "http://notexample.com/", False),
    ],
)
def test_scope_kinds(scope: str, url: str, in_scope: bool) -> None:
    reason = CrawlScope.create(START, scope=scope).check(url)  # type: ignore[arg-type]
    assert (reason is None) is in_scope, reason
    if not in_scope:
        assert reason is not None and reason.startswith("out of scope")


def test_out_of_scope_reason_names_the_scope() -> None:
    assert CrawlScope.create(START).check("http://h/x") == "out of scope (path http://docs.example.com/guide/)"
    assert CrawlScope.create(START, "host").check("http://h/x") == "out of scope (host docs.example.com)"
    assert CrawlScope.create(START, "domain").check("http://h/x") == "out of scope (domain example.com)"


@pytest.mark.parametrize(
    ("path", "category"),
    [
        ("logout", "login/logout"),
        ("account/log-out/", "login/logout"),
        ("login.php", "login/logout"),
        ("SignIn", "login/logout"),
        ("sign-up", "login/logout"),
        ("wp-login.php", "login/logout"),
        ("page?action=logout", "login/logout"),
        ("feed", "feed"),
        ("feed/", "feed"),
        ("blog/rss.xml", "feed"),
        ("atom", "feed"),
        ("news.rss", "feed"),
        ("?feed=rss2", "feed"),
        ("list?format=atom", "feed"),
        ("img/logo.PNG", "binary/asset (.png)"),
        ("photo.jpeg", "binary/asset (.jpeg)"),
        ("icons/x.svg", "binary/asset (.svg)"),
        ("dist/release.tar.gz", "binary/asset (.gz)"),
        ("files/archive.zip", "binary/asset (.zip)"),
        ("manual.pdf", "binary/asset (.pdf)"),
        ("fonts/a.woff2", "binary/asset (.woff2)"),
        ("_static/style.css", "binary/asset (.css)"),
        ("_static/app.js?v=3", "binary/asset (.js)"),
        ("media/talk.mp4", "binary/asset (.mp4)"),
        ("setup.exe", "binary/asset (.exe)"),
        ("page.html?print=1", "print view"),
        ("page?printable=yes", "print view"),
        ("print/page.html", "print view"),
        ("calendar/2024/01/", "calendar"),
        ("events?ical=1", "calendar"),
        ("list?sort=name", "sort/order"),
        ("list?order=desc&x=1", "sort/order"),
        ("files/?C=M;O=D", "sort/order"),
        ("list?page=51", "pagination (page=51 > 50)"),
        ("blog/page/99/", "pagination (/page/99 > 50)"),
        ("post?replytocom=123", "comment reply"),
        ("page?PHPSESSID=abc", "session id"),
        ("page;jsessionid=ABC", "session id"),
        ("page?sid=1", "session id"),
        ("wiki/Page?action=edit", "wiki action"),
        ("index.php?title=X&oldid=5", "wiki action"),
        ("a/b/a/b/a/b/", "repeated path segment"),
    ],
)
def test_default_exclusions(path: str, category: str) -> None:
    scope = CrawlScope.create(START)
    url = "http://docs.example.com/guide/" + path
    assert scope.check(url) == f"default exclusion: {category}"
    # An include pattern that matches the URL overrides the default exclusion.
    assert CrawlScope.create(START, include=[r"/guide/"]).check(url) is None


@pytest.mark.parametrize(
    "path",
    [
        "index.html",
        "install.html#linux",
        "api/logging.html",  # 'log' inside a word is not a login page
        "library/json.html",
        "blog/2019/01/02/release-notes.html",  # date paths hold posts
        "reference/feedback.html",
        "guides/printing.html",
        "tutorials/calendars.html",
        "list?page=2",
        "blog/page/3/",
        "search.html?q=sort",
        "v2.1/changes",
        "data.json",
        "a/b/a/b/",
        "api/Order.html",
        "?C=N",
    ],
)
def test_documentation_urls_are_kept(path: str) -> None:
    assert CrawlScope.create(START).check("http://docs.example.com/guide/" + path) is None


def test_every_default_exclusion_is_documented() -> None:
    names = [name for name, _ in DEFAULT_EXCLUSIONS]
    assert len(names) == len(set(names))
    assert all(description for _, description in DEFAULT_EXCLUSIONS)
    for category in ("login/logout", "feed", "binary/asset", "print view", "calendar", "pagination", "session id"):
        assert category in names


def test_user_patterns() -> None:
    scope = CrawlScope.create(START, include=[r"\.pdf$"], exclude=[r"/guide/old/", r"draft"])
    assert scope.check("http://docs.example.com/guide/old/a.html") == "excluded by pattern '/guide/old/'"
    assert scope.check("http://docs.example.com/guide/draft-2.html") == "excluded by pattern 'draft'"
    assert scope.check("http://docs.example.com/guide/manual.pdf") is None  # include rescues the PDF
    assert scope.check("http://docs.example.com/guide/page.html") == "not matched by any include pattern"
    assert (
        CrawlScope.create(START, exclude=["zzz"])
        .check("http://docs.example.com/guide/logo.png")
        .startswith("default exclusion")
    )
    # Exclude beats include; include does not widen the scope.
    assert scope.check("http://docs.example.com/guide/old/manual.pdf") == "excluded by pattern '/guide/old/'"
    assert scope.check("http://docs.example.com/other/manual.pdf").startswith("out of scope")


def test_patterns_see_the_normalised_url() -> None:
    scope = CrawlScope.create(START, exclude=[r"\?a=1&b=2$"])
    assert scope.check("http://DOCS.example.com:80/guide/x?b=2&a=1#frag") is not None


def test_max_page_setting() -> None:
    url = "http://docs.example.com/guide/list?page=7"
    assert CrawlScope.create(START, max_page=5).check(url) == "default exclusion: pagination (page=7 > 5)"
    assert default_exclusion(url, max_page=10) is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"include": ["("]}, "Invalid include regular expression '('"),
        ({"exclude": ["ok", "[a-"]}, "Invalid exclude regular expression '[a-'"),
        ({"exclude": [""]}, "exclude patterns must be non-empty"),
        ({"scope": "site"}, "scope must be 'path', 'host' or 'domain'"),
    ],
)
def test_invalid_input(kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message.replace("(", r"\(").replace("[", r"\[")):
        CrawlScope.create(START, **kwargs)


def test_a_lone_string_pattern_is_one_pattern() -> None:
    assert CrawlScope.create(START, exclude="abc").exclude[0].pattern == "abc"  # type: ignore[arg-type]


@pytest.mark.parametrize("url", ["", "ftp://docs.example.com/guide/a", "/guide/a.html", "http://", "mailto:x@y"])
def test_invalid_urls(url: str) -> None:
    assert CrawlScope.create(START).check(url) == "invalid URL"


def test_invalid_start_url() -> None:
    with pytest.raises(InvalidInputError):
        CrawlScope.create("not a url")


@settings(max_examples=300, deadline=None)
@given(
    path=st.text(max_size=80),
    query=st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=8), max_size=4),
    scope=st.sampled_from(["path", "host", "domain"]),
)
def test_check_never_crashes(path: str, query: dict[str, str], scope: str) -> None:
    qs = "&".join(f"{k}={v}" for k, v in query.items())
    for url in (f"http://docs.example.com/{path}?{qs}", path):
        reason = CrawlScope.create(START, scope=scope).check(url)  # type: ignore[arg-type]
        assert reason is None or isinstance(reason, str)
