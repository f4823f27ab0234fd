"""The official TypeScript SDK as a peer: installed from npm into a cache, run with Node.js.

``@pythnetwork/pyth-lazer-sdk`` is installed once into ``benchmarks/.cache/ts-sdk``
(``npm install``, not committed) and driven by ``benchmarks/ts_sdk_bench.mjs`` against
the same simulator stream as the Python readers. Without ``node``/``npm``, or when the
install fails, the comparison is skipped with the reason, and the rest of the suite runs.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from common import BENCH_DIR, CACHE_DIR, Process

PACKAGE = "@pythnetwork/pyth-lazer-sdk"
SDK_DIR = CACHE_DIR / "ts-sdk"
_INSTALL_TIMEOUT = 300.0


@dataclass(frozen=True)
class TsSdk:
    """An installed SDK and the Node.js that runs it."""

    node: str
    sdk_dir: Path
    version: str
    node_version: str

    def worker(
        self,
        url: str,
        conns: int,
        delivery: str,
        mode: str,
        warmup: float,
        seconds: float,
    ) -> Process:
        """Start one measurement (see ts_sdk_bench.mjs); the result is its last line."""
        argv = [
            self.node,
            str(BENCH_DIR / "ts_sdk_bench.mjs"),
            *("--sdk-dir", str(self.sdk_dir), "--url", url, "--conns", str(conns)),
            *("--delivery", delivery, "--mode", mode),
            *("--warmup", str(warmup), "--seconds", str(seconds)),
        ]
        return Process(argv, f"ts-sdk-{mode}-{conns}")


def _installed_version(sdk_dir: Path) -> str | None:
    manifest = sdk_dir / "node_modules" / PACKAGE / "package.json"
    try:
        version: str = json.loads(manifest.read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None
    return version


def prepare(version: str = "latest", reinstall: bool = False) -> TsSdk | str:
    """The SDK ready to run, or the reason it cannot be (a message for the report)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        return "skipped: Node.js/npm not found on PATH (install Node.js to compare with the TS SDK)"
    try:
        node_version = subprocess.run(
            [node, "--version"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        return f"skipped: `node --version` failed: {exc}"
    installed = _installed_version(SDK_DIR)
    wanted_here = installed is not None and version in ("latest", installed)
    if reinstall or not wanted_here:
        SDK_DIR.mkdir(parents=True, exist_ok=True)
        # A package.json of its own stops npm from walking up into the repository.
        manifest = SDK_DIR / "package.json"
        if not manifest.exists():
            manifest.write_text('{"name": "pylazer-bench-ts-sdk", "private": true}\n')
        try:
            done = subprocess.run(
                [
                    *(npm, "install", "--no-audit", "--no-fund", "--loglevel=error"),
                    *("--prefix", str(SDK_DIR), f"{PACKAGE}@{version}"),
                ],
                capture_output=True,
                text=True,
                timeout=_INSTALL_TIMEOUT,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"skipped: npm install {PACKAGE} failed: {exc}"
        if done.returncode != 0:
            tail = " | ".join(done.stderr.strip().splitlines()[-3:])
            return f"skipped: npm install {PACKAGE} failed (exit {done.returncode}): {tail}"
        installed = _installed_version(SDK_DIR)
        if installed is None:
            return f"skipped: {PACKAGE} not found after npm install"
    assert installed is not None
    return TsSdk(node, SDK_DIR, installed, node_version)
