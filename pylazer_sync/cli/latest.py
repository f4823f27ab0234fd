"""``pylazer-sync latest``: the latest update of some feeds (or the one at a time) over REST."""

from __future__ import annotations

import argparse
import sys

from . import argtypes
from .command import Command, Context, Subcommands
from .exits import EPILOG, EXIT_OK, EXIT_SIGNATURE
from .options import (
    common_options,
    connection_options,
    rest_client,
    rest_options,
    subscribe_request,
    subscription_options,
)
from .output import Table, columns, show_update, symbol_names
from .verify import Verifier


def register(commands: Subcommands) -> None:
    """Add ``latest`` and its options."""
    parser = commands.add_parser(
        "latest",
        parents=[
            common_options(),
            connection_options(),
            rest_options(),
            subscription_options(stream=False),
        ],
        help="the latest price of some feeds (REST)",
        description="One REST call for the latest update of the given feeds (or the update "
        "in force at --at), printed as for 'stream'.",
        epilog=EPILOG,
    )
    parser.add_argument(
        "--at",
        type=argtypes.timestamp_us,
        metavar="TIME",
        help="the price at this time instead: microseconds since the epoch or ISO 8601",
    )


def run(args: argparse.Namespace, ctx: Context) -> int:
    """One REST call, printed (and verified) as ``stream`` prints an update."""
    rest = rest_client(args, "prices")
    request = subscribe_request(args)
    attrs = columns(request.properties)
    update = rest.latest_price(request) if args.at is None else rest.price(args.at, request)
    verifier = Verifier(args.trusted_signer, sys.stderr) if args.verify else None
    table = None
    if args.output == "table":
        names = symbol_names(rest.symbols, args.symbols) if args.symbols else None
        table = Table(sys.stdout, attrs, names, dated=True)
    show_update(update, table, verifier)
    if verifier is not None:
        print(verifier.summary(), file=sys.stderr)
        if verifier.failed:
            return EXIT_SIGNATURE
    return EXIT_OK


COMMAND = Command("latest", register, run)
