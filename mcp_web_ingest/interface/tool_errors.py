"""The one boundary every tool passes: string arguments checked, errors turned into messages a model can act on."""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from mcp.server.mcpserver.exceptions import ToolError

from mcp_web_ingest.errors import InvalidInputError, WebIngestError
from mcp_web_ingest.ingest.urls import redact_credentials

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

# PostgreSQL cannot store NUL, and other C0 controls in names, prefixes and ids are never meant; tab/newline are text.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def check_text_arguments(arguments: dict[str, Any]) -> None:
    """Raise InvalidInputError naming the first string argument (or list item) holding a control character."""
    for name, value in arguments.items():
        items = value if isinstance(value, list | tuple) else (value,)
        for item in items:
            if isinstance(item, str) and (m := _CONTROL.search(item)):
                raise InvalidInputError(
                    f"Parameter '{name}' contains the control character U+{ord(m.group()):04X} at position "
                    f"{m.start()}; remove it and call again."
                )


def tool_errors(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Wrap a tool: check its string arguments and translate every failure into a ToolError."""

    @functools.wraps(fn)
    async def tool(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            check_text_arguments(kwargs)
            return await fn(*args, **kwargs)
        except ToolError:
            raise
        except WebIngestError as exc:
            raise ToolError(redact_credentials(str(exc))) from exc
        except Exception as exc:
            # A bug, not bad input: keep the traceback in the log, give the client something to act on.
            log.exception("tool %s failed unexpectedly", fn.__name__)
            raise ToolError(
                f"{fn.__name__} failed with an internal error ({type(exc).__name__}); the server log has the details. "
                "Check the arguments, or try again later."
            ) from exc

    return tool
