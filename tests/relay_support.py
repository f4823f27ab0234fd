"""Helpers for the relay tests: the machine's Redis, Redis servers of a test's own, relay
processes, and a stream name per test that is deleted afterwards.

- :func:`require_redis`: the shared server at 127.0.0.1:6379, or a skip with the reason
  (never under ``CI=true``, where a missing Redis fails the test).
- :class:`RedisServer`: a ``redis-server`` process on a free port, which a test kills
  (SIGKILL) and starts again on the same port; without persistence by default.
- :class:`RelayProcess`: ``python tests/relay_worker.py ...`` (a :class:`Relay` in a
  process of its own), told to stop with SIGTERM (it prints its stats) or killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from chaos_support import ROOT, START_TIMEOUT, free_port
from client_support import wait_for

from pylazer_sync.relay._redis import RedisStore

SHARED_REDIS_URL = "redis://127.0.0.1:6379/0"
REDIS_SERVER = shutil.which("redis-server")
WORKER = Path(__file__).with_name("relay_worker.py")


def require_redis(url: str = SHARED_REDIS_URL) -> None:
    """Skip (fail under CI=true) unless a Redis answers at ``url``."""
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2).ping()
    except redis.RedisError as exc:
        reason = f"no Redis reachable at {url} ({exc})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; under CI=true the relay tests must run")
        pytest.skip(reason)


def require_redis_server() -> str:
    """The ``redis-server`` binary (for tests that run their own), or skip/fail as above."""
    if REDIS_SERVER is None:
        reason = "no redis-server binary on PATH (tests that restart Redis run their own)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return REDIS_SERVER


def new_stream_name(label: str) -> str:
    """A stream name no other test (or run) uses."""
    return f"pltest:{label}:{uuid.uuid4().hex[:10]}"


@contextlib.contextmanager
def cleaned_stream(url: str, label: str, **store_options: Any) -> Iterator[str]:
    """A fresh stream name; the stream, its counter and its seen-keys are deleted at exit."""
    name = new_stream_name(label)
    try:
        yield name
    finally:
        with contextlib.suppress(Exception):
            store = RedisStore(url, name, **store_options)
            store.delete()
            store.close()


def raw_redis(url: str, **options: Any) -> redis.Redis:
    settings: dict[str, Any] = {"socket_connect_timeout": 5, "socket_timeout": 5, **options}
    return redis.Redis.from_url(url, **settings)


class RedisServer:
    """A ``redis-server`` process of a test's own, on a fixed free port.

    ``persistent``: an append-only file fsynced at every write, so a server killed with
    SIGKILL comes back with everything it acknowledged (a crash, then a restart);
    otherwise it comes back empty (data lost).
    """

    def __init__(self, *extra_args: str, persistent: bool = False, tls: bool = False) -> None:
        self.binary = require_redis_server()
        self.port = free_port()
        self.extra_args = extra_args
        self.persistent = persistent
        self.tls = tls
        self.dir = tempfile.mkdtemp(prefix="pylazer-redis-")
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"{'rediss' if self.tls else 'redis'}://127.0.0.1:{self.port}/0"

    def args(self) -> list[str]:
        args = [self.binary, "--bind", "127.0.0.1", "--save", "", "--dir", self.dir]
        if self.tls:
            args += ["--port", "0", "--tls-port", str(self.port)]
        else:
            args += ["--port", str(self.port)]
        if self.persistent:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            args += ["--appendonly", "no"]
        return args + list(self.extra_args)

    def start(self, ready: Any = None, timeout: float = START_TIMEOUT) -> None:
        """Start and wait until it accepts connections (``ready()``, default a PING)."""
        log = open(Path(self.dir) / "redis.log", "ab")  # noqa: SIM115 (the process owns it)
        try:
            self.proc = subprocess.Popen(self.args(), stdout=log, stderr=subprocess.STDOUT)
        finally:
            log.close()
        self.starts += 1

        def answers() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"redis-server exited; see {self.dir}/redis.log")
            try:
                if ready is not None:
                    return bool(ready())
                raw_redis(self.url, socket_connect_timeout=1).ping()
                return True
            except redis.RedisError:
                return False

        wait_for(answers, timeout, f"redis-server on port {self.port}")

    def kill(self) -> None:
        """SIGKILL: no goodbye to the clients, nothing flushed beyond what is on disk."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def redis_server(
    *extra_args: str, persistent: bool = False, tls: bool = False
) -> Iterator[RedisServer]:
    server = RedisServer(*extra_args, persistent=persistent, tls=tls)
    try:
        yield server
    finally:
        server.close()


class RelayProcess:
    """A relay in its own process (tests/relay_worker.py), started with a JSON config."""

    def __init__(self, config: dict[str, Any], name: str) -> None:
        self.config = config
        self.name = name
        self.log_path = Path(tempfile.mkdtemp(prefix="pylazer-relay-")) / f"{name}.log"
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if k != "PYTH_LAZER_TOKEN"}
        env["PYTHONUNBUFFERED"] = "1"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(WORKER), json.dumps(self.config)],
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                cwd=ROOT,
                env=env,
            )

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Block until the worker printed "ready" (its relay runs)."""
        assert self.proc is not None and self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        # readline() blocks; the worker prints "ready" or exits (EOF), and the test's
        # pytest timeout bounds a worker that does neither.
        line = self.proc.stdout.readline().strip()
        assert line == "ready", f"{self.name}: {line!r}; see {self.log_path}"
        assert time.monotonic() <= deadline, f"{self.name} took too long to start"

    def stop(self, timeout: float = 30.0) -> dict[str, Any]:
        """SIGTERM: the relay closes (appending its backlog) and prints its stats."""
        assert self.proc is not None and self.proc.stdout is not None
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=timeout)
        lines = [line for line in out.splitlines() if line.startswith("{")]
        assert lines, f"{self.name} printed no stats; see {self.log_path}"
        stats: dict[str, Any] = json.loads(lines[-1])
        return stats

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self.proc is not None and self.proc.stdout is not None:
            with contextlib.suppress(OSError):
                self.proc.stdout.close()


@contextlib.contextmanager
def relay_processes(configs: list[dict[str, Any]]) -> Iterator[list[RelayProcess]]:
    """Relay processes started together (Python's start-up is most of their start)."""
    relays = [RelayProcess(c, f"relay-{i}") for i, c in enumerate(configs)]
    try:
        for r in relays:
            r.start()
        for r in relays:
            r.wait_ready()
        yield relays
    finally:
        for r in relays:
            r.kill()
