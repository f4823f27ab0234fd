"""``--verify``: every signed envelope checked, and the values shown checked to be the signed ones."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TextIO

from ..errors import ProtocolError, SignatureError
from ..protocol import StreamUpdate
from .output import clock


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
                signers[kind] = str(envelope.verify(trusted_signers=self._trusted(kind)))
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
                f"verify: FAILED update at {clock(update.timestamp_us)} "
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
