"""Parquet recordings: what a recorder writes, how it reads back, rotation and crash safety.

Updates come from a real simulator through a real client; the crash and disk-full tests
run the recorder in a child process and kill it (SIGKILL) or cap its file size (EFBIG).
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cli_support import ROOT, running

import pylazer_sync as pl
from pylazer_sync import frames
from pylazer_sync.recording import ParquetRecorder, read_recording, recover
from pylazer_sync.simulator import Simulator

PROPERTIES = [
    "price", "bestBidPrice", "bestAskPrice", "exponent", "confidence", "publisherCount",
    "marketSession", "feedUpdateTimestamp",
]  # fmt: skip
SUBSCRIPTIONS: list[dict[str, object]] = [
    {"price_feed_ids": [1, 2, 6], "properties": PROPERTIES, "formats": ["solana", "evm"]},
    {
        "price_feed_ids": [1, 6],
        "properties": ["price", "exponent", "publisherCount"],
        "formats": ["leEcdsa", "evm"],
        "delivery_format": "binary",
        "parsed": False,
    },
]
COUNT = 60


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(seed=41) as sim:
        yield sim


@pytest.fixture(scope="module")
def recorded(
    sim: Simulator, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, list[pl.StreamUpdate]]:
    """A recording of ``COUNT`` updates of two subscriptions, and the updates received."""
    directory = tmp_path_factory.mktemp("recording")
    received: list[pl.StreamUpdate] = []
    with pl.LazerClient("t", endpoints=[sim.url], num_connections=2) as client:
        for subscription in SUBSCRIPTIONS:
            client.subscribe(channel="fixed_rate@50ms", **subscription)  # type: ignore[arg-type]
        with ParquetRecorder(directory, flush_seconds=0.2) as recorder:
            deadline = time.monotonic() + 30
            while len(received) < COUNT and time.monotonic() < deadline:
                message = client.recv(timeout=20.0)
                if recorder.write(message):
                    assert isinstance(message, pl.StreamUpdate)
                    received.append(message)
    assert len(received) == COUNT
    return directory, received


def test_read_recording_gives_the_updates_received_frame_for_frame(
    sim: Simulator, recorded: tuple[Path, list[pl.StreamUpdate]]
) -> None:
    directory, received = recorded
    back = list(read_recording(directory))
    assert back == received
    assert [u.frame for u in back] == [u.frame for u in received]
    assert [u.frame_is_text for u in back] == [u.frame_is_text for u in received]
    signers = sim.trusted_signers()
    for update in back:
        assert update.evm is not None
        update.evm.verify(trusted_signers=[signers["evm"]])
        if update.solana is not None:
            update.solana.verify(trusted_signers=[signers["solana"]])


def test_columns_are_typed_and_each_frame_is_stored_once(
    recorded: tuple[Path, list[pl.StreamUpdate]],
) -> None:
    directory, received = recorded
    (path,) = [p for p in directory.iterdir() if not p.name.startswith(".")]
    table = pq.read_table(path)
    types = {f.name: f.type for f in table.schema}
    utc = pa.timestamp("us", tz="UTC")
    assert types["timestamp"] == types["received_at"] == types["feed_update_timestamp"] == utc
    assert types["subscription_id"] == pa.uint64() and types["feed_id"] == pa.uint32()
    assert types["price"] == types["confidence"] == pa.int64()
    assert types["exponent"] == pa.int16() and types["publisher_count"] == pa.uint16()
    assert types["channel_id"] == pa.uint8() and types["frame"] == pa.binary()
    # Only the session name is text: no number is stored as a string.
    assert [n for n, t in types.items() if pa.types.is_string(t)] == ["market_session"]
    assert table.num_rows == sum(len(u.feeds) for u in received)
    frames_column = table.column("frame").to_pylist()
    assert [f for f in frames_column if f is not None] == [u.frame for u in received]
    row = 0
    for update in received:  # the values, row by row, as integers
        for feed in update.feeds:
            assert table.column("price")[row].as_py() == feed.price
            assert table.column("exponent")[row].as_py() == feed.exponent
            assert table.column("channel_id")[row].as_py() == 2  # fixed_rate@50ms
            stamp = table.column("timestamp")[row].as_py()
            assert stamp == pd.Timestamp(update.timestamp_us, unit="us", tz="UTC")
            row += 1


@pytest.mark.parametrize("numbers", ["decimal", "float"])
def test_read_parquet_equals_updates_frame(
    recorded: tuple[Path, list[pl.StreamUpdate]], numbers: frames.Numbers
) -> None:
    directory, received = recorded
    expected = frames.updates_frame(received, numbers=numbers)
    pd.testing.assert_frame_equal(frames.read_parquet(directory, numbers=numbers), expected)


def test_read_parquet_filters_by_feed_and_time(
    recorded: tuple[Path, list[pl.StreamUpdate]],
) -> None:
    directory, received = recorded
    stamps = sorted({u.timestamp_us for u in received if u.timestamp_us is not None})
    start_us, end_us = stamps[3], stamps[-3]
    start = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(microseconds=start_us)
    inside = [u for u in received if start_us <= (u.timestamp_us or 0) < end_us]
    names = {6: "Crypto.SOL/USD"}
    expected = frames.updates_frame(inside, symbols=names)
    expected = expected[expected["feed_id"] == 6].reset_index(drop=True)
    for start_as in (start, start.isoformat(), start_us):
        got = frames.read_parquet(directory, feeds=[6], start=start_as, end=end_us, symbols=names)
        pd.testing.assert_frame_equal(got, expected)
    assert set(got["symbol"]) == {"Crypto.SOL/USD"}
    assert frames.read_parquet(directory, feeds=[999]).empty
    with pytest.raises(pl.InvalidRequestError, match="start"):
        frames.read_parquet(directory, start="yesterday")


def test_rotation_by_size_gives_whole_files_in_time_order(
    recorded: tuple[Path, list[pl.StreamUpdate]], tmp_path: Path
) -> None:
    _, received = recorded
    with ParquetRecorder(tmp_path, rotate_bytes=1, flush_seconds=3600) as recorder:
        for i, update in enumerate(received):
            recorder.write(update)
            if i % 10 == 9:
                recorder.flush()  # a segment, and with rotate_bytes=1, a finished file
    names = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("."))
    assert len(names) == len(received) // 10 and names == [p.name for p in recorder.files]
    for name in names:
        assert pq.read_table(tmp_path / name).num_rows > 0  # every one is whole
    assert list(read_recording(tmp_path)) == received
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".") and "seg" in p.name]


def test_rotation_by_time_starts_a_file_at_each_boundary(
    recorded: tuple[Path, list[pl.StreamUpdate]], tmp_path: Path
) -> None:
    _, received = recorded
    written = 0
    with ParquetRecorder(tmp_path, rotate_seconds=0.2, flush_seconds=0.05) as recorder:
        deadline = time.monotonic() + 20
        while len(recorder.files) < 2 and time.monotonic() < deadline:
            recorder.write(received[written % len(received)])
            written += 1
    assert len(recorder.files) >= 2
    back = list(read_recording(tmp_path))
    assert back == [received[i % len(received)] for i in range(written)]


def test_an_update_built_without_a_frame_is_recorded_as_its_json_frame(tmp_path: Path) -> None:
    feed = pl.FeedUpdate(7, price=12345, exponent=-2, publisher_count=3)
    update = pl.StreamUpdate(5, pl.Payload(1_700_000_000_000_000, [feed]))
    with ParquetRecorder(tmp_path) as recorder:
        assert recorder.write(update) and not recorder.write(pl.Subscribed(5))
    (back,) = read_recording(tmp_path)
    assert back == update and back.frame_is_text
    df = frames.read_parquet(tmp_path)
    assert df["price"].tolist() == [feed.real("price")]


@pytest.mark.parametrize(
    "options",
    [
        {"rotate_seconds": 0},
        {"rotate_bytes": 0},
        {"flush_seconds": float("nan")},
        {"prefix": "a/b"},
    ],
)
def test_bad_settings_are_refused(tmp_path: Path, options: dict[str, object]) -> None:
    with pytest.raises(pl.InvalidRequestError):
        ParquetRecorder(tmp_path, **options)  # type: ignore[arg-type]


def test_an_unwritable_directory_fails_at_once_with_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(pl.RecordingError, match=r"cannot record into .*a-file/rec"):
        ParquetRecorder(blocker / "rec")
    with ParquetRecorder(tmp_path / "rec"), pytest.raises(pl.RecordingError, match="another"):
        ParquetRecorder(tmp_path / "rec")  # one recorder per directory


# A child process records from the test's simulator; it reports, after each flush, how
# many updates are on disk, so the parent knows what a SIGKILL must not lose.
_RECORDER_CHILD = textwrap.dedent(
    """
    import sys
    import pylazer_sync as pl
    from pylazer_sync.recording import ParquetRecorder

    url, directory = sys.argv[1], sys.argv[2]
    def report(recorder):
        print("on-disk", recorder.stats()["updates_on_disk"], len(recorder.files), flush=True)
    with pl.LazerClient("t", endpoints=[url]) as client:
        client.subscribe(price_feed_ids=[1, 2], properties=["price", "exponent"],
                         channel="fixed_rate@50ms", formats=["evm"])
        with ParquetRecorder(directory, flush_seconds=0.1, rotate_bytes=3000) as recorder:
            recorder.record(client, progress=report, progress_interval=0.05)
    """
)


def test_sigkill_loses_at_most_the_last_flush_interval(sim: Simulator, tmp_path: Path) -> None:
    args = [sys.executable, "-c", _RECORDER_CHILD, sim.url, str(tmp_path)]
    with running(args) as child:
        line = child.wait_for_line(lambda s: s.startswith("on-disk") and int(s.split()[2]) >= 2)
        line = child.wait_for_line(lambda s: s.startswith("on-disk"))  # a later one
        child.proc.send_signal(signal.SIGKILL)
        child.proc.wait(timeout=30)
        on_disk = int(line.split()[1])
    finished = [p for p in tmp_path.iterdir() if p.suffix == ".parquet" and p.name[0] != "."]
    assert len(finished) >= 2
    for path in finished:  # every file under a final name is whole
        assert pq.read_table(path).num_rows > 0
    recovered = recover(tmp_path)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp") or ".seg" in p.name]
    updates = list(read_recording(tmp_path))
    assert len(updates) >= on_disk  # nothing the child had flushed is lost
    stamps = [u.timestamp_us or 0 for u in updates]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert all(p in tmp_path.iterdir() for p in recovered)


_FULL_DISK_CHILD = textwrap.dedent(
    """
    import resource, signal, sys
    import pylazer_sync as pl
    from pylazer_sync.recording import ParquetRecorder

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG
    recorder = ParquetRecorder(sys.argv[1], rotate_bytes=1, flush_seconds=3600)
    feeds = [pl.FeedUpdate(i, price=10**9 + i, exponent=-8) for i in range(1, 30)]
    def write(count, start):
        for n in range(start, start + count):
            recorder.write(pl.StreamUpdate(1, pl.Payload(1_700_000_000_000_000 + n, feeds)))
        recorder.flush()  # with rotate_bytes=1, every flush finishes a file
    for round in range(3):
        write(10, round * 10)  # three small files, well under the limit
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
    try:
        write(2000, 100)  # far more than 4 KiB
    except pl.RecordingError as exc:
        print("error:", exc, flush=True)
        try:
            recorder.write(pl.StreamUpdate(1, pl.Payload(1, feeds)))
        except pl.RecordingError:
            print("refused after the failure", flush=True)
        sys.exit(4)
    """
)


def test_a_full_disk_gives_a_clear_error_and_no_half_written_file(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _FULL_DISK_CHILD, str(tmp_path)],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 4, result.stderr
    assert "error: cannot write the recording in" in result.stdout
    assert "File too large" in result.stdout and "finished files are complete" in result.stdout
    assert "refused after the failure" in result.stdout
    assert "Traceback" not in result.stderr
    finals = [p for p in tmp_path.iterdir() if p.suffix == ".parquet" and p.name[0] != "."]
    assert finals  # some files were finished before the limit
    for path in finals:
        assert pq.read_table(path).num_rows > 0
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert os.path.getsize(tmp_path) >= 0
