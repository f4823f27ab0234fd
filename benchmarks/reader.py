"""The connection threads alone against the flood, before and after a change, in one run.

``python benchmarks/reader.py [--before REV] [--repeats N] [--conns 1,4] [--delivery json]``

Against one flooding simulator, back to back in processes of their own, repeated N times
in turn (so load from other work on the machine falls on all of them alike):

* ``raw``: websocket-client's handshake, then a minimal frame counter (``workers.py
  raw``): the source check; a reader near it is limited by the flood, not by itself;
* ``bare``: a bare websocket-client ``recv()`` loop (``workers.py bare``): the reference
  the issue's ratios are taken against;
* ``before``: the package at git revision REV (default: the merge base of HEAD and
  ``main``), extracted to a temporary directory and put first on ``PYTHONPATH``;
* ``after``: the package in this working tree.

"before" and "after" run the package's own ``Connection`` threads (connect, subscribe,
read, hand batches to the inbound queue) with one thread draining that queue and
counting frames: the reader's whole share of the pipeline, without dedup or decoding.
Prints frames/s per connection (best of N, and the median) and the reader process's CPU
time per frame (all threads; least of N: the figure a flood-bound run cannot hide), and
the ratios of the best figures: after/before, each against the bare reader of the same
run, and against the source.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from common import PYTHON, ROOT, BenchError, Process, SimProcess, emit, python_worker
from throughput import _prime

KINDS = ("raw", "bare", "before", "after")


def run_connections(args: argparse.Namespace) -> dict[str, Any]:
    """The worker: ``Connection`` threads of whichever ``pylazer_sync`` is first on the
    path, counting the frames they hand to the inbound queue."""
    from common import client_subscription

    import pylazer_sync
    from pylazer_sync.config import ClientConfig
    from pylazer_sync.connection import Connection
    from pylazer_sync.protocol import SubscribeRequest
    from pylazer_sync.subscriptions import SubscriptionRegistry

    # ClientConfig.build() became ClientConfig(): either revision can be "before".
    make_config = getattr(ClientConfig, "build", ClientConfig)
    n = int(args.conns)  # one count in a worker
    config = make_config(token="bench", endpoints=[args.url], num_connections=n, timeout=10)
    registry = SubscriptionRegistry()
    registry.add(SubscribeRequest(**client_subscription(args.delivery)))
    inbound: queue.Queue[Any] = queue.Queue(maxsize=64 * n)  # as the client's
    stop = threading.Event()
    counts = [0] * n

    def drain() -> None:
        get = inbound.get
        while True:
            item = get()  # (index, frames) or (index, epoch, frames), as revisions had it
            counts[item[0]] += len(item[-1])

    threading.Thread(target=drain, name="drain", daemon=True).start()
    connections = [Connection(i, config, inbound, registry, lambda _: None, stop) for i in range(n)]
    for connection in connections:
        connection.start()
    deadline = time.monotonic() + 20
    while not all(counts):
        if time.monotonic() > deadline:
            raise RuntimeError(f"frames on {sum(map(bool, counts))} of {n} connections")
        time.sleep(0.05)
    time.sleep(args.warmup)
    c0, t0, p0 = list(counts), time.monotonic(), time.process_time()
    time.sleep(args.seconds)
    c1, t1, p1 = list(counts), time.monotonic(), time.process_time()
    stop.set()
    per_conn = [(b - a) / (t1 - t0) for a, b in zip(c0, c1, strict=True)]
    frames = sum(c1) - sum(c0)
    return {
        "package": str(Path(pylazer_sync.__file__).parent),
        "frames_per_conn": per_conn,
        "frames_per_conn_mean": sum(per_conn) / n,
        "cpu_s_per_100k_frames": (p1 - p0) / frames * 1e5 if frames else None,
        "disconnects": sum(c.disconnects for c in connections),
    }


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def _extract(rev: str, into: Path) -> str:
    """``pylazer_sync`` at ``rev`` under ``into``; returns the commit it resolved to."""
    commit = _git("rev-parse", "--short", rev)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", commit, "pylazer_sync"],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return commit


def _one(
    sim: SimProcess, kind: str, args: argparse.Namespace, conns: int, trees: dict[str, str]
) -> dict[str, Any]:
    common = [
        *("--url", sim.url, "--conns", str(conns), "--delivery", args.delivery),
        *("--warmup", str(args.warmup), "--seconds", str(args.seconds)),
    ]
    timeout = args.warmup + args.seconds + 40
    try:
        if kind in ("raw", "bare"):
            result = python_worker("workers", kind, *common, name=f"{kind}-{conns}").result(timeout)
        else:
            env = {"PYTHONPATH": trees[kind] + os.pathsep + os.environ.get("PYTHONPATH", "")}
            argv = [PYTHON, str(Path(__file__).resolve()), "--worker", *common]
            result = Process(argv, f"{kind}-{conns}", env=env).result(timeout)
    except BenchError as exc:
        result = {"error": str(exc)}
    if "error" in result:
        raise BenchError(f"{kind}, {conns} connections: {result['error']}")
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--before", help="git revision to compare with (default: the merge base with main)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--conns", default="1,4", help="connection counts, comma-separated")
    parser.add_argument("--delivery", choices=["json", "binary"], default="json")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        emit(run_connections(args))
        sys.stdout.flush()
        os._exit(0)  # connection threads block in the kernel: leave without joining

    before = args.before or _git("merge-base", "HEAD", "main")
    conn_counts = [int(n) for n in args.conns.split(",")]
    rates: dict[tuple[str, int], list[float]] = {}
    cpu: dict[tuple[str, int], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="reader-before-") as before_dir:
        commit = _extract(before, Path(before_dir))
        trees = {"before": before_dir, "after": str(ROOT)}
        print(
            f"before: {commit}; after: the working tree at {ROOT} ({_git('rev-parse', '--short', 'HEAD')}+)"
        )
        with SimProcess("--flood", "--flood-ring", "200000", name="flood-simulator") as sim:
            _prime(sim, args.delivery, 200_000, print)
            for repeat in range(args.repeats):
                for conns in conn_counts:
                    for kind in KINDS:
                        result = _one(sim, kind, args, conns, trees)
                        rate = result["frames_per_conn_mean"]
                        us = (result.get("cpu_s_per_100k_frames") or 0.0) * 10
                        rates.setdefault((kind, conns), []).append(rate)
                        cpu.setdefault((kind, conns), []).append(us)
                        print(
                            f"  run {repeat + 1}  {conns} conn  {kind:<6} {rate:>11,.0f} frames/s"
                            f" per conn  {us:5.2f} CPU us/frame  {result.get('package', '')}"
                        )
    summary = []
    print(
        f"\n{args.delivery}: frames/s per connection, best of {args.repeats} (median); "
        "CPU us per frame, least of the runs"
    )
    for conns in conn_counts:
        best = {kind: max(rates[kind, conns]) for kind in KINDS}
        median = {kind: statistics.median(rates[kind, conns]) for kind in KINDS}
        least_cpu = {kind: min(cpu[kind, conns]) for kind in KINDS}
        row = {
            "conns": conns,
            "best": best,
            "median": median,
            "cpu_us_per_frame": least_cpu,
            "after_vs_before": best["after"] / best["before"],
            "before_vs_bare": best["before"] / best["bare"],
            "after_vs_bare": best["after"] / best["bare"],
            "after_vs_raw": best["after"] / best["raw"],
            "cpu_before_vs_after": least_cpu["before"] / least_cpu["after"],
        }
        summary.append(row)
        figures = "  ".join(
            f"{kind} {best[kind]:,.0f} ({median[kind]:,.0f}) {least_cpu[kind]:.2f} us"
            for kind in KINDS
        )
        print(f"  {conns} conn: {figures}")
        print(
            f"          after/before {row['after_vs_before']:.2f}  "
            f"before/bare {row['before_vs_bare']:.2f}  after/bare {row['after_vs_bare']:.2f}  "
            f"after/raw source {row['after_vs_raw']:.2f}  "
            f"CPU per frame before/after {row['cpu_before_vs_after']:.2f}"
        )
    print(json.dumps({"before": commit, "delivery": args.delivery, "summary": summary}))


if __name__ == "__main__":
    main()
