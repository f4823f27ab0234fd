"""Latency at a paced rate: from the simulator's timestamp to ``recv()`` returning it.

A fresh simulator per scenario floods 1,000 updates/s, each stamped with the wall-clock
time at which it is written to the sockets (``--flood-stamp send``), and the reader
takes ``time.time()`` as ``recv()`` returns: the same clock on one machine. The reader
process opens its connections, says "ready"; for the "one delayed" scenarios the
simulator then holds back every frame of one connection by 50 ms; then "go". With
redundancy the fastest copy wins, so the percentiles should not move.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from common import BenchError, Process, SimProcess, python_worker
from ts_sdk import TsSdk

Log = Callable[[str], None]


@dataclass(frozen=True)
class Settings:
    rate_hz: float = 1000.0
    conns: int = 4
    delay_s: float = 0.05
    delivery: str = "json"
    warmup: float = 1.0
    seconds: float = 10.0
    ts_delayed: bool = False


def _scenario(
    name: str,
    start: Callable[[str], Process],
    settings: Settings,
    delayed: bool,
) -> dict[str, Any]:
    options = ("--flood-rate", str(settings.rate_hz), "--flood-stamp", "send")
    with SimProcess(*options, name=f"rate-simulator-{name}") as sim:
        worker = start(sim.url)
        try:
            worker.expect("ready", 30.0)
            ids = sim.wait_connections(settings.conns)
            delayed_id = None
            if delayed:
                delayed_id = ids[0]
                sim.command(f"delay {delayed_id} {settings.delay_s}")
            worker.send("go")
            result = worker.result(settings.warmup + settings.seconds + 30)
        except BenchError as exc:
            result = {"error": str(exc)}
        finally:
            worker.kill()
    return {
        "scenario": name,
        "conns": settings.conns,
        "rate_hz": settings.rate_hz,
        "delayed_connection_s": settings.delay_s if delayed else 0.0,
        **result,
    }


def run(settings: Settings, ts: TsSdk | None, log: Log) -> list[dict[str, Any]]:
    """The latency scenarios: ours, ours with one connection delayed, the TS SDK."""

    def ours(url: str) -> Process:
        args = [
            *("--url", url, "--conns", str(settings.conns), "--delivery", settings.delivery),
            *("--warmup", str(settings.warmup), "--seconds", str(settings.seconds)),
        ]
        return python_worker("workers", "latency", *args, name="latency")

    plan: list[tuple[str, Callable[[str], Process], bool]] = [
        ("ours", ours, False),
        ("ours, one connection delayed", ours, True),
    ]
    if ts is not None:

        def theirs(url: str) -> Process:
            return ts.worker(
                url, settings.conns, settings.delivery, "latency", settings.warmup, settings.seconds
            )

        plan.append(("TS SDK", theirs, False))
        if settings.ts_delayed:
            plan.append(("TS SDK, one connection delayed", theirs, True))
    out = []
    for name, start, delayed in plan:
        row = _scenario(name, start, settings, delayed)
        out.append(row)
        if "error" in row:
            log(f"  latency {name}: ERROR {row['error'].splitlines()[0]}")
        else:
            lat = row["latency_ms"]
            log(
                f"  latency {name:<32} p50 {lat['p50']:.3f}  p99 {lat['p99']:.3f}  "
                f"p99.9 {lat['p99.9']:.3f}  max {lat['max']:.3f} ms  "
                f"({row['updates_per_s']:,.0f} updates/s)"
            )
    return out
