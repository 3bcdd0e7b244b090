"""Tests for code symbol extraction from chunk markdown: code blocks, Sphinx signatures, real Python docs pages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_web_ingest.ingest.chunking import chunk_page
from mcp_web_ingest.ingest.extract import extract_page
from mcp_web_ingest.ingest.symbols import PageContext, extract_page_symbols, extract_symbols, is_symbol_like
from mcp_web_ingest.models import Symbol, symbol_keys

DOCS = Path("/usr/share/doc/python3.11/html")
SITE = Path(__file__).parent / "site_pages"


def defines(text: str) -> set[tuple[str, str, str]]:
    return {(s.name, s.kind, s.language) for s in extract_symbols(text) if s.role == "defines"}


def uses(text: str) -> set[str]:
    return {s.name for s in extract_symbols(text) if s.role == "uses"}


def fence(lang: str, code: str) -> str:
    return f"Some prose first.\n\n```{lang}\n{code}\n```\n\nAnd after."


CODE_CASES = [
    pytest.param(
        "python",
        "import asyncio\n\nclass Worker(Base):\n    async def run(self):\n        await asyncio.gather(a(), b())\n\n"
        "    def stop(self):\n        pass\n\ndef main():\n    asyncio.run(Worker().run())\n\nMAX_WORKERS = 4",
        {
            ("Worker", "class", "python"),
            ("Worker.run", "method", "python"),
            ("Worker.stop", "method", "python"),
            ("main", "function", "python"),
            ("MAX_WORKERS", "constant", "python"),
        },
        {"asyncio", "asyncio.gather", "asyncio.run"},
        id="python",
    ),
    pytest.param(
        "pycon",
        ">>> import json\n>>> def show(x):\n...     return json.dumps(x)\n>>> show({'a': 1})\n'{\"a\": 1}'",
        {("show", "function", "python")},
        {"json", "json.dumps"},
        id="pycon",
    ),
    pytest.param(
        "python",  # the Python docs tag sessions as python
        ">>> from itertools import groupby\n>>> [k for k, g in groupby('AAB')]\n['A', 'B']",
        set(),
        {"itertools.groupby"},
        id="python-session-resolves-import",
    ),
    pytest.param(
        "js",
        "import { useState } from 'react';\nfunction Counter() {\n  const [n, setN] = useState(0);\n"
        "  return api.client.fetch(n);\n}\nconst add = (a, b) => a + b;\nclass Store extends Base {\n"
        "  load() { return this.db.get(); }\n}\nconst LIMIT = 10;",
        {
            ("Counter", "function", "javascript"),
            ("add", "function", "javascript"),
            ("Store", "class", "javascript"),
            ("Store.load", "method", "javascript"),
            ("LIMIT", "constant", "javascript"),
        },
        {"useState", "api.client.fetch"},
        id="javascript",
    ),
    pytest.param(
        "typescript",
        "interface User { name: string }\ntype Id = string | number;\nexport function find(id: Id): User {}\n"
        "enum Color { Red }",
        {
            ("User", "type", "typescript"),
            ("Id", "type", "typescript"),
            ("find", "function", "typescript"),
            ("Color", "type", "typescript"),
        },
        set(),
        id="typescript",
    ),
    pytest.param(
        "sql",
        "CREATE EXTENSION IF NOT EXISTS pg_stat_statements;\nCREATE TABLE public.users (id int);\n"
        "CREATE OR REPLACE FUNCTION add_one(a int) RETURNS int AS $$ SELECT a + 1 $$ LANGUAGE sql;\n"
        "SELECT query, calls FROM pg_stat_statements JOIN roles ON true WHERE now() > ts;",
        {
            ("pg_stat_statements", "extension", "sql"),
            ("public.users", "table", "sql"),
            ("add_one", "function", "sql"),
        },
        {"roles", "now"},
        id="sql",
    ),
    pytest.param("bash", "pip install foo\nexport X=1\ncurl -s http://x | jq .a", set(), set(), id="bash"),
    pytest.param(
        "go",
        "package main\n\nfunc (s *Server) Handle(w int) {}\n\nfunc main() { fmt.Println(1) }\n\n"
        "type Point struct { X int }",
        {("Server.Handle", "method", "go"), ("main", "function", "go"), ("Point", "type", "go")},
        {"fmt.Println"},
        id="go",
    ),
    pytest.param(
        "rust",
        "struct P { x: i32 }\nimpl P {\n    fn new() -> Self { P { x: 1 } }\n}\n"
        "fn main() { let v = P::new(); std::mem::drop(v); }",
        {("P", "type", "rust"), ("P::new", "method", "rust"), ("main", "function", "rust")},
        {"std::mem::drop"},
        id="rust",
    ),
    pytest.param(
        "c",
        '#include <stdio.h>\nstatic int add(int a, int b) { return printf("%d", a + b); }\nstruct foo *p;',
        {("add", "function", "c")},
        {"printf"},
        id="c",
    ),
    pytest.param(
        "",  # untagged: detected as Python from its def line
        "def area(r):\n    return math.pi * r ** 2",
        {("area", "function", "python")},
        {"math.pi"},
        id="untagged-python",
    ),
    pytest.param(
        "",  # untagged and not recognisably any language: the regex fallback
        "output: 1 2 3\nresult = tools.compute(4)\ndefinitely not code",
        set(),
        {"tools.compute"},
        id="untagged-fallback",
    ),
]


@pytest.mark.parametrize(("lang", "code", "want_defines", "want_uses"), CODE_CASES)
def test_code_blocks(lang: str, code: str, want_defines: set, want_uses: set) -> None:
    text = fence(lang, code)
    assert defines(text) == want_defines
    assert want_uses <= uses(text)


def test_fenced_block_inside_list_item_is_dedented() -> None:
    text = "- Do this:\n\n  ```python\n  def helper():\n      return os.getcwd()\n  ```\n"
    assert defines(text) == {("helper", "function", "python")}
    assert "os.getcwd" in uses(text)


def test_a_chunk_that_defines_a_name_does_not_also_list_it_as_used() -> None:
    syms = extract_symbols(fence("python", "async def main():\n    pass\n\nasyncio.run(main())"))
    assert [s for s in syms if s.name == "main"] == [Symbol("main", "function", "python", "defines")]


SIGNATURES = [
    ("awaitable asyncio.gather(*aws, return_exceptions=False)", "asyncio.gather", "function"),
    ("asyncio.gather(*aws, return_exceptions=False)", "asyncio.gather", "function"),
    ("coroutine asyncio.sleep(delay, result=None)", "asyncio.sleep", "function"),
    ("itertools.groupby(iterable, key=None)", "itertools.groupby", "function"),
    ("class json.JSONEncoder(*, skipkeys=False, ensure_ascii=True)", "json.JSONEncoder", "class"),
    ("exception json.JSONDecodeError(msg, doc, pos)", "json.JSONDecodeError", "class"),
    ("json.dumps(obj, *, skipkeys=False, **kw)", "json.dumps", "function"),
    ("JSONEncoder.default(o)", "JSONEncoder.default", "method"),
    ("@functools.lru_cache(maxsize=128, typed=False)", "functools.lru_cache", "function"),
    ("time.monotonic() → float", "time.monotonic", "function"),
    ("itertools.islice(iterable, start, stop[, step])", "itertools.islice", "function"),
    ("token.LSQB", "token.LSQB", "constant"),
    ("typing.Optional", "typing.Optional", "type"),
    ("sys.ps2", "sys.ps2", "variable"),
    ("classmethod Path.cwd()", "Path.cwd", "method"),
    ("str.isascii()", "str.isascii", "method"),
]


@pytest.mark.parametrize(("line", "name", "kind"), SIGNATURES)
def test_sphinx_signature_lines(line: str, name: str, kind: str) -> None:
    assert extract_symbols(f"Intro.\n\n`{line}`\n\nWhat it does.") == [Symbol(name, kind, "python", "defines")]


@pytest.mark.parametrize(
    ("line", "name", "kind"),
    [
        ("int PyTuple_SetItem(PyObject *p, Py_ssize_t pos, PyObject *o)", "PyTuple_SetItem", "function"),
        ("PyObject *PyList_New(Py_ssize_t len)", "PyList_New", "function"),
        ("lenfunc PyMappingMethods.mp_length", "PyMappingMethods.mp_length", "attribute"),
        ("type PyObject", "PyObject", "type"),
        ("PyBUF_RECORDS", "PyBUF_RECORDS", "constant"),
    ],
)
def test_c_api_signature_lines(line: str, name: str, kind: str) -> None:
    assert extract_symbols(f"`{line}`") == [Symbol(name, kind, "c", "defines")]


@pytest.mark.parametrize(
    "line",
    [
        "x in s",  # operator entries of stdtypes
        "union_object == other",
        "-h, --help",  # command-line options
        "logging.Formatter('%(ip)s %(message)s', defaults=None)",  # an example call, not a signature
        "how do I do this",
    ],
)
def test_inline_code_lines_that_are_not_signatures(line: str) -> None:
    assert extract_symbols(f"`{line}`") == []


def test_inline_code_inside_prose_is_not_a_signature() -> None:
    assert extract_symbols("Call `asyncio.gather(a, b)` to run both.") == []


def test_members_without_prefix_belong_to_the_class_above() -> None:
    text = "`class json.JSONEncoder(*, skipkeys=False)`\n\nEncoder.\n\n`default(o)`\n\nOverride.\n\n`encoding`"
    assert defines(text) == {
        ("json.JSONEncoder", "class", "python"),
        ("json.JSONEncoder.default", "method", "python"),
        ("json.JSONEncoder.encoding", "attribute", "python"),
    }


def test_class_context_carries_across_chunks_of_a_section_only() -> None:
    ctx = PageContext()
    extract_symbols("`class asyncio.TaskGroup`", context=ctx)
    assert extract_symbols("`create_task(coro, *, name=None)`", context=ctx) == [
        Symbol("asyncio.TaskGroup.create_task", "method", "python", "defines")
    ]
    ctx = PageContext()
    extract_symbols("`class pathlib.Path(*pathsegments)`", context=ctx)
    extract_symbols("`os.getcwd()`", context=ctx)  # a module-level entry closes the class entry
    assert extract_symbols("`Path.glob(pattern)`", context=ctx) == [
        Symbol("pathlib.Path.glob", "method", "python", "defines")
    ]
    assert extract_symbols("`cancel()`", context=ctx) == [Symbol("cancel", "function", "python", "defines")]


def test_module_and_class_of_the_same_name() -> None:
    ctx = PageContext()
    extract_symbols("`class datetime.datetime(year, month, day)`", context=ctx)
    assert extract_symbols("`classmethod datetime.strptime(date_string, format)`", context=ctx)[0].name == (
        "datetime.datetime.strptime"
    )
    assert extract_symbols("`class datetime.timedelta(days=0)`", context=ctx)[0].name == "datetime.timedelta"


@pytest.mark.parametrize(
    "text",
    [
        "```python\ndef broken(:\n    ))) class\n```",
        "```js\nfunction ( { const = => }}}}\n```",
        "```sql\nCREATE TABLE\n```",
        "```go\nfunc (\n```",
        "```nosuchlanguage\nfoo.bar(1)\n```",
        "```python\n",  # unclosed fence
        "`class`",
        "``\n\n`()`\n\n`.`",
        "\x00\x01 ``` ` `` ```",
    ],
)
def test_garbage_does_not_raise(text: str) -> None:
    assert isinstance(extract_symbols(text), list)


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("`\n >.:(){}[]=,*@#-_aZ9\t'\"def classimport")), max_size=300))
def test_arbitrary_markdown_never_raises(text: str) -> None:
    for sym in extract_symbols(text):
        assert sym.name and sym.role in ("defines", "uses")


@settings(max_examples=60, deadline=None)
@given(lang=st.sampled_from(["python", "js", "sql", "go", "rust", "c", "", "pycon", "ts"]), code=st.text(max_size=200))
def test_arbitrary_code_never_raises(lang: str, code: str) -> None:
    extract_symbols(fence(lang, code.replace("```", "")))


@pytest.mark.parametrize(
    ("name", "keys"),
    [
        ("asyncio.gather", ["asyncio.gather", "gather"]),
        ("json.JSONEncoder.default", ["json.jsonencoder.default", "jsonencoder.default", "default"]),
        ("useState", ["usestate"]),
        ("std::vector", ["std::vector", "vector"]),
        ("@functools.cache", ["functools.cache", "cache"]),
        ("gather()", ["gather"]),
    ],
)
def test_symbol_keys(name: str, keys: list[str]) -> None:
    assert symbol_keys(name) == keys


@pytest.mark.parametrize(
    "query",
    ["asyncio.gather", "useState", "pg_stat_statements", "JSONEncoder.default", "std::vector", "gather()", "__init__",
     "`json.dumps`", "@dataclass", "JSONEncoder", "int64", "Array.prototype.map", "std::vector<int>"],
)  # fmt: skip
def test_symbol_like_queries(query: str) -> None:
    assert is_symbol_like(query)


@pytest.mark.parametrize(
    "query", ["how do I gather tasks", "gather", "Python", "HTTP", "e.g", "", "pretty-print JSON", "a b", "json dumps"]
)
def test_natural_language_queries(query: str) -> None:
    assert not is_symbol_like(query)


# --- real pages --------------------------------------------------------------------------------------------------


def page_symbols(path: Path, url: str) -> list[tuple[str, list[Symbol]]]:
    chunks = chunk_page(extract_page(path.read_text(encoding="utf-8"), url))
    return [(c.text, syms) for c, syms in zip(chunks, extract_page_symbols(chunks), strict=True)]


@pytest.fixture(scope="module")
def docs() -> Path:
    if not DOCS.is_dir():
        pytest.skip(f"{DOCS} is missing: install the python3.11-doc package to run the real-page tests")
    return DOCS


@pytest.mark.parametrize(
    ("page", "symbol"),
    [
        ("asyncio-task.html", Symbol("asyncio.gather", "function", "python", "defines")),
        ("asyncio-task.html", Symbol("asyncio.TaskGroup.create_task", "method", "python", "defines")),
        ("itertools.html", Symbol("itertools.groupby", "function", "python", "defines")),
        ("itertools.html", Symbol("itertools.chain.from_iterable", "method", "python", "defines")),
        ("json.html", Symbol("json.JSONEncoder.default", "method", "python", "defines")),
        ("pathlib.html", Symbol("pathlib.Path.glob", "method", "python", "defines")),
        ("functools.html", Symbol("functools.partial", "function", "python", "defines")),
    ],
)
def test_python_docs_define_each_api_in_one_chunk(docs: Path, page: str, symbol: Symbol) -> None:
    chunks = page_symbols(docs / "library" / page, f"https://docs.python.org/3/library/{page}")
    defining = [text for text, syms in chunks if symbol in syms]
    assert len(defining) == 1
    # The defining chunk holds the signature or, when the signature closes the chunk before, its description.
    index = next(i for i, (_, syms) in enumerate(chunks) if symbol in syms)
    text, before = chunks[index][0], chunks[index - 1][0] if index else ""
    short = symbol.name.rsplit(".", 1)[-1]
    sig = re.compile(rf"^\s*`[^`]*\b{short}\b[^`]*`\s*$", re.MULTILINE)
    inside = sig.search(text)
    assert (inside and text[inside.end() :].strip()) or sig.search(before.rstrip().rsplit("\n", 1)[-1])


def test_python_docs_examples_yield_uses(docs: Path) -> None:
    chunks = page_symbols(docs / "library/asyncio-task.html", "https://docs.python.org/3/library/asyncio-task.html")
    using = [text for text, syms in chunks if any(s.name == "asyncio.gather" and s.role == "uses" for s in syms)]
    assert using and all("asyncio.gather(" in text for text in using)


def test_test_site_code_uses_resolve_imports() -> None:
    chunks = page_symbols(SITE / "guide/config.html", "http://127.0.0.1/guide/config.html")
    names = {s.name for _, syms in chunks for s in syms}
    assert {"froobnicator.retention.RetentionPolicy", "froobnicator.retention.RetentionPolicy.load"} <= names
    # The TOML block of the same page names keys, not code symbols.
    assert not any(s.name == "window" for _, syms in chunks for s in syms)
