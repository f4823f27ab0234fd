"""``pylazer-sync latest``: the latest update of some feeds (or the one at a time) over REST,
as a table, JSON, or (``--raw``) the signed envelopes' bytes for a contract call."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Final

from ..protocol import StreamUpdate
from . import argtypes
from .command import Command, Context, Subcommands
from .exits import EPILOG, EXIT_FAILURE, EXIT_OK, EXIT_SIGNATURE, EXIT_USAGE, CliError
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
    parser.add_argument(
        "--raw",
        action="store_true",
        help="print the signed envelopes instead of a table, as a contract call takes "
        "them: one line per format of --formats, in that order, each exactly the "
        "envelope's bytes in hex, without 0x (with one format, the output is its bytes)",
    )


# The StreamUpdate attribute of each envelope format (``--formats`` names).
_ENVELOPE_ATTRS: Final = {
    "evm": "evm",
    "solana": "solana",
    "leEcdsa": "le_ecdsa",
    "leUnsigned": "le_unsigned",
}


def run(args: argparse.Namespace, ctx: Context) -> int:
    """One REST call, printed (and verified) as ``stream`` prints an update."""
    rest = rest_client(args, "prices")
    request = subscribe_request(args)
    if args.raw and not request.formats:
        raise CliError("--raw needs --formats (e.g. --formats evm)", EXIT_USAGE)
    update = rest.latest_price(request) if args.at is None else rest.price(args.at, request)
    verifier = Verifier(args.trusted_signer, sys.stderr) if args.verify else None
    if args.raw:
        if verifier is not None:
            verifier.check(update)
        _print_raw(update, request.formats)
    else:
        attrs = columns(request.properties)
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


def _print_raw(update: StreamUpdate, formats: Sequence[str]) -> None:
    """Each requested envelope's bytes in hex, one line each, in the order asked."""
    lines = []
    for name in formats:
        envelope = getattr(update, _ENVELOPE_ATTRS[name])
        if envelope is None:
            raise CliError(f"the answer holds no {name} envelope", EXIT_FAILURE)
        lines.append(envelope.encode().hex())
    print("\n".join(lines), flush=True)


COMMAND = Command("latest", register, run)
