"""Keep the newest EVM-signed update, check it, and print the calldata for a contract call.

    python examples/keeper.py --simulator --count 3           # local simulator and its key
    PYTH_LAZER_TOKEN=... python examples/keeper.py --trusted-evm 0xSIGNER --max-age 2

A keeper (a bot that pushes prices on chain) needs one thing at the moment it acts: the
newest *signed* update. ``client.latest_update(subscription)`` keeps it, without reading
the queue (``snapshot_only=True``: nothing queues at all). Before use, two checks: the
EVM signature recovers to a trusted signer, and the update is younger than ``--max-age``
(an old signed price is still validly signed). The calldata printed is the EVM envelope's
bytes, as the Pyth Lazer contract's ``verifyUpdate(bytes)`` takes them.

Every ``--interval`` seconds it checks the newest update; ``--count N`` stops after N
checks. Exits 1 if any check refused its update. Needs the ``verify`` extra
(``simulator`` includes it).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time

import pylazer_sync as pl


def check(update: pl.StreamUpdate, trusted: list[str], max_age_s: float) -> str:
    """The calldata of an update that passes both checks; raises ValueError otherwise."""
    if update.evm is None or update.timestamp_us is None:
        raise ValueError("no EVM envelope")
    signer = update.evm.verify(trusted_signers=trusted)  # SignatureError if untrusted
    age_s = time.time() - update.timestamp_us / 1e6
    if age_s > max_age_s:
        raise ValueError(f"stale: {age_s:.3f} s old (bound {max_age_s} s), signer {signer}")
    return "0x" + update.evm.encode().hex()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", action="append", help="stream URL (default: production)")
    parser.add_argument("--feeds", default="1,2", help="feed ids (default: %(default)s)")
    parser.add_argument("--trusted-evm", action="append", help="trusted signer address, 0x hex")
    parser.add_argument("--max-age", type=float, default=5.0, help="seconds (default: 5)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between checks")
    parser.add_argument("--count", type=int, default=None, help="checks to make (default: all)")
    parser.add_argument("--simulator", action="store_true", help="start a local simulator")
    args = parser.parse_args()

    refused = checks = 0
    try:
        with contextlib.ExitStack() as stack:
            endpoints, token, trusted = args.endpoint, None, args.trusted_evm or []
            if args.simulator:
                from pylazer_sync.simulator import Simulator

                sim = stack.enter_context(Simulator(seed=1))
                endpoints, token = [sim.url], "local"
                trusted = trusted or [sim.trusted_signers()["evm"]]
            if not trusted:
                parser.error("--trusted-evm is required (or --simulator)")
            client = stack.enter_context(
                pl.LazerClient(token, endpoints=endpoints, snapshot_only=True)
            )
            subscription = client.subscribe(
                price_feed_ids=[int(f) for f in args.feeds.split(",")],
                properties=["price", "exponent"],
                channel="fixed_rate@200ms",
                formats=["evm"],
                delivery_format="binary",
                parsed=False,  # only the signed payload
            )
            deadline = time.monotonic() + 30.0
            while client.latest_update(subscription) is None:  # the first update
                if time.monotonic() > deadline:
                    raise pl.ConnectError("no update within 30 s")
                time.sleep(0.05)
            while args.count is None or checks < args.count:
                update = client.latest_update(subscription)
                assert update is not None
                checks += 1
                try:
                    calldata = check(update, trusted, args.max_age)
                except (ValueError, pl.SignatureError) as exc:
                    refused += 1
                    print(f"REFUSED {update.timestamp_us}: {exc}", flush=True)
                else:
                    prices = ", ".join(f"{f.feed_id}: {f.real('price')}" for f in update.feeds)
                    print(f"ok {update.timestamp_us}  {prices}", flush=True)
                    print(f"  calldata {calldata}", flush=True)
                if args.count is None or checks < args.count:
                    time.sleep(args.interval)
            print(f"{checks} checks, {refused} refused", file=sys.stderr)
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    except pl.LazerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 1 if refused else 0


if __name__ == "__main__":
    sys.exit(main())
