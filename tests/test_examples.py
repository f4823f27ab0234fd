"""The examples run as a user would run them: scripts against a simulator, the notebook
top to bottom in a Jupyter kernel of this interpreter."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from cli_support import ROOT, run, running

from pylazer_sync.simulator import Simulator

EXAMPLES = ROOT / "examples"
TOKEN = "examples-token"  # the simulator takes any; users pass theirs the same way
PRICE_LINE = re.compile(
    r"^(\d+)  feed +(\d+)  price (\S+)  bid (\S+)  ask (\S+)$",
)


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(seed=31) as sim:
        yield sim


def test_stream_prices_prints_count_updates(sim: Simulator) -> None:
    result = run(
        [sys.executable, str(EXAMPLES / "stream_prices.py"), "--endpoint", sim.url,
         "--feeds", "1,2", "--count", "3"],
        PYTH_LAZER_TOKEN=TOKEN,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 6
    stamps = []
    for line, feed_id in zip(lines, [1, 2] * 3, strict=True):
        match = PRICE_LINE.match(line)
        assert match, line
        stamps.append(int(match[1]))
        assert int(match[2]) == feed_id
        bid, price, ask = (Decimal(match[i]) for i in (4, 3, 5))
        assert 0 < bid <= price <= ask
    assert len(set(stamps)) == 3
    assert "3 updates;" in result.stderr


def test_stream_prices_needs_no_token_for_a_simulator_on_this_machine(sim: Simulator) -> None:
    # The documented usage, as is: no token anywhere, the endpoint on loopback.
    result = run(
        [sys.executable, str(EXAMPLES / "stream_prices.py"), "--endpoint", sim.url, "--count", "1"]
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 3  # the default feeds 1, 2 and 6


@pytest.mark.parametrize("script", ["stream_prices.py", "verify_signatures.py"])
@pytest.mark.parametrize("feeds", ["x", "1,two", "-1"])
def test_bad_feeds_are_a_usage_error_not_a_traceback(script: str, feeds: str) -> None:
    result = run([sys.executable, str(EXAMPLES / script), "--feeds", feeds])
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "error: argument --feeds: " in last and repr(feeds) in last, result.stderr


def test_stream_prices_stops_cleanly_on_ctrl_c(sim: Simulator) -> None:
    args = [sys.executable, str(EXAMPLES / "stream_prices.py"), "--endpoint", sim.url]
    with running(args, PYTH_LAZER_TOKEN=TOKEN) as proc:
        proc.wait_for_line(lambda line: PRICE_LINE.match(line) is not None)
        status, err = proc.interrupt()
    assert status == 0
    assert "stopped" in err and "Traceback" not in err


def test_verify_signatures_accepts_the_trusted_signers(sim: Simulator) -> None:
    signers = sim.trusted_signers()
    result = run(
        [sys.executable, str(EXAMPLES / "verify_signatures.py"), "--endpoint", sim.url,
         "--count", "3", "--trusted-solana", signers["solana"], "--trusted-evm", signers["evm"],
         "--trusted-le-ecdsa", signers["leEcdsa"]],
        PYTH_LAZER_TOKEN=TOKEN,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    ok = [line for line in result.stdout.splitlines() if line.startswith("ok ")]
    assert len(ok) == 3
    assert f"signers: solana {signers['solana']}, evm {signers['evm']}" in result.stdout
    assert "3 updates checked, 0 failed" in result.stderr


def test_verify_signatures_refuses_an_untrusted_signer(sim: Simulator) -> None:
    stranger = Simulator(seed="stranger").evm_address  # keys only; never started
    result = run(
        [sys.executable, str(EXAMPLES / "verify_signatures.py"), "--endpoint", sim.url,
         "--count", "2", "--trusted-evm", stranger],
        PYTH_LAZER_TOKEN=TOKEN,
    )  # fmt: skip
    assert result.returncode == 1
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAILED ")]
    assert len(failed) == 2
    assert all(f"untrusted signer {sim.evm_address}" in line for line in failed)
    assert "2 updates checked, 2 failed" in result.stderr


def test_notebook_executes_top_to_bottom(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nbclient
    import nbformat

    # A kernelspec for exactly this interpreter, found first: a user-wide "python3"
    # kernel might belong to another Python without this package.
    spec_dir = tmp_path / "jupyter" / "kernels" / "pylazer-test"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "pylazer-sync tests",
                "language": "python",
            }
        )
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    nb = nbformat.read(EXAMPLES / "notebook.ipynb", as_version=4)
    client = nbclient.NotebookClient(
        nb,
        kernel_name="pylazer-test",
        timeout=120,
        startup_timeout=120,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError, with the cell and traceback, on failure

    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    texts = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    count = re.search(r"(\d+) updates", texts)
    assert count and int(count[1]) >= 10, texts  # ~60 in 3 s at 50 ms
    html = [o.data["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert any("StreamUpdate subscription" in h for h in html)  # the update's table
    assert any("Crypto.BTC/USD" in h for h in html)  # the DataFrames
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the plot
