"""``pylazer-sync relay``: one set of Lazer connections into a Redis stream, until Ctrl-C.

Consumers read the stream with ``pylazer-sync stream --from-redis URL`` or
``pylazer_sync.relay.RelayConsumer``; two relays with the same options write each
update once between them (README, "Scale-out through Redis").
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time

from ..client import LazerClient
from ..config import DEFAULT_ENDPOINTS
from . import argtypes
from .command import Command, Context, Subcommands
from .exits import EPILOG, EXIT_OK
from .options import (
    common_options,
    connection_options,
    redis_options,
    redis_settings,
    subscribe_request,
    subscription_options,
)

_STATUS_EVERY = 5.0  # seconds between status lines on a terminal


def register(commands: Subcommands) -> None:
    """Add ``relay`` and its options."""
    from ..relay.store import DEFAULT_REDIS_URL

    parser = commands.add_parser(
        "relay",
        parents=[
            common_options(),
            connection_options(),
            subscription_options(stream=True, show=False),
            redis_options("--redis-url", DEFAULT_REDIS_URL),
        ],
        help="append every unique update to a Redis stream, for many consumers",
        description="Run redundant Lazer connections and append every unique update, "
        "byte for byte, to a Redis stream until Ctrl-C (or --seconds). Run two with the "
        "same options (two machines) for high availability: the stream holds each update "
        "once. Read it with 'pylazer-sync stream --from-redis URL'.",
        epilog=EPILOG,
    )
    parser.add_argument(
        "--connections",
        type=argtypes.positive_int,
        default=4,
        metavar="N",
        help="redundant connections, spread over the endpoints (default: %(default)s)",
    )
    parser.add_argument(
        "--max-len",
        type=int,
        default=1_000_000,
        metavar="N",
        help="entries the stream keeps at least, MAXLEN ~; 0: no length bound "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--max-age",
        type=argtypes.positive_float,
        default=None,
        metavar="SECONDS",
        help="seconds of entries the stream keeps at least, MINID ~ (default: no age bound)",
    )
    parser.add_argument(
        "--seen-ttl",
        type=argtypes.positive_float,
        default=120.0,
        metavar="SECONDS",
        help="how long an update's seen-key lives; two relays write an update once if "
        "neither holds it longer than 3/4 of this (default: %(default)s)",
    )
    parser.add_argument(
        "--max-backlog",
        type=argtypes.positive_int,
        default=100_000,
        metavar="N",
        help="updates held while Redis is slow or away; beyond, the oldest are dropped "
        "and counted (default: %(default)s)",
    )
    parser.add_argument(
        "--seconds", type=argtypes.positive_float, metavar="S", help="exit 0 after S seconds"
    )
    parser.add_argument(
        "--connect-timeout",
        type=argtypes.positive_float,
        default=30.0,
        metavar="SECONDS",
        help="give up (exit 4) if Redis or no endpoint answers in time (default: %(default)s)",
    )
    parser.add_argument(
        "--status-every",
        type=argtypes.positive_float,
        default=None,
        metavar="SECONDS",
        help=f"print a status line on standard error this often (default: every "
        f"{_STATUS_EVERY:.0f} s on a terminal, else never)",
    )
    parser.add_argument(
        "--stats",
        action="store_true",
        help="print the relay's statistics on standard error at the end",
    )


def _status(stats: dict[str, object], rate: float) -> str:
    return (
        f"relay: {rate:,.0f} updates/s appended, stream length {stats['stream_length']}, "
        f"backlog {stats['backlog']}, dropped {stats['dropped']}, "
        f"duplicates {stats['duplicates']}, Redis {'up' if stats['connected'] else 'DOWN'}"
    )


def run(args: argparse.Namespace, ctx: Context) -> int:
    """Relay until ``--seconds`` or Ctrl-C (SIGTERM), appending the backlog on the way out."""
    from ..relay import Relay

    deadline = None if args.seconds is None else time.monotonic() + args.seconds
    every = args.status_every or (_STATUS_EVERY if sys.stderr.isatty() else None)
    client = LazerClient(
        args.token,  # None: $PYTH_LAZER_TOKEN, or none at all for endpoints on this machine
        endpoints=args.endpoint or DEFAULT_ENDPOINTS,
        num_connections=args.connections,
        start_timeout=args.connect_timeout,
    )
    try:
        relay = Relay(
            client,
            redis_url=args.redis_url,
            stream=args.stream,
            max_len=args.max_len or None,
            max_age=args.max_age,
            seen_ttl=args.seen_ttl,
            max_backlog=args.max_backlog,
            start_timeout=args.connect_timeout,
            **redis_settings(args),
        )
    except BaseException:
        client.close()
        raise
    try:
        relay.subscribe(subscribe_request(args, args.delivery))
        relay.start()
        ctx.connected()
        print(f"relaying into {relay.stats()['stream']}", file=sys.stderr, flush=True)
        idle = threading.Event()  # never set: its wait() is a sleep that Ctrl-C ends
        last_at, last_appended = time.monotonic(), 0
        while deadline is None or time.monotonic() < deadline:
            idle.wait(0.25)
            now = time.monotonic()
            if every is not None and now - last_at >= every:
                stats = relay.stats()
                rate = (stats["appended"] - last_appended) / (now - last_at)
                print(_status(stats, rate), file=sys.stderr, flush=True)
                last_at, last_appended = now, stats["appended"]
    finally:
        relay.close()
        client.close()
        if args.stats:
            print(f"stats: {json.dumps(relay.stats())}", file=sys.stderr, flush=True)
    return EXIT_OK


COMMAND = Command("relay", register, run)
