"""``pylazer-sync symbols``: the feeds catalogue over REST."""

from __future__ import annotations

import argparse
import sys

from .command import Command, Context, Subcommands
from .exits import EPILOG, EXIT_OK
from .options import common_options, connection_options, rest_client, rest_options
from .output import print_jsonl


def register(commands: Subcommands) -> None:
    """Add ``symbols`` and its options."""
    parser = commands.add_parser(
        "symbols",
        parents=[common_options(), connection_options(), rest_options()],
        help="list the feeds catalogue (REST)",
        description="Ask the metadata service for feeds, filtered by text and asset type.",
        epilog=EPILOG,
    )
    parser.add_argument("--query", help="text to look for in symbol, name or description")
    parser.add_argument("--asset-type", help="crypto, fx, equity, metal, ... ")
    parser.add_argument(
        "--output",
        choices=["table", "jsonl"],
        default="table",
        help="a readable table, or one JSON object per feed (default: %(default)s)",
    )


def run(args: argparse.Namespace, ctx: Context) -> int:
    """One catalogue call, printed as a table (count on standard error) or JSON lines."""
    entries = rest_client(args, "catalogue").symbols(args.query, args.asset_type)
    if args.output == "jsonl":
        for entry in entries:
            print_jsonl(sys.stdout, dict(entry.raw))
        return EXIT_OK
    sw = max([len("symbol"), *(len(e.symbol) for e in entries)])
    tw = max([len("type"), *(len(e.asset_type) for e in entries)])
    print(f"{'id':>6}  {'symbol':<{sw}}  {'type':<{tw}}  {'expo':>4}  {'state':<11}  description")
    for e in entries:
        print(
            f"{e.feed_id:>6}  {e.symbol:<{sw}}  {e.asset_type:<{tw}}  {e.exponent:>4}  "
            f"{e.state or '-':<11}  {e.description}"
        )
    print(f"{len(entries)} feeds", file=sys.stderr)
    return EXIT_OK


COMMAND = Command("symbols", register, run)
