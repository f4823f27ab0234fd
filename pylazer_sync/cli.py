"""The ``pylazer-sync`` command (also ``python -m pylazer_sync``).

Subcommands: ``stream`` (print or record live updates), ``demo`` (the same against local
simulators, no token or network needed), ``simulate`` (run a simulator), ``symbols`` and
``latest`` (REST). This is the one place in the package that prints.

Every expected failure ends in one line on standard error, ``pylazer-sync: error: ...``,
and an exit status a script can test (:data:`EXIT_CODES`); a traceback means a bug. The
access token never reaches the output: the library keeps it out of its messages, and
:func:`_scrub` removes it from anything printed here as a second line of defence.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import logging
import os
import sys
import time
from collections.abc import Iterable, Sequence
from typing import Any, Final, TextIO
from urllib.parse import urlsplit

from . import __version__
from .client import LazerClient
from .config import (
    DEFAULT_ENDPOINTS,
    DEFAULT_HISTORY_URL,
    DEFAULT_REST_URL,
    TOKEN_ENV_VAR,
    is_loopback,
    rest_url_for,
)
from .dedup import FrameError
from .errors import (
    AuthenticationError,
    ConnectError,
    InvalidRequestError,
    LazerError,
    MissingDependencyError,
    ProtocolError,
    RecvTimeout,
    RestError,
    SignatureError,
)
from .frames import update_to_jsonl_obj
from .protocol import (
    Channel,
    DeliveryFormat,
    FeedUpdate,
    Format,
    Property,
    ServerError,
    StreamUpdate,
    SubscribedWithIgnoredFeeds,
    SubscribeRequest,
    SubscriptionError,
)
from .protocol.types import PRICE_LIKE_ATTRS, PROPERTY_ATTRS, PROPERTY_BY_NAME
from .rest import RestClient

PROG: Final = "pylazer-sync"

EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2
EXIT_AUTH: Final = 3
EXIT_CONNECT: Final = 4
EXIT_SIGNATURE: Final = 5
EXIT_INTERRUPTED: Final = 130
EXIT_CODES: Final = {
    EXIT_OK: "success",
    EXIT_FAILURE: "other error (for example a missing optional dependency)",
    EXIT_USAGE: "bad arguments, or a request the server refused",
    EXIT_AUTH: "authentication failure (HTTP 401/403)",
    EXIT_CONNECT: "no endpoint reachable, or a REST call failed",
    EXIT_SIGNATURE: "--verify found at least one bad or untrusted signature",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
}

# Used when no token is given and every endpoint is this machine (a simulator without a
# token accepts anyone): saves typing a meaningless token in the demo and in tests.
LOOPBACK_PLACEHOLDER_TOKEN: Final = "local"

DEFAULT_PROPERTIES: Final = (
    "price",
    "bestBidPrice",
    "bestAskPrice",
    "exponent",
    "confidence",
    "publisherCount",
)
DEMO_FEEDS: Final = (1, 2, 6)  # BTC, ETH and SOL in the simulator's catalogue
DEMO_FORMATS: Final = ("solana", "evm", "leEcdsa")

_EPILOG = "exit status: " + "; ".join(f"{code} {text}" for code, text in EXIT_CODES.items())


class CliError(Exception):
    """An expected failure: printed as one line, ends the command with ``code``."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------------------------
# Argument types
# ---------------------------------------------------------------------------------


def _comma_list(text: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return items


def _feed_ids(text: str) -> list[int]:
    ids = []
    for item in _comma_list(text):
        if not item.isdigit():
            raise argparse.ArgumentTypeError(f"{item!r} is not a feed id (a number)")
        ids.append(int(item))
    return ids


def _properties(text: str) -> list[str]:
    items = _comma_list(text)
    for item in items:
        if item not in PROPERTY_BY_NAME:
            known = ", ".join(p.value for p in Property)
            raise argparse.ArgumentTypeError(f"unknown property {item!r}; known: {known}")
    return items


def _formats(text: str) -> list[str]:
    items = _comma_list(text)
    known = [f.value for f in Format]
    for item in items:
        if item not in known:
            raise argparse.ArgumentTypeError(f"unknown format {item!r}; known: {', '.join(known)}")
    return items


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return int(text)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def _trusted_signer(text: str) -> tuple[str, bytes]:
    """A signer identity, its kind told by its length: an EVM address (20 bytes), an
    Ed25519 key (32, Solana) or a compressed secp256k1 key (33, LeEcdsa)."""
    try:
        raw = bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not hex") from None
    kind = {20: "evm", 32: "solana", 33: "leEcdsa"}.get(len(raw))
    if kind is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is {len(raw)} bytes; expected an EVM address (20 bytes), a Solana "
            "Ed25519 key (32) or a LeEcdsa compressed secp256k1 key (33)"
        )
    return kind, raw


def _timestamp_us(text: str) -> int:
    """Microseconds since the epoch, or an ISO 8601 time (UTC unless it says otherwise)."""
    if text.isdigit():
        return int(text)
    try:
        when = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither microseconds since the epoch nor an ISO 8601 time"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.timezone.utc)
    epoch = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
    return (when - epoch) // _dt.timedelta(microseconds=1)


# ---------------------------------------------------------------------------------
# The parser
# ---------------------------------------------------------------------------------


def _common_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--log-level",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        default=None,
        help="show the library's log lines from this level on (default: warnings, once "
        "connected; start-up failures are summed up in the error line instead)",
    )
    return parent


def _connection_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--endpoint",
        action="append",
        metavar="URL",
        help="stream endpoint, repeatable (default: the three production endpoints)",
    )
    parent.add_argument(
        "--token",
        default=None,
        help=f"access token (default: ${TOKEN_ENV_VAR}, which is safer: a command line "
        "is visible to other users of the machine). Not needed when every endpoint is "
        "on this machine",
    )
    return parent


def _rest_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--rest-url",
        metavar="URL",
        help=f"base URL of the price REST calls (default: derived from the first "
        f"--endpoint, else {DEFAULT_REST_URL})",
    )
    parent.add_argument(
        "--history-url",
        metavar="URL",
        help=f"base URL of the symbols catalogue (default: --rest-url if given or derived, "
        f"else {DEFAULT_HISTORY_URL})",
    )
    parent.add_argument(
        "--timeout",
        type=_positive_float,
        default=10.0,
        metavar="SECONDS",
        help="timeout of each REST call (default: %(default)s)",
    )
    return parent


def _subscription_options(stream: bool) -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    which = parent.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--feeds", type=_feed_ids, metavar="ID,ID", help="feed ids, e.g. 1,2 (see 'symbols')"
    )
    which.add_argument(
        "--symbols",
        type=_comma_list,
        metavar="SYMBOL,...",
        help="feed symbols, e.g. Crypto.BTC/USD,Crypto.ETH/USD",
    )
    parent.add_argument(
        "--properties",
        type=_properties,
        default=list(DEFAULT_PROPERTIES),
        metavar="NAME,...",
        help=f"properties to ask for, wire or snake_case names (default: "
        f"{','.join(DEFAULT_PROPERTIES)}); keep 'exponent' to see real values",
    )
    parent.add_argument(
        "--channel",
        choices=[c.value for c in Channel],
        default=Channel.FIXED_RATE_200MS.value,
        help="update channel (default: %(default)s)",
    )
    parent.add_argument(
        "--formats",
        type=_formats,
        default=None,
        metavar="FORMAT,...",
        help="signed envelopes to include: solana, evm, leEcdsa, leUnsigned (default: "
        "none, or solana with --verify)",
    )
    if stream:
        parent.add_argument(
            "--delivery",
            choices=[d.value for d in DeliveryFormat],
            default=DeliveryFormat.JSON.value,
            help="JSON text frames or binary frames (default: %(default)s)",
        )
    parent.add_argument(
        "--verify",
        action="store_true",
        help="check the signature of every envelope (and that the shown values are the "
        "signed ones); report each failure on standard error and exit with status 5 if any",
    )
    parent.add_argument(
        "--trusted-signer",
        type=_trusted_signer,
        action="append",
        metavar="KEY",
        help="with --verify, accept only these signers (repeatable): an EVM address, a "
        "Solana Ed25519 key or a LeEcdsa compressed key in hex. Without it, --verify checks "
        "that signatures are valid and prints who signed",
    )
    parent.add_argument(
        "--output",
        choices=["table", "jsonl"],
        default="table",
        help="a readable table, or one JSON object per update (replayable with "
        "pylazer_sync.frames.read_jsonl) (default: %(default)s)",
    )
    return parent


def build_parser() -> argparse.ArgumentParser:
    """The ``pylazer-sync`` argument parser."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Stream, verify and record Pyth Lazer (Pyth Pro) prices; or try it all "
        "offline against local simulators with 'pylazer-sync demo'.",
        epilog=_EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common = _common_options()

    stream = commands.add_parser(
        "stream",
        parents=[common, _connection_options(), _subscription_options(stream=True)],
        help="print or record live updates",
        description="Subscribe on redundant connections and print each update once, as a "
        "table or as JSON lines, until --count updates, --seconds, or Ctrl-C.",
        epilog=_EPILOG,
    )
    stream.add_argument(
        "--connections",
        type=_positive_int,
        default=4,
        metavar="N",
        help="redundant connections, spread over the endpoints (default: %(default)s)",
    )
    stream.add_argument(
        "--count", type=_positive_int, metavar="N", help="exit 0 after N stream updates"
    )
    stream.add_argument(
        "--seconds", type=_positive_float, metavar="S", help="exit 0 after S seconds"
    )
    stream.add_argument(
        "--connect-timeout",
        type=_positive_float,
        default=30.0,
        metavar="SECONDS",
        help="give up (exit 4) if no connection opens in time (default: %(default)s)",
    )
    stream.add_argument(
        "--stats",
        action="store_true",
        help="print the client's statistics on standard error at the end",
    )

    demo = commands.add_parser(
        "demo",
        parents=[common],
        help="stream verified prices from local simulators (no token, no network)",
        description="Start local simulators as redundant endpoints, subscribe to BTC, ETH "
        "and SOL with signed envelopes, print a live table of signature-checked prices, "
        "then the statistics. Needs the 'simulator' extra.",
        epilog=_EPILOG,
    )
    demo.add_argument(
        "--seconds",
        type=_positive_float,
        default=5.0,
        metavar="S",
        help="how long to stream (default: %(default)s)",
    )
    demo.add_argument(
        "--simulators",
        type=_positive_int,
        default=3,
        metavar="N",
        help="simulators to start, one endpoint each (default: %(default)s)",
    )
    demo.add_argument(
        "--connections",
        type=_positive_int,
        default=4,
        metavar="N",
        help="client connections over those endpoints (default: %(default)s)",
    )
    demo.add_argument(
        "--seed", default="0", help="simulator seed: prices and keys (default: %(default)s)"
    )

    simulate = commands.add_parser(
        "simulate",
        help="run a local Lazer-compatible endpoint",
        description="Run a simulator until Ctrl-C (the same as 'python -m "
        "pylazer_sync.simulator'). It prints its URLs and signer identities.",
    )
    try:
        from .simulator.__main__ import add_arguments
    except MissingDependencyError:
        pass  # 'simulate' then fails with a clear message when run; --help stays usable
    else:
        add_arguments(simulate)

    symbols = commands.add_parser(
        "symbols",
        parents=[common, _connection_options(), _rest_options()],
        help="list the feeds catalogue (REST)",
        description="Ask the metadata service for feeds, filtered by text and asset type.",
        epilog=_EPILOG,
    )
    symbols.add_argument("--query", help="text to look for in symbol, name or description")
    symbols.add_argument("--asset-type", help="crypto, fx, equity, metal, ... ")
    symbols.add_argument(
        "--output",
        choices=["table", "jsonl"],
        default="table",
        help="a readable table, or one JSON object per feed (default: %(default)s)",
    )

    latest = commands.add_parser(
        "latest",
        parents=[
            common,
            _connection_options(),
            _rest_options(),
            _subscription_options(stream=False),
        ],
        help="the latest price of some feeds (REST)",
        description="One REST call for the latest update of the given feeds (or the update "
        "in force at --at), printed as for 'stream'.",
        epilog=_EPILOG,
    )
    latest.add_argument(
        "--at",
        type=_timestamp_us,
        metavar="TIME",
        help="the price at this time instead: microseconds since the epoch or ISO 8601",
    )
    return parser


# ---------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------

_HEADINGS: Final = {
    "price": "price",
    "best_bid_price": "bid",
    "best_ask_price": "ask",
    "publisher_count": "pubs",
    "exponent": "expo",
    "confidence": "conf",
    "funding_rate": "funding",
    "funding_timestamp": "funding_time",
    "funding_rate_interval": "funding_every",
    "market_session": "session",
    "ema_price": "ema",
    "ema_confidence": "ema_conf",
    "feed_update_timestamp": "updated",
}


def _width(attr: str) -> int:
    if attr in PRICE_LIKE_ATTRS:
        return 15
    if attr in ("feed_update_timestamp", "funding_timestamp", "funding_rate_interval"):
        return 25 if attr == "funding_timestamp" else 14
    return max(len(_HEADINGS[attr]), 5)


def _utc(timestamp_us: int) -> _dt.datetime:
    return _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc) + _dt.timedelta(
        microseconds=timestamp_us
    )


def _clock(timestamp_us: int | None) -> str:
    if timestamp_us is None:
        return "-"
    return _utc(timestamp_us).strftime("%H:%M:%S.%f")[:-3]


def _cell(feed: FeedUpdate, attr: str) -> str:
    value = getattr(feed, attr)
    if value is None:
        return "-"
    if attr in PRICE_LIKE_ATTRS:
        real = feed.real(attr)
        return str(value) if real is None else format(real, "f")
    if attr == "feed_update_timestamp":
        return _clock(value)
    if attr == "funding_timestamp":
        return _utc(value).isoformat(timespec="seconds")
    if attr == "funding_rate_interval":
        return str(_dt.timedelta(microseconds=value))
    return str(value)


class Table:
    """Rows of feed values under a header printed once; columns are the asked properties."""

    def __init__(
        self,
        out: TextIO,
        attrs: Sequence[str],
        names: dict[int, str] | None = None,
        extra: Sequence[str] = (),
    ) -> None:
        self._out = out
        self._attrs = list(attrs)
        self._names = names or {}
        self._extra = list(extra)
        self._header_done = False

    def _line(self, cells: Sequence[str]) -> str:
        time_cell, feed_cell, *values = cells
        n = len(self._attrs)
        parts = [f"{time_cell:<12}", f"{feed_cell:<16}"]
        parts += [f"{v:>{_width(a)}}" for a, v in zip(self._attrs, values[:n], strict=True)]
        parts += values[n:]
        return "  ".join(parts).rstrip()

    def header(self) -> None:
        """Print the header (once)."""
        if not self._header_done:
            self._header_done = True
            cells = ["time (UTC)", "feed", *(_HEADINGS[a] for a in self._attrs), *self._extra]
            print(self._line(cells), file=self._out, flush=True)

    def update(self, update: StreamUpdate, extra: Sequence[str] = ()) -> None:
        """One row per feed of an update (``extra`` cells after the values)."""
        self.header()
        clock = _clock(update.timestamp_us)
        lines = []
        for feed in update.feeds:
            name = self._names.get(feed.feed_id, str(feed.feed_id))
            cells = [clock, name, *(_cell(feed, a) for a in self._attrs), *extra]
            lines.append(self._line(cells))
        if lines:
            print("\n".join(lines), file=self._out, flush=True)


def _print_jsonl(out: TextIO, obj: Any) -> None:
    print(json.dumps(obj, separators=(",", ":")), file=out, flush=True)


# ---------------------------------------------------------------------------------
# Signature checks
# ---------------------------------------------------------------------------------


class Verifier:
    """Checks every signed envelope of an update and that the values shown are the signed ones.

    With trusted signers, a valid signature by anyone else fails, and so does a format
    for which no signer of its kind was given (stricter is safer than silent). Without,
    a Solana signature is checked against the key it carries and EVM/LeEcdsa signers are
    recovered: both are reported on standard error once, and again when they change.
    """

    def __init__(self, trusted: Iterable[tuple[str, bytes]] | None, report: TextIO) -> None:
        self.trusted: dict[str, list[bytes]] | None = None
        if trusted:
            self.trusted = {"solana": [], "evm": [], "leEcdsa": []}
            for kind, raw in trusted:
                self.trusted[kind].append(raw)
        self._report = report
        self.checked = 0
        self.failed = 0
        self._signers: dict[str, str] = {}

    def _trusted(self, kind: str) -> list[bytes] | None:
        return None if self.trusted is None else self.trusted[kind]

    def check(self, update: StreamUpdate) -> list[str]:
        """Verify one update; returns the failures (also counted and reported)."""
        failures: list[str] = []
        signers: dict[str, str] = {}
        shown = update.payload
        envelopes: list[tuple[str, Any]] = [
            ("solana", update.solana),
            ("evm", update.evm),
            ("leEcdsa", update.le_ecdsa),
        ]
        present = [(kind, env) for kind, env in envelopes if env is not None]
        if not present:
            failures.append("no signed envelope (subscribe with --formats solana,evm,leEcdsa)")
        for kind, envelope in present:
            try:
                signer = envelope.verify(trusted_signers=self._trusted(kind))
                signers[kind] = signer if isinstance(signer, str) else signer.hex()
                signed = envelope.decode_payload()
            except (SignatureError, ProtocolError) as exc:
                failures.append(f"{kind}: {exc}")
                continue
            if shown is not None and (
                signed.timestamp_us != shown.timestamp_us or signed.feeds != shown.feeds
            ):
                failures.append(f"{kind}: the signed payload differs from the values shown")
        self.checked += 1
        if failures:
            self.failed += 1
            print(
                f"verify: FAILED update at {_clock(update.timestamp_us)} "
                f"(subscription {update.subscription_id}): {'; '.join(failures)}",
                file=self._report,
                flush=True,
            )
        elif self.trusted is None and signers != self._signers:
            self._signers = signers
            who = ", ".join(f"{k} {v}" for k, v in signers.items())
            print(f"verify: valid signatures by {who}", file=self._report, flush=True)
        return failures

    def summary(self) -> str:
        """One line: how many updates were checked and how many failed."""
        mode = "against the trusted signers" if self.trusted is not None else "(validity only)"
        return f"verify: {self.checked} updates checked {mode}, {self.failed} failed"


# ---------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------


def _resolve_token(explicit: str | None, hosts: Iterable[str | None]) -> str:
    token = explicit if explicit else os.environ.get(TOKEN_ENV_VAR)
    if token:
        return token
    if all(h is not None and is_loopback(h) for h in hosts):
        return LOOPBACK_PLACEHOLDER_TOKEN
    raise CliError(f"no access token: set {TOKEN_ENV_VAR} (or pass --token)", EXIT_USAGE)


def _host(url: str) -> str | None:
    return urlsplit(url).hostname


def _request(args: argparse.Namespace, delivery: str = "json") -> SubscribeRequest:
    formats = args.formats
    if formats is None:
        formats = ["solana"] if args.verify else []
    if args.trusted_signer and not args.verify:
        raise CliError("--trusted-signer needs --verify", EXIT_USAGE)
    return SubscribeRequest(
        price_feed_ids=args.feeds,
        symbols=args.symbols,
        properties=args.properties,
        channel=args.channel,
        formats=formats,
        delivery_format=delivery,
    )


def _attrs(request: SubscribeRequest) -> list[str]:
    attrs = [PROPERTY_ATTRS[p] for p in request.properties]
    if Property.EXPONENT not in request.properties:
        print(
            "note: 'exponent' is not among the properties, so prices are raw mantissas",
            file=sys.stderr,
        )
    return attrs


def _cmd_stream(args: argparse.Namespace, log_gate: _LogGate) -> int:
    endpoints = args.endpoint or list(DEFAULT_ENDPOINTS)
    token = _resolve_token(args.token, (_host(e) for e in endpoints))
    request = _request(args, args.delivery)
    attrs = _attrs(request)
    verifier = Verifier(args.trusted_signer, sys.stderr) if args.verify else None
    table = Table(sys.stdout, attrs) if args.output == "table" else None
    client = LazerClient(
        token,
        endpoints=endpoints,
        num_connections=args.connections,
        start_timeout=args.connect_timeout,
    )
    received = 0
    try:
        client.start()
        log_gate.open()
        sub_id = client.subscribe(request)
        deadline = None if args.seconds is None else time.monotonic() + args.seconds
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
                _show_update(message, table, verifier)
            elif isinstance(message, SubscriptionError) and message.subscription_id == sub_id:
                raise CliError(f"the server refused the subscription: {message.error}", EXIT_USAGE)
            elif isinstance(message, ServerError):
                raise CliError(f"the server refused the request: {message.error}", EXIT_USAGE)
            elif isinstance(message, SubscribedWithIgnoredFeeds):
                print(f"note: some feeds were ignored: {message}", file=sys.stderr)
            elif isinstance(message, FrameError):
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


def _show_update(update: StreamUpdate, table: Table | None, verifier: Verifier | None) -> None:
    if verifier is not None:
        verifier.check(update)
    if table is not None:
        table.update(update)
    else:
        _print_jsonl(sys.stdout, update_to_jsonl_obj(update))


def _rest_client(args: argparse.Namespace) -> RestClient:
    if args.rest_url:
        rest_url = args.rest_url
    elif args.endpoint:
        rest_url = rest_url_for(args.endpoint[0])
    else:
        rest_url = DEFAULT_REST_URL
    if args.history_url:
        history_url = args.history_url
    elif args.rest_url or args.endpoint:
        history_url = rest_url
    else:
        history_url = DEFAULT_HISTORY_URL
    token = _resolve_token(args.token, (_host(rest_url), _host(history_url)))
    return RestClient(token, rest_url=rest_url, history_url=history_url, timeout=args.timeout)


def _cmd_symbols(args: argparse.Namespace) -> int:
    entries = _rest_client(args).symbols(args.query, args.asset_type)
    if args.output == "jsonl":
        for entry in entries:
            _print_jsonl(sys.stdout, dict(entry.raw))
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


def _cmd_latest(args: argparse.Namespace) -> int:
    rest = _rest_client(args)
    request = _request(args)
    attrs = _attrs(request)
    update = rest.latest_price(request) if args.at is None else rest.price(args.at, request)
    verifier = Verifier(args.trusted_signer, sys.stderr) if args.verify else None
    _show_update(update, Table(sys.stdout, attrs) if args.output == "table" else None, verifier)
    if verifier is not None:
        print(verifier.summary(), file=sys.stderr)
        if verifier.failed:
            return EXIT_SIGNATURE
    return EXIT_OK


def _cmd_simulate(argv: list[str]) -> int:
    # The simulator's own entry point, so both commands behave alike in every detail.
    from .simulator.__main__ import main as simulator_main

    return simulator_main(argv)


def _cmd_demo(args: argparse.Namespace, log_gate: _LogGate) -> int:
    from .simulator import Simulator

    seed: int | str = int(args.seed) if args.seed.lstrip("-").isdigit() else args.seed
    out = sys.stdout
    sims: list[Simulator] = []
    try:
        for _ in range(args.simulators):
            sims.append(Simulator(seed=seed).start())
        trusted = sims[0].trusted_signers()  # same seed, same keys: one set for all
        names = {f.feed_id: f.symbol for f in sims[0].catalogue if f.feed_id in DEMO_FEEDS}
        print(
            f"pylazer-sync demo: {len(sims)} local simulators (seed {args.seed}) as redundant "
            f"endpoints, {args.connections} connections, no token or network needed",
            file=out,
        )
        for sim in sims:
            print(f"  endpoint {sim.url}", file=out)
        print("  trusted signers (every signature must be by these):", file=out)
        for kind, identity in trusted.items():
            print(f"    {kind:<8} {identity}", file=out)
        verifier = Verifier(
            [_trusted_signer(identity) for identity in trusted.values()], sys.stderr
        )
        request = SubscribeRequest(
            price_feed_ids=DEMO_FEEDS,
            properties=DEFAULT_PROPERTIES,
            channel=Channel.FIXED_RATE_200MS,
            formats=DEMO_FORMATS,
            delivery_format=DeliveryFormat.BINARY,
        )
        # The exponent is asked for (real values need it) but not worth a column here.
        shown = [PROPERTY_ATTRS[p] for p in request.properties if p is not Property.EXPONENT]
        table = Table(out, shown, names, extra=["signatures"])
        client = LazerClient(
            LOOPBACK_PLACEHOLDER_TOKEN,
            endpoints=[s.url for s in sims],
            num_connections=args.connections,
            start_timeout=20.0,
        )
        with client:
            log_gate.open()
            client.subscribe(request)
            deadline = time.monotonic() + args.seconds
            updates = 0
            while (remaining := deadline - time.monotonic()) > 0:
                try:
                    message = client.recv(timeout=remaining)
                except RecvTimeout:
                    break
                if isinstance(message, StreamUpdate):
                    updates += 1
                    failures = verifier.check(message)
                    table.update(message, ["FAILED" if failures else "verified"])
                elif isinstance(message, SubscriptionError):
                    raise CliError(f"the simulator refused the subscription: {message.error}", 1)
            stats = client.stats()
        frames = "/".join(str(c["frames"]) for c in stats["connections"])
        print(
            f"stats: {updates} updates, {stats['unique']} unique frames, "
            f"{stats['duplicates']} duplicates dropped, frames per connection {frames}, "
            f"{verifier.checked - verifier.failed} of {verifier.checked} updates verified",
            file=out,
            flush=True,
        )
    finally:
        for sim in sims:
            sim.stop()
    if verifier.failed or updates == 0:
        return EXIT_SIGNATURE if verifier.failed else EXIT_FAILURE
    return EXIT_OK


# ---------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------


class _LogGate(logging.Filter):
    """Holds back the library's log lines until the client is connected.

    While starting, each refused or failed connection logs a line; the error that
    follows sums them all up, so showing both would bury the one line that matters.
    An explicit ``--log-level`` opens the gate from the start.
    """

    def __init__(self, is_open: bool) -> None:
        super().__init__()
        self._open = is_open

    def open(self) -> None:
        """Let log lines through from now on."""
        self._open = True

    def filter(self, record: logging.LogRecord) -> bool:
        return self._open


def _scrub(text: str, token: str | None) -> str:
    text = " ".join(text.split())  # one line, whatever the message held
    return text.replace(token, "***") if token else text


def _error(message: str, token: str | None) -> None:
    print(f"{PROG}: error: {_scrub(message, token)}", file=sys.stderr, flush=True)


def _exit_code(exc: LazerError) -> int:
    if isinstance(exc, AuthenticationError):
        return EXIT_AUTH
    if isinstance(exc, (ConnectError, RestError, ProtocolError)):
        return EXIT_CONNECT
    if isinstance(exc, InvalidRequestError):
        return EXIT_USAGE
    return EXIT_FAILURE


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (see :data:`EXIT_CODES`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.command == "simulate":
        try:
            return _cmd_simulate(argv[argv.index("simulate") + 1 :])
        except MissingDependencyError as exc:
            _error(str(exc), None)
            return EXIT_FAILURE
    gate = _LogGate(is_open=args.log_level is not None)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{PROG}: %(levelname)s: %(message)s"))
    handler.addFilter(gate)
    root = logging.getLogger("pylazer_sync")
    root.addHandler(handler)
    root.setLevel(args.log_level or logging.WARNING)
    token = getattr(args, "token", None) or os.environ.get(TOKEN_ENV_VAR)
    try:
        if args.command == "stream":
            return _cmd_stream(args, gate)
        if args.command == "demo":
            return _cmd_demo(args, gate)
        if args.command == "symbols":
            return _cmd_symbols(args)
        return _cmd_latest(args)
    except CliError as exc:
        _error(str(exc), token)
        return exc.code
    except LazerError as exc:
        _error(str(exc), token)
        return _exit_code(exc)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (``| head``): not an error worth a traceback.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILURE
    except OSError as exc:  # e.g. the demo's simulators could not bind a port
        _error(f"{type(exc).__name__}: {exc}", token)
        return EXIT_FAILURE
    finally:
        root.removeHandler(handler)
