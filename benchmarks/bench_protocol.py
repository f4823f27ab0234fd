"""Microbenchmarks of the protocol layer: decode, signature checks, encode.

Run ``python benchmarks/bench_protocol.py`` for a table of microseconds per operation
(best of several timeit repeats), ``--json PATH`` to also write the figures. A later
``benchmarks/run.py`` can import this file and call :func:`run`.

A second table compares the decode paths in the same run, per frame as the dedup thread
calls ``decode_frame``: today's decoders (``json.loads`` and dicts; the binary payload
walked value by value, its struct layouts off), the two candidates for typed JSON
decoding (msgspec, as shipped, and ``orjson.loads`` in front of today's dict code; orjson
is not a dependency: ``pip install orjson`` for its rows), and bare ``json.loads`` as the
floor of a dict-based decoder. Ratios: today's time over each path's (higher is faster),
and each path's time over bare ``json.loads``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import timeit
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import msgspec

from pylazer_sync.protocol import (
    FeedUpdate,
    LeUnsignedMessage,
    Payload,
    Property,
    ServerMessage,
    Signer,
    StreamUpdate,
    decode_binary_update,
    decode_frame,
    encode_binary_update,
    encode_server_message,
    messages,
    parse_server_message,
    payload,
)

try:
    import orjson
except ImportError:  # a candidate measured when present, not a dependency
    orjson = None

FIVE = (
    Property.PRICE,
    Property.BEST_BID_PRICE,
    Property.BEST_ASK_PRICE,
    Property.EXPONENT,
    Property.PUBLISHER_COUNT,
)
TIMESTAMP = 1_730_986_152_400_000


def _feed(feed_id: int, props: tuple[Property, ...]) -> FeedUpdate:
    """A realistic feed: BTC-like prices with exponent -8, every requested property set."""
    base = 7_512_345_678_900 + feed_id * 1_000_003
    values: dict[str, Any] = {
        "price": base,
        "best_bid_price": base - 50_000,
        "best_ask_price": base + 50_000,
        "publisher_count": 17,
        "exponent": -8,
        "confidence": 1_234_567,
        "funding_rate": -12_345,
        "funding_timestamp": TIMESTAMP - 3_600_000_000,
        "funding_rate_interval": 28_800_000_000,
        "market_session": "regular",
        "ema_price": base - 1_000,
        "ema_confidence": 1_200_000,
        "feed_update_timestamp": TIMESTAMP - 1_000,
    }
    attrs = {p: p.attr for p in props}
    return FeedUpdate(feed_id, **{attrs[p]: values[attrs[p]] for p in props}, properties=props)


def _json_update(n_feeds: int) -> str:
    payload = Payload(TIMESTAMP, [_feed(i + 1, FIVE) for i in range(n_feeds)])
    return encode_server_message(StreamUpdate(1, payload))


def cases() -> dict[str, Callable[[], object]]:
    """The operations measured, by name (each a zero-argument callable)."""
    signer = Signer.from_seed("bench")
    full = Payload(TIMESTAMP, [_feed(1, tuple(Property))], channel_id=3)
    le, be = full.to_bytes("little"), full.to_bytes("big")
    solana, evm, le_ecdsa = signer.sign_solana(le), signer.sign_evm(be), signer.sign_le_ecdsa(le)
    solana_frame = encode_binary_update(1, [solana])
    json_1, json_10 = _json_update(1), _json_update(10)
    update_1 = parse_server_message(json_1)
    parsed_1 = Payload(TIMESTAMP, [_feed(1, FIVE)])
    return {
        "decode json streamUpdated, 1 feed x 5 props": lambda: parse_server_message(json_1),
        "decode json streamUpdated, 10 feeds x 5 props": lambda: parse_server_message(json_10),
        "decode binary frame, solana, 1 feed x 13 props": lambda: decode_binary_update(
            solana_frame
        ),
        "verify solana (ed25519)": solana.verify,
        "recover evm signer address": evm.signer_address,
        "recover leEcdsa signer key": le_ecdsa.signer_public_key,
        "encode json streamUpdated, 1 feed x 5 props": lambda: encode_server_message(update_1),
        "encode payload, 1 feed x 13 props (LE)": lambda: full.to_bytes("little"),
        "encode binary frame, solana (no signing)": lambda: encode_binary_update(1, [solana]),
        "sign solana envelope (1 feed x 13 props)": lambda: signer.sign_solana(le),
        "encode json parsed object, 1 feed x 5 props": parsed_1.to_json_obj,
    }


def measure(fn: Callable[[], object], repeat: int = 5, min_time: float = 0.2) -> float:
    """Microseconds per call: best of ``repeat`` runs of a loop lasting about ``min_time`` s."""
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()
    number = max(1, int(number * min_time / 0.2))
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e6


def run(repeat: int = 5, min_time: float = 0.2) -> dict[str, float]:
    """Measure every case; returns microseconds per operation by case name."""
    return {name: measure(fn, repeat, min_time) for name, fn in cases().items()}


@contextlib.contextmanager
def todays_binary_path() -> Iterator[None]:
    """The binary payload decoder as before the layouts: every payload walked value by
    value (the walker is today's code; only the layout cache is switched off)."""
    with (
        mock.patch.object(payload, "read_by_layouts", lambda c, data: None),
        mock.patch.object(payload, "learn_layouts", lambda c, p: None),
    ):
        yield


def todays_text_path(frame: bytes) -> ServerMessage:
    """``decode_frame(frame, True)`` as before the typed path: json.loads and dicts."""
    message = messages.parse_server_message_general(frame)
    if type(message) is StreamUpdate:
        message.frame = bytes(frame)
        message.frame_is_text = True
    return message


def orjson_text_path(frame: bytes) -> ServerMessage:
    """The orjson candidate: orjson.loads in front of today's dict code."""
    assert orjson is not None
    message = messages._from_json_obj(orjson.loads(frame))
    if type(message) is StreamUpdate:
        message.frame = bytes(frame)
        message.frame_is_text = True
    return message


def comparison_cases() -> dict[str, dict[str, tuple[Callable[[], object], bool]]]:
    """Per frame kind: the paths compared, each (callable, run with today's binary path)."""
    signer = Signer.from_seed("bench")
    full = Payload(TIMESTAMP, [_feed(1, tuple(Property))], channel_id=3)
    le, be = full.to_bytes("little"), full.to_bytes("big")
    solana = encode_binary_update(1, [signer.sign_solana(le)])
    several = encode_binary_update(
        1,
        [
            signer.sign_evm(be),
            signer.sign_solana(le),
            signer.sign_le_ecdsa(le),
            LeUnsignedMessage(le),
        ],
    )
    out: dict[str, dict[str, tuple[Callable[[], object], bool]]] = {}
    for n_feeds in (1, 10):
        frame = _json_update(n_feeds).encode()
        paths: dict[str, tuple[Callable[[], object], bool]] = {
            "json.loads alone": (lambda f=frame: json.loads(f), False),
            "today (json.loads + dicts)": (lambda f=frame: todays_text_path(f), False),
        }
        if orjson is not None:
            paths["orjson.loads alone"] = (lambda f=frame: orjson.loads(f), False)
            paths["orjson.loads + today's dict code"] = (lambda f=frame: orjson_text_path(f), False)
        paths["msgspec.json.decode alone (untyped)"] = (
            lambda f=frame: msgspec.json.decode(f),
            False,
        )
        paths["msgspec typed (decode_frame)"] = (lambda f=frame: decode_frame(f, True), False)
        out[f"JSON streamUpdated, {n_feeds} feed(s) x 5 props, {len(frame)} bytes"] = paths
    for name, frame in (
        ("binary, Solana, 1 feed x 13 props", solana),
        ("binary, 4 envelopes (evm, solana, leEcdsa, leUnsigned), 1 feed x 13 props", several),
    ):
        out[f"{name}, {len(frame)} bytes"] = {
            "today (payload walked)": (lambda f=frame: decode_frame(f, False), True),
            "struct layouts (decode_frame)": (lambda f=frame: decode_frame(f, False), False),
        }
    return out


def run_comparisons(repeat: int = 5, min_time: float = 0.2) -> dict[str, dict[str, float]]:
    """Microseconds per frame of each path, by frame kind.

    The paths of one kind are timed in turns, round after round, and each keeps its best
    round: on a shared machine, load that comes and goes then hits every path alike. Each
    path's result is first checked equal to the others' (a faster path that decoded
    something else would be no win).
    """
    results: dict[str, dict[str, float]] = {}
    for kind, paths in comparison_cases().items():
        reference = None
        timers: dict[str, tuple[timeit.Timer, int, bool]] = {}
        for name, (fn, today) in paths.items():
            with todays_binary_path() if today else contextlib.nullcontext():
                value = fn()  # also learns the shape or layout, as the first frame would
                if isinstance(value, (StreamUpdate, Payload)):
                    if reference is None:
                        reference = value
                    elif value != reference:
                        raise AssertionError(f"{kind}: {name} decodes to something else")
                timer = timeit.Timer(fn)
                number, _ = timer.autorange()
                timers[name] = (timer, max(1, int(number * min_time / 0.2)), today)
        best = dict.fromkeys(paths, float("inf"))
        for _ in range(max(repeat, 1) * 2):
            for name, (timer, number, today) in timers.items():
                with todays_binary_path() if today else contextlib.nullcontext():
                    best[name] = min(best[name], timer.timeit(number) / number * 1e6)
        results[kind] = best
    return results


def print_comparisons(results: dict[str, dict[str, float]]) -> None:
    width = max(len(name) for paths in results.values() for name in paths)
    for kind, paths in results.items():
        today = next(us for name, us in paths.items() if name.startswith("today"))
        loads = paths.get("json.loads alone")
        print(f"\n{kind}")
        print(f"  {'path':<{width}}  {'us/frame':>9}  {'x today':>8}  {'/ json.loads':>12}")
        for name, us in paths.items():
            vs_loads = f"{us / loads:12.2f}" if loads else f"{'':>12}"
            print(f"  {name:<{width}}  {us:9.2f}  {today / us:8.2f}  {vs_loads}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").strip().splitlines()[0])
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures here")
    parser.add_argument("--repeat", type=int, default=5, help="timeit repeats (best is kept)")
    parser.add_argument("--min-time", type=float, default=0.2, help="seconds per repeat")
    args = parser.parse_args(argv)
    results = run(args.repeat, args.min_time)
    width = max(map(len, results))
    print(f"{'operation':<{width}}  {'us/op':>9}")
    print(f"{'-' * width}  {'-' * 9}")
    for name, us in results.items():
        print(f"{name:<{width}}  {us:9.2f}")
    comparisons = run_comparisons(args.repeat, args.min_time)
    print_comparisons(comparisons)
    if orjson is None:
        print("\n(orjson is not installed: pip install orjson for its rows)")
    if args.json is not None:
        out = {"unit": "us/op", "results": results, "comparisons": comparisons}
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
