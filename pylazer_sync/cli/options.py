"""The option groups several commands share, and what turns them into library objects.

Each group is a parent parser (``parents=[...]`` in ``add_parser``), so an option is
spelled, defaulted and documented once for every command that takes it.
"""

from __future__ import annotations

import argparse
import os
from typing import Any, Final, Literal, TypedDict

from ..config import (
    DEFAULT_API_URL,
    DEFAULT_ENDPOINTS,
    DEFAULT_HISTORY_URL,
    TOKEN_ENV_VAR,
    resolve_token,  # the library's one token rule, shared with the command line
    rest_urls,
)
from ..protocol import Channel, DeliveryFormat, SubscribeRequest
from ..rest import RestClient
from . import argtypes
from .exits import EXIT_USAGE, CliError, Parser

DEFAULT_PROPERTIES: Final = (
    "price",
    "bestBidPrice",
    "bestAskPrice",
    "exponent",
    "confidence",
    "publisherCount",
)


def common_options() -> Parser:
    """Options of every command that uses the library: ``--log-level``."""
    parent = Parser(add_help=False)
    parent.add_argument(
        "--log-level",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        default=None,
        help="show the library's log lines from this level on (default: warnings, once "
        "connected; start-up failures are summed up in the error line instead)",
    )
    return parent


def connection_options() -> Parser:
    """Where to connect and with what token: ``--endpoint``, ``--token``."""
    parent = Parser(add_help=False)
    parent.add_argument(
        "--endpoint",
        action="append",
        type=argtypes.stream_url,
        metavar="URL",
        help="stream endpoint, repeatable (default: the three production endpoints); "
        "REST calls go to their hosts and ports, failed over in turn",
    )
    parent.add_argument(
        "--token",
        default=None,
        help=f"access token (default: ${TOKEN_ENV_VAR}, which is safer: a command line "
        "is visible to other users of the machine). Not needed when every endpoint is "
        "on this machine",
    )
    return parent


def client_options() -> Parser:
    """How the client connects: ``--connections``, ``--connect-timeout``."""
    parent = Parser(add_help=False)
    parent.add_argument(
        "--connections",
        type=argtypes.positive_int,
        default=4,
        metavar="N",
        help="redundant connections, spread over the endpoints (default: %(default)s)",
    )
    parent.add_argument(
        "--connect-timeout",
        type=argtypes.positive_float,
        default=30.0,
        metavar="SECONDS",
        help="give up (exit 4) if no connection opens in time (default: %(default)s)",
    )
    return parent


def rest_options() -> Parser:
    """Where the REST calls go: ``--rest-url``, ``--api-url``, ``--history-url`` (each
    repeatable: failed over in turn), ``--timeout``."""
    parent = Parser(add_help=False)
    parent.add_argument(
        "--rest-url",
        action="append",
        type=argtypes.http_url,
        metavar="URL",
        help="base URL of the price REST calls, repeatable (default: the --endpoint hosts "
        "and ports, else the three production hosts)",
    )
    parent.add_argument(
        "--api-url",
        action="append",
        type=argtypes.http_url,
        metavar="URL",
        help=f"base URL of the feeds catalogue, /v1/symbols, repeatable (default: "
        f"--history-url if given, else the --endpoint hosts, else {DEFAULT_API_URL})",
    )
    parent.add_argument(
        "--history-url",
        action="append",
        type=argtypes.http_url,
        metavar="URL",
        help=f"base URL of the history service (OHLC bars, state, the catalogue's old "
        f"location), repeatable (default: the --endpoint hosts and ports, else "
        f"{DEFAULT_HISTORY_URL})",
    )
    parent.add_argument(
        "--timeout",
        type=argtypes.positive_float,
        default=10.0,
        metavar="SECONDS",
        help="timeout of each REST attempt (default: %(default)s)",
    )
    return parent


def subscription_options(stream: bool, show: bool = True, required: bool = True) -> Parser:
    """What to ask for and (``show``) how to show it (``stream`` adds ``--delivery``).
    ``required=False`` leaves checking for ``--feeds``/``--symbols`` to the command
    (``stream --from-redis`` needs neither)."""
    parent = Parser(add_help=False)
    which = parent.add_mutually_exclusive_group(required=required)
    which.add_argument(
        "--feeds",
        type=argtypes.feed_ids,
        metavar="ID,ID",
        help="feed ids, e.g. 1,2 (see 'symbols')",
    )
    which.add_argument(
        "--symbols",
        type=argtypes.comma_list,
        metavar="SYMBOL,...",
        help="feed symbols, e.g. Crypto.BTC/USD,Crypto.ETH/USD",
    )
    parent.add_argument(
        "--properties",
        type=argtypes.properties,
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
        type=argtypes.formats,
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
    if show:
        show_options(parent)
    return parent


def show_options(parent: Parser) -> None:
    """How to show what arrives: ``--verify``, ``--trusted-signer``, ``--output``."""
    parent.add_argument(
        "--verify",
        action="store_true",
        help="check the signature of every envelope (and that the shown values are the "
        "signed ones); report each failure on standard error and exit with status 5 if any",
    )
    parent.add_argument(
        "--trusted-signer",
        type=argtypes.trusted_signer,
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


def subscribe_request(args: argparse.Namespace, delivery: str = "json") -> SubscribeRequest:
    """The request the subscription options describe."""
    formats = args.formats
    verify = getattr(args, "verify", False)
    if formats is None:
        formats = ["solana"] if verify else []
    if getattr(args, "trusted_signer", None) and not verify:
        raise CliError("--trusted-signer needs --verify", EXIT_USAGE)
    return SubscribeRequest(
        price_feed_ids=args.feeds,
        symbols=args.symbols,
        properties=args.properties,
        channel=args.channel,
        formats=formats,
        delivery_format=delivery,
    )


def _env_token() -> str | None:
    return os.environ.get(TOKEN_ENV_VAR) or None


def rest_client(
    args: argparse.Namespace, calls: Literal["prices", "catalogue", "history"], **settings: Any
) -> RestClient:
    """The REST client the connection and REST options describe, by the library's rules:
    the URLs a ``LazerClient`` of those endpoints derives, and a token needed unless every
    URL of the ``calls`` made is on this machine. ``settings``: more ``RestClient``
    keywords (the symbols cache)."""
    endpoints = args.endpoint or DEFAULT_ENDPOINTS
    rest, api, history = rest_urls(endpoints, args.rest_url, args.history_url, args.api_url)
    used = {"prices": rest, "catalogue": api + history, "history": history}[calls]
    if calls == "history":  # the history service serves bars without a token
        token = resolve_token(args.token, list(used)) if args.token or _env_token() else None
    else:
        token = resolve_token(args.token, list(used))
    return RestClient(
        token, rest_url=rest, history_url=history, api_url=api, timeout=args.timeout, **settings
    )


REDIS_PASSWORD_ENV_VAR: Final = "PYLAZER_REDIS_PASSWORD"


def redis_options(url_option: str, url_default: str | None) -> Parser:
    """Which Redis stream (``relay``, ``stream --from-redis``): the URL option, ``--stream``,
    ``--redis-user``, ``--redis-ca-file``; the password comes from the URL or from
    ``$PYLAZER_REDIS_PASSWORD`` (a command line is visible to other users)."""
    from ..relay.store import DEFAULT_STREAM  # no redis import: the store module is neutral

    parent = Parser(add_help=False)
    parent.add_argument(
        url_option,
        default=url_default,
        metavar="URL",
        help="Redis: redis://HOST:PORT/DB, rediss:// (TLS) or unix:///PATH"
        + (" (default: %(default)s)" if url_default else "")
        + f"; the password from ${REDIS_PASSWORD_ENV_VAR} or the URL",
    )
    parent.add_argument(
        "--stream",
        default=DEFAULT_STREAM,
        metavar="NAME",
        help="the Redis stream key (default: %(default)s)",
    )
    parent.add_argument("--redis-user", metavar="USER", help="Redis ACL user (or in the URL)")
    parent.add_argument(
        "--redis-ca-file",
        metavar="PATH",
        help="CA certificates to verify a rediss:// server with (default: the system's)",
    )
    return parent


class RedisSettings(TypedDict):
    redis_password: str | None
    redis_username: str | None
    redis_ca_file: str | None


def redis_settings(args: argparse.Namespace) -> RedisSettings:
    """The Redis keywords of ``Relay`` and ``RelayConsumer`` from the options above."""
    return {
        "redis_password": os.environ.get(REDIS_PASSWORD_ENV_VAR) or None,
        "redis_username": args.redis_user,
        "redis_ca_file": args.redis_ca_file,
    }
