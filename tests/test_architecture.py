"""The package's shape: layers import only downwards, no import cycles, small modules, no capability probes on stores.

The layers and the cycle rule are import-linter contracts in pyproject.toml ([tool.importlinter]); these tests run
them and add what import-linter does not check.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "mcp_web_ingest"
MAX_MODULE_LINES = 400
# What a store or index object is called where it is used: store, self.store, rt.store, self._store, vector_index...
_STORE_NAME = re.compile(r"store|index", re.IGNORECASE)


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _lint_imports() -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("lint-imports")
    if not script.exists():
        pytest.fail(f"lint-imports not found beside {sys.executable}: install the dev extra (pip install -e '.[dev]')")
    # --no-cache: nothing written into the checkout; the whole graph takes well under a second to build.
    return subprocess.run(
        [str(script), "--no-cache", "--no-logo", str(ROOT / "pyproject.toml")],
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "200"},  # long module chains on one line each
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_import_contracts_hold() -> None:
    """interface > runtime > crawl > pipeline, legacy > search > ingest | storage > encoders > foundation, no cycles."""
    result = _lint_imports()
    assert result.returncode == 0, f"import-linter contracts broken:\n{result.stdout}\n{result.stderr}"
    assert "0 broken" in result.stdout, result.stdout


def test_import_contracts_list_every_layer() -> None:
    """The layer contract is exhaustive, so a new top-level module or package must be placed in a layer to pass."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    (layers,) = [c for c in config["contracts"] if c["type"] == "layers"]
    assert layers["exhaustive"] is True and layers["containers"] == ["mcp_web_ingest"]
    assert [c["type"] for c in config["contracts"]].count("acyclic_siblings") == 1


def test_modules_stay_small() -> None:
    """No module of the package is over MAX_MODULE_LINES lines: split one by responsibility before it grows past."""
    offenders = {
        str(path.relative_to(ROOT)): n
        for path in _modules()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert not offenders, f"modules over {MAX_MODULE_LINES} lines: {offenders}"


def _probed_names(node: ast.expr) -> set[str]:
    """The identifiers of the object expression a getattr/hasattr looks into (rt.store -> {rt, store})."""
    names: set[str] = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            names.add(sub.id)
        elif isinstance(sub, ast.Attribute):
            names.add(sub.attr)
    return names


def test_no_capability_probes_on_stores() -> None:
    """What a store can do is declared on its Protocol, never probed with getattr/hasattr."""
    probes: list[str] = []
    for path in _modules():
        source = path.read_text(encoding="utf-8")
        for node in ast.walk(ast.parse(source, filename=str(path))):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("getattr", "hasattr")
                and node.args
            ):
                continue
            if any(_STORE_NAME.search(name) for name in _probed_names(node.args[0])):
                probes.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.get_source_segment(source, node)}")
    assert not probes, "capability probes on store/index objects:\n" + "\n".join(sorted(probes))
