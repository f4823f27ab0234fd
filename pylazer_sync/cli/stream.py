"""``pylazer-sync stream``: subscribe on redundant connections, print each update once."""

from __future__ import annotations

import argparse
import json
import sys
import time

from ..client import LazerClient
from ..config import DEFAULT_ENDPOINTS
from ..dedup import UndecodableFrame
from ..errors import RecvTimeout
from ..protocol import (
    ServerError,
    StreamUpdate,
    SubscribedWithIgnoredFeeds,
    SubscriptionError,
)
from ..protocol.types import PROPERTY_BY_NAME
from ..relay import RelayConsumer
from . import argtypes
from .command import Command, Context, Subcommands
from .exits import EPILOG, EXIT_OK, EXIT_SIGNATURE, EXIT_USAGE, CliError
from .options import (
    common_options,
    connection_options,
    redis_options,
    redis_settings,
    subscribe_request,
    subscription_options,
)
from .output import Table, columns, show_update, symbol_names
from .verify import Verifier


def register(commands: Subcommands) -> None:
    """Add ``stream`` and its options."""
    parser = commands.add_parser(
        "stream",
        parents=[
            common_options(),
            connection_options(),
            subscription_options(stream=True, required=False),
            redis_options("--from-redis", None),
        ],
        help="print or record live updates",
        description="Subscribe on redundant connections and print each update once, as a "
        "table or as JSON lines, until --count updates, --seconds, or Ctrl-C. With "
        "--from-redis, read the updates a 'pylazer-sync relay' appends to a Redis stream "
        "instead (--feeds then filters; the relay's subscription decides what arrives).",
        epilog=EPILOG,
    )
    parser.add_argument(
        "--start",
        type=argtypes.start_position,
        default="$",
        metavar="POSITION",
        help="with --from-redis: $ (new updates, the default), 0 (all the stream holds), "
        "an entry id, or an ISO 8601 time",
    )
    # argparse cannot require "--feeds or --symbols, unless --from-redis": run() checks,
    # and says so as argparse would.
    parser.set_defaults(usage_error=parser.error)
    parser.add_argument(
        "--connections",
        type=argtypes.positive_int,
        default=4,
        metavar="N",
        help="redundant connections, spread over the endpoints (default: %(default)s)",
    )
    parser.add_argument(
        "--count", type=argtypes.positive_int, metavar="N", help="exit 0 after N stream updates"
    )
    parser.add_argument(
        "--seconds", type=argtypes.positive_float, metavar="S", help="exit 0 after S seconds"
    )
    parser.add_argument(
        "--connect-timeout",
        type=argtypes.positive_float,
        default=30.0,
        metavar="SECONDS",
        help="give up (exit 4) if no connection opens in time (default: %(default)s)",
    )
    parser.add_argument(
        "--stats",
        action="store_true",
        help="print the client's statistics on standard error at the end",
    )


def run(args: argparse.Namespace, ctx: Context) -> int:
    """Stream until ``--count``, ``--seconds`` or Ctrl-C."""
    # --seconds bounds the whole run, connecting included: it is a wall-clock budget.
    deadline = None if args.seconds is None else time.monotonic() + args.seconds
    start_timeout = min(args.connect_timeout, args.seconds or args.connect_timeout)
    verifier = Verifier(args.trusted_signer, sys.stderr) if args.verify else None
    client: LazerClient | RelayConsumer
    if args.from_redis is not None:
        # The same loop reads a relay's stream: RelayConsumer has the client's interface.
        if args.symbols:
            args.usage_error("with --from-redis, filter by --feeds (ids), not --symbols")
        request = None
        attrs = columns([PROPERTY_BY_NAME[p] for p in args.properties])
        client = RelayConsumer(
            args.from_redis,
            args.stream,
            args.start,
            feed_ids=args.feeds,
            start_timeout=start_timeout,
            **redis_settings(args),
        )
    else:
        if args.feeds is None and args.symbols is None:
            args.usage_error("one of the arguments --feeds --symbols is required (or --from-redis)")
        request = subscribe_request(args, args.delivery)
        attrs = columns(request.properties)
        client = LazerClient(
            args.token,  # None: $PYTH_LAZER_TOKEN, or none at all for endpoints on this machine
            endpoints=args.endpoint or DEFAULT_ENDPOINTS,
            num_connections=args.connections,
            start_timeout=start_timeout,
        )
    received = 0
    try:
        client.start()
        ctx.connected()
        table = None
        if args.output == "table":
            names = None
            if args.symbols and isinstance(client, LazerClient):
                names = symbol_names(client.symbols, args.symbols)
            table = Table(sys.stdout, attrs, names)
        sub_id = None
        if request is not None and isinstance(client, LazerClient):
            sub_id = client.subscribe(request)
        while args.count is None or received < args.count:
            timeout = None if deadline is None else deadline - time.monotonic()
            if timeout is not None and timeout <= 0:
                break
            try:
                message = client.recv(timeout=timeout)
            except RecvTimeout:
                break
            if isinstance(message, StreamUpdate):
                received += 1
                show_update(message, table, verifier)
            elif isinstance(message, SubscriptionError) and message.subscription_id == sub_id:
                raise CliError(f"the server refused the subscription: {message.error}", EXIT_USAGE)
            elif isinstance(message, ServerError):
                raise CliError(f"the server refused the request: {message.error}", EXIT_USAGE)
            elif isinstance(message, SubscribedWithIgnoredFeeds):
                print(f"note: some feeds were ignored: {message}", file=sys.stderr)
            elif isinstance(message, UndecodableFrame):
                print(f"note: undecodable frame skipped: {message.error}", file=sys.stderr)
    finally:
        client.close()
        if args.stats:
            print(f"stats: {json.dumps(client.stats())}", file=sys.stderr)
    if verifier is not None:
        print(verifier.summary(), file=sys.stderr)
        if verifier.failed:
            return EXIT_SIGNATURE
    return EXIT_OK


COMMAND = Command("stream", register, run)
