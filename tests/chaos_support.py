"""Helpers for the chaos, soak, slow-consumer and security tests.

- :class:`SimProcess`: a simulator in its own process (``python -m pylazer_sync.simulator``),
  driven through its standard-input control commands; it can be killed with SIGKILL and
  started again on the same port. Every wait is bounded and every process is killed at
  the end of :func:`sim_processes`, also on failure.
- :class:`Monitor`: samples a client's ``stats()``, its threads and the process's memory
  in a background thread, so a test can check what held *at all times*, not only at the end.
- :class:`Consumer`: reads a client in a background thread and records every message with
  its arrival time.

Durations come from environment variables (:func:`env_seconds`): short in CI, as long as
wanted by hand.
"""

from __future__ import annotations

import contextlib
import os
import queue
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, TypeVar

from client_support import library_threads

import pylazer_sync as pl

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 60.0  # a loaded 2-core machine starts Python slowly
COMMAND_TIMEOUT = 20.0


def env_seconds(name: str, default: float) -> float:
    """A duration knob: ``$name`` in seconds if set (e.g. ``PYLAZER_CHAOS_SECONDS=600``)."""
    raw = os.environ.get(name)
    return float(raw) if raw else default


def rss_bytes() -> int:
    """Resident set size of this process (``/proc/self/statm``, pages to bytes)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def open_fds() -> int:
    """How many file descriptors this process has open (sockets included)."""
    return len(os.listdir("/proc/self/fd"))


def free_port() -> int:
    """A free loopback port *below* the ephemeral range.

    A simulator killed and started again must get its port back. Ports the kernel hands
    out for outgoing connections (the client's reconnects) come from the ephemeral range;
    one of them could take a freed port from that range, never one below it.
    """
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, max(20001, low - 1))
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


class SimProcess:
    """One simulator process on a fixed port, controlled through its standard input.

    Output lines are read by a helper thread into a queue; a command waits (bounded)
    for its ``ok``/``error`` answer. Logs go to a file (``log_path``) for post-mortems.
    """

    def __init__(
        self,
        seed: int | str = 1,
        token: str | None = None,
        port: int | None = None,
        ping_interval: float = 0.5,
        extra_args: tuple[str, ...] = (),
        log_dir: str | None = None,
    ) -> None:
        self.seed = seed
        self.token = token
        self.port = port if port is not None else free_port()
        self.ping_interval = ping_interval
        self.extra_args = extra_args
        self._log_dir = log_dir or tempfile.mkdtemp(prefix="pylazer-sim-")
        self.log_path = Path(self._log_dir) / f"sim-{self.port}.log"
        self.proc: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._log: TextIO | None = None
        self.starts = 0
        self.ready_at = 0.0  # time.time() when it last started listening

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/stream"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def args(self) -> list[str]:
        args = [
            sys.executable,
            "-m",
            "pylazer_sync.simulator",
            "--port",
            str(self.port),
            "--seed",
            str(self.seed),
            "--no-rest",
            "--ping-interval",
            str(self.ping_interval),
            "--log-level",
            "WARNING",
            *self.extra_args,
        ]
        if self.token is not None:
            args += ["--token", self.token]
        return args

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start the process and return once it listens (its banner names the URL).

        A port freed by a killed process is normally bindable at once; should it not
        be, the start is retried (bounded by ``timeout``).
        """
        assert not self.alive, "already running"
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._start_once(deadline)
                self.starts += 1
                return
            except _StartFailed as exc:
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"simulator on port {self.port} did not start: {exc}"
                    ) from None
                time.sleep(0.1)  # a retry pause, not synchronisation: the port was busy

    def _start_once(self, deadline: float) -> None:
        if self._log is None:
            self._log = open(self.log_path, "a")  # noqa: SIM115 (closed in kill())
        env = {k: v for k, v in os.environ.items() if k != "PYTH_LAZER_TOKEN"}
        env["PYTHONUNBUFFERED"] = "1"
        self._lines = queue.Queue()
        self.proc = subprocess.Popen(
            self.args(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            cwd=ROOT,
            env=env,
        )
        threading.Thread(
            target=self._read, args=(self.proc, self._lines), name="test-sim-stdout", daemon=True
        ).start()
        while True:
            line = self._next_line(deadline)
            if line is None:
                self.proc.wait(5)
                raise _StartFailed(f"exited with {self.proc.returncode}; see {self.log_path}")
            if line.startswith("stream: "):
                assert line.split()[-1] == self.url, line
                self.ready_at = time.time()
                return

    @staticmethod
    def _read(proc: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    def _next_line(self, deadline: float) -> str | None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"simulator on port {self.port}: no output in time")
        try:
            return self._lines.get(timeout=remaining)
        except queue.Empty:
            raise AssertionError(f"simulator on port {self.port}: no output in time") from None

    def command(self, line: str, timeout: float = COMMAND_TIMEOUT) -> str:
        """Send one control command; return its answer line (``ok...``); raise on ``error``."""
        assert self.proc is not None and self.proc.stdin is not None and self.alive
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout
        while True:
            answer = self._next_line(deadline)
            if answer is None:
                raise AssertionError(f"simulator on port {self.port} ended during {line!r}")
            if answer.startswith("ok"):
                return answer
            if answer.startswith(("error", "unknown")):
                raise AssertionError(f"simulator command {line!r}: {answer}")

    def kill(self) -> None:
        """SIGKILL: the kernel closes its sockets; nothing is said to the clients."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)
            for stream in (self.proc.stdin, self.proc.stdout):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()

    def close(self) -> None:
        """End the process (quit, then kill if it lingers) and close the log file."""
        if self.alive:
            with contextlib.suppress(Exception):
                assert self.proc is not None and self.proc.stdin is not None
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(5)
        self.kill()
        if self._log is not None:
            self._log.close()
            self._log = None


class _StartFailed(Exception):
    pass


def start_all(sims: list[SimProcess], timeout: float = START_TIMEOUT) -> None:
    """Start several simulators at once (each start is mostly Python's import time)."""
    failures: list[BaseException] = []

    def start(sim: SimProcess) -> None:
        try:
            sim.start(timeout)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=start, args=(s,), name="test-sim-start") for s in sims]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout + 5)
    assert not any(t.is_alive() for t in threads), "a simulator start hung"
    assert not failures, failures


@contextlib.contextmanager
def sim_processes(n: int = 3, **kwargs: Any) -> Iterator[list[SimProcess]]:
    """``n`` simulator processes (same seed: byte-identical frames); all ended at exit."""
    log_dir = tempfile.mkdtemp(prefix="pylazer-sims-")
    sims = [SimProcess(log_dir=log_dir, **kwargs) for _ in range(n)]
    try:
        start_all(sims)
        yield sims
    finally:
        for sim in sims:
            sim.close()


# -- observing a client ----------------------------------------------------------------


@dataclass
class Sample:
    """One observation of a client: wall time, per-connection (state, connects), threads."""

    at: float
    states: tuple[str, ...]
    connects: tuple[int, ...]
    client_threads: tuple[str, ...]
    rss: int
    fds: int
    threads: int


_B = TypeVar("_B", bound="_Background")


class _Background:
    """A test helper that runs ``_run`` in a daemon thread and reports what it ran into."""

    errors: list[BaseException]
    _stop: threading.Event
    _thread: threading.Thread

    def _init_thread(self, name: str) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        raise NotImplementedError

    def start(self: _B) -> _B:
        self._thread.start()
        return self

    def stop(self, check: bool = True) -> None:
        """Stop the thread (idempotent); with ``check``, raise what the thread ran into."""
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(10)
        if check:
            assert not self._thread.is_alive(), f"{self._thread.name} thread did not stop"
            assert not self.errors, self.errors


@dataclass
class Monitor(_Background):
    """Samples a client every ``interval`` seconds in a thread until stopped."""

    client: pl.LazerClient
    interval: float = 0.02
    baseline: frozenset[int] = frozenset()
    samples: list[Sample] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._init_thread("test-monitor")

    def sample(self) -> Sample:
        stats = self.client.stats()
        conns = stats["connections"]
        return Sample(
            at=time.time(),
            states=tuple(c["state"] for c in conns),
            connects=tuple(c["connects"] for c in conns),
            client_threads=tuple(sorted(t.name for t in library_threads(self.baseline))),
            rss=rss_bytes(),
            fds=open_fds(),
            threads=threading.active_count(),
        )

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.interval):
                self.samples.append(self.sample())
        except BaseException as exc:  # reported by stop()
            self.errors.append(exc)


@dataclass
class Received:
    at: float  # time.time() when recv() returned it
    message: pl.Message


@dataclass
class Consumer(_Background):
    """Reads a client in a thread (``recv_many``), recording each message's arrival.

    ``per_message`` (seconds) makes it a slow reader: the work a real consumer would do
    per message, simulated by a sleep (that is the workload, not a synchronisation).
    """

    client: pl.LazerClient
    per_message: float = 0.0
    keep: bool = True  # False: only count and call on_message (long runs, flat memory)
    count: int = 0
    received: list[Received] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    on_message: Callable[[Received], None] | None = None

    def __post_init__(self) -> None:
        self._init_thread("test-consumer")

    def _run(self) -> None:
        client = self.client
        try:
            while not self._stop.is_set():
                if self.per_message > 0:
                    try:
                        batch = [client.recv(timeout=0.2)]
                    except pl.RecvTimeout:
                        continue
                else:
                    batch = client.recv_many(1000, timeout=0.2)
                now = time.time()
                self.count += len(batch)
                for message in batch:
                    record = Received(now, message)
                    if self.keep:
                        self.received.append(record)
                    if self.on_message is not None:
                        self.on_message(record)
                if self.per_message > 0:
                    time.sleep(self.per_message)
        except pl.ClientClosed:
            pass
        except BaseException as exc:  # reported by stop()
            self.errors.append(exc)

    def updates(self, subscription_id: int | None = None) -> list[tuple[float, pl.StreamUpdate]]:
        return [
            (r.at, r.message)
            for r in self.received
            if isinstance(r.message, pl.StreamUpdate)
            and (subscription_id is None or r.message.subscription_id == subscription_id)
        ]


def median(values: list[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        raise ValueError("median of nothing")
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2
