"""Microbenchmarks of the protocol layer: decode, signature checks, encode.

Run ``python benchmarks/bench_protocol.py`` for a table of microseconds per operation
(best of several timeit repeats), ``--json PATH`` to also write the figures. A later
``benchmarks/run.py`` can import this file and call :func:`run`.
"""

from __future__ import annotations

import argparse
import json
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pylazer_sync.protocol import (
    FeedUpdate,
    Payload,
    Property,
    Signer,
    StreamUpdate,
    decode_binary_update,
    encode_binary_update,
    encode_server_message,
    parse_server_message,
)

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
    if args.json is not None:
        args.json.write_text(json.dumps({"unit": "us/op", "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
