"""What `index_web_page` and the dashboard's Index form both do: index one page now, or start a crawl job."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mcp_web_ingest.crawl.jobs import CrawlParams
from mcp_web_ingest.crawl.schedule import parse_refresh_interval, source_prefix
from mcp_web_ingest.ingest.auth_profiles import RequestAuth
from mcp_web_ingest.ingest.urls import normalize_url, split_credentials
from mcp_web_ingest.ingest.versions import clean_label
from mcp_web_ingest.interface.schemas import IndexResult, page_index_result
from mcp_web_ingest.pipeline import ProgressFn
from mcp_web_ingest.runtime import Runtime
from mcp_web_ingest.storage.records import validate_collection

__all__ = ["CrawlStarted", "IndexOrder", "index_one", "start_crawl"]

Scope = Literal["path", "host", "domain"]


@dataclass(frozen=True)
class IndexOrder:
    """One request to index: a page (depth 0, one page) or a crawl from it."""

    url: str
    max_depth: int = 0
    max_pages: int = 1
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    scope: Scope = "path"
    use_sitemap: bool = True
    respect_robots: bool = True
    force: bool = False
    collection: str | None = None
    auth_profile: str | None = None
    version: str | None = None
    refresh_interval: str | None = None

    @property
    def single(self) -> bool:
        """True when only the page itself is indexed (no crawl job)."""
        return self.max_depth == 0 and self.max_pages == 1


@dataclass(frozen=True)
class CrawlStarted:
    """A crawl job just started, and the refresh interval now in force for its source (seconds; None = none)."""

    job_id: str
    refresh_interval_s: float | None


def _checked_auth(runtime: Runtime, order: IndexOrder) -> RequestAuth | None:
    """The order's auth profile (an unknown one or a bad interval fails before anything is fetched)."""
    auth = runtime.crawler.auth_profile(order.auth_profile, order.url) if order.auth_profile else None
    if order.refresh_interval is not None:
        parse_refresh_interval(order.refresh_interval)
    return auth


async def index_one(runtime: Runtime, order: IndexOrder, progress: ProgressFn | None = None) -> IndexResult:
    """Index the order's page now and apply its refresh schedule."""
    auth = _checked_auth(runtime, order)
    outcome = await runtime.pipeline.index_page(
        order.url, order.collection, progress, force=order.force, auth=auth, version=order.version
    )
    every = await runtime.scheduler.apply(outcome.collection, outcome.url, order.refresh_interval, order.auth_profile)
    return page_index_result(outcome).model_copy(update={"refresh_interval_s": every})


async def start_crawl(runtime: Runtime, order: IndexOrder) -> CrawlStarted:
    """Start the order's crawl as a background job and apply the refresh schedule of its folder, host or site."""
    _checked_auth(runtime, order)
    params = CrawlParams(
        max_depth=order.max_depth,
        max_pages=order.max_pages,
        include=order.include,
        exclude=order.exclude,
        scope=order.scope,
        use_sitemap=order.use_sitemap,
        respect_robots=order.respect_robots,
        force=order.force,
        auth_profile=order.auth_profile,
        version=clean_label(order.version) if order.version else None,
    )
    job_id = await runtime.crawler.start(order.url, params, order.collection)
    prefix = source_prefix(normalize_url(split_credentials(order.url)[0]), order.scope)
    collection = validate_collection(order.collection)
    every = await runtime.scheduler.apply(collection, prefix, order.refresh_interval, order.auth_profile)
    return CrawlStarted(job_id, every)
