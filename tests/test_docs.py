"""The README and CI agree: the README's test command is the one .ci/run runs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _readme_commands() -> list[str]:
    """The first command line of each fenced block, as ../shared/tools/fresh-check reads them."""
    text = (ROOT / "README.md").read_text()
    commands = []
    for block in re.findall(r"```[a-zA-Z]*\n(.*?)```", text, re.S):
        for line in block.splitlines():
            line = line.strip()
            if line and not line.startswith("#") and not line.startswith(">>>"):
                commands.append(line.lstrip("$ ").strip())
                break
    return commands


def test_readme_opens_with_the_demo_and_the_test_command() -> None:
    demo, tests = _readme_commands()[:2]
    assert "pylazer-sync demo" in demo and demo.startswith("pip install")
    assert "pytest" in tests and "[test]" in tests


def test_ci_runs_the_readme_test_command() -> None:
    tests = _readme_commands()[1]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert tests in [line.strip() for line in ci]


def test_every_test_the_readme_names_exists() -> None:
    """The guarantees cite their tests by name: a renamed or deleted test must not leave a
    promise without its evidence."""
    text = (ROOT / "README.md").read_text()
    cited = set(re.findall(r"`(?:tests/)?(test_\w+\.py)::(test_\w+)", text))
    assert len(cited) >= 15
    missing = [
        f"{module}::{name}"
        for module, name in sorted(cited)
        if not re.search(rf"^def {name}\(", (ROOT / "tests" / module).read_text(), re.M)
    ]
    assert not missing, missing


def _default_text(name: str, default: object) -> str:
    """How the README's configuration table writes a default."""
    from pylazer_sync.config import DEFAULT_ENDPOINTS, Backoff

    if name == "token":
        return "`$PYTH_LAZER_TOKEN`"
    if default == DEFAULT_ENDPOINTS:
        return "the three production endpoints"
    if isinstance(default, Backoff):
        b = default
        return (
            f"`Backoff()`: {b.initial:g} s x{b.multiplier:g}, ±{b.randomization * 100:g} %, "
            f"at most {b.max_interval:g} s, reset after {b.reset_after:g} s"
        )
    if isinstance(default, bool) or default is None:
        return str(default)
    if isinstance(default, float):
        return f"{default:g} s"
    if isinstance(default, int):
        return f"{default >> 20} MiB" if default >= 1 << 20 else f"{default:,}"
    return f'`"{default}"`'


def test_the_configuration_table_matches_the_code() -> None:
    """One row per setting, each with the default the code has (defined once, on
    ClientConfig): docs and code cannot drift apart."""
    import dataclasses

    from pylazer_sync.config import ClientConfig

    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Configuration") : text.index("## Messages")]
    rows = dict(re.findall(r"^\| `(\w+)` \| (.*?) \|", section, re.M))
    fields = {f.name: f.default for f in dataclasses.fields(ClientConfig)}
    assert set(rows) == set(fields)
    for name, default in fields.items():
        assert rows[name].startswith(_default_text(name, default)), (name, rows[name])


def test_ci_tests_both_ends_of_the_declared_websocket_client_range() -> None:
    """The transport uses websocket-client's private pieces: the range setup.cfg declares
    is the range tested, its lowest version by .ci/run, its highest by the test venv."""
    from importlib.metadata import version

    spec = re.search(r"websocket-client>=([\d.]+),<=([\d.]+)", (ROOT / "setup.cfg").read_text())
    assert spec is not None
    low, high = spec.groups()
    assert f"websocket-client=={low}'" in (ROOT / ".ci" / "run").read_text()
    assert version("websocket-client") in (low, high)
