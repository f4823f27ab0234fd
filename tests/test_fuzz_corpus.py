"""Replay the coverage-guided fuzzer's corpus (``fuzz/corpus``) through its oracle.

``fuzz/fuzz_decoders.py`` (atheris, run by hand) keeps in ``fuzz/corpus`` the inputs that
reached new code, and every input that once crashed it (``regression-*``); replaying them
here in CI keeps what the fuzzer found found. The oracle is the fuzzer's own
:func:`check_one`: a decoder returns, or raises one of the library's exceptions; its result
prints; a decoded binary frame encodes back to the same bytes.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
import time
from pathlib import Path
from types import ModuleType

import pytest

HARNESS = Path(__file__).resolve().parent.parent / "fuzz" / "fuzz_decoders.py"


def _harness() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fuzz_decoders", HARNESS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("fuzz_decoders", module)
    spec.loader.exec_module(module)
    return module


fuzz_decoders = _harness()
CORPUS = sorted(p for p in fuzz_decoders.CORPUS.iterdir() if p.is_file())


def test_the_corpus_is_there_and_small() -> None:
    assert len(CORPUS) >= 50, "fuzz/corpus is missing or nearly empty"
    assert any(p.name.startswith("regression-") for p in CORPUS)
    assert sum(p.stat().st_size for p in CORPUS) < 2 << 20, "keep fuzz/corpus small"


def test_every_target_has_inputs() -> None:
    chosen = {p.read_bytes()[0] % len(fuzz_decoders.TARGETS) for p in CORPUS if p.stat().st_size}
    names = [name for i, (name, _) in enumerate(fuzz_decoders.TARGETS) if i not in chosen]
    assert not names, f"targets without corpus inputs: {names}"


@pytest.mark.parametrize("path", CORPUS, ids=[p.name for p in CORPUS])
def test_corpus_input(path: Path) -> None:
    started = time.perf_counter()
    fuzz_decoders.check_one(path.read_bytes())
    assert time.perf_counter() - started < 2.0


def test_corpus_in_a_fresh_thread() -> None:
    """The same inputs from a shallow stack (as in the dedup thread): inputs nested near
    the recursion limit behave differently there."""
    failures: list[str] = []

    def run() -> None:
        for path in CORPUS:
            try:
                fuzz_decoders.check_one(path.read_bytes())
            except Exception as exc:
                failures.append(f"{path.name}: {exc!r:.200}")

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(120)
    assert not thread.is_alive()
    assert not failures, failures
