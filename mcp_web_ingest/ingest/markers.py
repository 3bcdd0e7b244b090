"""What page markup says about headings and code blocks, read before cleaning removes the markers it relies on.

Heading anchors come from ids, wrapping sections, named anchors and Sphinx ``.headerlink``s; code languages from
``language-x`` classes, ``data-lang`` and Sphinx ``highlight-x`` wrappers.
"""

from __future__ import annotations

import re

from selectolax.lexbor import LexborNode

__all__ = ["HEADINGS", "code_language", "heading_anchor"]

HEADINGS = "h1, h2, h3, h4, h5, h6"
# Sphinx `highlight-<lexer>` names mapped to fence tags. Sphinx's "default" lexer is python3 (falling back to
# none when the code does not parse), so it is tagged python; "none"/"text" blocks get no tag.
_LANG_ALIASES = {"python3": "python", "py3": "python", "py": "python", "default": "python", "ipython3": "ipython"}
_NO_LANG = {"none", "text", "plaintext", "plain", "nohighlight", "txt"}
_LANG_CLASS = re.compile(r"^(?:language|lang|highlight(?:-source)?)-([\w+#.-]+)$")


def heading_anchor(h: LexborNode) -> str | None:
    """The fragment that links to heading ``h``: own id, wrapping section id, nearby a[id|name], headerlink."""
    if h.attributes.get("id"):
        return h.attributes["id"]
    node = h.parent
    for _ in range(3):  # Sphinx and many generators put the id on a <section>/<div> that opens with the heading
        if node is None or node.tag not in ("section", "div", "article"):
            break
        first = node.css_first(HEADINGS)
        if first is None or first.mem_id != h.mem_id:
            break
        if node.attributes.get("id"):
            return node.attributes["id"]
        node = node.parent
    for a in h.css("a[id], a[name]"):
        return a.attributes.get("id") or a.attributes.get("name")
    prev = h.prev
    while prev is not None and prev.tag == "-text" and not (prev.text_content or "").strip():
        prev = prev.prev
    if prev is not None and prev.tag in ("a", "span") and not prev.text(strip=True):
        anchor = prev.attributes.get("id") or prev.attributes.get("name")
        if anchor:
            return anchor
    link = h.css_first("a.headerlink[href]")
    href = link.attributes.get("href") if link is not None else None
    if href and "#" in href:
        return href.split("#", 1)[1] or None
    return None


def code_language(pre: LexborNode) -> str:
    """Fence tag for a <pre>: language-x/lang-x on pre or code, data-lang, else a Sphinx highlight-x ancestor."""
    nodes = [pre]
    code = pre.css_first("code")
    if code is not None:
        nodes.append(code)
    ancestor = pre.parent
    for _ in range(3):
        if ancestor is None:
            break
        nodes.append(ancestor)
        ancestor = ancestor.parent
    for node in nodes:
        lang = node.attributes.get("data-lang") or ""
        for cls in (node.attributes.get("class") or "").split():
            m = _LANG_CLASS.match(cls)
            if m:
                lang = m.group(1)
                break
        if lang:
            lang = lang.lower()
            return "" if lang in _NO_LANG else _LANG_ALIASES.get(lang, lang)
    return ""
