"""The document sets tools/eval.py scores: each a local docs folder, its question file, its collection and port."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

QUESTIONS_DIR = Path(__file__).resolve().parent / "eval_questions"
BASE_PORT = 8765
BASE_COLLECTION = "eval"


@dataclass(frozen=True)
class Corpus:
    """One eval corpus: the docs folder served on 127.0.0.1, its questions, and where its index lives.

    `port_offset` and `collection_suffix` are added to the run's base port and collection, so each corpus keeps its
    own page URLs and collection in a shared DATA_DIR, whichever corpora a run selects.
    """

    name: str
    docs_dir: Path
    questions: Path
    package: str  # the Debian package that installs docs_dir
    port_offset: int
    collection_suffix: str
    exclude: tuple[str, ...] = ()  # docs-relative .html files that are not pages of their own (e.g. a one-page copy)

    def port(self, base: int = BASE_PORT) -> int:
        """The port this corpus is served on in a run with base port `base` (0: any free port)."""
        return base + self.port_offset if base else 0

    def collection(self, base: str = BASE_COLLECTION) -> str:
        """The collection this corpus is indexed into in a run with base collection `base`."""
        return base + self.collection_suffix


CORPORA = {
    c.name: c
    for c in (
        Corpus(
            "python",
            docs_dir=Path("/usr/share/doc/python3.11/html"),
            questions=QUESTIONS_DIR / "python_docs.jsonl",
            package="python3.11-doc",
            port_offset=0,
            collection_suffix="",  # the eval's first corpus keeps the collection its indexes were built in
        ),
        Corpus(
            "django",
            docs_dir=Path("/usr/share/doc/python-django-doc/html"),
            questions=QUESTIONS_DIR / "django_docs.jsonl",
            package="python-django-doc",
            port_offset=1,
            collection_suffix="-django",
        ),
        Corpus(
            "nodejs",
            docs_dir=Path("/usr/share/doc/nodejs/api"),
            questions=QUESTIONS_DIR / "nodejs_docs.jsonl",
            package="nodejs",
            port_offset=2,
            collection_suffix="-nodejs",
            exclude=("all.html",),  # every module page again, in one 8 MB page
        ),
    )
}


def select_corpora(selection: str | None, docs_dir: Path | None = None, questions: Path | None = None) -> list[Corpus]:
    """The corpora a run scores: one by name, or all; --docs-dir/--questions replace those of a single corpus.

    Without a selection, an override means the Python corpus (the eval's only corpus before there were several),
    otherwise every corpus. Raises ValueError for an unknown name or overrides with several corpora.
    """
    overrides = docs_dir is not None or questions is not None
    selection = selection or ("python" if overrides else "all")
    if selection != "all" and selection not in CORPORA:
        raise ValueError(f"unknown corpus {selection!r} (choose from {', '.join([*CORPORA, 'all'])})")
    chosen = list(CORPORA.values()) if selection == "all" else [CORPORA[selection]]
    if not overrides:
        return chosen
    if len(chosen) > 1:
        raise ValueError("--docs-dir and --questions apply to one corpus: add --corpus NAME")
    corpus = chosen[0]
    return [replace(corpus, docs_dir=docs_dir or corpus.docs_dir, questions=questions or corpus.questions)]
