"""The relay through Redis: memory per million updates, throughput, latency added.

``python benchmarks/relay.py [--quick] [--redis-url URL] [--only memory,throughput,latency]``
prints the figures and writes ``benchmarks/results/relay.json`` (``--quick``:
``results/quick/relay.json``); ``run(settings, log)`` is the section for ``run.py``.
Needs a Redis 7 (default ``redis://127.0.0.1:6379/0``); every stream it writes has a name
of its own and is deleted at the end, seen-keys included.

- **memory**: real frames of three subscription shapes (the benchmark stream in JSON and
  binary, and a signed 3-feed JSON stream) appended through the relay's own append
  script, one million each (``--quick``: 100,000); Redis's ``MEMORY USAGE`` of the
  stream, per million updates. A seen-key's cost is measured apart (``used_memory``
  before and after 100,000 of them), and so is the append rate of the script alone.
- **throughput**: a simulator floods (unlimited); a relay process with 1 or 4
  connections appends into Redis; appended updates/s over the measured seconds, beside
  a direct ``LazerClient`` (``recv_many``) on the same flood. Then a consumer process
  reads the stream back from its start: entries/s read and decoded.
- **latency**: a simulator sends 1,000 updates/s, each stamped with the wall-clock time
  it is written (``--flood-stamp send``); a relay (4 connections) appends them; 1 or 10
  consumer processes take ``time.time()`` as ``recv()`` returns each update. Beside
  them, a direct client (4 connections) measures the same way, at the same time: the
  difference is what the relay adds (through Redis on loopback).

Workers (``python benchmarks/relay.py worker relay|consumer ...``) are this file too.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from typing import Any

from common import (
    RESULTS_DIR,
    BenchError,
    Process,
    SimProcess,
    client_subscription,
    emit,
    percentiles,
    python_worker,
)

Log = Callable[[str], None]
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
# Under the unlimited flood the stream would grow by tens of thousands of entries a
# second: a bounded stream and short-lived seen-keys keep the shared Redis small.
FLOOD_MAX_LEN = 100_000
FLOOD_SEEN_TTL = 10.0


@dataclass(frozen=True)
class Settings:
    redis_url: str = DEFAULT_REDIS_URL
    memory_updates: int = 1_000_000
    seen_key_sample: int = 100_000
    throughput_conns: tuple[int, ...] = (1, 4)
    throughput_warmup: float = 2.0
    throughput_seconds: float = 5.0
    consumer_seconds: float = 3.0
    latency_rate_hz: float = 1000.0
    latency_conns: int = 4
    latency_consumers: tuple[int, ...] = (1, 10)
    latency_warmup: float = 1.0
    latency_seconds: float = 10.0


QUICK = Settings(
    memory_updates=100_000,
    seen_key_sample=20_000,
    throughput_conns=(4,),
    throughput_warmup=1.0,
    throughput_seconds=2.0,
    consumer_seconds=1.0,
    latency_warmup=0.5,
    latency_seconds=3.0,
)


def _stream_name(label: str) -> str:
    return f"pylazer:bench:{label}:{uuid.uuid4().hex[:8]}"


def _store(url: str, stream: str) -> Any:
    from pylazer_sync.relay._redis import RedisStore

    return RedisStore(url, stream)


# -- memory ---------------------------------------------------------------------------


SHAPES: dict[str, dict[str, Any]] = {
    "json, 1 feed, 5 properties (the benchmark stream)": client_subscription("json"),
    "binary, 1 feed, leUnsigned": client_subscription("binary"),
    "json, 3 feeds, 6 properties, solana + evm signed": {
        "price_feed_ids": [1, 2, 6],
        "properties": [
            "price", "bestBidPrice", "bestAskPrice", "exponent", "confidence", "publisherCount",
        ],
        "formats": ["solana", "evm"],
        "channel": "fixed_rate@200ms",
        "subscription_id": 1,
    },
}  # fmt: skip
_DISTINCT_FRAMES = 2000  # real frames per shape, reused (each entry gets its own digest)


def _frames(fields: dict[str, Any], count: int) -> list[tuple[bytes, bool]]:
    """``count`` real frames of a subscription shape, as the simulator encodes them."""
    from pylazer_sync.protocol import Signer, SubscribeRequest
    from pylazer_sync.simulator.market import Catalogue, MarketModel
    from pylazer_sync.simulator.updates import UpdateEncoder, now_us, resolve

    catalogue = Catalogue.default()
    encoder = UpdateEncoder(MarketModel(catalogue, 1), Signer.from_seed(1))
    shape = resolve(SubscribeRequest(**fields), catalogue).shape
    assert shape is not None
    start = now_us() // 1000 * 1000
    out = []
    for i in range(count):
        frame = encoder.frame(shape, start + i * 1000)
        assert frame is not None
        out.append((frame.encode(), True) if isinstance(frame, str) else (frame, False))
    return out


def _entries(frames: list[tuple[bytes, bool]], count: int, offset: int) -> Iterator[Any]:
    from pylazer_sync.relay.entries import OutgoingEntry

    t0 = 1_700_000_000_000_000
    for i in range(offset, offset + count):
        frame, is_text = frames[i % len(frames)]
        yield OutgoingEntry(f"{i:032x}", frame, is_text, t0 + i * 1000, 1)


def _append_all(store: Any, entries: Iterator[Any], seen_ttl: float, batch: int = 500) -> float:
    """Append everything through the relay's script; returns the seconds it took."""
    from pylazer_sync.relay.store import Retention

    retention = Retention(max_len=None)
    pending: list[Any] = []
    start = time.perf_counter()
    for e in entries:
        pending.append(e)
        if len(pending) == batch:
            store.append(pending, seen_ttl, retention)
            pending = []
    if pending:
        store.append(pending, seen_ttl, retention)
    return time.perf_counter() - start


def run_memory(settings: Settings, log: Log) -> dict[str, Any]:
    import redis

    r = redis.Redis.from_url(settings.redis_url)
    n = settings.memory_updates
    rows = []
    for label, fields in SHAPES.items():
        frames = _frames(fields, _DISTINCT_FRAMES)
        mean_frame = sum(len(f) for f, _ in frames) / len(frames)
        stream = _stream_name("memory")
        store = _store(settings.redis_url, stream)
        try:
            store.check(writing=True)
            # Seen-keys for 1 ms only: this measures the stream; they are measured below.
            seconds = _append_all(store, _entries(frames, n, 0), seen_ttl=0.001)
            stream_bytes = store.memory_usage()
            length = int(r.xlen(stream))
        finally:
            store.delete()
            store.close()
        row = {
            "shape": label,
            "updates": length,
            "frame_bytes_mean": round(mean_frame, 1),
            "stream_bytes": stream_bytes,
            "mb_per_million": stream_bytes / length * 1e6 / 2**20,
            "bytes_per_update": stream_bytes / length,
            "overhead_bytes_per_update": stream_bytes / length - mean_frame,
            "script_appends_per_s": length / seconds,
        }
        rows.append(row)
        log(
            f"  memory {label:<50} {row['mb_per_million']:7.1f} MiB per million "
            f"({row['bytes_per_update']:.0f} B/update, frame {mean_frame:.0f} B); "
            f"script {row['script_appends_per_s']:,.0f} appends/s"
        )
    # Seen-keys: used_memory before and after appending a sample with a long TTL, less
    # the stream itself.
    stream = _stream_name("seen")
    store = _store(settings.redis_url, stream)
    frames = _frames(client_subscription("binary"), 200)
    try:
        store.check(writing=True)
        before = int(r.info("memory")["used_memory"])
        _append_all(store, _entries(frames, settings.seen_key_sample, 0), seen_ttl=600.0)
        after = int(r.info("memory")["used_memory"])
        stream_bytes = store.memory_usage()
    finally:
        store.delete()
        store.close()
    per_key = (after - before - stream_bytes) / settings.seen_key_sample
    seen = {
        "sample": settings.seen_key_sample,
        "bytes_per_seen_key": per_key,
        "mb_at_1000_per_s_120_s": per_key * 1000 * 120 / 2**20,
    }
    log(
        f"  memory seen-keys: {per_key:.0f} B each; at 1,000 updates/s and seen_ttl 120 s "
        f"(120,000 keys): {seen['mb_at_1000_per_s_120_s']:.1f} MiB"
    )
    return {"streams": rows, "seen_keys": seen}


# -- workers --------------------------------------------------------------------------


def _go(process_name: str) -> None:
    print("ready", flush=True)
    line = sys.stdin.readline()  # the parent always answers or kills us
    if line.strip() != "go":
        raise RuntimeError(f"{process_name}: expected 'go', got {line!r}")


def worker_relay(args: argparse.Namespace) -> dict[str, Any]:
    """A relay on the simulator. ``throughput``: measure appended/s; ``latency``: run
    until "stop" on stdin. Either way, its stats at the end."""
    from pylazer_sync.relay import Relay

    relay = Relay(
        token="bench",
        endpoints=[args.url],
        num_connections=args.conns,
        timeout=10,
        redis_url=args.redis_url,
        stream=args.stream,
        max_len=FLOOD_MAX_LEN,
        seen_ttl=FLOOD_SEEN_TTL,
    )
    relay.subscribe(**client_subscription(args.delivery))
    relay.start()
    if not relay.client.wait_connected(args.conns, timeout=20):
        raise RuntimeError("not every connection opened")
    out: dict[str, Any] = {}
    if args.mode == "throughput":
        print("ready", flush=True)
        time.sleep(args.warmup)  # the measurement is over time: these sleeps are its window
        a, cpu_a, t_a = relay.stats(), time.process_time(), time.monotonic()
        time.sleep(args.seconds)
        b, cpu_b, t_b = relay.stats(), time.process_time(), time.monotonic()
        dt = t_b - t_a
        appended = b["appended"] - a["appended"]
        out = {
            "appended_per_s": appended / dt,
            "taken_per_s": (b["updates"] - a["updates"]) / dt,
            "client_unique_per_s": (b["client"]["unique"] - a["client"]["unique"]) / dt,
            "dropped": b["dropped"] - a["dropped"],
            "backlog_end": b["backlog"],
            "cpu_s_per_100k": (cpu_b - cpu_a) / appended * 1e5 if appended else None,
        }
    else:
        print("ready", flush=True)
        line = sys.stdin.readline()
        if line.strip() != "stop":
            raise RuntimeError(f"expected 'stop', got {line!r}")
    relay.close()
    stats = relay.stats()
    out["relay"] = {k: v for k, v in stats.items() if k != "client"}
    return out


def worker_consumer(args: argparse.Namespace) -> dict[str, Any]:
    """``latency``: after "go", each update's age at ``recv()``; ``read``: entries/s read
    from the start of the stream."""
    from pylazer_sync import StreamUpdate
    from pylazer_sync.relay import RelayConsumer

    start = "0" if args.mode == "read" else "$"
    consumer = RelayConsumer(args.redis_url, args.stream, start=start).start()
    if args.mode == "read":
        t0, cpu0, n = time.monotonic(), time.process_time(), 0
        end = t0 + args.seconds
        while time.monotonic() < end:
            batch = consumer.recv_many(1000, timeout=2.0)
            if not batch:
                break
            n += len(batch)
        dt = time.monotonic() - t0
        result = {
            "read_per_s": n / dt,
            "cpu_s_per_100k": (time.process_time() - cpu0) / n * 1e5 if n else None,
        }
        consumer.close()
        return result
    _go("consumer")
    recv, now = consumer.recv, time.time
    end = time.monotonic() + args.warmup
    while time.monotonic() < end:
        recv(5.0)
    samples: list[float] = []
    t_start = time.monotonic()
    end = t_start + args.seconds
    while time.monotonic() < end:
        msg = recv(5.0)
        t = now()
        if type(msg) is StreamUpdate and msg.timestamp_us is not None:
            samples.append((t * 1e6 - msg.timestamp_us) / 1000.0)
    stats = consumer.stats()
    consumer.close()
    return {
        "latency_ms": percentiles(samples),
        "samples_ms": [round(s, 4) for s in samples],
        "updates_per_s": len(samples) / (time.monotonic() - t_start),
        "missed": stats["missed"],
    }


# -- throughput -------------------------------------------------------------------------


def _relay_worker(url: str, settings: Settings, stream: str, conns: int, mode: str) -> Process:
    args = [
        *("worker", "relay", "--mode", mode, "--url", url, "--conns", str(conns)),
        *("--redis-url", settings.redis_url, "--stream", stream, "--delivery", "json"),
        *("--warmup", str(settings.throughput_warmup)),
        *("--seconds", str(settings.throughput_seconds)),
    ]
    return python_worker("relay", *args, name=f"relay-{mode}-{conns}")


def run_throughput(settings: Settings, log: Log) -> list[dict[str, Any]]:
    rows = []
    with SimProcess("--flood", name="relay-flood-simulator") as sim:
        for conns in settings.throughput_conns:
            stream = _stream_name("throughput")
            row: dict[str, Any] = {"conns": conns, "delivery": "json"}
            try:
                relay = _relay_worker(sim.url, settings, stream, conns, "throughput")
                with relay:
                    row.update(relay.result(settings.throughput_seconds * 3 + 90))
                reader_args = [
                    *("worker", "consumer", "--mode", "read", "--stream", stream),
                    *("--redis-url", settings.redis_url),
                    *("--seconds", str(settings.consumer_seconds)),
                ]
                with python_worker("relay", *reader_args, name="relay-reader") as reader:
                    row["consumer_read"] = reader.result(settings.consumer_seconds + 60)
                direct_args = [
                    *("recv_many", "--url", sim.url, "--conns", str(conns), "--delivery", "json"),
                    *("--warmup", str(settings.throughput_warmup)),
                    *("--seconds", str(settings.throughput_seconds)),
                ]
                with python_worker("workers", *direct_args, name="direct") as direct:
                    row["direct"] = direct.result(settings.throughput_seconds * 3 + 90)
            except BenchError as exc:
                row["error"] = str(exc)
            finally:
                store = _store(settings.redis_url, stream)
                store.delete()
                store.close()
            rows.append(row)
            if "error" in row or "error" in row.get("direct", {}):
                log(f"  relay throughput, {conns} conns: ERROR {row.get('error') or row['direct']}")
                continue
            log(
                f"  relay throughput, {conns} conn(s): {row['appended_per_s']:,.0f} appended/s "
                f"into Redis (client {row['client_unique_per_s']:,.0f}/s, dropped "
                f"{row['dropped']:,}); direct client {row['direct']['unique_per_s']:,.0f}/s; "
                f"a consumer reads {row['consumer_read'].get('read_per_s', 0):,.0f} entries/s"
            )
    return rows


# -- latency ----------------------------------------------------------------------------


def run_latency(settings: Settings, log: Log) -> list[dict[str, Any]]:
    rows = []
    for n in settings.latency_consumers:
        stream = _stream_name("latency")
        options = ("--flood-rate", str(settings.latency_rate_hz), "--flood-stamp", "send")
        row: dict[str, Any] = {
            "consumers": n,
            "rate_hz": settings.latency_rate_hz,
            "conns": settings.latency_conns,
        }
        workers: list[Process] = []
        try:
            with SimProcess(*options, name=f"relay-latency-simulator-{n}") as sim:
                relay = _relay_worker(sim.url, settings, stream, settings.latency_conns, "latency")
                workers.append(relay)
                relay.expect("ready", 60.0)
                timing = [
                    *("--warmup", str(settings.latency_warmup)),
                    *("--seconds", str(settings.latency_seconds)),
                ]
                consumers = [
                    python_worker(
                        "relay", "worker", "consumer", "--mode", "latency",
                        "--redis-url", settings.redis_url, "--stream", stream, *timing,
                        name=f"consumer-{i}",
                    )
                    for i in range(n)
                ]  # fmt: skip
                workers.extend(consumers)
                direct = python_worker(
                    "workers", "latency", "--url", sim.url, "--conns", str(settings.latency_conns),
                    "--delivery", "json", *timing, name="direct-latency",
                )  # fmt: skip
                workers.append(direct)
                for w in [*consumers, direct]:
                    w.expect("ready", 60.0)
                for w in [*consumers, direct]:
                    w.send("go")
                wait = settings.latency_warmup + settings.latency_seconds + 60
                results = [c.result(wait) for c in consumers]
                row["direct"] = _latency_summary([direct.result(wait)])
                relay.send("stop")
                row["relay"] = relay.result(30.0).get("relay", {})
            row.update(_latency_summary(results))
        except BenchError as exc:
            row["error"] = str(exc)
        finally:
            for w in workers:
                w.kill()
            store = _store(settings.redis_url, stream)
            store.delete()
            store.close()
        rows.append(row)
        if "error" in row:
            log(f"  relay latency, {n} consumer(s): ERROR {row['error'].splitlines()[0]}")
            continue
        lat, direct_lat = row["latency_ms"], row["direct"]["latency_ms"]
        log(
            f"  relay latency, {n:>2} consumer(s): p50 {lat['p50']:.3f}  p99 {lat['p99']:.3f}  "
            f"max {lat['max']:.3f} ms (worst consumer's p99 {row['worst_p99_ms']:.3f}); "
            f"direct client beside: p50 {direct_lat['p50']:.3f}  p99 {direct_lat['p99']:.3f} ms"
        )
    return rows


def _latency_summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    errors = [r["error"] for r in results if "error" in r]
    if errors:
        raise BenchError("; ".join(errors))
    pooled = [s for r in results for s in r["samples_ms"]]
    return {
        "latency_ms": percentiles(pooled),
        "worst_p99_ms": max(r["latency_ms"]["p99"] for r in results),
        "updates_per_s_each": [round(r["updates_per_s"], 1) for r in results],
        "missed": sum(r.get("missed", 0) for r in results),
    }


# -- the section -------------------------------------------------------------------------

SECTIONS = ("memory", "throughput", "latency")


def run(settings: Settings, log: Log, only: tuple[str, ...] = SECTIONS) -> dict[str, Any]:
    """Every relay figure (the ``relay`` section of ``run.py``); a failing part is
    reported in place and the others still run."""
    out: dict[str, Any] = {"settings": asdict(settings)}
    parts: dict[str, Callable[[Settings, Log], Any]] = {
        "memory": run_memory,
        "throughput": run_throughput,
        "latency": run_latency,
    }
    for name in only:
        log(f"relay: {name}")
        try:
            out[name] = parts[name](settings, log)
        except Exception as exc:  # one part failing must not lose the others
            out[name] = {"error": f"{type(exc).__name__}: {exc}"}
            log(f"  relay {name}: ERROR {exc}")
    return out


def _worker_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description="a relay benchmark worker")
    parser.add_argument("role", choices=["relay", "consumer"])
    parser.add_argument("--mode", choices=["throughput", "latency", "read"], required=True)
    parser.add_argument("--url", default="")
    parser.add_argument("--conns", type=int, default=1)
    parser.add_argument("--delivery", choices=["json", "binary"], default="json")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument("--stream", required=True)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args(argv)
    try:
        result = worker_relay(args) if args.role == "relay" else worker_consumer(args)
    except Exception as exc:
        result = {"error": f"{type(exc).__name__}: {exc}"}
    emit({"role": args.role, "mode": args.mode, **result})


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["worker"]:
        _worker_main(argv[1:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated parts")
    args = parser.parse_args(argv)
    settings = replace(QUICK if args.quick else Settings(), redis_url=args.redis_url)
    only = tuple(p for p in args.only.split(",") if p)
    unknown = set(only) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")

    def log(text: str) -> None:
        print(text, flush=True)

    results = run(settings, log, only)
    target = RESULTS_DIR / ("quick" if args.quick else "") / "relay.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    slim = json.loads(json.dumps(results))
    for row in slim.get("latency", []) if isinstance(slim.get("latency"), list) else []:
        row.pop("samples_ms", None)
    target.write_text(json.dumps(slim, indent=2) + "\n")
    log(f"results: {target}")
    failed = any(
        isinstance(v, dict) and "error" in v for k, v in results.items() if k != "settings"
    )
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
