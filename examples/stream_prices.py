"""Print live prices with a plain blocking ``recv()`` loop; Ctrl-C stops it cleanly.

    python examples/stream_prices.py --simulator        # local simulator: no token, no network
    PYTH_LAZER_TOKEN=... python examples/stream_prices.py --feeds 1,2
    python examples/stream_prices.py --endpoint ws://127.0.0.1:8765/v1/stream --count 10

Run it from a checkout after ``pip install 'pylazer-sync[simulator]'`` (the simulator is
only needed for ``--simulator``).
"""

from __future__ import annotations

import argparse
import contextlib
import sys

import pylazer_sync as pl


def feed_ids(text: str) -> list[int]:
    """``1,2`` -> ``[1, 2]``; anything else is a one-line usage error, not a traceback."""
    try:
        ids = [int(item) for item in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected feed ids like 1,2, got {text!r}") from None
    if any(not 0 <= i < 2**32 for i in ids):
        raise argparse.ArgumentTypeError(f"feed ids are integers from 0 to 2**32 - 1: {text!r}")
    return ids


def positive_int(text: str) -> int:
    """An integer >= 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return int(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", action="append", help="stream URL (default: production)")
    parser.add_argument(
        "--feeds", type=feed_ids, default="1,2,6", help="feed ids (default: %(default)s)"
    )
    parser.add_argument("--count", type=positive_int, help="stop after this many updates")
    parser.add_argument("--simulator", action="store_true", help="start a local simulator")
    args = parser.parse_args()

    try:
        with contextlib.ExitStack() as stack:
            endpoints = args.endpoint  # None: the production endpoints
            if args.simulator:
                from pylazer_sync.simulator import Simulator

                sim = stack.enter_context(Simulator(seed=1))
                endpoints = [sim.url]
            # The token comes from PYTH_LAZER_TOKEN; endpoints on this machine need none.
            # Entering the client starts it (waiting for a first connection); leaving the
            # block closes it, whether we leave by Ctrl-C, an error or the end of the loop.
            client = stack.enter_context(pl.LazerClient(endpoints=endpoints))
            client.subscribe(
                price_feed_ids=args.feeds,
                properties=["price", "bestBidPrice", "bestAskPrice", "exponent"],
                channel="fixed_rate@200ms",
            )
            received = 0
            while args.count is None or received < args.count:
                message = client.recv(timeout=30.0)  # blocks; Ctrl-C interrupts it
                if isinstance(message, pl.SubscriptionError):
                    print(f"subscription refused: {message.error}", file=sys.stderr)
                    return 2
                if not isinstance(message, pl.StreamUpdate):
                    continue  # Subscribed and friends
                received += 1
                for feed in message.feeds:
                    # real() = mantissa x 10^exponent, an exact Decimal
                    print(
                        f"{message.timestamp_us}  feed {feed.feed_id:>4}  "
                        f"price {feed.real('price')}  bid {feed.real('best_bid_price')}  "
                        f"ask {feed.real('best_ask_price')}",
                        flush=True,
                    )
            stats = client.stats()
            print(
                f"{received} updates; {stats['duplicates']} duplicate frames dropped",
                file=sys.stderr,
            )
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    except pl.LazerError as exc:  # bad token, no endpoint reachable, no update in 30 s ...
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
