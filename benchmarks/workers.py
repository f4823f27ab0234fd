"""The readers under test, one per process: ``python benchmarks/workers.py KIND --url ...``.

Kinds:

* ``bytes``: the source alone: websocket-client's handshake, then a loop that only
  counts the bytes the socket gives (frames/s = bytes/s over the mean frame size of the
  first read): what the flood delivers when nothing is done with it.
* ``raw``: websocket-client's handshake, then a minimal frame parser over the raw
  socket (no websocket-client frame parsing at all): only checks that the simulator's
  flood is far faster than anything measured against it.
* ``minimal``: a throwaway pipeline of the client's shape, the ceiling of what Python
  does here: one thread per connection doing 256 KiB reads and splitting frames with a
  tight loop, batches into a bounded ``queue.Queue``, one dedup thread with a plain
  ``dict`` (no TTL, no size bound) and ``json.loads`` (binary: the header only).
* ``bare``: the ceiling the issue names: ``websocket-client`` with its default
  ``ws.recv()``, ``skip_utf8_validation=True``, one thread per connection, counting
  frames (no dedup, no decoding).
* ``buffered``: the same with a read-buffering socket under websocket-client (the
  design of ``pylazer_sync.transport`` before it changed, kept here so the ceiling does
  not move with the client's code): a stricter ceiling.
* ``transport``: the same with the client's own current ``pylazer_sync.transport``
  (skipped with a note if its interface changed): what the client's readers could do
  without dedup, decoding and queues.
* ``recv_many`` / ``recv``: ``LazerClient`` with N connections, a reader calling
  ``recv_many(1000)`` or ``recv()``; counts delivered messages (unique updates).
* ``latency``: ``LazerClient`` at a paced rate; after "go" on stdin, the time from each
  update's timestamp to ``recv()`` returning it (``time.time()``, the simulator's clock).
* ``soak``: ``LazerClient`` under the flood for a long run, sampling RSS, threads, CPU
  time and queue/cache sizes every second.

Each prints one JSON object as its last line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import websocket
from common import client_subscription, emit, percentiles, wire_subscription

_READ_SIZE = 256 * 1024


class BufferedSocket:
    """Serve websocket-client's small reads (2-byte header, length, payload: three
    ``recv`` calls per frame, each releasing the GIL) from one large kernel read."""

    __slots__ = ("_buf", "_pos", "_sock")

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._buf = b""
        self._pos = 0

    def recv(self, n: int) -> bytes:
        buf: bytes = self._buf
        pos = self._pos
        avail = len(buf) - pos
        if avail <= 0:
            buf = self._sock.recv(_READ_SIZE)
            if not buf:
                return buf
            pos, avail = 0, len(buf)
            self._buf = buf
        if n >= avail:
            self._buf, self._pos = b"", 0
            return buf[pos:] if pos else buf
        self._pos = pos + n
        return buf[pos : pos + n]

    # Called by websocket-client on every read: kept off the slow __getattr__ path.
    def gettimeout(self) -> float | None:
        return self._sock.gettimeout()  # type: ignore[no-any-return]

    def settimeout(self, timeout: float | None) -> None:
        self._sock.settimeout(timeout)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def _connect(url: str, delivery: str) -> websocket.WebSocket:
    ws = websocket.create_connection(url, skip_utf8_validation=True, timeout=10)
    ws.send(json.dumps(wire_subscription(delivery)))
    return ws


def _count_frames(buf: bytes, pos: int) -> tuple[int, int]:
    """Whole frames in ``buf`` from ``pos`` (unmasked server frames); returns (count, end)."""
    n, size = 0, len(buf)
    while pos + 2 <= size:
        length = buf[pos + 1] & 0x7F
        head = 2
        if length == 126:
            if pos + 4 > size:
                break
            length, head = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
        elif length == 127:
            if pos + 10 > size:
                break
            length, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
        end = pos + head + length
        if end > size:
            break
        pos = end
        n += 1
    return n, pos


def _reader_loop(kind: str, ws: websocket.WebSocket, counts: list[int], i: int) -> None:
    """Read frames forever, publishing the count every 256 frames."""
    c = 0
    sock: Any = ws.sock
    if kind == "bytes":  # counts bytes, not frames (see run_source)
        recv = sock.recv
        while True:
            data = recv(_READ_SIZE)
            if not data:
                return
            c += len(data)
            counts[i] = c
    if kind == "raw":
        rest = b""
        while True:
            data = sock.recv(_READ_SIZE)
            if not data:
                return
            buf = rest + data if rest else data
            n, end = _count_frames(buf, 0)
            rest = buf[end:]
            c += n
            counts[i] = c
    if kind == "buffered":
        ws.sock = BufferedSocket(sock)  # type: ignore[assignment]  # duck-typed, on purpose
    elif kind == "transport":
        from pylazer_sync import transport

        # The client's transport as it is now (its interface may change under us): whole
        # batches of frames, as the connection thread reads them.
        read_batch = transport.FrameReader(ws, 1 << 20, 128).read_batch
        while True:
            c += len(read_batch().frames)
            counts[i] = c
    recv = ws.recv
    while True:
        recv()
        c += 1
        if not c & 255:
            counts[i] = c


def run_bare(args: argparse.Namespace) -> dict[str, Any]:
    counts = [0] * args.conns
    ready = threading.Barrier(args.conns + 1, timeout=20)
    errors: list[str] = []

    def thread(i: int) -> None:
        try:
            ws = _connect(args.url, args.delivery)
            ready.wait()
            _reader_loop(args.kind, ws, counts, i)
        except Exception as exc:  # reported in the result; the count stops
            errors.append(f"connection {i}: {type(exc).__name__}: {exc}")
            ready.abort()

    for i in range(args.conns):
        threading.Thread(target=thread, args=(i,), daemon=True).start()
    ready.wait()
    time.sleep(args.warmup)
    c0, t0, p0 = list(counts), time.monotonic(), time.process_time()
    time.sleep(args.seconds)
    c1, t1, p1 = list(counts), time.monotonic(), time.process_time()
    dt = t1 - t0
    per_conn = [(b - a) / dt for a, b in zip(c0, c1, strict=True)]
    frames = sum(c1) - sum(c0)
    return {
        "frames_per_conn": per_conn,
        "frames_per_s": sum(per_conn),
        "frames_per_conn_mean": sum(per_conn) / args.conns,
        "cpu_s": p1 - p0,
        "cpu_s_per_100k_frames": (p1 - p0) / frames * 1e5 if frames else None,
        "errors": errors,
    }


def run_source(args: argparse.Namespace) -> dict[str, Any]:
    """The source alone (``bytes``): bytes/s per connection, and frames/s at the mean
    frame size of one read."""
    ws = _connect(args.url, args.delivery)
    sample = ws.sock.recv(_READ_SIZE)
    n, end = _count_frames(sample, 0)
    ws.close()
    result = run_bare(args)
    mean_frame = end / n if n else 1.0
    bytes_per_conn = result["frames_per_conn"]
    frames = [b / mean_frame for b in bytes_per_conn]
    return {
        **result,
        "bytes_per_conn": bytes_per_conn,
        "mean_frame_bytes": mean_frame,
        "frames_per_conn": frames,
        "frames_per_s": sum(frames),
        "frames_per_conn_mean": sum(frames) / args.conns,
        "cpu_s_per_100k_frames": None,
    }


def _split_frames(buf: bytes, pos: int, out: list[tuple[bool, bytes]]) -> int:
    """The minimal pipeline's splitter: whole unmasked frames of up to 64 KiB."""
    size = len(buf)
    while pos + 2 <= size:
        b1 = buf[pos + 1]
        length = b1 & 0x7F
        head = 2
        if length == 126:
            if pos + 4 > size:
                break
            length = (buf[pos + 2] << 8) | buf[pos + 3]
            head = 4
        end = pos + head + length
        if end > size:
            break
        out.append((buf[pos] & 0x0F == 1, buf[pos + head : end]))
        pos = end
    return pos


def run_minimal(args: argparse.Namespace) -> dict[str, Any]:
    """The ceiling pipeline (``minimal``): readers -> queue.Queue -> a dict and json.loads."""
    import queue
    import struct

    inbound: queue.Queue[list[tuple[bool, bytes]]] = queue.Queue(maxsize=64 * args.conns)
    unique = [0]
    frames_seen = [0]
    ready = threading.Barrier(args.conns + 1, timeout=20)
    errors: list[str] = []

    def reader(i: int) -> None:
        try:
            ws = _connect(args.url, args.delivery)
            sock = ws.sock
            ready.wait()
            rest = b""
            put = inbound.put
            while True:
                data = sock.recv(_READ_SIZE)
                if not data:
                    return
                buf = rest + data if rest else data
                batch: list[tuple[bool, bytes]] = []
                end = _split_frames(buf, 0, batch)
                rest = buf[end:]
                for start in range(0, len(batch), 128):
                    put(batch[start : start + 128])
        except Exception as exc:
            errors.append(f"connection {i}: {type(exc).__name__}: {exc}")
            ready.abort()

    def dedup() -> None:
        seen: dict[int, bool] = {}
        loads, header = json.loads, struct.Struct(">Q").unpack_from
        get = inbound.get
        while True:
            batch = get()
            frames_seen[0] += len(batch)
            for is_text, data in batch:
                key = hash(data)
                if key in seen:
                    continue
                seen[key] = True
                if is_text:
                    loads(data)
                else:
                    header(data, 4)
                unique[0] += 1

    for i in range(args.conns):
        threading.Thread(target=reader, args=(i,), daemon=True).start()
    threading.Thread(target=dedup, daemon=True).start()
    ready.wait()
    time.sleep(args.warmup)
    u0, f0, t0, p0 = unique[0], frames_seen[0], time.monotonic(), time.process_time()
    time.sleep(args.seconds)
    u1, f1, t1, p1 = unique[0], frames_seen[0], time.monotonic(), time.process_time()
    dt, n = t1 - t0, u1 - u0
    return {
        "unique_per_s": n / dt,
        "frames_per_s": (f1 - f0) / dt,
        "frames_per_unique": (f1 - f0) / n if n else None,
        "cpu_s": p1 - p0,
        "cpu_s_per_100k": (p1 - p0) / n * 1e5 if n else None,
        "errors": errors,
    }


def _client(args: argparse.Namespace, **kwargs: Any) -> Any:
    from pylazer_sync import LazerClient

    client = LazerClient(
        token="bench", endpoints=[args.url], num_connections=args.conns, timeout=10, **kwargs
    )
    client.subscribe(**client_subscription(args.delivery))
    client.start(timeout=20)
    if not client.wait_connected(args.conns, timeout=20):
        raise RuntimeError(f"only {client.stats()['open_connections']} connections opened")
    return client


def _snapshot(client: Any, delivered: int) -> dict[str, Any]:
    stats = client.stats()
    return {
        "t": time.monotonic(),
        "cpu": time.process_time(),
        "delivered": delivered,
        "frames": stats["frames"],
        "unique": stats["unique"],
        "duplicates": stats["duplicates"],
        "conn_frames": [c["frames"] for c in stats["connections"]],
    }


def _warm_up(client: Any, args: argparse.Namespace) -> tuple[int, float]:
    """Read for at least ``--warmup`` seconds and until the dedup cache is full (its
    steady state: every new frame then evicts one), at most ``--warmup-max`` seconds.
    Returns the messages read and the seconds it took."""
    start = time.monotonic()
    full = client.config.dedup_size
    delivered = 0
    check = start
    while True:
        delivered += len(client.recv_many(1000, 2.0))
        now = time.monotonic()
        if now >= check:
            check = now + 0.1
            elapsed = now - start
            if elapsed >= args.warmup_max or (
                elapsed >= args.warmup and client.stats()["dedup_cache_size"] >= full
            ):
                return delivered, elapsed


def run_client(args: argparse.Namespace) -> dict[str, Any]:
    from pylazer_sync import StreamUpdate

    client = _client(args)
    _, warmup_s = _warm_up(client, args)
    delivered = 0
    last: Any = None
    first = _snapshot(client, delivered)
    end = first["t"] + args.seconds
    if args.kind == "recv_many":
        recv_many = client.recv_many
        while True:
            batch = recv_many(1000, 2.0)
            if not batch:
                raise RuntimeError("no message for 2 s")
            delivered += len(batch)
            if time.monotonic() >= end:
                last = batch[-1]
                break
    else:
        recv = client.recv
        while True:
            for _ in range(256):
                last = recv(2.0)
            delivered += 256
            if time.monotonic() >= end:
                break
    a, b = first, _snapshot(client, delivered)
    dt = b["t"] - a["t"]
    unique = b["delivered"] - a["delivered"]
    frames = b["frames"] - a["frames"]
    result = {
        "unique_per_s": unique / dt,
        "frames_per_s": frames / dt,
        "frames_per_conn": [
            (y - x) / dt for x, y in zip(a["conn_frames"], b["conn_frames"], strict=True)
        ],
        "frames_per_unique": frames / unique if unique else None,
        "cpu_s": b["cpu"] - a["cpu"],
        "cpu_s_per_100k": (b["cpu"] - a["cpu"]) / unique * 1e5 if unique else None,
        "warmup_s": warmup_s,
        "decoded_ok": isinstance(last, StreamUpdate) and last.timestamp_us is not None,
    }
    client.close()
    return result


def _wait_for_go(timeout: float = 60.0) -> None:
    print("ready", flush=True)
    line = sys.stdin.readline()  # the parent always answers or kills us
    if line.strip() != "go":
        raise RuntimeError(f"expected 'go', got {line!r}")


def run_latency(args: argparse.Namespace) -> dict[str, Any]:
    from pylazer_sync import StreamUpdate

    client = _client(args)
    _wait_for_go()
    recv, now = client.recv, time.time
    end = time.monotonic() + args.warmup
    while time.monotonic() < end:
        recv(2.0)
    samples: list[float] = []
    seen: set[int] = set()
    repeats = 0
    t_start = time.monotonic()
    end = t_start + args.seconds
    while True:
        msg = recv(2.0)
        t = now()
        if type(msg) is StreamUpdate:
            ts = msg.timestamp_us
            assert ts is not None
            samples.append((t * 1e6 - ts) / 1000.0)
            if ts in seen:
                repeats += 1
            seen.add(ts)
        if time.monotonic() >= end:
            break
    elapsed = time.monotonic() - t_start
    stats = client.stats()
    client.close()
    return {
        "latency_ms": percentiles(samples),
        "samples_ms": [round(s, 4) for s in samples],
        "updates_per_s": len(samples) / elapsed,
        "repeated_timestamps": repeats,
        "frames_per_unique": stats["frames"] / stats["unique"] if stats["unique"] else None,
    }


def run_soak(args: argparse.Namespace) -> dict[str, Any]:
    import psutil

    proc = psutil.Process()
    client = _client(args)
    recv_many = client.recv_many
    delivered = 0
    samples: list[dict[str, Any]] = []
    start = time.monotonic()
    next_sample = start
    end = start + args.seconds
    while True:
        now = time.monotonic()
        if now >= next_sample:
            stats = client.stats()
            samples.append(
                {
                    "t": round(now - start, 3),
                    "rss_mb": proc.memory_info().rss / 2**20,
                    "threads": proc.num_threads(),
                    "cpu_s": time.process_time(),
                    "delivered": delivered,
                    "dedup_cache": stats["dedup_cache_size"],
                    "queue_depth": stats["queue_depth"],
                    "inbound_depth": stats["inbound_depth"],
                }
            )
            next_sample += 1.0
            if now >= end:
                break
        batch = recv_many(1000, 2.0)
        if not batch:
            raise RuntimeError("no message for 2 s")
        delivered += len(batch)
    client.close()
    return {"samples": samples}


RUNNERS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "bytes": run_source,
    "minimal": run_minimal,
    "raw": run_bare,
    "bare": run_bare,
    "buffered": run_bare,
    "transport": run_bare,
    "recv_many": run_client,
    "recv": run_client,
    "latency": run_latency,
    "soak": run_soak,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="one benchmark reader (see the docstring)")
    parser.add_argument("kind", choices=sorted(RUNNERS))
    parser.add_argument("--url", required=True)
    parser.add_argument("--conns", type=int, default=1)
    parser.add_argument("--delivery", choices=["json", "binary"], default="json")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds read before measuring")
    parser.add_argument(
        "--warmup-max",
        type=float,
        default=12.0,
        help="client readers: warm up until the dedup cache is full, at most this long",
    )
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args(argv)
    try:
        result = RUNNERS[args.kind](args)
    except Exception as exc:
        result = {"error": f"{type(exc).__name__}: {exc}"}
    emit({"kind": args.kind, "conns": args.conns, "delivery": args.delivery, **result})
    sys.stdout.flush()
    # Reader threads block in the kernel: leave without joining them.
    os._exit(0)


if __name__ == "__main__":
    main()
