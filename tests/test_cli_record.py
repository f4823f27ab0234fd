"""``pylazer-sync record`` and ``latest --raw``, run as a user would (``python -m
pylazer_sync``) against simulators on loopback sockets; recordings read back with the
library's readers and re-verified against the simulators' signers."""

from __future__ import annotations

import fcntl
import itertools
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from cli_support import ROOT, cli, env, running
from client_support import wait_for

import pylazer_sync as pl
from pylazer_sync.protocol import EvmMessage, LeEcdsaMessage, SolanaMessage, decode_message
from pylazer_sync.recording import ParquetRecorder, read_recording
from pylazer_sync.simulator import Simulator

ERROR_LINE = re.compile(r"^pylazer-sync: error: \S.*$")
SUMMARY = re.compile(
    r"^recorded (?P<updates>\d+) updates? in (?P<seconds>[\d.]+) s: (?P<files>\d+) files?, "
    r".* \((?P<bytes>\d+) bytes\) in (?P<directory>.+)$"
)
FAST = ["--channel", "fixed_rate@50ms"]
# Small files and frequent flushes: several files within a second or two.
SMALL_FILES = ["--flush-seconds", "0.1", "--rotate-mb", "0.001"]


@pytest.fixture(scope="module")
def sims() -> Iterator[list[Simulator]]:
    """Two simulators with the same seed: redundant endpoints, the same frames."""
    started = [Simulator(seed=23).start(), Simulator(seed=23).start()]
    yield started
    for sim in started:
        sim.stop()


def endpoints(sims: list[Simulator]) -> list[str]:
    return [arg for sim in sims for arg in ("--endpoint", sim.url)]


def record_args(sims: list[Simulator], directory: Path, *extra: str) -> list[str]:
    return ["record", *endpoints(sims), "--feeds", "1,6", "--output", str(directory), *extra]


def summary(stderr: str) -> dict[str, str]:
    """The summary line's figures (the one line that matches)."""
    (match,) = [m for m in map(SUMMARY.match, stderr.splitlines()) if m]
    return match.groupdict()


def final_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if not p.name.startswith("."))


def assert_only_complete_files(directory: Path) -> None:
    """Every file under a final name is a whole Parquet file, and nothing else is left
    but the lock: no segment waiting for recover(), no temporary file."""
    hidden = [p.name for p in directory.iterdir() if p.name.startswith(".")]
    assert hidden in ([], [".pylazer-recording.lock"]), hidden
    for path in final_files(directory):
        assert path.suffix == ".parquet"
        assert pq.read_table(path).num_rows > 0


def assert_one_error_line(stderr: str, *needles: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert ERROR_LINE.match(lines[0]), stderr
    for needle in needles:
        assert needle in lines[0], stderr


def assert_verifies(update: pl.StreamUpdate, signers: dict[str, str]) -> None:
    assert update.solana is not None and update.evm is not None
    update.solana.verify(trusted_signers=[signers["solana"]])
    update.evm.verify(trusted_signers=[signers["evm"]])
    assert update.evm.decode_payload().feeds == update.feeds  # the values are the signed ones


# -- record ------------------------------------------------------------------------------


def test_help_lists_the_options_and_the_recording_exit_status() -> None:
    result = cli("record", "--help")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())  # as one line, whatever argparse wrapped
    for option in ["--output DIR", "--rotate-seconds", "--rotate-mb", "--flush-seconds",
                   "--count", "--seconds", "--feeds", "--endpoint", "--connections",
                   "--delivery", "6 a recording could not be written"]:  # fmt: skip
        assert option in text
    assert "--trusted-signer" not in text and "{table,jsonl}" not in text  # stream's display
    assert "record" in cli("--help").stdout


def test_a_recording_reads_back_as_a_direct_client_receives_it(
    sims: list[Simulator], tmp_path: Path
) -> None:
    request = {
        "price_feed_ids": [1, 6],
        "properties": [
            "price",
            "bestBidPrice",
            "bestAskPrice",
            "exponent",
            "confidence",
            "publisherCount",
        ],
        "channel": "fixed_rate@50ms",
        "formats": ["solana", "evm"],
        "delivery_format": "binary",
    }  # fmt: skip: the request the CLI's options below make
    with pl.LazerClient(None, endpoints=[sims[0].url], num_connections=1) as direct:
        direct.subscribe(**request)  # type: ignore[arg-type]
        result = cli(
            *record_args(sims, tmp_path, *FAST, "--count", "25"),
            "--formats", "solana,evm", "--delivery", "binary", "--connections", "3",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        recorded = list(read_recording(tmp_path))
        last = max(u.timestamp_us or 0 for u in recorded)
        received: dict[int | None, pl.StreamUpdate] = {}
        deadline = time.monotonic() + 30
        while last not in received and time.monotonic() < deadline:
            message = direct.recv(timeout=30)
            if isinstance(message, pl.StreamUpdate):
                received[message.timestamp_us] = message
    assert len(recorded) == 25  # --count: exactly, once each though three connections
    assert len({u.timestamp_us for u in recorded}) == 25
    figures = summary(result.stderr)
    assert int(figures["updates"]) == 25 and Path(figures["directory"]) == tmp_path
    assert int(figures["files"]) == len(final_files(tmp_path)) == 1
    assert int(figures["bytes"]) == sum(p.stat().st_size for p in final_files(tmp_path))
    assert "\r" not in result.stderr and "recording:" not in result.stderr  # not a terminal
    assert result.stdout == ""
    # What the CLI recorded is what a client of its own received, frames included,
    # from the first update the direct client saw on.
    common = [u for u in recorded if u.timestamp_us in received]
    assert len(common) == 25  # the direct client subscribed first: it saw them all
    for update in common:
        assert update == received[update.timestamp_us]
        assert update.frame == received[update.timestamp_us].frame
        assert update.frame is not None and not update.frame_is_text  # binary delivery
    signers = sims[0].trusted_signers()
    for update in recorded:
        assert_verifies(update, signers)
    assert_only_complete_files(tmp_path)


def test_seconds_bounds_the_run_and_the_summary_counts_what_is_on_disk(
    sims: list[Simulator], tmp_path: Path
) -> None:
    result = cli(*record_args(sims, tmp_path, *FAST, "--seconds", "2"))
    assert result.returncode == 0, result.stderr
    figures = summary(result.stderr)
    recorded = list(read_recording(tmp_path))
    assert int(figures["updates"]) == len(recorded) >= 1
    assert_only_complete_files(tmp_path)


@pytest.mark.parametrize(
    "rotation",
    [["--rotate-mb", "0.001", "--rotate-seconds", "0"], ["--rotate-seconds", "0.3"]],
    ids=["by-size", "by-time"],
)
def test_rotation_makes_several_whole_files_in_time_order(
    sims: list[Simulator], tmp_path: Path, rotation: list[str]
) -> None:
    result = cli(
        *record_args(sims, tmp_path, *FAST, "--count", "40", "--flush-seconds", "0.1"),
        "--formats", "solana,evm", *rotation,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    files = final_files(tmp_path)
    assert len(files) >= 2  # 40 updates over 2 s; one file would need them all in 0.1-0.3 s
    assert int(summary(result.stderr)["files"]) == len(files)
    per_file = [list(read_recording(path)) for path in files]
    assert all(per_file)  # no empty file
    recorded = [u for updates in per_file for u in updates]
    assert recorded == list(read_recording(tmp_path)) and len(recorded) == 40
    # Names are start times: each file's updates come after the previous file's.
    for earlier, later in itertools.pairwise(per_file):
        assert max(u.timestamp_us or 0 for u in earlier) < min(u.timestamp_us or 0 for u in later)
    signers = sims[0].trusted_signers()
    for update in recorded:
        assert_verifies(update, signers)
    assert_only_complete_files(tmp_path)


@pytest.mark.parametrize(("how", "status", "last_line"), [
    ("interrupt", 130, "pylazer-sync: interrupted"),
    ("terminate", 143, "pylazer-sync: terminated"),
])  # fmt: skip
def test_ctrl_c_and_sigterm_finish_the_file_and_print_the_summary(
    sims: list[Simulator], tmp_path: Path, how: str, status: int, last_line: str
) -> None:
    args = [sys.executable, "-m", "pylazer_sync", *record_args(sims, tmp_path, *FAST)]
    # Rotation by size gives a finished file within a second: the sign that it records.
    with running([*args, *SMALL_FILES, "--formats", "evm"]) as proc:
        wait_for(lambda: len(final_files(tmp_path)) >= 2, 60, "two finished files")
        code, err = proc.interrupt() if how == "interrupt" else proc.terminate()
    assert code == status, err
    lines = err.strip().splitlines()
    assert lines[-1] == last_line, err
    figures = summary(lines[-2])
    assert "Traceback" not in err and "error" not in err
    assert_only_complete_files(tmp_path)  # the file in progress was finished, not left
    recorded = list(read_recording(tmp_path))
    assert int(figures["updates"]) == len(recorded) >= 2
    assert int(figures["files"]) == len(final_files(tmp_path))
    signers = sims[0].trusted_signers()
    for update in recorded:
        assert update.evm is not None
        update.evm.verify(trusted_signers=[signers["evm"]])


def test_a_killed_recorders_segments_are_finished_by_the_next_record(
    sims: list[Simulator], tmp_path: Path
) -> None:
    # A long flush interval and no rotation: the data sits in segments of a file in
    # progress when SIGKILL comes; the next run finishes that file and says so.
    args = [sys.executable, "-m", "pylazer_sync", *record_args(sims, tmp_path, *FAST)]
    with running([*args, "--flush-seconds", "0.1", "--rotate-mb", "0"]) as proc:
        wait_for(
            lambda: any(".seg" in p.name and p.suffix == ".parquet" for p in tmp_path.iterdir()),
            60,
            "a segment on disk",
        )
        proc.kill()
    assert not final_files(tmp_path)
    result = cli(*record_args(sims, tmp_path, *FAST, "--count", "3"))
    assert result.returncode == 0, result.stderr
    assert f"note: finished 1 file a stopped recorder left in {tmp_path}" in result.stderr
    assert int(summary(result.stderr)["files"]) == 1  # this run's own file
    assert len(final_files(tmp_path)) == 2
    assert len(list(read_recording(tmp_path))) >= 4
    assert_only_complete_files(tmp_path)


def test_an_unwritable_directory_is_one_line_and_exit_6(
    sims: list[Simulator], tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = cli(*record_args(sims, blocker / "rec", "--count", "1"))
    assert result.returncode == 6
    assert_one_error_line(result.stderr, "cannot record into", str(blocker / "rec"))

    busy = tmp_path / "busy"
    with ParquetRecorder(busy):  # one recorder per directory: this one holds it
        result = cli(*record_args(sims, busy, "--count", "1"))
    assert result.returncode == 6
    assert_one_error_line(result.stderr, "another recorder", str(busy))


def test_no_token_for_a_remote_endpoint_fails_before_touching_the_disk(tmp_path: Path) -> None:
    directory = tmp_path / "rec"
    result = cli("record", "--endpoint", "wss://lazer.example.com/v1/stream", "--feeds", "1",
                 "--output", str(directory))  # fmt: skip
    assert result.returncode == 2
    assert_one_error_line(result.stderr, "no access token")
    assert not directory.exists()


# Runs the command line with a file size limit (a disk that fills up): a write past the
# limit fails with EFBIG instead of the process being killed by SIGXFSZ.
_LIMITED_CLI = (
    "import resource, signal, sys\n"
    "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
    "resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))\n"
    "from pylazer_sync.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def test_a_full_disk_is_one_line_and_exit_6_and_nothing_half_written(
    sims: list[Simulator], tmp_path: Path
) -> None:
    args = record_args(sims, tmp_path, *FAST, "--formats", "solana,evm", "--flush-seconds", "0.1")
    result = subprocess.run(
        [sys.executable, "-c", _LIMITED_CLI, *args],
        capture_output=True, text=True, timeout=90, cwd=ROOT, env=env(),
    )  # fmt: skip
    assert result.returncode == 6, result.stderr
    assert_one_error_line(result.stderr, "cannot write the recording in", "File too large")
    assert not final_files(tmp_path)  # the first segment was too large: nothing finished
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_without_pyarrow_the_error_names_the_parquet_extra(tmp_path: Path) -> None:
    hide_pyarrow = (
        "import sys\n"
        "sys.modules['pyarrow'] = None  # import pyarrow now raises ImportError\n"
        "from pylazer_sync.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    args = ["record", "--endpoint", "ws://127.0.0.1:9/v1/stream", "--feeds", "1"]
    result = subprocess.run(
        [sys.executable, "-c", hide_pyarrow, *args, "--output", str(tmp_path / "rec")],
        capture_output=True, text=True, timeout=90, cwd=ROOT, env=env(),
    )  # fmt: skip
    assert result.returncode == 1
    assert_one_error_line(result.stderr, "pip install 'pylazer-sync[parquet]'")
    assert not (tmp_path / "rec").exists()  # checked before touching the disk


def test_on_a_terminal_a_status_line_is_rewritten_in_place(
    sims: list[Simulator], tmp_path: Path
) -> None:
    # Standard error is a pseudo-terminal, as in an interactive shell.
    controller, terminal = pty.openpty()
    # 200 columns: the whole status fits (a narrower terminal gets it cut to its width).
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    chunks: list[bytes] = []

    def read() -> None:
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # EIO: the other side is closed
                return
            if not chunk:
                return
            chunks.append(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pylazer_sync",
             *record_args(sims, tmp_path, *FAST, "--count", "30")],
            stdout=subprocess.PIPE, stderr=terminal, stdin=subprocess.DEVNULL,
            timeout=90, cwd=ROOT, env=env(COLUMNS=None),
        )  # fmt: skip
    finally:
        os.close(terminal)
    reader.join(timeout=30)
    os.close(controller)
    assert proc.returncode == 0
    shown = b"".join(chunks).decode()
    statuses = [s for s in shown.split("\r") if s.startswith("recording: ")]
    assert statuses, shown  # 30 updates at 50 ms: 1.5 s, a status every 0.5 s
    assert re.match(r"recording: \d+ updates, [\d.]+/s, \S+ \S+ written, \d+ files done, now ",
                    statuses[0])  # fmt: skip
    assert "lazer-" in statuses[0] and ".parquet" in statuses[0]
    assert summary(shown.replace("\r", "\n"))["updates"] == "30"


# -- latest --raw ------------------------------------------------------------------------


def test_latest_raw_prints_one_envelope_as_hex_ready_for_a_contract(
    sims: list[Simulator],
) -> None:
    result = cli("latest", "--endpoint", sims[0].url, "--feeds", "1,2", "--formats", "evm",
                 "--raw")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("\n") and result.stdout.count("\n") == 1
    envelope = decode_message(bytes.fromhex(result.stdout.strip()))
    assert isinstance(envelope, EvmMessage)
    assert envelope.verify(trusted_signers=[sims[0].trusted_signers()["evm"]])
    payload = envelope.decode_payload()
    assert [f.feed_id for f in payload.feeds] == [1, 2]
    assert payload.feeds[0].price == sims[0].market.feed_update(1, payload.timestamp_us).price
    assert result.stderr == ""


def test_latest_raw_prints_one_line_per_format_in_the_order_asked(
    sims: list[Simulator],
) -> None:
    result = cli(
        "latest", "--endpoint", sims[1].url, "--feeds", "6", "--formats", "leEcdsa,solana,evm",
        "--raw", "--verify", *[arg for key in sims[1].trusted_signers().values()
                               for arg in ("--trusted-signer", key)],
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    envelopes = [decode_message(bytes.fromhex(line)) for line in lines]
    assert [type(e) for e in envelopes] == [LeEcdsaMessage, SolanaMessage, EvmMessage]
    signers = sims[1].trusted_signers()
    for envelope, kind in zip(envelopes, ["leEcdsa", "solana", "evm"], strict=True):
        assert isinstance(envelope, (LeEcdsaMessage, SolanaMessage, EvmMessage))
        envelope.verify(trusted_signers=[signers[kind]])
    payloads = [e.decode_payload() for e in envelopes]
    assert payloads[0] == payloads[1] == payloads[2]  # one update, three signatures
    assert "1 updates checked against the trusted signers, 0 failed" in result.stderr


def test_latest_raw_needs_formats(sims: list[Simulator]) -> None:
    result = cli("latest", "--endpoint", sims[0].url, "--feeds", "1", "--raw")
    assert result.returncode == 2
    assert_one_error_line(result.stderr, "--raw needs --formats")
    assert result.stdout == ""
