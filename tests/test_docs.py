"""Generated docs match their sources: docs/tools.md, .env.example and docs/configuration.md (`make docs`)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mcp_web_ingest.config import CONCERNS, Settings
from tools import gen_env_example
from tools.gen_tools_doc import OUTPUT, render, surface, type_of

ROOT = Path(__file__).resolve().parent.parent


async def test_tools_doc_is_current() -> None:
    found = await surface()
    expected = render(found)
    current = OUTPUT.read_text() if OUTPUT.exists() else ""
    assert current == expected, "docs/tools.md is stale: run `make docs`"
    for item in (*found["tools"], *found["prompts"]):
        assert f"## `{item['name']}`" in current
    for template in found["templates"]:
        assert f"| `{template['uri_template']}` |" in current
    assert {p["name"] for p in found["prompts"]} == {"answer_from_docs", "index_docs_site", "whats_new"}


def test_type_rendering() -> None:
    assert type_of({"anyOf": [{"type": "integer"}, {"type": "null"}]}) == "integer \\| null"
    assert type_of({"type": "array", "items": {"$ref": "#/$defs/LegOut"}}) == "array of LegOut"
    assert type_of({"enum": ["hybrid", "dense"]}) == '"hybrid" \\| "dense"'
    assert type_of({"type": "object", "additionalProperties": {"type": "number"}}) == "object of number"
    assert type_of({}) == "any"


def test_configuration_docs_are_current() -> None:
    for path, expected in gen_env_example.outputs().items():
        current = path.read_text() if path.exists() else ""
        assert current == expected, f"{path.name} is stale: run `make docs`"
    doc = gen_env_example.CONFIG_DOC.read_text()
    for name in Settings.model_fields:
        assert f"| `{name.upper()}` |" in doc


def test_env_example_defaults_are_the_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Uncommenting every variable of .env.example at its shown default changes nothing."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    shown = re.findall(r"^# ([A-Z0-9_]+=.+)$", gen_env_example.ENV_EXAMPLE.read_text(), flags=re.MULTILINE)
    assert len(shown) > 50
    env_file = tmp_path / ".env"
    env_file.write_text("\n".join(shown) + "\n")
    from_file = Settings(_env_file=env_file)  # type: ignore[call-arg]
    assert from_file.model_dump() == Settings(_env_file=None).model_dump()  # type: ignore[call-arg]


def test_readme_names_real_variables() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Configuration\n", 1)[1].split("\n## ", 1)[0]
    first_cells = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    names = {name for cell in first_cells for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", cell)}
    assert names, "the README's Configuration section lists no variables"
    assert names <= {n.upper() for n in Settings.model_fields}, names - {n.upper() for n in Settings.model_fields}
    assert "docs/configuration.md" in section


def test_every_setting_is_in_one_group() -> None:
    gen_env_example.check_coverage()
    for concern in CONCERNS:
        assert concern.__doc__, concern.__name__
        for name, info in concern.model_fields.items():
            assert info.description, f"{name} has no description"


def test_setting_rendering() -> None:
    fields = Settings.model_fields
    assert gen_env_example.type_text("mcp_port", fields["mcp_port"]) == "integer 1–65535"
    assert gen_env_example.type_text("fetch_timeout_s", fields["fetch_timeout_s"]) == "seconds > 0"
    assert gen_env_example.type_text("vector_store", fields["vector_store"]) == "`postgres` \\| `qdrant`"
    assert gen_env_example.type_text("allowed_hosts", fields["allowed_hosts"]) == "list"
    assert gen_env_example.default_value(fields["data_dir"]) is None  # computed per user: shown as unset
    assert gen_env_example.default_value(fields["allowed_hosts"]) == ""
    assert gen_env_example.default_value(fields["fusion_weight_symbol"]) == "1"  # 1.0 shown without ".0"
    assert gen_env_example.default_value(fields["search_code_page_penalty"]) == "0.3"
    assert gen_env_example.default_value(fields["metrics_require_auth"]) == "false"
