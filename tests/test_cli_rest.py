"""``pylazer-sync symbols`` with its cache (``--cache``, ``--max-age``, ``--refresh``) and
the REST commands' repeatable URLs (failover), as subprocesses against a simulator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pylazer_sync.cli.symbols import default_cache_path
from pylazer_sync.simulator import Simulator
from tests.cli_support import cli, refusing_port


@pytest.fixture(scope="module")
def sim() -> Simulator:
    with Simulator(seed=9) as s:
        yield s  # type: ignore[misc]


def _ids(stdout: str) -> list[int]:
    return [int(line.split()[0]) for line in stdout.strip().splitlines()[1:]]


def test_symbols_cache_max_age_and_refresh(sim: Simulator, tmp_path: Path) -> None:
    cache = tmp_path / "symbols.json"
    base = ["symbols", "--endpoint", sim.url, "--cache", str(cache)]
    first = cli(*base, "--query", "crypto.eth")
    assert first.returncode == 0, first.stderr
    assert _ids(first.stdout) == [2] and "from the cache" not in first.stderr
    assert json.loads(cache.read_text())["symbols"]  # the whole catalogue was kept
    asked = sim.rest_requests().get("/v1/symbols", 0)
    # Young enough: answered from the file, the service not asked.
    young = cli(*base, "--query", "crypto.eth")
    assert young.returncode == 0, young.stderr
    assert _ids(young.stdout) == [2] and "from the cache" in young.stderr
    assert sim.rest_requests().get("/v1/symbols", 0) == asked
    # --refresh asks anyway; --max-age 0 too.
    for extra in (["--refresh"], ["--max-age", "0"]):
        result = cli(*base, *extra, "--asset-type", "fx", "--output", "jsonl")
        assert result.returncode == 0, result.stderr
        assert [json.loads(line)["pyth_lazer_id"] for line in result.stdout.splitlines()] == [
            f.feed_id for f in sim.catalogue.search(asset_type="fx")
        ]
        assert "from the cache" not in result.stderr
    assert sim.rest_requests().get("/v1/symbols", 0) == asked + 2
    # The service down: the cache, whatever its age, with a note; the table shows the
    # instrument type.
    sim.rest_outage(503)
    try:
        down = cli(*base, "--refresh", "--instrument-type", "rate")
    finally:
        sim.rest_outage(None)
    assert down.returncode == 0, down.stderr
    assert _ids(down.stdout) == [500, 501, 502]
    assert all(line.split()[3] == "rate" for line in down.stdout.strip().splitlines()[1:])
    assert f"(from the cache {cache}, fetched " in down.stderr


def test_symbols_without_a_cache_and_the_service_down_exit_4(sim: Simulator) -> None:
    sim.rest_outage(503)
    try:
        result = cli("symbols", "--endpoint", sim.url, "--no-cache")
    finally:
        sim.rest_outage(None)
    assert result.returncode == 4
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "HTTP 503" in lines[0] and "/history/v1/symbols" in lines[0]


def test_the_default_cache_is_per_service_and_never_for_this_machine(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    prod = default_cache_path("https://pyth.dourolabs.app")
    staging = default_cache_path("https://pyth-staging.dourolabs.app")
    assert prod is not None and staging is not None and prod != staging
    assert prod.parent == tmp_path / "pylazer-sync" and prod.name.startswith("symbols-pyth.")
    assert default_cache_path("http://127.0.0.1:8765") is None
    assert default_cache_path("http://localhost:8765") is None


def test_latest_fails_over_along_repeated_rest_urls(sim: Simulator) -> None:
    with refusing_port() as port:
        result = cli(
            "latest", "--rest-url", f"http://127.0.0.1:{port}", "--rest-url", str(sim.rest_url),
            "--feeds", "1", "--output", "jsonl",
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["feeds"][0]["feed_id"] == 1
