"""Prompts that show a model how to use the tools well: answer from the docs, index a site, catch up on changes."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import MCPServer
from pydantic import Field

from mcp_web_ingest.ingest.urls import normalize_url, split_credentials, validate_url
from mcp_web_ingest.storage.records import validate_collection

__all__ = ["PROMPT_ARGUMENTS", "register_prompts"]

# The arguments of each prompt that completion/complete fills from the index (named as in the tools).
PROMPT_ARGUMENTS: dict[str, dict[str, str]] = {
    "answer_from_docs": {"collection": "collection", "version": "version", "url_prefix": "url_prefix"},
    "index_docs_site": {"url": "url_prefix", "collection": "collection", "job_id": "job_id"},
    "whats_new": {"collection": "collection", "url_prefix": "url_prefix"},
}

Collection = Annotated[str, Field(description="Collection to work in (see list_sources); empty: 'default'")]


def _collection(value: str) -> str:
    return validate_collection(value.strip() or None)


def _filters(collection: str, **more: str) -> str:
    """The tool arguments a prompt fixes, written as a model would pass them."""
    parts = [f'collection="{collection}"', *(f'{k}="{v}"' for k, v in more.items() if v)]
    return ", ".join(parts)


def register_prompts(mcp: MCPServer) -> None:
    """Add the prompts."""

    @mcp.prompt(
        name="answer_from_docs",
        title="Answer from the indexed docs",
        description="Answer a question from the indexed documentation only, reading around the best hits and "
        "citing deep links.",
    )
    def answer_from_docs(
        question: Annotated[str, Field(description="The question to answer")],
        collection: Collection = "",
        version: Annotated[str, Field(description="Documentation version, e.g. 5.2 or 'latest'; empty: latest")] = "",
        url_prefix: Annotated[str, Field(description="Only pages under this URL prefix; empty: all")] = "",
    ) -> str:
        args = _filters(_collection(collection), version=version.strip(), url_prefix=url_prefix.strip())
        return (
            "Answer the question below from the documentation indexed in this server, not from memory.\n\n"
            f"1. Call `search` with the question (or its key terms and exact API names), {args}, k=8.\n"
            "2. Take the two or three best results. For each, call `read_page` with the result's `deep_link` as "
            "`url` to read the whole section around the hit; follow `next_section` if the answer continues.\n"
            "3. If nothing relevant comes back, search again with other words (synonyms, the API name, an error "
            "message); if it is still missing, say that the indexed docs do not cover it — do not guess.\n"
            "4. Answer concisely. Quote code and option names exactly as the docs write them, and cite every claim "
            "with the deep link (URL#anchor) of the section it comes from. Mention the documentation version when "
            "the results carry one.\n\n"
            f"Question: {question.strip()}"
        )

    @mcp.prompt(
        name="index_docs_site",
        title="Index a documentation site",
        description="Crawl a documentation site with a sensible scope, follow the job to the end and report.",
    )
    def index_docs_site(
        url: Annotated[str, Field(description="Start page of the documentation (http/https), e.g. its index")],
        collection: Collection = "",
        max_pages: Annotated[str, Field(description="Most pages to crawl; empty: 500")] = "",
        job_id: Annotated[str, Field(description="A crawl already started for this site: follow it instead")] = "",
    ) -> str:
        start = normalize_url(split_credentials(validate_url(url.strip()))[0])
        limit = int(max_pages) if max_pages.strip().isdigit() else 500
        name = _collection(collection)
        if job_id.strip():
            return (
                f"A crawl of {start} (collection {name!r}) is running as job {job_id.strip()!r}. Call `crawl_status` "
                "with that job_id and wait_seconds=120 until its state is done, partial, failed or cancelled, then "
                "report pages indexed, unchanged, skipped and failed with the reasons of failures, and finish with "
                "`list_sources`."
            )
        return (
            f"Index the documentation site that starts at {start} into collection {name!r}.\n\n"
            "1. Scope: keep the crawl to the documentation. scope='path' (the default) stays under the start page's "
            "folder; use 'host' only when the docs span several top-level folders of a docs-only host. Give "
            f"max_depth=5 and max_pages={limit}.\n"
            "2. Leave out what is not documentation: add `exclude` regexes for blog, changelog archives, search, "
            "genindex, download and old-version folders you can see in the URLs (e.g. '/blog/', '/_sources/'), or "
            "`include` regexes when only one part of the site is wanted. Keep use_sitemap and respect_robots on.\n"
            f"3. Call `index_web_page` with url={start!r}, {_filters(name)}, those options and wait_seconds=60.\n"
            "4. If it returns a job id instead of a summary, call `crawl_status` with that job_id and "
            "wait_seconds=120 until its state is done, partial, failed or cancelled.\n"
            "5. Report pages indexed, unchanged, skipped and failed, with the reasons of failures. If many pages "
            "failed or were skipped for scope, suggest better include/exclude patterns; if the site changes often, "
            "suggest refresh_interval (e.g. 1d). Finish with `list_sources` to show what is now indexed."
        )

    @mcp.prompt(
        name="whats_new",
        title="What changed in the docs",
        description="Summarise what changed in the indexed documentation since a time, with deep links.",
    )
    def whats_new(
        collection: Collection = "",
        since: Annotated[
            str, Field(description="ISO 8601 time or a span back from now (7d, 24h); empty: last refresh")
        ] = "",
        url_prefix: Annotated[str, Field(description="Only pages under this URL prefix; empty: all")] = "",
    ) -> str:
        args = _filters(_collection(collection), since=since.strip(), url_prefix=url_prefix.strip())
        return (
            "Tell me what changed in the indexed documentation.\n\n"
            f"1. Call `what_changed` with {args}.\n"
            "2. For the most important changed pages (at most five), call `read_page` on the deep links of the "
            "changed sections to see what they say now.\n"
            "3. Summarise: pages added, pages removed, and for changed pages what is new or different, each with its "
            "deep link. If nothing changed, say so and when the collection was last refreshed (`list_sources`); "
            "`refresh_source` fetches the pages again."
        )
