"""``pylazer-sync history``: OHLC bars of one feed from the history service, into a CSV or
Parquet file (by its extension), or as CSV on standard output."""

from __future__ import annotations

import argparse
import datetime as _dt
import re
import sys
from pathlib import Path

from .. import ohlc
from ..errors import MissingDependencyError
from . import argtypes
from .command import Command, Context, Subcommands
from .exits import EPILOG, EXIT_OK, EXIT_USAGE, CliError
from .options import common_options, connection_options, rest_client, rest_options

_DURATION = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def time_or_duration(text: str) -> int | _dt.timedelta:
    """``--start``: a time (microseconds or ISO 8601) or a duration before ``--end``
    (``90m``, ``6h``, ``7d``, ``2w``)."""
    match = _DURATION.fullmatch(text)
    if match:
        return _dt.timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])
    return argtypes.timestamp_us(text)


def resolution(text: str) -> str:
    """A bar resolution the library knows (``1m``, ``1h``, ``1d``, ...)."""
    try:
        return ohlc.resolution(text).name
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("resolution: ")) from None


def register(commands: Subcommands) -> None:
    """Add ``history`` and its options."""
    parser = commands.add_parser(
        "history",
        parents=[common_options(), connection_options(), rest_options()],
        help="OHLC bars of a feed from the history service, into CSV or Parquet",
        description="Fetch the bars of one feed (paged, with a progress bar on a terminal) "
        "and write them to --output (CSV or Parquet by its extension) or to standard "
        "output as CSV. Prices are exact decimals unless --float.",
        epilog=EPILOG,
    )
    parser.add_argument(
        "feed", metavar="SYMBOL", help="a symbol (Crypto.BTC/USD) or a feed id (see 'symbols')"
    )
    parser.add_argument(
        "--start",
        type=time_or_duration,
        required=True,
        metavar="TIME",
        help="first bar: microseconds since the epoch, ISO 8601 (UTC unless it says "
        "otherwise), or a duration before --end (90m, 6h, 7d, 2w)",
    )
    parser.add_argument(
        "--end",
        type=argtypes.timestamp_us,
        metavar="TIME",
        help="last bar (default: now)",
    )
    parser.add_argument(
        "--resolution",
        type=resolution,
        default="1m",
        help="bar size: 1m, 5m, 15m, 30m, 1h, 4h, 1d, 1w, 1M, ... (default: %(default)s)",
    )
    parser.add_argument(
        "--channel",
        default=ohlc.DEFAULT_CHANNEL,
        help="the channel whose updates make the bars (default: %(default)s)",
    )
    parser.add_argument(
        "--output",
        metavar="PATH",
        help="a .csv or .parquet file (Parquet needs the 'parquet' extra); default: CSV "
        "on standard output",
    )
    parser.add_argument("--float", action="store_true", help="floats instead of exact decimals")
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar, even on a terminal"
    )


def run(args: argparse.Namespace, ctx: Context) -> int:
    """Fetch, write, and say on standard error what was written."""
    output = Path(args.output) if args.output else None
    if output is not None and output.suffix.lower() not in (".csv", ".parquet"):
        raise CliError(f"--output {args.output}: the file must end in .csv or .parquet", EXIT_USAGE)
    feed: str | int = int(args.feed) if args.feed.isdigit() else args.feed
    frame = ohlc.history(
        feed,
        args.start,
        args.end,
        args.resolution,
        channel=args.channel,
        numbers="float" if args.float else "decimal",
        client=rest_client(args, "history"),
        progress=False if args.no_progress else None,
    )
    where = "standard output"
    if output is None:
        frame.to_csv(sys.stdout)
    elif output.suffix.lower() == ".csv":
        frame.to_csv(output)
        where = str(output)
    else:
        try:
            frame.to_parquet(output)
        except ImportError as exc:
            raise MissingDependencyError(
                "Parquet output needs pyarrow: pip install 'pylazer-sync[parquet]'"
            ) from exc
        where = str(output)
    span = f" from {frame.index[0]} to {frame.index[-1]}" if len(frame) else ""
    print(
        f"{len(frame)} bars of {frame.attrs['symbol']} ({args.resolution}, {args.channel})"
        f"{span} written to {where}",
        file=sys.stderr,
    )
    return EXIT_OK


COMMAND = Command("history", register, run)
