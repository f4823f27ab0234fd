"""Cost over a long run: CPU time per update and memory under a sustained flood.

One ``LazerClient`` (4 connections, ``recv_many``) reads the unlimited flood for a
minute, sampling its own RSS, thread count, CPU time and queue/cache sizes every second.
Memory is "flat" when the mean RSS of the last 10 s is within 5% (and at least 2 MiB)
of the mean of the 10 s after the warm-up: the dedup cache fills within seconds, so
anything still growing after that is a leak or an unbounded queue.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from common import BenchError, SimProcess, python_worker

Log = Callable[[str], None]


@dataclass(frozen=True)
class Settings:
    seconds: float = 60.0
    conns: int = 4
    delivery: str = "json"
    warmup: float = 10.0  # the dedup cache is full well before this
    window: float = 10.0
    ring: int = 200_000


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def analyse(samples: list[dict[str, Any]], warmup: float, window: float) -> dict[str, Any]:
    """Peak, warm and steady RSS, flatness, and CPU per 100k updates after the warm-up."""
    end = samples[-1]["t"]
    warm = [s for s in samples if warmup <= s["t"] < warmup + window]
    steady = [s for s in samples if s["t"] > end - window]
    if not warm or not steady:
        raise BenchError("memory run too short for its windows")
    warm_rss = _mean([s["rss_mb"] for s in warm])
    steady_rss = _mean([s["rss_mb"] for s in steady])
    allowance = max(2.0, 0.05 * warm_rss)
    first, last = warm[0], samples[-1]
    updates = last["delivered"] - first["delivered"]
    cpu = last["cpu_s"] - first["cpu_s"]
    seconds = last["t"] - first["t"]
    return {
        "duration_s": end,
        "rss_peak_mb": max(s["rss_mb"] for s in samples),
        "rss_warm_mb": warm_rss,
        "rss_steady_mb": steady_rss,
        "rss_growth_mb": steady_rss - warm_rss,
        "flat": steady_rss - warm_rss <= allowance,
        "threads_max": max(s["threads"] for s in samples),
        "threads_last": last["threads"],
        "dedup_cache_max": max(s["dedup_cache"] for s in samples),
        "queue_depth_max": max(s["queue_depth"] for s in samples),
        "inbound_depth_max": max(s["inbound_depth"] for s in samples),
        "unique_per_s": updates / seconds if seconds else None,
        "cpu_s_per_100k": cpu / updates * 1e5 if updates else None,
        "cpu_share": cpu / seconds if seconds else None,
    }


def run(settings: Settings, log: Log) -> dict[str, Any]:
    """The long run; returns the analysis and the per-second samples."""
    options = ("--flood", "--flood-ring", str(settings.ring))
    with SimProcess(*options, name="soak-simulator") as sim:
        args = [
            *("--url", sim.url, "--conns", str(settings.conns)),
            *("--delivery", settings.delivery, "--seconds", str(settings.seconds)),
        ]
        result = python_worker("workers", "soak", *args, name="soak").result(settings.seconds + 60)
    if "error" in result:
        raise BenchError(f"soak run failed: {result['error']}")
    samples = result["samples"]
    out = analyse(samples, settings.warmup, settings.window)
    log(
        f"  cost: {out['cpu_s_per_100k']:.2f} CPU s per 100k updates at "
        f"{out['unique_per_s']:,.0f} updates/s; RSS peak {out['rss_peak_mb']:.1f} MiB, "
        f"warm {out['rss_warm_mb']:.1f}, steady {out['rss_steady_mb']:.1f} "
        f"({'flat' if out['flat'] else 'GROWING'}), {out['threads_max']} threads"
    )
    return {
        "conns": settings.conns,
        "delivery": settings.delivery,
        "seconds": settings.seconds,
        **out,
        "samples": samples,
    }
