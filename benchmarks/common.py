"""What every part of the benchmark suite shares: the stream, the simulator process, workers.

Every measurement runs in processes of its own: the simulator (one event loop that must
never be the bottleneck) and, per scenario, one process for the reader under test, so
one scenario's threads, caches and garbage never disturb the next. Workers print one
JSON object as their last line of standard output; every wait on a process is bounded
and every process started here is killed on the way out.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final, TypeVar

BENCH_DIR: Final = Path(__file__).resolve().parent
ROOT: Final = BENCH_DIR.parent
RESULTS_DIR: Final = BENCH_DIR / "results"
CACHE_DIR: Final = BENCH_DIR / ".cache"
PYTHON: Final = sys.executable

# The stream every reader gets: one feed, five properties, real_time. JSON delivery is a
# ~240-byte text frame (the "parsed" object only); binary delivery a ~72-byte frame
# with one unsigned little-endian envelope, decoded in full by the client.
FEED_IDS: Final = [1]
PROPERTIES: Final = ["price", "bestBidPrice", "bestAskPrice", "exponent", "publisherCount"]
DELIVERIES: Final = ("json", "binary")
SUBSCRIPTION_ID: Final = 1


_P = TypeVar("_P", bound="Process")


class BenchError(RuntimeError):
    """A benchmark step failed (a process did not start, answer or finish in time)."""


def wire_subscription(delivery: str) -> dict[str, Any]:
    """The subscribe request on the wire (bare readers and the TypeScript SDK send this)."""
    binary = delivery == "binary"
    return {
        "type": "subscribe",
        "subscriptionId": SUBSCRIPTION_ID,
        "priceFeedIds": FEED_IDS,
        "properties": PROPERTIES,
        "formats": ["leUnsigned"] if binary else [],
        "deliveryFormat": delivery,
        "jsonBinaryEncoding": "base64",
        "parsed": not binary,
        "channel": "real_time",
    }


def client_subscription(delivery: str) -> dict[str, Any]:
    """The same subscription as ``LazerClient.subscribe`` keyword arguments: equal
    requests make equal simulator shapes, hence the same flood ring and bytes."""
    wire = wire_subscription(delivery)
    return {
        "price_feed_ids": FEED_IDS,
        "properties": PROPERTIES,
        "formats": wire["formats"],
        "delivery_format": delivery,
        "json_binary_encoding": "base64",
        "parsed": wire["parsed"],
        "channel": "real_time",
        "subscription_id": SUBSCRIPTION_ID,
    }


def percentiles(samples: Sequence[float]) -> dict[str, float]:
    """p50, p90, p99, p99.9 and max (nearest rank), and the count."""
    if not samples:
        return {"n": 0}
    ordered = sorted(samples)
    n = len(ordered)

    def rank(q: float) -> float:
        return ordered[min(n - 1, max(0, int(q * n + 0.5) - 1))]

    return {
        "n": n,
        "p50": rank(0.50),
        "p90": rank(0.90),
        "p99": rank(0.99),
        "p99.9": rank(0.999),
        "max": ordered[-1],
        "mean": sum(ordered) / n,
    }


class _LineReader:
    """Lines of a pipe, read by a daemon thread, so that every wait can have a timeout."""

    def __init__(self, pipe: IO[str], keep: int = 200) -> None:
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.tail: list[str] = []
        self._keep = keep
        threading.Thread(target=self._run, args=(pipe,), daemon=True).start()

    def _run(self, pipe: IO[str]) -> None:
        for line in pipe:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def next(self, timeout: float) -> str | None:
        """The next line (None at end of output); :class:`BenchError` after ``timeout``."""
        try:
            line = self.lines.get(timeout=max(0.0, timeout))
        except queue.Empty:
            raise BenchError(f"no output within {timeout:.1f} s") from None
        if line is not None:
            self.tail = [*self.tail[-self._keep :], line]
        return line


class Process:
    """A child process with line-based standard input/output and bounded waits."""

    def __init__(self, argv: Sequence[str], name: str, env: dict[str, str] | None = None) -> None:
        self.name = name
        # Standard error goes to a file: a chatty child can never block on a full pipe.
        self._stderr = tempfile.TemporaryFile(  # noqa: SIM115 (lives as long as the child)
            mode="w+", prefix=f"bench-{name}-"
        )
        self.proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            bufsize=1,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
        )
        assert self.proc.stdout is not None
        self.out = _LineReader(self.proc.stdout)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def send(self, line: str) -> None:
        """Write one line to the child's standard input."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise BenchError(
                f"{self.name}: cannot write to it ({exc}){self.stderr_tail()}"
            ) from exc

    def expect(self, prefix: str, timeout: float) -> str:
        """Skip output lines until one starts with ``prefix``; return it."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.out.next(deadline - time.monotonic())
            except BenchError:
                raise BenchError(
                    f"{self.name}: no line starting with {prefix!r} within {timeout} s"
                    f"{self.stderr_tail()}"
                ) from None
            if line is None:
                raise BenchError(
                    f"{self.name} ended (exit {self.proc.poll()}) before {prefix!r}"
                    f"{self.stderr_tail()}"
                )
            if line.startswith(prefix):
                return line

    def result(self, timeout: float) -> dict[str, Any]:
        """Wait for the child to finish and return its JSON result (its last line)."""
        deadline = time.monotonic() + timeout
        last: str | None = None
        while True:
            try:
                line = self.out.next(deadline - time.monotonic())
            except BenchError:
                self.kill()
                raise BenchError(
                    f"{self.name}: no result within {timeout} s{self.stderr_tail()}"
                ) from None
            if line is None:
                break
            if line.strip():
                last = line
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(max(0.1, deadline - time.monotonic()))
        self.kill()
        if last is None or not last.startswith("{"):
            raise BenchError(
                f"{self.name}: no JSON result (exit {self.proc.returncode}){self.stderr_tail()}"
            )
        try:
            result: dict[str, Any] = json.loads(last)
        except ValueError as exc:
            raise BenchError(f"{self.name}: unreadable result ({exc}){self.stderr_tail()}") from exc
        return result

    def stderr_tail(self, lines: int = 15) -> str:
        """The end of the child's standard error, for error messages."""
        try:
            self._stderr.flush()
            self._stderr.seek(0)
            text = self._stderr.read().strip().splitlines()[-lines:]
        except (OSError, ValueError):
            return ""
        return ("\n    " + "\n    ".join(text)) if text else ""

    def kill(self, grace: float = 3.0) -> None:
        """End the child: closing its input first (polite), then SIGTERM, then SIGKILL."""
        proc = self.proc
        if proc.poll() is None:
            with contextlib.suppress(OSError):
                if proc.stdin is not None:
                    proc.stdin.close()
            try:
                proc.wait(0.2)
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(grace)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(grace)

    def __enter__(self: _P) -> _P:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.kill()


class SimProcess(Process):
    """``python -m pylazer_sync.simulator`` in its own process, driven by stdin commands.

    No REST endpoints and no pings (a ping would be one more frame kind in the stream).
    """

    def __init__(self, *options: str, name: str = "simulator") -> None:
        super().__init__(
            [PYTHON, "-m", "pylazer_sync.simulator", "--no-rest", "--ping-interval", "0", *options],
            name,
        )
        line = self.expect("stream:", 20.0)
        self.url = line.split()[1]
        self.expect("leEcdsa signer", 5.0)  # the last banner line: commands answer next

    def command(self, line: str, timeout: float = 10.0) -> str:
        """Run one control command; returns its answer (``ok...``), raises on ``error``."""
        self.send(line)
        deadline = time.monotonic() + timeout
        while True:
            answer = self.out.next(deadline - time.monotonic())
            if answer is None:
                raise BenchError(f"{self.name} ended during {line!r}{self.stderr_tail()}")
            if answer.startswith("ok"):
                return answer
            if answer.startswith("error"):
                raise BenchError(f"{self.name}: {line!r} -> {answer}")

    def status(self) -> tuple[dict[str, Any], list[int]]:
        """The simulator's counters and its open connection ids."""
        answer = self.command("status")
        stats, ids = ast.literal_eval(answer.removeprefix("ok: "))
        return stats, list(ids)

    def wait_connections(self, n: int, timeout: float = 10.0) -> list[int]:
        """Poll (every 20 ms, bounded) until exactly ``n`` connections are open."""
        deadline = time.monotonic() + timeout
        while True:
            _, ids = self.status()
            if len(ids) == n:
                return ids
            if time.monotonic() > deadline:
                raise BenchError(f"{self.name}: {len(ids)} connections open, expected {n}")
            time.sleep(0.02)

    def kill(self, grace: float = 3.0) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(BenchError):
                self.send("quit")
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(grace)
        super().kill(grace)


def python_worker(module: str, *args: str, name: str) -> Process:
    """Start ``python benchmarks/<module>.py <args>`` (a worker of that module)."""
    return Process([PYTHON, str(BENCH_DIR / f"{module}.py"), *args], name)


def emit(result: dict[str, Any]) -> None:
    """A worker's last word: its result as one JSON line."""
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
