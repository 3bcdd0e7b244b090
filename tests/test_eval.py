"""tools/eval.py: page-level metrics on hand-made rankings, the shipped question sets, corpus selection, and small
in-process runs."""

from __future__ import annotations

import argparse
import html
import json
import math
import re
from pathlib import Path

import pytest

from mcp_web_ingest.runtime import Runtime
from tools.eval import (
    DEFAULT_QUESTIONS,
    Question,
    aggregate,
    choose_pages,
    evaluate,
    evaluate_corpus,
    list_pages,
    load_questions,
    page_url,
    parse_args,
    percentile,
    serve_dir,
)
from tools.eval_corpora import CORPORA, Corpus, select_corpora
from tools.eval_metrics import (
    METRICS,
    dedupe,
    hit_at,
    kind_table,
    markdown_table,
    ndcg_at,
    reciprocal_rank,
    score_ranking,
)

from .conftest import PYTHON_DOCS

REL = {"a", "b"}


@pytest.mark.parametrize(
    ("ranked", "k", "expected"),
    [(["a"], 1, 1.0), (["x", "a"], 1, 0.0), (["x", "y", "b"], 5, 1.0), ([], 10, 0.0), (["x"] * 12 + ["a"], 10, 0.0)],
)
def test_hit_at(ranked: list[str], k: int, expected: float) -> None:
    """A hit needs a relevant page within the first k."""
    assert hit_at(ranked, REL, k) == expected


@pytest.mark.parametrize(
    ("ranked", "expected"),
    [(["a"], 1.0), (["x", "b"], 0.5), (["x", "y", "z", "a", "b"], 0.25), (["x"] * 10 + ["a"], 0.0), ([], 0.0)],
)
def test_reciprocal_rank(ranked: list[str], expected: float) -> None:
    """MRR@10 counts only the first relevant page, and only within the top 10."""
    assert reciprocal_rank(ranked, REL) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("ranked", "rel", "expected"),
    [
        (["a", "b"], {"a", "b"}, 1.0),
        (["a"], {"a"}, 1.0),
        (["x", "a"], {"a"}, 1 / math.log2(3)),
        (["x", "a", "b"], {"a", "b"}, (1 / math.log2(3) + 1 / math.log2(4)) / (1 + 1 / math.log2(3))),
        (["a", "x"], {"a", "b"}, 1 / (1 + 1 / math.log2(3))),
        (["x", "y"], {"a"}, 0.0),
    ],
)
def test_ndcg(ranked: list[str], rel: set[str], expected: float) -> None:
    """Binary nDCG@10 normalised by the ideal ranking of all relevant pages."""
    assert ndcg_at(ranked, rel) == pytest.approx(expected)


def test_score_ranking_dedupes_pages_in_rank_order() -> None:
    """Chunks of one page count once, at the page's first position."""
    ranked = ["x", "x", "x", "a", "a", "b"]
    assert dedupe(ranked) == ["x", "a", "b"]
    scores = score_ranking(ranked, REL)
    assert scores["hit@1"] == 0.0
    assert scores["mrr@10"] == pytest.approx(0.5)
    assert set(scores) == set(METRICS)


def test_aggregate_and_percentile() -> None:
    """Means over questions; interpolated percentiles."""
    rows = [{"metrics": dict.fromkeys(METRICS, v), "ms": ms} for v, ms in ((1.0, 10.0), (0.0, 30.0))]
    summary = aggregate(rows)
    assert summary["mrr@10"] == 0.5
    assert summary["p50_ms"] == 20.0
    assert percentile([1, 2, 3, 4, 5], 0.95) == pytest.approx(4.8)
    assert percentile([], 0.5) == 0.0
    assert "| hybrid |" in markdown_table({"hybrid": summary})
    table = kind_table({"hybrid": {"api": summary, "error": summary}}, {"error": 1, "api": 2})
    assert "api (n=2) MRR@10 / Hit@5 | error (n=1)" in table
    assert "| hybrid | 0.500 / 0.500 | 0.500 / 0.500 |" in table


def test_page_url_and_choose_pages() -> None:
    """Relative paths resolve under the base URL; relevant pages come first and the limit holds."""
    assert page_url("http://127.0.0.1:1/", "library/json.html") == "http://127.0.0.1:1/library/json.html"
    assert page_url("http://h", "https://other.example/x") == "https://other.example/x"
    qs = [Question("q", ("c.html", "missing.html"))]
    chosen = choose_pages([f"{c}.html" for c in "abcdefgh"], qs, limit=4)
    assert chosen[0] == "c.html"
    assert len(chosen) == 4
    assert "missing.html" not in chosen


@pytest.mark.parametrize(("name", "minimum"), [("python", 40), ("django", 60), ("nodejs", 60)])
def test_question_set_answers_are_on_their_pages(name: str, minimum: int) -> None:
    """Each shipped set is big enough, and every answer page exists and contains the question's evidence string."""
    corpus = CORPORA[name]
    if not corpus.docs_dir.is_dir():
        pytest.skip(f"{corpus.package} is not installed (apt-get install {corpus.package})")
    lines = [json.loads(line) for line in corpus.questions.read_text().splitlines() if line.strip()]
    assert len(lines) >= minimum
    assert len(load_questions(corpus.questions)) == len(lines)
    assert len({item["q"] for item in lines}) == len(lines), "duplicate questions"
    cache: dict[str, str] = {}
    for item in lines:
        assert item["rel"] and item["evidence"], item["q"]
        for rel in item["rel"]:
            path = corpus.docs_dir / rel
            assert path.is_file(), rel
            if rel not in cache:  # grep the page's text: the HTML without its tags
                cache[rel] = html.unescape(re.sub(r"<[^>]+>", "", path.read_text(encoding="utf-8")))
            assert item["evidence"] in cache[rel], (item["q"], rel)


def test_django_set_mixes_kinds_of_questions() -> None:
    """The Django set labels every question how-to, error message or API name, with a fair share of each."""
    kinds = [q.kind for q in load_questions(CORPORA["django"].questions)]
    assert set(kinds) == {"howto", "error", "api"}
    assert min(kinds.count(k) for k in ("error", "api")) >= 10


def test_nodejs_set_answers_are_in_the_markdown_twins_too() -> None:
    """The Node.js set points only at module pages (never all.html, the one-page copy of all of them), spreads over
    many modules and kinds, and each evidence string is in the Markdown source of every answer page as well."""
    corpus = CORPORA["nodejs"]
    if not corpus.docs_dir.is_dir():
        pytest.skip(f"{corpus.package} is not installed (apt-get install {corpus.package})")
    pages = set(list_pages(corpus.docs_dir, corpus.exclude))
    assert "all.html" not in pages and "fs.html" in pages
    items = [json.loads(line) for line in corpus.questions.read_text().splitlines() if line.strip()]
    assert {item["kind"] for item in items} == {"howto", "error", "api"}
    assert len({rel for item in items for rel in item["rel"]}) >= 25
    for item in items:
        for rel in item["rel"]:
            assert rel in pages, (item["q"], rel)
            twin = (corpus.docs_dir / rel).with_suffix(".md")
            assert item["evidence"] in twin.read_text(encoding="utf-8"), (item["q"], twin.name)


async def test_serve_dir_offers_markdown_twins(tmp_path: Path) -> None:
    """With markdown_twins an .html page with an .md beside it links to it and the .md is text/markdown; a page
    without one, and every page without the option, is served as it is."""
    import aiohttp

    page = "<html><head><title>{}</title></head><body><p>text</p></body></html>"
    (tmp_path / "fs.html").write_text(page.format("fs"))
    (tmp_path / "fs.md").write_text("# fs\n\ntext\n")
    (tmp_path / "lone.html").write_text(page.format("lone"))
    link = '<link rel="alternate" type="text/markdown" href="fs.md">'

    async def get(url: str) -> tuple[int, str, str]:
        async with aiohttp.ClientSession() as session, session.get(url) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), await resp.text()

    async with serve_dir(tmp_path, markdown_twins=True) as base_url:
        status, ctype, body = await get(f"{base_url}/fs.html")
        assert (status, ctype) == (200, "text/html")
        assert body == page.format("fs").replace("</head>", link + "\n</head>")
        assert await get(f"{base_url}/lone.html") == (200, "text/html", page.format("lone"))
        assert await get(f"{base_url}/fs.md") == (200, "text/markdown; charset=utf-8", "# fs\n\ntext\n")
        assert (await get(f"{base_url}/missing.md"))[0] == 404
    async with serve_dir(tmp_path) as base_url:
        assert await get(f"{base_url}/fs.html") == (200, "text/html", page.format("fs"))


def test_select_corpora_and_their_ports_and_collections(tmp_path: Path) -> None:
    """All corpora by default, each on its own port and collection; overrides replace those of a single corpus."""
    both = select_corpora(None)
    assert [c.name for c in both] == ["python", "django", "nodejs"]
    assert len({c.port(8765) for c in both}) == len({c.collection("eval") for c in both}) == 3
    assert (CORPORA["python"].port(8765), CORPORA["python"].collection("eval")) == (8765, "eval")
    assert CORPORA["python"].questions == DEFAULT_QUESTIONS  # tools/bench.py still reads the Python set
    assert CORPORA["django"].port(0) == 0  # 0 stays "any free port"
    (python,) = select_corpora(None, questions=tmp_path / "q.jsonl")  # the old single-corpus usage
    assert (python.name, python.questions, python.docs_dir) == ("python", tmp_path / "q.jsonl", PYTHON_DOCS)
    (django,) = select_corpora("django", docs_dir=tmp_path)
    assert (django.docs_dir, django.questions) == (tmp_path, CORPORA["django"].questions)
    with pytest.raises(ValueError, match="one corpus"):
        select_corpora("all", questions=tmp_path / "q.jsonl")
    args = parse_args(["--corpus", "django", "--docs-dir", str(tmp_path), "--pages", "5"])
    assert [c.docs_dir for c in args.corpora] == [tmp_path] and args.pages == 5
    with pytest.raises(SystemExit):
        parse_args(["--corpus", "python", "--docs-dir", str(tmp_path / "missing")])


SMOKE_QUESTIONS = [
    Question("generate a secure random token for a password reset link", ("library/secrets.html",)),
    Question("insert an item into a list while keeping it sorted", ("library/bisect.html",)),
    Question("copy a nested list so changes do not affect the original", ("library/copy.html",)),
    Question("compress a file with gzip", ("library/gzip.html",)),
    Question("find files matching a wildcard pattern like *.py", ("library/glob.html", "library/fnmatch.html")),
]
SMOKE_DISTRACTORS = ["library/keyword.html", "library/colorsys.html", "library/getpass.html", "library/reprlib.html"]


async def test_evaluate_small_run(clean: Runtime, docs_url: str) -> None:
    """Index ~10 pages through the pipeline, score every mode and BM25; a second run finds every page unchanged."""
    pages = choose_pages([*{r for q in SMOKE_QUESTIONS for r in q.rel}, *SMOKE_DISTRACTORS], SMOKE_QUESTIONS, None)
    report = await evaluate(clean, SMOKE_QUESTIONS, Path(PYTHON_DOCS), docs_url, pages)
    assert report["indexing"]["indexed"] == len(pages) == 10
    assert set(report["summary"]) == {"dense", "lexical", "hybrid", "bm25"}
    for mode, rows in report["per_question"].items():
        assert len(rows) == len(SMOKE_QUESTIONS), mode
        for row in rows:
            assert all(0.0 <= row["metrics"][m] <= 1.0 for m in METRICS)
            assert row["first_rank"] is None or row["metrics"]["mrr@10"] == pytest.approx(1 / row["first_rank"])
    # Some mode must find something on these easy questions, or the URL mapping is broken.
    assert max(s["hit@10"] for s in report["summary"].values()) > 0.5
    again = await evaluate(
        clean, SMOKE_QUESTIONS[:1], Path(PYTHON_DOCS), docs_url, pages, modes=["lexical"], bm25=False
    )
    assert again["indexing"]["unchanged"] == len(pages)
    assert set(again["summary"]) == {"lexical"}


async def test_two_corpora_share_one_runtime_in_their_own_collections(clean: Runtime, tmp_path: Path) -> None:
    """Each corpus is served on its own port and indexed into its own collection; labelled kinds get a breakdown."""
    django_docs = CORPORA["django"].docs_dir
    if not PYTHON_DOCS.is_dir() or not django_docs.is_dir():
        pytest.skip(
            "python3.11-doc and python-django-doc are needed (apt-get install python3.11-doc python-django-doc)"
        )
    sets = {
        "python": [{"q": "compress a file with gzip", "rel": ["library/gzip.html"]}],
        "django": [
            {"q": "keep old URLs working with redirects stored in the database", "rel": ["ref/contrib/redirects.html"]},
            {"q": "intcomma", "rel": ["ref/contrib/humanize.html"], "kind": "api"},
        ],
    }
    corpora = []
    for name, items in sets.items():
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps(item) + "\n" for item in items))
        corpora.append(Corpus(name, CORPORA[name].docs_dir, path, CORPORA[name].package, 0, f"-{name}"))
    args = argparse.Namespace(
        pages=2,
        modes="lexical",
        collection="t",
        port=0,
        concurrency=2,
        no_bm25=False,
        reindex=False,
        markdown_twins=False,
    )
    reports = {c.name: await evaluate_corpus(clean, c, args) for c in corpora}
    assert {r["collection"] for r in reports.values()} == {"t-python", "t-django"}
    assert [r["searched_pages"] for r in reports.values()] == [2, 2]  # neither collection sees the other's pages
    assert reports["python"]["base_url"] != reports["django"]["base_url"]
    assert set(reports["django"]["summary"]) == {"lexical", "bm25"}
    assert reports["python"]["kinds"] == {} and reports["python"]["by_kind"] == {}
    assert reports["django"]["kinds"] == {"api": 1}
    assert set(reports["django"]["by_kind"]["bm25"]) == {"api"}
