"""ParquetRecorder: updates into Parquet files, rotated, and safe against a crash.

A Parquet file is readable only once its footer is written, so a file being written when
the process dies would be lost whole. The recorder therefore writes each flush interval
(``flush_seconds``, 2 s by default) as a small, complete Parquet *segment* under a hidden
name, and when a file is due (``rotate_seconds`` / ``rotate_bytes``) joins its segments
into the final file. Every write goes to a temporary name first and is renamed only once
complete (and synced to disk), so:

* a final name (``lazer-20250102T030405.123456Z.parquet``) always holds a whole file;
* a process killed at any moment (SIGKILL included) loses at most the updates of the
  last flush interval: the segments of the file in progress are complete files, and
  :func:`recover` (run by the next recorder in the same directory) joins them into their
  final file;
* a failed write (disk full, directory not writable) raises :class:`RecordingError`,
  removes what it had half-written, and leaves the finished files and segments alone.

Segments, temporary files and the lock are hidden (their names start with a dot), and
the readers look at final names only.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import math
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Final

from ..errors import InvalidRequestError, RecordingError, RecvTimeout
from ..protocol import StreamUpdate
from .columns import RowBuffer, pyarrow, schema

if TYPE_CHECKING:
    from ..client import LazerClient

try:  # a lock file keeps two recorders (and a recover()) out of each other's segments
    import fcntl
except ImportError:  # pragma: no cover - not on Windows, where the lock is skipped
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

LOCK_NAME: Final = ".pylazer-recording.lock"
_SEGMENT = re.compile(r"^\.(?P<stem>.+)\.seg(?P<number>\d{6,})\.parquet$")
_TEMP_SUFFIX: Final = ".tmp"
# Final files are joined from segments in row groups of this many rows: large enough to
# compress well and read fast, small enough that a time filter skips most of a file.
_ROW_GROUP_ROWS: Final = 131_072
# Filters use these columns' statistics; statistics of the frames would be useless bytes.
_STATISTICS: Final = ["timestamp", "received_at", "subscription_id", "feed_id"]
_DICTIONARY: Final = ["subscription_id", "channel_id", "feed_id", "exponent", "market_session"]


@dataclass
class _OpenFile:
    """The file being recorded: its final name and the segments written so far."""

    stem: str
    deadline: float | None  # wall-clock time at which it rotates (None: no time rotation)
    segments: list[Path] = field(default_factory=list)
    bytes: int = 0
    updates: int = 0


def _write_options(compression: str) -> dict[str, Any]:
    return {
        "compression": compression,
        "write_statistics": _STATISTICS,
        "use_dictionary": _DICTIONARY,
    }


def _sync(path: Path) -> None:
    """fsync a file or directory, so a rename that follows survives a power cut too."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _file_name(prefix: str, wall: float) -> str:
    moment = _dt.datetime.fromtimestamp(wall, _dt.timezone.utc)
    return f"{prefix}-{moment:%Y%m%dT%H%M%S.%f}Z"


class _DirectoryLock:
    """An exclusive ``flock`` on the directory's lock file, released on close or death."""

    def __init__(self, directory: Path) -> None:
        self._file: IO[bytes] | None = None
        if fcntl is None:  # pragma: no cover
            return
        handle = open(directory / LOCK_NAME, "ab")  # noqa: SIM115  (held until release())
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise RecordingError(
                f"{directory}: another recorder (or recover()) is using this directory"
            ) from None
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing the descriptor releases the lock
            self._file = None


def _join(segments: list[Path], final: Path, compression: str, durable: bool) -> int:
    """Join segments into ``final`` (through a temporary name); returns its size."""
    pa = pyarrow()
    pq = pa.parquet
    temp = final.with_name(f".{final.name}{_TEMP_SUFFIX}")
    try:
        with pq.ParquetWriter(temp, schema(), **_write_options(compression)) as writer:
            pending: list[Any] = []
            rows = 0
            for segment in segments:
                table = pq.read_table(segment, schema=schema())
                pending.append(table)
                rows += table.num_rows
                if rows >= _ROW_GROUP_ROWS:
                    writer.write_table(pa.concat_tables(pending), row_group_size=_ROW_GROUP_ROWS)
                    pending, rows = [], 0
            if pending:
                writer.write_table(pa.concat_tables(pending), row_group_size=_ROW_GROUP_ROWS)
        if durable:
            _sync(temp)
        if final.exists():  # never replace a finished file
            raise RecordingError(f"{final} exists already")
        os.rename(temp, final)
        if durable:
            _sync(final.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    size = final.stat().st_size
    for segment in segments:
        with contextlib.suppress(FileNotFoundError):
            segment.unlink()
    return size


def _segments_by_stem(directory: Path) -> dict[str, list[Path]]:
    found: dict[str, list[tuple[int, Path]]] = {}
    for path in directory.iterdir():
        match = _SEGMENT.match(path.name)
        if match:
            found.setdefault(match["stem"], []).append((int(match["number"]), path))
    return {stem: [p for _, p in sorted(items)] for stem, items in sorted(found.items())}


def _recover_locked(directory: Path, compression: str, durable: bool) -> list[Path]:
    for path in directory.glob(f".*{_TEMP_SUFFIX}"):
        logger.info("recording: removing the unfinished %s", path.name)
        path.unlink()
    finished: list[Path] = []
    for stem, segments in _segments_by_stem(directory).items():
        final = directory / f"{stem}.parquet"
        if final.exists():  # joined before the crash, segments not yet removed
            for segment in segments:
                segment.unlink()
            continue
        _join(segments, final, compression, durable)
        logger.warning("recording: recovered %s from %d segment(s)", final.name, len(segments))
        finished.append(final)
    return finished


def recover(directory: str | os.PathLike[str], compression: str = "zstd") -> list[Path]:
    """Finish the files a killed recorder left in a directory; returns those finished.

    Joins each file's segments into its final file and removes unfinished temporary
    files. A :class:`ParquetRecorder` does this itself when it starts in a directory, so
    call it only to read a crashed recording without recording into it again.
    """
    path = Path(directory)
    try:
        lock = _DirectoryLock(path)
        try:
            return _recover_locked(path, compression, durable=True)
        finally:
            lock.release()
    except RecordingError:
        raise
    except OSError as exc:
        raise RecordingError(f"cannot recover the recording in {path}: {exc}") from exc


class ParquetRecorder:
    """Writes stream updates into Parquet files in a directory (extra ``parquet``).

    One row per feed per update, typed columns and the raw frame of each update (see
    :mod:`pylazer_sync.recording.columns`); read back with
    :func:`pylazer_sync.frames.read_parquet` (a DataFrame) or
    :func:`pylazer_sync.recording.read_recording` (the same ``StreamUpdate``\\ s).

    ::

        with ParquetRecorder("prices/") as recorder:
            for message in client:
                recorder.write(message)          # other messages than updates are skipped

    Args:
        directory: where the files go (created if missing). One recorder per directory.
        rotate_seconds: start a new file at every multiple of this many seconds of UTC
            wall-clock time (3600: one file per hour, on the hour); ``None``: never.
        rotate_bytes: start a new file once this many bytes are written to the current
            one (about the final file's size); ``None``: never.
        flush_seconds: write what is buffered at least this often: a crash (even
            SIGKILL) loses at most the updates of this interval. Call
            :meth:`flush_if_due` when no update arrives for a while (:meth:`record`
            does), or buffered updates wait for the next one.
        prefix: file names are ``PREFIX-YYYYmmddTHHMMSS.ffffffZ.parquet`` (UTC start time).
        compression: a Parquet codec (``zstd``, ``snappy``, ``gzip``, ``none``).
        durable: fsync each file and segment before renaming it, so that a power cut,
            not only a crash of this process, leaves whole files.

    Raises :class:`RecordingError` when the directory cannot be written, now or later.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        rotate_seconds: float | None = 3600.0,
        rotate_bytes: int | None = 256 * 1024 * 1024,
        flush_seconds: float = 2.0,
        prefix: str = "lazer",
        compression: str = "zstd",
        durable: bool = True,
    ) -> None:
        if rotate_seconds is not None and not (0 < rotate_seconds < math.inf):
            raise InvalidRequestError(f"rotate_seconds must be > 0 or None, got {rotate_seconds!r}")
        if rotate_bytes is not None and rotate_bytes < 1:
            raise InvalidRequestError(f"rotate_bytes must be >= 1 or None, got {rotate_bytes!r}")
        if not (0 < flush_seconds < math.inf):
            raise InvalidRequestError(f"flush_seconds must be > 0, got {flush_seconds!r}")
        if not prefix or "/" in prefix or os.sep in prefix or prefix.startswith("."):
            raise InvalidRequestError(f"prefix must be a plain file name part, got {prefix!r}")
        self.directory = Path(directory)
        self.rotate_seconds = rotate_seconds
        self.rotate_bytes = rotate_bytes
        self.flush_seconds = flush_seconds
        self.prefix = prefix
        self.compression = compression
        self.durable = durable
        self._buffer = RowBuffer()  # checks that pyarrow is there before touching the disk
        self._file: _OpenFile | None = None
        self._last_flush = time.monotonic()
        self._failed: RecordingError | None = None
        self._closed = False
        self.updates = 0
        """Updates taken by :meth:`write`."""
        self.rows = 0
        """Rows (feeds of updates) written to disk."""
        self.files: list[Path] = []
        """The finished files, oldest first (those recovered at start included)."""
        self._finished_bytes = 0
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._lock = _DirectoryLock(self.directory)
        except RecordingError:
            raise
        except OSError as exc:
            raise RecordingError(f"cannot record into {self.directory}: {exc}") from exc
        try:
            self._probe()
            self.files.extend(_recover_locked(self.directory, compression, durable))
        except OSError as exc:
            self._lock.release()
            if isinstance(exc, RecordingError):
                raise
            raise RecordingError(f"cannot record into {self.directory}: {exc}") from exc

    def __repr__(self) -> str:
        return (
            f"ParquetRecorder({str(self.directory)!r}, updates={self.updates}, "
            f"files={len(self.files)})"
        )

    def _probe(self) -> None:
        """Fail now, before any update arrives, if the directory cannot be written."""
        probe = self.directory / f".{self.prefix}-probe{_TEMP_SUFFIX}"
        try:
            probe.write_bytes(b"pylazer-sync")
        finally:
            with contextlib.suppress(OSError):
                probe.unlink()

    # -- writing ------------------------------------------------------------------------

    def write(self, message: Any, received_at: float | None = None) -> bool:
        """Record a stream update (``received_at``: its arrival, ``time.time()`` if not
        given); any other message is ignored. Returns whether it was recorded."""
        if not isinstance(message, StreamUpdate):
            return False
        self._check_usable()
        now = time.time()
        if (
            self._file is not None
            and self._file.deadline is not None
            and now >= self._file.deadline
        ):
            self.rotate()
        if self._file is None:
            self._file = self._new_file(now)
        self._buffer.add(message, received_at if received_at is not None else now)
        self._file.updates += 1
        self.updates += 1
        self.flush_if_due()
        return True

    def write_many(self, messages: Iterable[Any]) -> int:
        """Record the stream updates among ``messages``; returns how many."""
        return sum(self.write(m) for m in messages)

    def flush_if_due(self) -> None:
        """Flush if ``flush_seconds`` have passed since the last flush, and rotate if the
        current file is due. Cheap: call it whenever convenient."""
        self._check_usable()
        current = self._file
        if current is not None and current.deadline is not None and time.time() >= current.deadline:
            self.rotate()
            return
        if time.monotonic() - self._last_flush >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        """Write what is buffered as a segment now (and rotate if the size is reached)."""
        self._check_usable()
        self._last_flush = time.monotonic()
        current = self._file
        if current is None or self._buffer.rows == 0:
            return
        number = len(current.segments)
        segment = self.directory / f".{current.stem}.seg{number:06d}.parquet"
        temp = segment.with_name(segment.name + _TEMP_SUFFIX)
        rows = self._buffer.rows
        try:
            table = self._buffer.take()
            pq = pyarrow().parquet
            pq.write_table(table, temp, **_write_options(self.compression))
            if self.durable:
                _sync(temp)
            os.rename(temp, segment)
        except OSError as exc:
            with contextlib.suppress(OSError):
                temp.unlink()
            self._fail(exc, f"{rows} rows not written")
        current.segments.append(segment)
        current.bytes += segment.stat().st_size
        self.rows += rows
        if self.rotate_bytes is not None and current.bytes >= self.rotate_bytes:
            self.rotate()

    def rotate(self) -> Path | None:
        """Finish the current file now (its final name appears); returns it, or ``None``
        if nothing was written to it. The next update starts a new file."""
        self._check_usable()
        if self._buffer.rows:
            self.flush()
        current, self._file = self._file, None
        if current is None or not current.segments:
            return None
        final = self.directory / f"{current.stem}.parquet"
        try:
            size = _join(current.segments, final, self.compression, self.durable)
        except OSError as exc:
            self._fail(exc, "the file's segments are kept for recover()")
        self._finished_bytes += size
        self.files.append(final)
        logger.info(
            "recording: finished %s (%d updates, %d bytes)", final.name, current.updates, size
        )
        return final

    def _new_file(self, now: float) -> _OpenFile:
        stem = _file_name(self.prefix, now)
        while (self.directory / f"{stem}.parquet").exists() or any(
            p.name.startswith(f".{stem}.") for p in self.directory.iterdir()
        ):
            now += 1e-6  # two files started in the same microsecond: the next one
            stem = _file_name(self.prefix, now)
        deadline = None
        if self.rotate_seconds is not None:
            deadline = (math.floor(now / self.rotate_seconds) + 1) * self.rotate_seconds
        return _OpenFile(stem, deadline)

    def _fail(self, exc: OSError, lost: str) -> None:
        error = RecordingError(
            f"cannot write the recording in {self.directory}: {exc} ({lost}; finished "
            f"files are complete)"
        )
        error.errno = exc.errno
        self._failed = error
        raise error from exc

    def _check_usable(self) -> None:
        if self._failed is not None:
            raise self._failed
        if self._closed:
            raise RecordingError("the recorder is closed")

    # -- the whole loop -------------------------------------------------------------------

    def record(
        self,
        client: LazerClient,
        count: int | None = None,
        seconds: float | None = None,
        progress: Callable[[ParquetRecorder], None] | None = None,
        progress_interval: float = 0.5,
        on_message: Callable[[Any], None] | None = None,
    ) -> int:
        """Record ``client``'s updates until ``count`` updates or ``seconds`` have passed
        (or for ever, until Ctrl-C); returns how many were recorded by this call.

        Flushes on time even while no update arrives, and calls ``progress(self)`` about
        every ``progress_interval`` seconds (a status line) and ``on_message(message)``
        for every other message (``Subscribed``, ``SubscriptionError``...; it may raise to
        stop). Closing is the caller's.
        """
        started = time.monotonic()
        deadline = None if seconds is None else started + seconds
        recorded = 0
        next_progress = started + progress_interval
        while count is None or recorded < count:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            wait = self.flush_seconds / 2
            if deadline is not None:
                wait = min(wait, deadline - now)
            try:
                for message in client.recv_many(timeout=max(wait, 0.0)):
                    if self.write(message):
                        recorded += 1
                    elif on_message is not None:
                        on_message(message)
                        if count is not None and recorded >= count:
                            break
            except RecvTimeout:
                pass
            self.flush_if_due()
            if progress is not None and time.monotonic() >= next_progress:
                next_progress = time.monotonic() + progress_interval
                progress(self)
        return recorded

    # -- state ----------------------------------------------------------------------------

    @property
    def current_file(self) -> Path | None:
        """The final name the file being written will get (``None`` between files)."""
        return None if self._file is None else self.directory / f"{self._file.stem}.parquet"

    @property
    def bytes_written(self) -> int:
        """Bytes on disk: finished files plus the segments of the current one."""
        return self._finished_bytes + (self._file.bytes if self._file is not None else 0)

    def stats(self) -> dict[str, Any]:
        """Counters as plain data, for a status line."""
        return {
            "updates": self.updates,
            "updates_on_disk": self.updates - self._buffer.updates,
            "rows": self.rows,
            "buffered_rows": self._buffer.rows,
            "files": len(self.files),
            "bytes_written": self.bytes_written,
            "current_file": None if self.current_file is None else self.current_file.name,
        }

    # -- closing --------------------------------------------------------------------------

    def close(self) -> None:
        """Write what is buffered and finish the current file (idempotent)."""
        if self._closed:
            return
        try:
            if self._failed is None:
                self.rotate()
        finally:
            self._closed = True
            self._lock.release()

    def __enter__(self) -> ParquetRecorder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
