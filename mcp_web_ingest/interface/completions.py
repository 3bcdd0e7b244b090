"""`completion/complete`: argument values from the index, for the prompts and the resource templates.

MCP completes prompt arguments and resource-template variables (there is no completion reference to a tool); the
prompts name their arguments as the tools do, so a client completes `collection`, `version`, `url_prefix`, `url`
and `job_id` the same way wherever they appear. Every answer is one indexed query, at most MAX_VALUES values,
with `total` (when under COUNT_CAP) and `hasMore`.
"""

from __future__ import annotations

from typing import Any, Literal

from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INTERNAL_ERROR,
    CompleteRequestParams,
    CompleteResult,
    Completion,
    PromptReference,
    ResourceTemplateReference,
)

from mcp_web_ingest.errors import InvalidInputError, WebIngestError
from mcp_web_ingest.ingest.urls import redact_credentials
from mcp_web_ingest.interface.prompts import PROMPT_ARGUMENTS
from mcp_web_ingest.interface.resource_uris import PAGE_TEMPLATE, SUMMARY_TEMPLATE
from mcp_web_ingest.interface.sdk_hooks import lowlevel
from mcp_web_ingest.interface.tool_errors import check_text_arguments
from mcp_web_ingest.runtime import Runtime
from mcp_web_ingest.storage.interfaces import Directory
from mcp_web_ingest.storage.records import Suggestions, validate_collection

__all__ = ["MAX_VALUES", "Kind", "argument_kind", "register_completions", "suggest"]

MAX_VALUES = 100  # the most values one completion may carry (the specification's limit)
MAX_INPUT = 2048  # longer partial values complete to nothing
Kind = Literal["collection", "version", "url", "url_prefix", "job_id"]

# What each resource template variable holds.
_TEMPLATE_ARGUMENTS: dict[str, dict[str, Kind]] = {
    PAGE_TEMPLATE: {"collection": "collection", "url": "url"},
    SUMMARY_TEMPLATE: {"collection": "collection"},
}
_NOTHING = Suggestions((), 0, False)


def argument_kind(ref: PromptReference | ResourceTemplateReference, argument: str) -> Kind | None:
    """What an argument of a prompt or template holds, or None when this server has no values for it."""
    if isinstance(ref, ResourceTemplateReference):
        return _TEMPLATE_ARGUMENTS.get(ref.uri, {}).get(argument)
    return PROMPT_ARGUMENTS.get(ref.name, {}).get(argument)  # type: ignore[return-value]


async def suggest(directory: Directory, kind: Kind, value: str, known: dict[str, str]) -> Suggestions:
    """Values of this kind starting with ``value``; a `collection` already chosen narrows versions and URLs."""
    try:
        check_text_arguments({"value": value, **known})
        collection = validate_collection(known["collection"]) if known.get("collection") else None
    except InvalidInputError:
        return _NOTHING
    if len(value) > MAX_INPUT:
        return _NOTHING
    if kind == "collection":
        return await directory.suggest_collections(value, MAX_VALUES)
    if kind == "version":
        return await directory.suggest_versions(value, collection, MAX_VALUES)
    if kind == "url":
        return await directory.suggest_urls(value, collection, MAX_VALUES)
    if kind == "url_prefix":
        return await directory.suggest_url_prefixes(value, collection, MAX_VALUES)
    return await directory.suggest_job_ids(value, MAX_VALUES)


async def _complete(ctx: ServerRequestContext[Runtime, Any], params: CompleteRequestParams) -> CompleteResult:
    kind = argument_kind(params.ref, params.argument.name)
    if kind is None:  # an argument (or a prompt or template) this server does not know: nothing to offer
        return CompleteResult(completion=Completion(values=[], total=0, has_more=False))
    known = dict(params.context.arguments or {}) if params.context else {}
    try:
        found = await suggest(ctx.lifespan_context.directory, kind, params.argument.value, known)
    except WebIngestError as exc:
        raise MCPError(code=INTERNAL_ERROR, message=redact_credentials(str(exc))) from exc
    return CompleteResult(completion=Completion(values=list(found.values), total=found.total, has_more=found.has_more))


def register_completions(mcp: MCPServer) -> None:
    """Serve completion/complete (which declares the completions capability)."""
    # Registered directly: MCPServer.completion() hands its function no context, so no runtime to query.
    lowlevel(mcp).add_request_handler("completion/complete", CompleteRequestParams, _complete)
