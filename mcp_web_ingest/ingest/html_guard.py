"""Limits applied to hostile HTML before and while it is parsed: nesting depth and links per page.

Deep nesting must be cut before parsing: lexbor's tree builder walks the stack of open elements for every
block start tag ("close a p in button scope"), so its time grows with the square of the depth (40k nested
``<div>`` take it 2.3 s, 40k nested lists 8 s), and every recursive step after it (tree walks, the converter)
fails or crawls. ``limit_nesting`` reads the markup once with the HTML tokenizer's rules and an approximate model
of the tree builder, and removes the start and end tags that would nest deeper than the limit; their text stays.
Pages within the limit come back unchanged. The model errs towards deeper (a mis-nested page may lose some
structure); where it could still be fooled, the extraction time limit (extract_worker) is the backstop.
"""

from __future__ import annotations

import re

__all__ = ["MAX_DEPTH", "MAX_LINKS", "limit_nesting"]

MAX_DEPTH = 128  # browsers render pages deeper than this, but no real page needs it
MAX_LINKS = 5000  # links kept per page: crawl discovery and markdown links alike (a 10 MB page can hold 750k)


def _names(words: str) -> frozenset[str]:
    return frozenset(words.split())


# Elements that never hold children, and those whose first start tag lexbor merges instead of pushing.
_NO_PUSH = _names(
    "area base basefont bgsound br col embed frame hr img input keygen link meta param source track wbr html head body"
)
_RAW_TEXT = _names("script style textarea title xmp iframe noembed noframes")  # their content is text
_SCOPE = _names("html table td th caption applet marquee object template")
# The tree builder's "special" elements (those that can be open): an end tag of any other element is ignored
# when one of these is open above it, and an end tag of one of these is ignored when a scope boundary is.
_SPECIAL = _SCOPE | _names(
    "address article aside blockquote button center colgroup dd details dir div dl dt fieldset figcaption figure "
    "footer form frameset h1 h2 h3 h4 h5 h6 header hgroup li listing main menu nav noscript ol p pre search "
    "section select summary tbody tfoot thead tr ul"
)
_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
_CLOSES_P = _names(
    "address article aside blockquote center details dialog dir div dl fieldset figcaption figure footer form "
    "header hgroup main menu nav ol p pre listing search section summary table ul li dd dt hr h1 h2 h3 h4 h5 h6"
)
_BUTTON_SCOPE = (*_SCOPE, "button")
_TABLE = ("table", "template", "html")
# Start tags that end an open element of the same family, and the open elements that stop that search.
_IMPLIED: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "li": (("li",), (*_SPECIAL - {"address", "div", "p", "li"},)),
    "dt": (("dt", "dd"), (*_SPECIAL - {"address", "div", "p", "dt", "dd"},)),
    "dd": (("dt", "dd"), (*_SPECIAL - {"address", "div", "p", "dt", "dd"},)),
    "td": (("td", "th"), ("tr", *_TABLE)),
    "th": (("td", "th"), ("tr", *_TABLE)),
    "tr": (("tr",), ("tbody", "thead", "tfoot", *_TABLE)),
    "tbody": (("tbody", "thead", "tfoot"), _TABLE),
    "thead": (("tbody", "thead", "tfoot"), _TABLE),
    "tfoot": (("tbody", "thead", "tfoot"), _TABLE),
    "option": (("option",), ("select", "datalist", *_SCOPE)),
    "optgroup": (("option", "optgroup"), ("select", *_SCOPE)),
    "a": (("a",), (*_SPECIAL,)),  # with a block in between, the adoption agency keeps the depth
}

# Where markup starts: a comment, a bogus comment or doctype (<!x, <?x, </ x), or a start or end tag and the
# rest of the tag read exactly as the tokenizer does (a ">" only ends it outside quoted values). A tag whose rest
# does not match runs to the end of the document, which the tokenizer then drops.
_MARKUP = re.compile(
    r"""<(?:
        (!--)
      | (!|\?|/(?![A-Za-z]))
      | (/?)([A-Za-z][^\t\n\f\r\x20/>]*)
        ((?:
            [\t\n\f\r\x20/]++                               # between attributes ("/" not before ">" too)
          | [^\t\n\f\r\x20/>][^\t\n\f\r\x20/>=]*+         # an attribute name (it may start with "=")
            (?: [\t\n\f\r\x20]*+ = [\t\n\f\r\x20]*+
                (?: "[^"]*+" | '[^']*+' | [^\t\n\f\r\x20>"'][^\t\n\f\r\x20>]*+ | (?=>) )
              | (?! [\t\n\f\r\x20]*+ = ) )
        )*+ >)?
    )""",
    re.VERBOSE,
)
_COMMENT_END = re.compile(r"--!?>")
_RAW_END = {name: re.compile(rf"</{name}[\t\n\f\r />]", re.IGNORECASE) for name in _RAW_TEXT}


_PUSH, _NO_PUSH_RULE, _RAW, _PLAINTEXT = 0, 1, 2, 3
_RULES = {name: _NO_PUSH_RULE for name in _NO_PUSH} | {name: _RAW for name in _RAW_TEXT} | {"plaintext": _PLAINTEXT}
_CHECKED = _CLOSES_P | frozenset(_HEADINGS) | frozenset(_IMPLIED)  # start tags that may close elements first


class _Stack:
    """Open elements roughly as the tree builder holds them; dropped ones stay on top as ghosts until closed.

    Each entry is (name, kept, index of the nearest kept special element at or below it, same for scope
    boundaries), so that whether an end tag applies is known without walking the stack.
    """

    def __init__(self) -> None:
        self.entries: list[tuple[str, bool, int, int]] = []
        self.where: dict[str, list[int]] = {}
        self.depth = 0  # kept elements open

    def push(self, name: str, kept: bool) -> None:
        entries = self.entries
        i = len(entries)
        special, scope = (entries[-1][2], entries[-1][3]) if entries else (-1, -1)
        if kept:
            self.depth += 1
            if name in _SPECIAL:
                special = i
                if name in _SCOPE:
                    scope = i
        entries.append((name, kept, special, scope))
        where = self.where.get(name)
        if where is None:
            self.where[name] = [i]
        else:
            where.append(i)

    def top(self, names: tuple[str, ...]) -> int:
        """Index of the topmost open element among ``names``, -1 when none is open."""
        best = -1
        for name in names:
            where = self.where.get(name)
            if where and where[-1] > best:
                best = where[-1]
        return best

    def pop_to(self, index: int) -> None:
        """Pop elements down to ``index`` included."""
        entries, where = self.entries, self.where
        while len(entries) > index:
            name, kept, _, _ = entries.pop()
            where[name].pop()
            self.depth -= kept

    def close(self, targets: tuple[str, ...], boundaries: tuple[str, ...]) -> None:
        """Implicitly close the topmost of ``targets`` unless a boundary element is open above it."""
        index = self.top(targets)
        if index >= 0 and index > self.top(boundaries):
            self.pop_to(index)

    def start_tag(self, name: str, max_depth: int) -> bool:
        """Apply ``<name>``; False when it is nested too deep and must go."""
        if name in _CLOSES_P and self.where.get("p"):
            self.close(("p",), _BUTTON_SCOPE)
        if name in _HEADINGS and self.entries and self.entries[-1][0] in _HEADINGS:
            self.pop_to(len(self.entries) - 1)
        implied = _IMPLIED.get(name)
        if implied is not None:
            self.close(*implied)
        kept = self.depth < max_depth
        self.push(name, kept)
        return kept

    def end_tag(self, name: str) -> bool:
        """Apply ``</name>``; False when it closed a dropped element (its end tag must go too)."""
        where = self.where.get(name)
        if not where:
            return True
        index = where[-1]
        entries = self.entries
        if not entries[index][1]:
            self.pop_to(index)
            return False
        if index < len(entries) - 1:  # not the current node: something open above may block it
            blocked = entries[-1][3] if name in _SPECIAL else entries[-1][2]
            if name == "li":
                blocked = max(blocked, self.top(("ul", "ol")))
            elif name == "p":
                blocked = max(blocked, self.top(("button",)))
            if blocked > index:
                return True
        self.pop_to(index)
        return True


def limit_nesting(html: str, max_depth: int = MAX_DEPTH) -> str:
    """``html`` without the start/end tags nested deeper than ``max_depth`` (their content is kept); linear time."""
    if html.count("<") <= max_depth:
        return html
    stack = _Stack()
    entries, where = stack.entries, stack.where
    cut: list[tuple[int, int]] = []  # spans of tags to remove
    pos = 0
    search = _MARKUP.search
    while (m := search(html, pos)) is not None:
        kind = m.lastindex
        if kind == 5:  # a start or end tag
            pos = m.end()
            name = m.group(4).lower()
            if m.group(3):
                top = entries[-1] if entries else None
                if top is not None and top[0] == name and top[1]:  # the common case: it closes the current node
                    entries.pop()
                    where[name].pop()
                    stack.depth -= 1
                elif not stack.end_tag(name):
                    cut.append((m.start(), pos))
                continue
            rule = _RULES.get(name, _PUSH)
            if rule == _PUSH:
                if html[pos - 2] == "/" and (where.get("svg") or where.get("math")):
                    continue  # self-closed inside SVG/MathML
                if name not in _CHECKED and stack.depth < max_depth:
                    stack.push(name, True)  # the common case: nothing to close first
                elif not stack.start_tag(name, max_depth):
                    cut.append((m.start(), pos))
            elif rule == _RAW:
                end = _RAW_END[name].search(html, pos)
                if end is None:
                    break
                pos = end.start()
            elif rule == _PLAINTEXT:
                break
        elif kind == 1:  # <!-- comment -->
            body = m.end()
            if html.startswith(">", body) or html.startswith("->", body):
                pos = html.index(">", body) + 1
                continue
            end = _COMMENT_END.search(html, body)
            if end is None:
                break
            pos = end.end()
        elif kind == 2:  # bogus comment or doctype: up to the next ">"
            pos = html.find(">", m.end())
            if pos < 0:
                break
            pos += 1
        else:  # an unterminated tag swallows the rest of the document
            break
    if not cut:
        return html
    pieces, last = [], 0
    for a, b in cut:
        pieces.append(html[last:a])
        last = b
    pieces.append(html[last:])
    return "".join(pieces)
