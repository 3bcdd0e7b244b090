"""reStructuredText documents: docutils renders them to HTML, which the HTML extractor reads like any page.

Going through HTML keeps one set of rules for headings, anchors (docutils section ids are the ids Sphinx renders),
code blocks and links. Safety: no file inclusion, no raw passthrough, no reports in the output. Sphinx sources use
roles and directives docutils does not know (``:func:``, ``.. versionadded::``, ``.. function::``); they are
registered here as plain text, code or a signature line, so a Sphinx ``_sources/*.rst.txt`` reads cleanly.
"""

from __future__ import annotations

import re
import threading
from typing import Any, ClassVar

from mcp_web_ingest.errors import ExtractError
from mcp_web_ingest.ingest.formats.html import extract_with_links
from mcp_web_ingest.ingest.formats.markdown_doc import check_line_lengths
from mcp_web_ingest.models import ExtractedPage

__all__ = ["extract_rst"]

_SETTINGS = {
    "file_insertion_enabled": False,
    "raw_enabled": False,
    "report_level": 5,  # no system messages in the output
    "halt_level": 5,
    "warning_stream": False,
    "input_encoding": "unicode",
    "syntax_highlight": "none",
    "embed_stylesheet": False,
    "stylesheet_path": "",
    "_disable_config": True,
    "traceback": True,
    "doctitle_xform": False,  # keep the first title as the h1 (and its id)
    "initial_header_level": 1,
}
_CODE_ROLES = [
    "func",
    "meth",
    "class",
    "mod",
    "attr",
    "data",
    "exc",
    "obj",
    "const",
    "envvar",
    "option",
    "program",
    "file",
    "samp",
    "kbd",
    "keyword",
    "token",
    "command",
    "makevar",
    "mimetype",
    "regexp",
    "dfn",
    "macro",
    "member",
    "type",
    "var",
    "expr",
    "enum",
    "enumerator",
    "struct",
    "union",
    "cfunc",
    "cmember",
    "cmacro",
    "cdata",
    "ctype",
    "setting",
    "lookup",
    "fieldlookup",
    "djadmin",
    "ttag",
    "tfilter",
]
_TEXT_ROLES = [
    "ref",
    "doc",
    "term",
    "abbr",
    "menuselection",
    "guilabel",
    "numref",
    "download",
    "any",
    "source",
    "issue",
    "gh",
]
_SIGNATURE_DIRECTIVES = [
    "function",
    "method",
    "class",
    "classmethod",
    "staticmethod",
    "attribute",
    "data",
    "exception",
    "module",
    "decorator",
    "decoratormethod",
    "coroutinefunction",
    "coroutinemethod",
    "abstractmethod",
    "property",
    "type",
    "macro",
    "member",
    "var",
    "struct",
    "enum",
    "opcode",
    "cmdoption",
    "option",
    "envvar",
    "describe",
    "object",
    "setting",
    "django-admin",
    "templatetag",
    "templatefilter",
    "fieldlookup",
]
_NOTE_DIRECTIVES = [
    "versionadded",
    "versionchanged",
    "deprecated",
    "deprecated-removed",
    "seealso",
    "impl-detail",
    "audit-event",
]
_SILENT_DIRECTIVES = [
    "module",
    "toctree",
    "index",
    "highlight",
    "currentmodule",
    "moduleauthor",
    "sectionauthor",
    "testsetup",
    "testcleanup",
]
_CODE_DIRECTIVES = ["testcode", "doctest", "testoutput", "productionlist", "literalinclude", "code-block", "sourcecode"]
_CONTINUATION = re.compile(r"\\?\s*\n\s*|\\\s+")  # Sphinx signatures continue over lines ending in a backslash
_TITLED = re.compile(r"^(.*?)\s*<([^<>]+)>$", re.S)
_PRE_LANG = re.compile(r'<pre class="code ([\w+#.-]+)((?: [\w-]+)*)">')
_LITERAL = re.compile(r'<span class="docutils literal">([^<]*)</span>')
_lock = threading.Lock()
_registered = False


def _role_text(text: str) -> str:
    """What a cross-reference shows: the title of ``title <target>``, else the target without ~ and !."""
    match = _TITLED.match(text)
    if match and match.group(1):
        return match.group(1)
    shown = text.lstrip("~!")
    return shown.rsplit(".", 1)[-1] if text.startswith("~") else shown


def _register() -> None:
    """Register the Sphinx roles and directives as plain renderings (once per process)."""
    global _registered
    with _lock:
        if _registered:
            return
        from docutils import nodes
        from docutils.parsers.rst import Directive, directives, roles

        def code_role(name: str, rawtext: str, text: str, *args: Any, **kwargs: Any) -> Any:
            return [nodes.literal(rawtext, _role_text(text))], []

        def text_role(name: str, rawtext: str, text: str, *args: Any, **kwargs: Any) -> Any:
            return [nodes.Text(_role_text(text))], []

        for name in _CODE_ROLES:
            for prefix in ("", "py:", "c:", "cpp:", "js:", "std:"):
                roles.register_local_role(prefix + name, code_role)

        def numbered_role(name: str, rawtext: str, text: str, *args: Any, **kwargs: Any) -> Any:
            return [nodes.Text(f"{name.upper()} {_role_text(text)}")], []

        for name in _TEXT_ROLES:
            roles.register_local_role(name, text_role)
        for name in ("pep", "rfc"):
            roles.register_local_role(name, numbered_role)

        class _AnyOptions(dict[str, Any]):
            """Every option is accepted (Sphinx directives take many: :noindex:, :async:, :synopsis:...)."""

            def __missing__(self, key: str) -> Any:
                return directives.unchanged

            def __contains__(self, key: object) -> bool:
                return True

        class _Base(Directive):
            required_arguments = 0
            optional_arguments = 1
            final_argument_whitespace = True
            has_content = True
            option_spec: ClassVar[dict[str, Any]] = _AnyOptions()

            def body(self) -> list[Any]:
                container = nodes.container()
                self.state.nested_parse(self.content, self.content_offset, container)
                return list(container.children)

        class Signature(_Base):
            """``.. function:: name(args)`` → the signature as code, then its description."""

            def run(self) -> list[Any]:
                kind = self.name.split(":")[-1]
                signature = _CONTINUATION.sub(" ", " ".join(self.arguments))
                line = nodes.paragraph("", "", nodes.literal("", f"{kind} {signature}".strip()))
                return [line, *self.body()]

        class Note(_Base):
            """``.. versionadded:: 3.11`` → "Added in version 3.11." and its text."""

            def run(self) -> list[Any]:
                label = {"versionadded": "Added in version", "versionchanged": "Changed in version"}.get(
                    self.name, self.name.replace("-", " ").capitalize()
                )
                text = f"{label} {' '.join(self.arguments)}".strip()
                return [nodes.paragraph("", "", nodes.emphasis("", text)), *self.body()]

        class Silent(_Base):
            def run(self) -> list[Any]:
                return []

        class Code(_Base):
            """Sphinx code directives: the content as a literal block (an included file is not read)."""

            def run(self) -> list[Any]:
                if not self.content:
                    return []
                language = (self.arguments[0] if self.arguments and self.name != "literalinclude" else "").strip()
                block = nodes.literal_block("", "\n".join(self.content))
                if language:
                    block["classes"] += ["code", language]
                return [block]

        for name in _SIGNATURE_DIRECTIVES:
            for prefix in ("", "py:", "c:", "cpp:", "js:", "std:"):
                directives.register_directive(prefix + name, Signature)
        for name in _NOTE_DIRECTIVES:
            directives.register_directive(name, Note)
        for name in _SILENT_DIRECTIVES:
            directives.register_directive(name, Silent)
        for name in _CODE_DIRECTIVES:
            directives.register_directive(name, Code)
        _registered = True


def _html(source: str) -> str:
    from docutils.core import publish_parts

    _register()
    parts = publish_parts(source=source, writer="html5", settings_overrides=_SETTINGS)
    # docutils marks code as class="code python"; the HTML extractor reads a language-x class.
    body = _PRE_LANG.sub(lambda m: f'<pre class="language-{m.group(1)}{m.group(2)}">', parts["html_body"])
    body = _LITERAL.sub(r"<code>\1</code>", body)  # html5 writes inline literals as spans; markdown wants code
    return f"<html><head><title>{parts['title']}</title></head><body><main>{body}</main></body></html>"


def extract_rst(source: str, url: str) -> tuple[ExtractedPage, tuple[str, ...]]:
    """A reStructuredText document as sections with its links, rendered by docutils and read as HTML."""
    check_line_lengths(source, url)
    try:
        html = _html(source)
    except Exception as exc:  # docutils raises its own errors (and others) on sources it cannot read
        raise ExtractError(f"The reStructuredText at {url} could not be read: {type(exc).__name__}: {exc}") from exc
    return extract_with_links(html, url)
