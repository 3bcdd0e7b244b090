"""Code symbols (functions, classes, methods, types, constants) that a chunk's markdown defines or uses.

Two sources: fenced code blocks, read with Pygments token streams (any language Pygments knows, a regex fallback for
the rest), and Sphinx API signature lines, which the extractor renders as a paragraph of one inline code span
(read in signatures.py).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from pygments.lexer import Lexer
from pygments.lexers import get_lexer_by_name
from pygments.token import Comment, Keyword, Name, String
from pygments.util import ClassNotFound

from mcp_web_ingest.ingest.signatures import SIGNATURE_LINE, PageContext, is_constant, signature_symbol
from mcp_web_ingest.models import SYMBOL_SEPARATOR, Chunk, Symbol

__all__ = ["PageContext", "extract_page_symbols", "extract_symbols", "is_symbol_like"]


_SEP = SYMBOL_SEPARATOR
_IDENT = r"[A-Za-z_$][\w$]*"
_SYMBOL_QUERY = re.compile(rf"@?{_IDENT}(?:(?:\.|::|#|->){_IDENT})*(?:<[\w\s,:<>]*>)?(?:\(\))?")


def is_symbol_like(query: str) -> bool:
    """True when a query is one exact identifier (asyncio.gather, useState, pg_stat_statements), not prose."""
    q = query.strip().strip("`")
    if not q or len(q) > 200 or not _SYMBOL_QUERY.fullmatch(q):
        return False
    core = q.lstrip("@").removesuffix("()")
    parts = _SEP.split(core)
    if len(parts) > 1:  # qualified; "e.g" and "i.e" are abbreviations, not names
        return any(len(p) > 1 for p in parts)
    if q != core or "_" in core or any(c.isdigit() for c in core):
        return True
    # A single plain word ("gather", "Python", "HTTP") is as likely prose as a name: only inner capitals count.
    return any(c.isupper() for c in core[1:]) and not core.isupper()


# --- fenced code blocks --------------------------------------------------------------------------------------------

_FENCE = re.compile(r"^([ \t]*)(`{3,}|~{3,})[ \t]*([\w+#.-]*)[^\n]*$", re.MULTILINE)
_LANGS = {
    "python": "python", "py": "python", "python3": "python", "py3": "python", "pycon": "python", "ipython": "python",
    "ipython3": "python", "sage": "python", "js": "javascript", "javascript": "javascript", "jsx": "javascript",
    "mjs": "javascript", "node": "javascript", "ts": "typescript", "typescript": "typescript", "tsx": "typescript",
    "go": "go", "golang": "go", "rust": "rust", "rs": "rust", "c": "c", "h": "c", "cpp": "cpp", "c++": "cpp",
    "cxx": "cpp", "hpp": "cpp", "java": "java", "kotlin": "kotlin", "kt": "kotlin", "ruby": "ruby", "rb": "ruby",
    "php": "php", "csharp": "csharp", "cs": "csharp", "c#": "csharp", "swift": "swift", "scala": "scala",
    "sql": "sql", "postgresql": "sql", "postgres": "sql", "psql": "sql", "plpgsql": "sql", "pgsql": "sql",
    "mysql": "sql", "sqlite": "sql", "sqlite3": "sql", "lua": "lua", "dart": "dart",
}  # fmt: skip
_LEXER_NAME = {"sql": "postgresql", "cpp": "cpp", "typescript": "tsx"}
# Shell sessions, data and markup: Pygments would lex them, but their words are commands and keys, not symbols.
_NO_SYMBOLS = {"bash", "sh", "shell", "zsh", "console", "shell-session", "doscon", "powershell", "ps1", "text", "none",
               "ini", "toml", "yaml", "yml", "json", "xml", "html", "css", "diff", "output", "pytb", "peg",
               "asdl"}  # fmt: skip
_HINTS = (  # cheap, specific signs of a language in an untagged block, tried in order
    ("shell", re.compile(r"^\$ \w", re.MULTILINE)),
    ("sql", re.compile(r"^\s*(?:SELECT|CREATE|INSERT|UPDATE|DELETE|ALTER)\b")),
    ("go", re.compile(r"^(?:package \w+$|func (?:\(|\w+\())", re.MULTILINE)),
    ("rust", re.compile(r"^\s*(?:pub )?fn \w+|\blet mut\b|\bprintln!", re.MULTILINE)),
    (
        "python",
        re.compile(
            r"^\s*(?:(?:async )?def \w+\(.*|class \w+(?:\(.*\))?:|from [\w.]+ import|import [\w.]+$)", re.MULTILINE
        ),
    ),
    ("c", re.compile(r"^#include\b", re.MULTILINE)),
    ("javascript", re.compile(r"\bfunction\s*\w*\s*\(|=>|^\s*(?:const|let|var) \w+ =|console\.log", re.MULTILINE)),
)
_FALLBACK_DEF = re.compile(r"^\s*(?:export\s+)?(?:async\s+)?(def|class|function|fn|func)\s+([A-Za-z_$][\w$]*)", re.M)
_FALLBACK_USE = re.compile(r"\b([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+)\s*\(")
_DEF_KEYWORDS = {"def": "function", "function": "function", "fn": "function", "func": "function", "class": "class",
                 "interface": "type", "type": "type", "struct": "type", "enum": "type", "trait": "type",
                 "const": "constant", "let": "variable", "var": "variable", "val": "variable",
                 "impl": "impl"}  # fmt: skip
_SQL_DEF = re.compile(
    r"\bCREATE\s+(?:OR\s+REPLACE\s+)?(?:(?:UNIQUE|TEMP|TEMPORARY|UNLOGGED|MATERIALIZED|RECURSIVE)\s+)*"
    r"(TABLE|VIEW|FUNCTION|PROCEDURE|EXTENSION|INDEX|TYPE|SCHEMA|TRIGGER|SEQUENCE|DOMAIN)\s+(?:CONCURRENTLY\s+)?"
    r"(?:IF\s+NOT\s+EXISTS\s+)?((?:\"[^\"]+\"|[A-Za-z_][\w$]*)(?:\.(?:\"[^\"]+\"|[A-Za-z_][\w$]*))?)",
    re.IGNORECASE,
)
_SQL_KIND = {"procedure": "function", "domain": "type", "schema": "module"}
_SQL_FROM = {"from", "join", "into", "update"}
_SELF = {"self", "this", "cls"}
_MAX_USES = 64  # a long example can call dozens of helpers; the first ones are enough to find the chunk


@lru_cache(maxsize=64)
def _lexer(language: str) -> Lexer:
    return get_lexer_by_name(_LEXER_NAME.get(language, language), stripnl=False, startinline=True)


def _detect(code: str) -> str | None:
    """Language of an untagged block from specific signs; None when it is not recognisably code."""
    if re.search(r"^>>> ", code, re.MULTILINE):
        return "python"
    return next((lang for lang, hint in _HINTS if hint.search(code)), None)


def _unprompt(code: str) -> str:
    """The input lines of a >>> session without their prompts (output lines name nothing that is defined)."""
    if not re.search(r"^>>>", code, re.MULTILINE):
        return code
    return "\n".join(line[4:] for line in code.split("\n") if line.startswith((">>>", "...")))


def _kind_of_use(name: str, called: bool, language: str = "python") -> str:
    last = _SEP.split(name)[-1]
    if is_constant(last):
        return "constant"
    if last[:1].isupper() and language not in ("go", "c", "rust"):  # Go exports, C and Rust types are capitalised too
        return "class"
    return "function" if called else "attribute"


def _code_symbols(code: str, language: str) -> list[Symbol]:
    """Definitions and uses in one code block of a known language, from its Pygments token stream."""
    toks: list[tuple[object, str, int, int]] = []  # (token type, text, indentation of its line, line number)
    lineno, last = 0, 0
    for idx, ttype, value in _lexer(language).get_tokens_unprocessed(code):
        if value.strip() and ttype not in Comment and ttype not in String:
            lineno, last = lineno + code.count("\n", last, idx), idx
            line = code[code.rfind("\n", 0, idx) + 1 : idx]
            toks.append((ttype, value, len(line) - len(line.lstrip()), lineno))
    out: list[Symbol] = []
    if language == "sql":
        for m in _SQL_DEF.finditer(code):
            kind = m.group(1).lower()
            out.append(Symbol(m.group(2).replace('"', ""), _SQL_KIND.get(kind, kind), "sql", "defines"))
    defined = {s.name for s in out}
    classes: list[tuple[int, str]] = []  # open classes: (indentation or brace depth of their body, name)
    depth, taken, i = 0, set(), 0
    imports: dict[str, str] = {}  # local name -> what it was imported as (np -> numpy, groupby -> itertools.groupby)

    def name_at(j: int) -> str | None:
        return toks[j][1] if j < len(toks) and toks[j][0] in Name and toks[j][0] not in Name.Builtin.Pseudo else None

    def define(j: int, kind: str, indent: int) -> None:
        name = toks[j][1]
        scope = depth if language != "python" else indent
        while classes and language == "python" and classes[-1][0] >= indent:
            classes.pop()
        if kind == "function" and classes and (language == "python" or classes[-1][0] == scope):
            sep = "::" if language in ("rust", "cpp") else "."
            kind, name = "method", f"{classes[-1][1]}{sep}{name}"
        if kind in ("class", "impl"):
            classes.append((indent if language == "python" else depth + 1, name))
        taken.add(j)
        if kind == "impl" or (kind in ("variable", "constant") and (depth or indent)):
            return  # impl blocks define nothing themselves; locals are not part of an API
        out.append(Symbol(name, kind, language, "defines"))
        defined.add(name)

    def python_import(i: int) -> int:
        """Record one line's `import a.b as c` / `from a import b as c` as uses; the index after the statement."""
        line, j, module = toks[i][3], i + 1, ""
        if toks[i][1] == "from":
            while j < len(toks) and toks[j][3] == line and toks[j][1] != "import":
                module, j = module + toks[j][1], j + 1
            j += 1
        names: list[list[str]] = [[""]]  # [dotted name, alias?] per imported item
        while j < len(toks) and toks[j][3] == line and (name_at(j) or toks[j][1] in ".,()" or toks[j][1] == "as"):
            value = toks[j][1]
            if value == ",":
                names.append([""])
            elif value == "as":
                names[-1].append("")
            elif value not in "()":
                names[-1][-1] += value
            j += 1
        for item in names:
            if item[0]:
                full = f"{module}.{item[0]}" if module else item[0]
                if module or len(item) > 1:  # plain `import os.path` binds os to os itself
                    imports[item[-1]] = full
                kind = _kind_of_use(item[0], True) if module else "module"
                out.append(Symbol(full, kind, "python", "uses"))
        return j

    while i < len(toks):
        ttype, value, indent, _ = toks[i]
        prev = toks[i - 1][1] if i else ""
        if value == "{" or value == "}":
            depth += 1 if value == "{" else -1
            while classes and language != "python" and classes[-1][0] > depth:
                classes.pop()
        elif ttype in Keyword and value in _DEF_KEYWORDS and language != "sql":
            j = i + 1
            if value == "func" and j < len(toks) and toks[j][1] == "(":  # Go method: func (r *T) Name(
                k = next((k for k in range(j, len(toks)) if toks[k][1] == ")"), len(toks) - 1)
                receiver = next((toks[n][1] for n in range(k - 1, j, -1) if name_at(n)), None)
                if name_at(k + 1) and receiver:
                    out.append(Symbol(f"{receiver}.{toks[k + 1][1]}", "method", language, "defines"))
                    taken.add(k + 1)
            elif name_at(j):
                kind = _DEF_KEYWORDS[value]
                if kind in ("constant", "variable"):
                    window = [t[1] for t in toks[j + 1 : j + 14]]
                    stop = window.index(";") if ";" in window else len(window)
                    if window[:1] == ["="] and ("=>" in window[:stop] or window[1:2] in (["function"], ["async"])):
                        kind = "function"
                if value not in ("struct", "enum") or language != "c" or "{" in [t[1] for t in toks[j + 1 : j + 2]]:
                    define(j, kind, indent)
        elif ttype in Keyword.Namespace and value in ("from", "import") and language == "python":
            i = max(i + 1, python_import(i))
            continue
        elif i not in taken and (ttype is Name.Function or ttype is Name.Class) and prev not in (".", "::", "->"):
            # C lexers mark declarations this way; a struct only counts where its body follows (struct foo {).
            after = toks[i + 1][1] if i + 1 < len(toks) else ""
            if after == "(" if ttype is Name.Function else after in ("{", ":"):
                define(i, "function" if ttype is Name.Function else "type", indent)
            i += 1
            continue
        elif i not in taken and name_at(i) and prev not in (".", "::", "->"):
            chain, j = [value], i + 1
            while j + 1 < len(toks) and toks[j][1] in (".", "::") and name_at(j + 1):
                chain.append(toks[j + 1][1])
                j += 2
            called = j < len(toks) and toks[j][1] == "("
            # MAX_SIZE = 10 at the start of a module-level line is an API constant.
            assigned = toks[j][1] == "=" if j < len(toks) else False
            statement_start = not i or toks[i - 1][3] != toks[i][3]
            if language == "python" and not indent and statement_start and assigned and is_constant(value):
                define(i, "constant", indent)
                i = j
                continue
            if chain[0] in _SELF:
                chain = chain[1:]
            elif chain[0] in imports:  # groupby(...) after `from itertools import groupby` uses itertools.groupby
                chain = [imports[chain[0]], *chain[1:]]
            sep = "::" if language in ("rust", "cpp") else "."
            name = sep.join(chain)
            if language in ("javascript", "typescript") and called and classes and classes[-1][0] == depth:
                close = next((k for k in range(j, len(toks)) if toks[k][1] == ")"), None)
                if close is not None and close + 1 < len(toks) and toks[close + 1][1] == "{":  # render() { ... }
                    define(i, "function", indent)
                    i = j
                    continue
            if chain and (called or len(chain) > 1 or (language == "sql" and prev.lower() in _SQL_FROM)):
                kind = "table" if language == "sql" and not called else _kind_of_use(name, called, language)
                out.append(Symbol(name, kind, language, "uses"))
            i = j
            continue
        i += 1
    return [s for s in out if s.role == "defines" or s.name not in defined]


def _fallback_symbols(code: str) -> list[Symbol]:
    """Regex definitions and dotted calls for code no lexer was chosen for."""
    kinds = {"class": "class"}
    out = [Symbol(m.group(2), kinds.get(m.group(1), "function"), "unknown", "defines")
           for m in _FALLBACK_DEF.finditer(code)]  # fmt: skip
    out += [Symbol(m.group(1), "function", "unknown", "uses") for m in _FALLBACK_USE.finditer(code)]
    return out


def _block_symbols(code: str, tag: str) -> list[Symbol]:
    tag = tag.lower()
    if tag in _NO_SYMBOLS:
        return []
    language = _LANGS.get(tag) if tag else _detect(code)
    if tag and language is None:
        try:  # any other language Pygments knows
            _lexer(tag)
            language = tag
        except ClassNotFound:
            return _fallback_symbols(code)
    if language == "shell":
        return []
    if language is None:
        return _fallback_symbols(code)
    if language == "python":
        code = _unprompt(code)
    try:
        return _code_symbols(code, language)
    except Exception:  # a lexer bug on odd input must not fail indexing: the regex fallback still finds something
        return _fallback_symbols(code)


def extract_symbols(chunk_text: str, *, context: PageContext | None = None) -> list[Symbol]:
    """Symbols a chunk's markdown defines (code definitions, API signature lines) or uses (calls, references)."""
    ctx = context if context is not None else PageContext()
    found: list[Symbol] = []
    prose: list[str] = []
    pos = 0
    while (m := _FENCE.search(chunk_text, pos)) is not None:
        prose.append(chunk_text[pos : m.start()])
        indent, fence = m.group(1), m.group(2)
        close = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$", re.MULTILINE)
        end = close.search(chunk_text, m.end())
        body = chunk_text[m.end() + 1 : end.start() if end else len(chunk_text)]
        if indent:  # a block inside a list item is indented like the item
            body = "\n".join(line[len(indent) :] if line.startswith(indent) else line for line in body.split("\n"))
        found += _block_symbols(body, m.group(3))
        pos = end.end() if end else len(chunk_text)
    prose.append(chunk_text[pos:])
    for text in prose:
        for m in SIGNATURE_LINE.finditer(text):
            sym = signature_symbol(m.group(1).strip(), ctx)
            if sym is not None:
                found.append(sym)
    # One symbol per (name, role): the first kind seen wins (a name called once and referenced once is one use).
    unique: dict[tuple[str, str], Symbol] = {}
    for s in found:
        unique.setdefault((s.name, s.role), s)
    defines = [s for s in unique.values() if s.role == "defines"]
    uses = [s for s in unique.values() if s.role == "uses"]
    return defines + uses[:_MAX_USES]


def extract_page_symbols(chunks: Sequence[Chunk]) -> list[list[Symbol]]:
    """Symbols of each chunk of one page, in order, so that member signatures find the class entry above them."""
    ctx, section, result, carried = PageContext(), None, [], ""
    for i, chunk in enumerate(chunks):
        if chunk.section_path != section:  # a class entry never spans headings
            ctx.owner, section = None, chunk.section_path
        text = chunk.text.rstrip()
        if carried and not text.lstrip().startswith(carried):
            text = f"{carried}\n\n{text}"
        last = text.rsplit("\n", 1)[-1].strip()
        nxt = chunks[i + 1] if i + 1 < len(chunks) else None
        carried = ""
        if nxt is not None and nxt.section_path == chunk.section_path and SIGNATURE_LINE.fullmatch(last):
            # A signature that closes a chunk is described by the next one: that chunk is the one to find it by.
            text, carried = text[: -len(last)], last
        result.append(extract_symbols(text, context=ctx))
    return result
