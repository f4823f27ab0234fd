"""``pylazer-sync demo``: local simulators as redundant endpoints, verified prices, stats."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, Final

from ..client import LazerClient
from ..errors import RecvTimeout
from ..protocol import (
    Channel,
    DeliveryFormat,
    Property,
    StreamUpdate,
    SubscribeRequest,
    SubscriptionError,
)
from ..protocol.types import PROPERTY_ATTRS
from . import argtypes
from .command import Command, Context, Subcommands
from .exits import EPILOG, EXIT_FAILURE, EXIT_OK, EXIT_SIGNATURE, CliError
from .options import DEFAULT_PROPERTIES, common_options
from .output import Table
from .verify import Verifier

if TYPE_CHECKING:
    from ..simulator import Simulator

DEMO_FEEDS: Final = (1, 2, 6)  # BTC, ETH and SOL in the simulator's catalogue
DEMO_FORMATS: Final = ("solana", "evm", "leEcdsa")


def register(commands: Subcommands) -> None:
    """Add ``demo`` and its options."""
    parser = commands.add_parser(
        "demo",
        parents=[common_options()],
        help="stream verified prices from local simulators (no token, no network)",
        description="Start local simulators as redundant endpoints, subscribe to BTC, ETH "
        "and SOL with signed envelopes, print a live table of signature-checked prices, "
        "then the statistics. Needs the 'simulator' extra.",
        epilog=EPILOG,
    )
    parser.add_argument(
        "--seconds",
        type=argtypes.positive_float,
        default=5.0,
        metavar="S",
        help="how long to stream (default: %(default)s)",
    )
    parser.add_argument(
        "--simulators",
        type=argtypes.positive_int,
        default=3,
        metavar="N",
        help="simulators to start, one endpoint each (default: %(default)s)",
    )
    parser.add_argument(
        "--connections",
        type=argtypes.positive_int,
        default=4,
        metavar="N",
        help="client connections over those endpoints (default: %(default)s)",
    )
    parser.add_argument(
        "--seed", default="0", help="simulator seed: prices and keys (default: %(default)s)"
    )


def run(args: argparse.Namespace, ctx: Context) -> int:
    """Start the simulators, stream for ``--seconds``, print the statistics."""
    from ..simulator import Simulator

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
            [argtypes.trusted_signer(identity) for identity in trusted.values()], sys.stderr
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
            endpoints=[s.url for s in sims],  # on this machine: no token needed
            num_connections=args.connections,
            start_timeout=20.0,
        )
        with client:
            ctx.connected()
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
                    raise CliError(
                        f"the simulator refused the subscription: {message.error}", EXIT_FAILURE
                    )
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


COMMAND = Command("demo", register, run)
