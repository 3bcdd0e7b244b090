"""Sphinx API signature lines: a paragraph of one inline code span that names and documents a symbol.

The extractor renders such a line as `` `class json.JSONEncoder(...)` ``; the symbol it defines is qualified by the
class entries above it on the same page, which a PageContext carries from one signature line to the next.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mcp_web_ingest.models import SYMBOL_SEPARATOR, Symbol


@dataclass
class PageContext:
    """What earlier signature lines of a page tell later ones: the open class and the page's classes."""

    classes: dict[str, str] = field(default_factory=dict)  # short name -> qualified name (Path -> pathlib.Path)
    owner: str | None = None  # class whose unqualified members (default(o)) the next signatures document


SIGNATURE_LINE = re.compile(r"^[ \t]*`([^`\n]+)`[ \t]*$", re.MULTILINE)
# Leading words of a Sphinx Python signature and the kind they imply (None: a modifier that implies nothing).
_SIG_PREFIX = {
    "class": "class", "exception": "class", "coroutine": "function", "awaitable": "function", "function": "function",
    "classmethod": "method", "staticmethod": "method", "abstractmethod": "method", "method": "method",
    "property": "attribute", "attribute": "attribute", "data": "variable", "module": "module", "type": "type",
    "async": None, "final": None, "abstract": None, "decorator": "function",
}  # fmt: skip
_PY_SIG = re.compile(r"(@)?([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\s*(\(.*\))?\s*((?:→|->|:|=(?!=)).*)?")
_C_SIG = re.compile(
    r"((?:(?:const|unsigned|signed|struct|enum|union|static|typedef|volatile|extern|inline)\s+)*[A-Za-z_]\w*"
    r"(?:\s+(?:long|int|char|double|const))*)(\s*\*+\s*|\s+)([A-Za-z_]\w*(?:\.\w+)*)\s*(\(.*\))?"
)
_C_TYPE = re.compile(r"^(?:(?:const|unsigned|signed|struct|typedef|static)\b.*|void|int|char|double|float|long|short|"
                     r"size_t|Py\w*|\w+func|\w+proc|\w+_t|TYPE)$")  # fmt: skip
_BUILTIN_TYPES = {"str", "bytes", "bytearray", "int", "float", "complex", "list", "tuple", "dict", "set", "frozenset",
                  "memoryview", "object", "range", "type"}  # fmt: skip
_C_NAME = re.compile(r"^_?Py[A-Z_]")  # Py_DECREF, PyBUF_RECORDS: the C API's own prefix
_CONSTANT = re.compile(r"_?[A-Z][A-Z0-9_]+|_?Py[A-Za-z]*_[A-Z0-9_]+")  # MAX_SIZE, PyBUF_RECORDS
_CALL_ARG = re.compile(r"[(,]\s*['\"\d]")  # a literal where a parameter name should be: an example call


def is_constant(name: str) -> bool:
    """True for a constant's name (MAX_SIZE, PyBUF_RECORDS), judged by its last part."""
    return bool(_CONSTANT.fullmatch(SYMBOL_SEPARATOR.split(name)[-1]))


def signature_symbol(text: str, ctx: PageContext) -> Symbol | None:
    """The symbol a signature line defines, or None when the code span is not a signature."""
    words = text.split()
    kind = None
    while len(words) > 1 and words[0] in _SIG_PREFIX:
        kind = kind or _SIG_PREFIX[words.pop(0)]
    body = " ".join(words)
    m = _PY_SIG.fullmatch(body)
    if m and not (m.group(3) and _CALL_ARG.search(m.group(3))):
        return _python_signature(m.group(2), kind, bool(m.group(3)), ctx)
    m = _C_SIG.fullmatch(body) if kind is None or kind == "type" else None
    if m and (m.group(2).strip() or _C_TYPE.match(m.group(1))):
        name, args = m.group(3), m.group(4)
        ckind = "type" if m.group(1).startswith("typedef") else "function" if args else None
        return Symbol(name, ckind or ("attribute" if "." in name else "variable"), "c", "defines")
    return None


def _python_signature(name: str, kind: str | None, called: bool, ctx: PageContext) -> Symbol:
    head, _, rest = name.partition(".")
    language = "c" if _C_NAME.match(name) else "python"
    owner = ctx.classes.get(head) if rest else None
    # datetime.strptime may be the module's or the class datetime.datetime's: only a member entry says which.
    shared = owner is not None and owner.split(".")[0] == head
    if owner and kind != "class" and not name.startswith(owner) and (not shared or kind or ctx.owner == owner):
        name = f"{owner}.{rest}"  # Path.glob on the pathlib page is pathlib.Path.glob
    elif not rest and ctx.owner and kind != "class":  # default(o) under class json.JSONEncoder
        name = f"{ctx.owner}.{name}"
    parts = name.split(".")
    member = len(parts) > 1 and (
        parts[-2][:1].isupper() or parts[-2] in _BUILTIN_TYPES or bool(ctx.owner and name.startswith(ctx.owner))
    )
    if kind is None:
        if member:
            kind = "method" if called else "constant" if is_constant(name) else "attribute"
        elif called:
            kind = "function"
        else:
            last = parts[-1]
            kind = "constant" if is_constant(last) else "type" if last[:1].isupper() and len(parts) > 1 else "attribute"
            kind = "variable" if kind == "attribute" and len(parts) > 1 else kind
    if kind == "class":
        ctx.owner = name
        ctx.classes[parts[-1]] = name
    elif ctx.owner and not name.startswith(ctx.owner + "."):
        ctx.owner = None  # a module-level entry ends the class entry above it
    if kind == "function" and len(parts) > 1:
        ctx.classes.setdefault(parts[-1], name)  # chain.from_iterable, partial.args document their function
    return Symbol(name, kind, language, "defines")
