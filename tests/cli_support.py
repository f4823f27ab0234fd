"""Helpers for tests that run the command line and the examples as subprocesses.

Every wait is bounded: ``run`` has a timeout, and a running process's output is read by
a helper thread into a queue, so "wait for a line" is a ``queue.get`` with a deadline.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUN_TIMEOUT = 90.0  # generous: a loaded 2-core machine starts Python slowly


def env(**overrides: str | None) -> dict[str, str]:
    """The test's environment without a token (unless given) and with unbuffered output."""
    out = {k: v for k, v in os.environ.items() if k != "PYTH_LAZER_TOKEN"}
    out["PYTHONUNBUFFERED"] = "1"
    for key, value in overrides.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def run(
    args: list[str], timeout: float = RUN_TIMEOUT, **env_overrides: str | None
) -> subprocess.CompletedProcess[str]:
    """Run a command (e.g. ``[sys.executable, "-m", "pylazer_sync", ...]``) to its end."""
    return subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env(**env_overrides),
        stdin=subprocess.DEVNULL,
    )


def cli(
    *args: str, timeout: float = RUN_TIMEOUT, **env_overrides: str | None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m pylazer_sync ARGS``."""
    return run([sys.executable, "-m", "pylazer_sync", *args], timeout, **env_overrides)


class Running:
    """A subprocess whose standard output is read line by line as it comes."""

    def __init__(self, args: list[str], stdin: bool = False, **env_overrides: str | None) -> None:
        self.proc = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
            env=env(**env_overrides),
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for_line(self, predicate: Callable[[str], bool], timeout: float = 60.0) -> str:
        """The first new line of output that satisfies ``predicate``."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no matching line within {timeout} s; got {self.seen}")
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"the process ended first; output: {self.seen}")
            self.seen.append(line)
            if predicate(line):
                return line

    def interrupt(self, timeout: float = 30.0) -> tuple[int, str]:
        """Send SIGINT (Ctrl-C) and wait for the end; returns (exit status, stderr)."""
        self.proc.send_signal(signal.SIGINT)
        _, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, err

    def terminate(self, timeout: float = 30.0) -> tuple[int, str]:
        """Send SIGTERM and wait for the end; returns (exit status, stderr)."""
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=30)


@contextlib.contextmanager
def running(args: list[str], stdin: bool = False, **env_overrides: str | None) -> Iterator[Running]:
    """A :class:`Running` process, killed at the end of the block if still alive."""
    proc = Running(args, stdin, **env_overrides)
    try:
        yield proc
    finally:
        proc.kill()


@contextlib.contextmanager
def refusing_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound (so nobody else takes it) but not
    listening, so a connect gets an immediate RST, with no race on a freed port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]
    finally:
        sock.close()


@contextlib.contextmanager
def listening_port() -> Iterator[int]:
    """A loopback port that is taken (bound and listening), for "address in use" cases."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]
    finally:
        sock.close()
