"""The command line, run in-process against the session's embedded database.

`main` runs in a worker thread (it calls asyncio.run), so the test site on the session loop keeps serving.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from mcp_web_ingest import __version__
from mcp_web_ingest.interface.cli import main as cli_main
from mcp_web_ingest.runtime import Runtime


async def main(argv: list[str]) -> int:
    """Run the CLI in a thread, as a user would from a shell."""
    return await asyncio.to_thread(cli_main, argv)


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, data_dir: Path, clean: Runtime) -> None:
    """Point the CLI at the session database (and away from any developer .env)."""
    monkeypatch.setenv("DATA_DIR", str(data_dir))
    monkeypatch.setenv("LOG_LEVEL", "WARNING")
    monkeypatch.setenv("ALLOW_PRIVATE_NETWORKS", "true")  # the test site is on 127.0.0.1
    monkeypatch.chdir(data_dir)


async def test_index_search_health_migrate(cli_env: None, site_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert await main(["index", f"{site_url}/guide/install.html"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"indexed: {site_url}/guide/install.html") and "chunks:" in out

    assert await main(["index", f"{site_url}/guide/install.html", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["unchanged"] is True

    assert await main(["search", "corporate proxy", "--k", "2"]) == 0
    out = capsys.readouterr().out
    assert "results for 'corporate proxy'" in out and f"{site_url}/guide/install.html#pip-behind-a-proxy" in out
    assert await main(["search", "install", "--k", "1"]) == 0  # one result: the page's other sections are named
    assert "   also: Installing the Froobnicator › " in capsys.readouterr().out

    assert await main(["search", "corporate proxy", "--mode", "lexical", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["mode"] == "lexical" and data["results"][0]["legs"][0]["leg"] == "lexical"

    assert await main(["health"]) == 0
    out = capsys.readouterr().out
    assert "status: ok" in out and "pages: 1" in out
    assert await main(["health", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["version"] == __version__

    assert await main(["migrate", "status"]) == 0
    assert "applied  0001_initial" in capsys.readouterr().out
    assert await main(["migrate", "up"]) == 0
    assert "nothing to apply" in capsys.readouterr().out


async def test_errors_exit_2_with_a_message(cli_env: None, site_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert await main(["index", "notaurl"]) == 2
    assert "error: URL must be absolute" in capsys.readouterr().err
    assert await main(["index", f"{site_url}/status/404"]) == 2
    assert "404" in capsys.readouterr().err
    assert await main(["search", ""]) == 2
    assert "empty" in capsys.readouterr().err


def test_bad_configuration_exits_2(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MCP_PORT", "not-a-port")
    assert cli_main(["health"]) == 2
    assert "MCP_PORT" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli_main(["--version"])
    assert __version__ in capsys.readouterr().out


async def test_crawl_with_progress_and_report(cli_env: None, site_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as s, s.put(f"{site_url}/_control/reset"):
        pass
    args = ["index", f"{site_url}/crawl/index.html", "--max-depth", "1", "--max-pages", "8", "--exclude", "broken"]
    rc = await main(args)
    captured = capsys.readouterr()
    assert "crawl" in captured.out and "discovered" in captured.out and "pages/s" in captured.out
    assert "indexed" in captured.err and "8/8" in captured.err  # the progress bar
    assert rc in (0, 1)  # 1 when some page failed (partial)
    assert await main([*args, "--json"]) == rc
    report = json.loads(capsys.readouterr().out)
    assert report["finished"] and report["counts"]["indexed"] == 0 and report["counts"]["unchanged"] >= 1


async def test_index_with_an_auth_profile(
    cli_env: None, site_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from .formats_site import BASIC

    profiles = tmp_path / "auth.toml"
    profiles.write_text(
        f'[profiles.wiki]\nhosts = ["127.0.0.1"]\nbasic = {{ username = "{BASIC[0]}", password = "${{WIKI_PW}}" }}\n'
    )
    monkeypatch.setenv("AUTH_PROFILES_FILE", str(profiles))
    monkeypatch.setenv("WIKI_PW", BASIC[1])
    url = f"{site_url}/formats/private/basic.md"
    assert await main(["index", url]) == 2
    assert "401" in capsys.readouterr().err
    assert await main(["index", url, "--auth-profile", "wiki"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"indexed: {url}") and BASIC[1] not in out
    assert await main(["index", url, "--auth-profile", "intranet"]) == 2
    assert "Unknown auth profile 'intranet'; configured profiles: wiki" in capsys.readouterr().err


async def test_versions_from_the_command_line(cli_env: None, site_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    base = f"{site_url}/formats/versions"
    assert await main(["index", f"{base}/v1/api.md"]) == 0
    assert await main(["index", f"{base}/next/api.md", "--doc-version", "v2.1"]) == 0
    capsys.readouterr()
    assert await main(["search", "open a frobble session", "--json"]) == 0  # latest: 2.1
    assert [r["url"] for r in json.loads(capsys.readouterr().out)["results"]] == [f"{base}/next/api.md"]
    assert await main(["search", "open a frobble session", "--doc-version", "1", "--json"]) == 0
    assert [r["url"] for r in json.loads(capsys.readouterr().out)["results"]] == [f"{base}/v1/api.md"]


async def test_export_and_import_a_collection(
    cli_env: None, site_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pack = tmp_path / "guide.pack"
    assert await main(["index", f"{site_url}/guide/install.html", "--collection", "guide"]) == 0
    assert await main(["export", "guide", str(pack)]) == 0
    assert "exported 1 pages" in capsys.readouterr().out
    assert await main(["import", str(pack), "--collection", "guide-copy"]) == 0
    assert "imported 1 pages" in capsys.readouterr().out
    assert await main(["search", "corporate proxy", "--collection", "guide-copy", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["results"][0]["collection"] == "guide-copy"
    assert await main(["import", str(tmp_path / "missing.pack")]) == 2
    assert "cannot be read" in capsys.readouterr().err
