"""Recordings of the stream: Parquet (extra ``parquet``) and jsonl, written and read back.

* :class:`ParquetRecorder` writes updates into rotated Parquet files, crash-safe (see
  :mod:`~pylazer_sync.recording.writer`); :func:`recover` finishes a killed recorder's files.
* :func:`read_recording` yields the recorded :class:`~pylazer_sync.StreamUpdate`\\ s from
  Parquet or jsonl alike; :func:`iter_frames` the raw frames (what a replay serves).
* :func:`write_jsonl` / :func:`read_jsonl`: the jsonl format (no extra needed).

DataFrames over recordings are in :mod:`pylazer_sync.frames` (``read_parquet``).
Nothing here imports pyarrow until a Parquet function is called.
"""

from ..errors import RecordingError
from .jsonl import (
    JsonlReader,
    OnError,
    feed_to_jsonl_obj,
    read_jsonl,
    update_from_jsonl_obj,
    update_to_jsonl_obj,
    write_jsonl,
)
from .reader import RecordedFrame, iter_frames, parquet_files, read_recording, recording_files
from .writer import ParquetRecorder, recover

__all__ = [
    "JsonlReader",
    "OnError",
    "ParquetRecorder",
    "RecordedFrame",
    "RecordingError",
    "feed_to_jsonl_obj",
    "iter_frames",
    "parquet_files",
    "read_jsonl",
    "read_recording",
    "recording_files",
    "recover",
    "update_from_jsonl_obj",
    "update_to_jsonl_obj",
    "write_jsonl",
]
