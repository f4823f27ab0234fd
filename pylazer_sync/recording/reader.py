"""Reading recordings back: the files of a recording, its frames, its updates.

A recording is a Parquet file, a jsonl file, or a directory of either (the files a
:class:`~pylazer_sync.recording.ParquetRecorder` wrote, read in name order, which is time
order). Parquet files keep each update's raw frame, so their updates are decoded from
exactly the bytes that were received; jsonl files keep the typed values and envelopes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..errors import ProtocolError, RecordingError
from ..protocol import StreamUpdate, decode_frame
from .columns import pyarrow
from .jsonl import OnError, read_jsonl
from .updates import frame_of

Kind = Literal["parquet", "jsonl"]
_PARQUET_MAGIC = b"PAR1"
_BATCH_ROWS = 65_536


@dataclass(frozen=True, slots=True)
class RecordedFrame:
    """One recorded update as it came: its timestamp, raw frame and frame kind."""

    timestamp_us: int | None
    frame: bytes
    is_text: bool


def _kind_of_file(path: Path) -> Kind:
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as exc:
        raise RecordingError(f"cannot read the recording {path}: {exc}") from exc
    return "parquet" if head == _PARQUET_MAGIC else "jsonl"


def recording_files(path: str | os.PathLike[str]) -> list[tuple[Path, Kind]]:
    """The files of a recording, in time order, with their kind.

    A directory gives its Parquet files (hidden names, such as the segments of a file in
    progress, left out), or its ``.jsonl`` files if it has no Parquet file.
    """
    root = Path(path)
    if root.is_dir():
        visible = sorted(p for p in root.iterdir() if not p.name.startswith(".") and p.is_file())
        parquet = [p for p in visible if p.suffix == ".parquet"]
        if parquet:
            return [(p, "parquet") for p in parquet]
        return [(p, "jsonl") for p in visible if p.suffix == ".jsonl"]
    if not root.exists():
        raise RecordingError(f"no recording at {root}: no such file or directory")
    return [(root, _kind_of_file(root))]


def parquet_files(path: str | os.PathLike[str]) -> list[Path]:
    """The Parquet files of a recording (a file or a directory), in time order."""
    files = recording_files(path)
    not_parquet = [str(p) for p, kind in files if kind != "parquet"]
    if not_parquet:
        raise RecordingError(f"not a Parquet recording: {not_parquet[0]}")
    return [p for p, _ in files]


def _parquet_frames(path: Path) -> Iterator[RecordedFrame]:
    pa = pyarrow()
    try:
        source = pa.parquet.ParquetFile(path)
        names = set(source.schema_arrow.names)
        if not {"frame", "frame_is_text", "timestamp"} <= names:
            raise RecordingError(f"{path}: not a pylazer-sync recording (no frame column)")
        batches = source.iter_batches(
            batch_size=_BATCH_ROWS, columns=["timestamp", "frame", "frame_is_text"]
        )
        for batch in batches:
            kept = batch.filter(pa.compute.is_valid(batch.column("frame")))
            stamps = kept.column("timestamp").cast(pa.int64()).to_pylist()
            frames = kept.column("frame").to_pylist()
            texts = kept.column("frame_is_text").to_pylist()
            for stamp, frame, is_text in zip(stamps, frames, texts, strict=True):
                yield RecordedFrame(stamp, frame, bool(is_text))
    except (OSError, pa.ArrowException) as exc:
        if isinstance(exc, RecordingError):
            raise
        raise RecordingError(f"cannot read the recording {path}: {exc}") from exc


def iter_frames(
    path: str | os.PathLike[str], on_error: OnError = "raise"
) -> Iterator[RecordedFrame]:
    """The recorded frames of a recording, in order (what a replay serves).

    A jsonl recording keeps no frames: each update gets the JSON text frame that encodes
    it (same values, same envelope bytes).
    """
    for file, kind in recording_files(path):
        if kind == "parquet":
            yield from _parquet_frames(file)
        else:
            for update in read_jsonl(file, on_error):
                frame, is_text = frame_of(update)
                yield RecordedFrame(update.timestamp_us, frame, is_text)


def read_recording(
    path: str | os.PathLike[str], on_error: OnError = "raise"
) -> Iterator[StreamUpdate]:
    """The recorded :class:`~pylazer_sync.StreamUpdate`\\ s, in order, lazily.

    From Parquet (each decoded from its recorded frame, so equal to the update received,
    signed envelopes byte for byte, with :attr:`~pylazer_sync.StreamUpdate.frame` set) or
    from jsonl alike; ``path`` is a file or a directory of files. ``on_error`` applies
    to jsonl lines (see :func:`~pylazer_sync.recording.read_jsonl`); a Parquet frame that
    does not decode raises :class:`~pylazer_sync.ProtocolError` naming the file.
    """
    for file, kind in recording_files(path):
        if kind == "jsonl":
            yield from read_jsonl(file, on_error)
            continue
        for index, recorded in enumerate(_parquet_frames(file)):
            try:
                message = decode_frame(recorded.frame, recorded.is_text)
            except ProtocolError as exc:
                raise ProtocolError(f"{file}, update {index}: {exc}") from None
            if isinstance(message, StreamUpdate):
                yield message
