"""``pylazer-sync symbols``: the feeds catalogue over REST, with a disk cache."""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from ..config import is_loopback
from ..rest import SymbolList
from . import argtypes
from .command import Command, Context, Subcommands
from .exits import EPILOG, EXIT_OK
from .options import common_options, connection_options, rest_client, rest_options
from .output import print_jsonl

DEFAULT_MAX_AGE: Final = 3600.0
"""Seconds a cached catalogue is shown without asking: feeds are listed a few times a day."""


def register(commands: Subcommands) -> None:
    """Add ``symbols`` and its options."""
    parser = commands.add_parser(
        "symbols",
        parents=[common_options(), connection_options(), rest_options()],
        help="list the feeds catalogue (REST)",
        description="Ask the catalogue service for feeds, filtered by text, asset type and "
        "instrument type. The whole catalogue is kept in a cache file: shown from there for "
        "--max-age seconds, and whenever the service cannot be reached.",
        epilog=EPILOG,
    )
    parser.add_argument("--query", help="text to look for in symbol, name or description")
    parser.add_argument("--asset-type", help="crypto, fx, equity, metal, ... ")
    parser.add_argument("--instrument-type", help="spot, future, index, rate, nav")
    parser.add_argument(
        "--output",
        choices=["table", "jsonl"],
        default="table",
        help="a readable table, or one JSON object per feed, as the service sent it "
        "(default: %(default)s)",
    )
    cache = parser.add_mutually_exclusive_group()
    cache.add_argument(
        "--cache",
        metavar="PATH",
        help="the cache file (default: one per catalogue URL under $XDG_CACHE_HOME or "
        "~/.cache/pylazer-sync; none for a service on this machine)",
    )
    cache.add_argument("--no-cache", action="store_true", help="neither read nor write a cache")
    parser.add_argument(
        "--max-age",
        type=argtypes.non_negative_float,
        default=DEFAULT_MAX_AGE,
        metavar="SECONDS",
        help="show a cached catalogue this young without asking the service (default: %(default)g)",
    )
    parser.add_argument(
        "--refresh",
        action="store_true",
        help="ask the service even if the cache is young enough (and update the cache)",
    )


def default_cache_path(api_url: str) -> Path | None:
    """Where the catalogue of ``api_url`` is cached by default: a file per service under
    the user's cache directory, so production and a staging service never mix; none for
    a service on this machine (a simulator on a passing port)."""
    host = urlsplit(api_url).hostname or ""
    if is_loopback(host):
        return None
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    tag = hashlib.sha256(api_url.encode()).hexdigest()[:12]
    return base / "pylazer-sync" / f"symbols-{host}-{tag}.json"


def run(args: argparse.Namespace, ctx: Context) -> int:
    """One catalogue call, printed as a table (count on standard error) or JSON lines."""
    rest = rest_client(args, "catalogue")
    cache = None if args.no_cache else (args.cache or default_cache_path(rest.api_url))
    entries: SymbolList = rest.symbols(
        args.query,
        args.asset_type,
        instrument_type=args.instrument_type,
        cache=cache,
        max_age=args.max_age if cache is not None else None,
        refresh=args.refresh,
    )
    if args.output == "jsonl":
        for entry in entries:
            print_jsonl(sys.stdout, dict(entry.raw))
    else:
        _print_table(entries)
    note = f"{len(entries)} feeds"
    if entries.from_cache:
        note += f" (from the cache {entries.source}, fetched {entries.fetched_at:%Y-%m-%d %H:%M:%S} UTC)"
    print(note, file=sys.stderr)
    return EXIT_OK


def _print_table(entries: SymbolList) -> None:
    sw = max([len("symbol"), *(len(e.symbol) for e in entries)])
    tw = max([len("type"), *(len(e.asset_type) for e in entries)])
    print(
        f"{'id':>6}  {'symbol':<{sw}}  {'type':<{tw}}  {'instr':<6}  {'expo':>4}  "
        f"{'state':<11}  description"
    )
    for e in entries:
        print(
            f"{e.feed_id:>6}  {e.symbol:<{sw}}  {e.asset_type:<{tw}}  "
            f"{e.instrument_type or '-'!s:<6}  {e.exponent:>4}  "
            f"{e.state or '-'!s:<11}  {e.description}"
        )


COMMAND = Command("symbols", register, run)
