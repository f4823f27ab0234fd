"""Make the example recording (examples/recording/) from a local simulator.

    python examples/make_recording.py                       # 10 s into examples/recording/
    python examples/make_recording.py --seconds 60 --output /tmp/rec

Two subscriptions, recorded together as a ParquetRecorder writes them: BTC, ETH and SOL at
200 ms in JSON with Solana and EVM signatures, and BTC and ETH in binary frames with EVM
signatures only (what a keeper sends on chain). The simulator's seed is ``example``, so the
recorded signers are ``Simulator(seed="example").trusted_signers()``. Replay it with
``pylazer-sync simulate --replay examples/recording``. Needs the ``simulator`` and
``parquet`` extras.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import pylazer_sync as pl
from pylazer_sync.recording import ParquetRecorder
from pylazer_sync.simulator import Simulator

SEED = "example"
SUBSCRIPTIONS: list[dict[str, object]] = [
    {
        "price_feed_ids": [1, 2, 6],
        "properties": ["price", "bestBidPrice", "bestAskPrice", "exponent", "confidence",
                       "publisherCount"],
        "channel": "fixed_rate@200ms",
        "formats": ["solana", "evm"],
    },
    {
        "price_feed_ids": [1, 2],
        "properties": ["price", "exponent"],
        "channel": "fixed_rate@200ms",
        "formats": ["evm"],
        "delivery_format": "binary",
        "parsed": False,
    },
]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length (default: 10)")
    parser.add_argument(
        "--output", type=Path, default=Path(__file__).parent / "recording", help="directory"
    )
    args = parser.parse_args()
    if args.output.exists():
        shutil.rmtree(args.output)  # one file, not one per run
    with Simulator(seed=SEED) as sim, pl.LazerClient("local", endpoints=[sim.url]) as client:
        for subscription in SUBSCRIPTIONS:
            client.subscribe(**subscription)  # type: ignore[arg-type]
        # One file: no rotation within the run; flushed every second as it goes.
        with ParquetRecorder(args.output, rotate_seconds=None, flush_seconds=1.0) as recorder:
            recorder.record(client, seconds=args.seconds)
    for path in recorder.files:
        print(f"{path}: {recorder.updates} updates, {path.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
