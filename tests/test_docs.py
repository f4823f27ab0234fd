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
