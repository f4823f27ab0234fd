"""``pylazer-sync record``: subscribe as ``stream`` does and write every update into
Parquet files, rotated, until ``--count``, ``--seconds``, Ctrl-C or SIGTERM.

The recorder (:class:`~pylazer_sync.recording.ParquetRecorder` and its ``record`` loop)
runs in a thread of its own while the main thread waits for it. Python delivers Ctrl-C
and SIGTERM to the main thread only, so a signal never lands in the middle of a write
(which could leave a batch of rows half-added); the main thread closes the client, which
ends the recorder's wait for updates at once, and the recorder finishes its file before
the summary is printed and the command ends as ``stream`` does (130 or 143). A second
signal while the file is being finished ends the process at once: nothing is ever
half-written under a final name, and the next ``record`` into the directory (or
``pylazer_sync.recording.recover``) finishes the file from its segments.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import sys
import threading
import time
from typing import Any

from ..client import LazerClient
from ..config import DEFAULT_ENDPOINTS
from ..dedup import UndecodableFrame
from ..errors import ClientClosed, RecordingError
from ..protocol import ServerError, SubscribedWithIgnoredFeeds, SubscriptionError
from ..recording import ParquetRecorder
from . import argtypes
from .command import Command, Context, Subcommands
from .exits import EPILOG, EXIT_OK, EXIT_RECORDING, EXIT_USAGE, CliError
from .options import (
    client_options,
    common_options,
    connection_options,
    subscribe_request,
    subscription_options,
)
from .output import StatusLine, size

_MIB = 1024 * 1024
_RATE_WINDOW_S = 5.0  # the status line's rate: updates per second over the last 5 s


def register(commands: Subcommands) -> None:
    """Add ``record`` and its options."""
    parser = commands.add_parser(
        "record",
        parents=[
            common_options(),
            connection_options(),
            client_options(),
            subscription_options(stream=True, show=False),
        ],
        help="record live updates into Parquet files",
        description="Subscribe as 'stream' does and write every update into Parquet files "
        "in DIR (extra 'parquet'), until --count updates, --seconds, or Ctrl-C / SIGTERM "
        "(the file in progress is finished first). Each file holds the raw frames too, so "
        "a recording verifies and replays exactly: read it with "
        "pylazer_sync.frames.read_parquet or pylazer_sync.recording.read_recording, "
        "replay it with 'pylazer-sync simulate --replay DIR'. A live status line on a "
        "terminal, a summary on standard error at the end.",
        epilog=EPILOG,
    )
    parser.add_argument(
        "--output",
        required=True,
        metavar="DIR",
        help="directory of the recording (created if missing; one recorder at a time). "
        "Files are named by their UTC start time, PREFIX-YYYYmmddTHHMMSS.ffffffZ.parquet",
    )
    parser.add_argument(
        "--rotate-seconds",
        type=argtypes.non_negative_float,
        default=3600.0,
        metavar="S",
        help="start a new file at every multiple of S seconds of UTC time (default: "
        "%(default)s, one file per hour, on the hour; 0: never)",
    )
    parser.add_argument(
        "--rotate-mb",
        type=argtypes.non_negative_float,
        default=256.0,
        metavar="M",
        help="start a new file once the current one holds M MiB (default: %(default)s; "
        "0: never). With both, whichever comes first",
    )
    parser.add_argument(
        "--flush-seconds",
        type=argtypes.positive_float,
        default=2.0,
        metavar="S",
        help="write what is buffered at least every S seconds: a crash, even kill -9, "
        "loses at most the last S seconds (default: %(default)s)",
    )
    parser.add_argument("--prefix", default="lazer", help="file name prefix (default: lazer)")
    parser.add_argument(
        "--count", type=argtypes.positive_int, metavar="N", help="exit 0 after N updates"
    )
    parser.add_argument(
        "--seconds",
        type=argtypes.positive_float,
        metavar="S",
        help="exit 0 after S seconds (of the whole run, connecting included)",
    )


class _Worker(threading.Thread):
    """Runs the recorder's loop; keeps what ended it for the main thread to raise."""

    def __init__(
        self,
        recorder: ParquetRecorder,
        client: LazerClient,
        count: int | None,
        seconds: float | None,
        status: _Status,
        subscription_id: int,
    ) -> None:
        # A daemon: after a second Ctrl-C, the process must not wait for it to finish.
        super().__init__(name="pylazer-sync-record", daemon=True)
        self._recorder = recorder
        self._client = client
        self._count = count
        self._seconds = seconds
        self._status = status
        self._subscription_id = subscription_id
        self.stopping = threading.Event()
        """Set by the main thread before it closes the client: ``ClientClosed`` is the stop."""
        self.done = threading.Event()
        """Set when the loop has ended: the recorder is the main thread's from then on.
        (Not ``join()``/``is_alive()``: on Python 3.11, a ``join()`` interrupted by Ctrl-C
        can mark a thread that still runs as stopped.)"""
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._recorder.record(
                self._client,
                count=self._count,
                seconds=self._seconds,
                progress=self._status.update,
                on_message=self._on_message,
            )
        except ClientClosed as exc:
            if not self.stopping.is_set():
                self.error = exc
        except BaseException as exc:  # raised again in the main thread
            self.error = exc
        finally:
            self.done.set()

    def _on_message(self, message: Any) -> None:
        if isinstance(message, SubscriptionError) and message.subscription_id == (
            self._subscription_id
        ):
            raise CliError(f"the server refused the subscription: {message.error}", EXIT_USAGE)
        if isinstance(message, ServerError):
            raise CliError(f"the server refused the request: {message.error}", EXIT_USAGE)
        if isinstance(message, SubscribedWithIgnoredFeeds):
            self._status.note(f"note: some feeds were ignored: {message}")
        elif isinstance(message, UndecodableFrame):
            self._status.note(f"note: undecodable frame skipped: {message.error}")


class _Status:
    """The live status line (terminal only), the notes, and the summary."""

    def __init__(self, recorder: ParquetRecorder) -> None:
        self._recorder = recorder
        self._line = StatusLine(sys.stderr)
        self._samples: collections.deque[tuple[float, int]] = collections.deque()
        self.started: float | None = None
        self.ended: float | None = None

    def update(self, recorder: ParquetRecorder) -> None:
        """The recorder's progress callback: updates, rate, bytes, current file."""
        if not self._line.enabled:
            return
        now = time.monotonic()
        self._samples.append((now, recorder.updates))
        while now - self._samples[0][0] > _RATE_WINDOW_S:
            self._samples.popleft()
        then, updates_then = self._samples[0]
        rate = (recorder.updates - updates_then) / (now - then) if now > then else 0.0
        current = recorder.current_file.name if recorder.current_file else "-"
        self._line.show(
            f"recording: {recorder.updates} updates, {rate:.1f}/s, "
            f"{size(recorder.bytes_written)} written, {len(recorder.files)} files done, "
            f"now {current}"
        )

    def note(self, text: str) -> None:
        """A line on standard error, under the status line."""
        self._line.clear()
        print(text, file=sys.stderr, flush=True)

    def clear(self) -> None:
        self._line.clear()

    def summary(self, files_before: int) -> None:
        """What the run recorded, once the recorder is closed."""
        recorder = self._recorder
        files = len(recorder.files) - files_before
        seconds = 0.0
        if self.started is not None:
            seconds = (self.ended or time.monotonic()) - self.started
        written = recorder.bytes_written
        self.note(
            f"recorded {_plural(recorder.updates, 'update')} in {seconds:.1f} s: "
            f"{_plural(files, 'file')}, {size(written)} ({written} bytes) in "
            f"{recorder.directory}"
        )


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def run(args: argparse.Namespace, ctx: Context) -> int:
    """Record until ``--count``, ``--seconds``, Ctrl-C or SIGTERM."""
    try:
        return _run(args, ctx)
    except RecordingError as exc:  # the directory: not writable, full, in use
        raise CliError(str(exc), EXIT_RECORDING) from exc


def _run(args: argparse.Namespace, ctx: Context) -> int:
    # --seconds bounds the whole run, connecting included: it is a wall-clock budget.
    deadline = None if args.seconds is None else time.monotonic() + args.seconds
    request = subscribe_request(args, args.delivery)
    # Checks its settings (a token for remote endpoints) but connects only at start().
    client = LazerClient(
        args.token,  # None: $PYTH_LAZER_TOKEN, or none at all for endpoints on this machine
        endpoints=args.endpoint or DEFAULT_ENDPOINTS,
        num_connections=args.connections,
        start_timeout=min(args.connect_timeout, args.seconds or args.connect_timeout),
    )
    # Before any connection: a missing pyarrow or an unwritable directory fails at once.
    recorder = ParquetRecorder(
        args.output,
        rotate_seconds=args.rotate_seconds or None,
        rotate_bytes=max(round(args.rotate_mb * _MIB), 1) if args.rotate_mb else None,
        flush_seconds=args.flush_seconds,
        prefix=args.prefix,
    )
    files_before = len(recorder.files)  # finished from a killed recorder's segments
    if files_before:
        print(
            f"note: finished {_plural(files_before, 'file')} a stopped recorder left in "
            f"{recorder.directory}",
            file=sys.stderr,
        )
    status = _Status(recorder)
    worker: _Worker | None = None
    try:
        client.start()
        ctx.connected()
        subscription_id = client.subscribe(request)
        remaining = None if deadline is None else max(deadline - time.monotonic(), 0.0)
        worker = _Worker(recorder, client, args.count, remaining, status, subscription_id)
        status.started = time.monotonic()
        worker.start()
        try:
            worker.done.wait()  # Ctrl-C and SIGTERM interrupt this wait, never the recorder
        finally:
            status.ended = time.monotonic()
            worker.stopping.set()
            client.close()  # ends the recorder's wait for updates at once
            worker.done.wait()
        if worker.error is not None:
            raise worker.error
    except KeyboardInterrupt:  # Ctrl-C, or Terminated (SIGTERM): finish, sum up, then end
        client.close()
        status.clear()
        if worker is None or worker.done.is_set():
            recorder.close()
            status.summary(files_before)
        raise
    except BaseException:
        client.close()
        status.clear()
        if worker is None or worker.done.is_set():
            # Keep what was recorded before the failure (a failed recorder only unlocks).
            with contextlib.suppress(RecordingError):
                recorder.close()
        raise
    client.close()
    status.clear()
    recorder.close()
    status.summary(files_before)
    return EXIT_OK


COMMAND = Command("record", register, run)
