"""Site chrome that no tag or class names: logo headings and the small link bars around them (pure functions).

Many documentation themes put the site name in an ``<h1>`` that is only a link home and surround the content with
"« previous | up | next »" bars in plain ``<div>``s (Django's docs, older Sphinx and Jekyll themes). Left in, the
site name becomes every page's title and the bars become chunks of their own.
"""

from __future__ import annotations

from selectolax.lexbor import LexborNode

LINK_BAR_MAX_CHARS = 200  # a bar of links is short; a longer run of links is a table of contents, which is content
LINK_BAR_MIN_DENSITY = 0.7  # share of the block's text inside links
_INLINE = frozenset({"a", "span", "em", "strong", "b", "i", "code", "small", "img", "br", "-text"})


def _text(node: LexborNode) -> str:
    return "".join(node.text(separator=" ").split())


def link_density(node: LexborNode) -> float:
    """Share of a node's visible characters (whitespace aside) that sit inside links."""
    total = len(_text(node))
    if not total:
        return 0.0
    return sum(len(_text(a)) for a in node.css("a")) / total


def is_logo_heading(heading: LexborNode) -> bool:
    """A heading whose whole text is one link to another page: a site name, not the page's title."""
    links = [a for a in heading.css("a") if not (a.attributes.get("href") or "").startswith("#")]
    return len(links) == 1 and bool(_text(heading)) and _text(links[0]) == _text(heading)


def _is_link_bar(node: LexborNode) -> bool:
    if any(child.tag not in _INLINE for child in node.iter(include_text=True)):
        return False
    links = node.css("a")
    # Links within the page (an index of its own functions) are content; a bar leads to other pages.
    if any((a.attributes.get("href") or "").startswith("#") for a in links):
        return False
    return len(links) >= 2 and len(_text(node)) <= LINK_BAR_MAX_CHARS and link_density(node) >= LINK_BAR_MIN_DENSITY


def drop_site_chrome(root: LexborNode) -> None:
    """Remove logo headings (with a link-dense block around them) and short bars made only of links."""
    for heading in root.css("h1"):
        if not is_logo_heading(heading):
            continue
        parent = heading.parent
        if (
            parent is not None
            and parent.tag == "div"
            and link_density(parent) >= LINK_BAR_MIN_DENSITY
            and len(_text(parent)) <= 2 * LINK_BAR_MAX_CHARS
        ):
            parent.decompose()  # the site header the logo sits in: the logo and the links beside it
        else:
            heading.decompose()
    for block in root.css("div"):
        if _is_link_bar(block):
            block.decompose()
