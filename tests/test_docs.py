"""docs/tools.md matches the live tool schemas (regenerate with `make docs`)."""

from __future__ import annotations

from tools.gen_tools_doc import OUTPUT, render, tool_dicts, type_of


async def test_tools_doc_is_current() -> None:
    tools = await tool_dicts()
    expected = render(tools)
    current = OUTPUT.read_text() if OUTPUT.exists() else ""
    assert current == expected, "docs/tools.md is stale: run `make docs`"
    for tool in tools:
        assert f"## `{tool['name']}`" in current


def test_type_rendering() -> None:
    assert type_of({"anyOf": [{"type": "integer"}, {"type": "null"}]}) == "integer \\| null"
    assert type_of({"type": "array", "items": {"$ref": "#/$defs/LegOut"}}) == "array of LegOut"
    assert type_of({"enum": ["hybrid", "dense"]}) == '"hybrid" \\| "dense"'
    assert type_of({"type": "object", "additionalProperties": {"type": "number"}}) == "object of number"
    assert type_of({}) == "any"
