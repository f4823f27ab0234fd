"""Check the signature of every update before trusting its prices.

    python examples/verify_signatures.py --simulator     # local simulator and its keys
    PYTH_LAZER_TOKEN=... python examples/verify_signatures.py --trusted-solana KEY_HEX

Each update carries three signed envelopes of the same payload: Solana (Ed25519), EVM
and LeEcdsa (secp256k1 over Keccak-256). ``verify(trusted_signers=...)`` raises
``SignatureError`` for a bad signature or a signer that is not trusted; the prices are
then read from the signed payload itself, so nothing unsigned is printed. Without
trusted signers only validity is checked and the signers are printed. Exits 1 if any
update failed. Needs the ``verify`` extra (``simulator`` includes it).
"""

from __future__ import annotations

import argparse
import contextlib
import sys

import pylazer_sync as pl


def feed_ids(text: str) -> list[int]:
    """``1,2`` -> ``[1, 2]``; anything else is a one-line usage error, not a traceback."""
    try:
        ids = [int(item) for item in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected feed ids like 1,2, got {text!r}") from None
    if any(not 0 <= i < 2**32 for i in ids):
        raise argparse.ArgumentTypeError(f"feed ids are integers from 0 to 2**32 - 1: {text!r}")
    return ids


def positive_int(text: str) -> int:
    """An integer >= 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return int(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", action="append", help="stream URL (default: production)")
    parser.add_argument(
        "--feeds", type=feed_ids, default="1,2", help="feed ids (default: %(default)s)"
    )
    parser.add_argument(
        "--count", type=positive_int, default=10, help="updates to check (default: 10)"
    )
    parser.add_argument("--simulator", action="store_true", help="start a local simulator")
    parser.add_argument("--trusted-solana", action="append", help="Ed25519 public key, hex")
    parser.add_argument("--trusted-evm", action="append", help="EVM address, 0x hex")
    parser.add_argument("--trusted-le-ecdsa", action="append", help="compressed key, hex")
    args = parser.parse_args()

    failures = 0
    try:
        with contextlib.ExitStack() as stack:
            endpoints = args.endpoint  # None: the production endpoints
            trusted = {
                "solana": args.trusted_solana,
                "evm": args.trusted_evm,
                "leEcdsa": args.trusted_le_ecdsa,
            }
            if args.simulator:
                from pylazer_sync.simulator import Simulator

                sim = stack.enter_context(Simulator(seed=1))
                endpoints = [sim.url]
                for kind, identity in sim.trusted_signers().items():
                    trusted[kind] = trusted[kind] or [identity]
            # The token comes from PYTH_LAZER_TOKEN; endpoints on this machine need none.
            client = stack.enter_context(pl.LazerClient(endpoints=endpoints))
            client.subscribe(
                price_feed_ids=args.feeds,
                properties=["price", "exponent"],
                formats=["solana", "evm", "leEcdsa"],
                delivery_format="binary",
                parsed=False,  # no unsigned copy of the values: read them from the envelope
            )
            checked = 0
            while checked < args.count:
                message = client.recv(timeout=30.0)
                if not isinstance(message, pl.StreamUpdate):
                    continue
                checked += 1
                signed = message.solana
                try:
                    if signed is None or message.evm is None or message.le_ecdsa is None:
                        raise pl.SignatureError("an envelope is missing")
                    solana = signed.verify(trusted_signers=trusted["solana"])
                    evm = message.evm.verify(trusted_signers=trusted["evm"])
                    le_ecdsa = message.le_ecdsa.verify(trusted_signers=trusted["leEcdsa"])
                except pl.SignatureError as exc:
                    failures += 1
                    print(f"FAILED {message.timestamp_us}: {exc}", flush=True)
                    continue
                payload = signed.decode_payload()  # the signed values
                prices = ", ".join(f"{f.feed_id}: {f.real('price')}" for f in payload.feeds)
                print(f"ok {payload.timestamp_us}  {prices}", flush=True)
                if checked == 1:
                    print(f"  signers: solana {solana}, evm {evm}, leEcdsa {le_ecdsa}")
            print(f"{checked} updates checked, {failures} failed", file=sys.stderr)
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    except pl.LazerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
