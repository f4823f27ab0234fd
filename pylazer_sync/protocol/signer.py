"""Making signed envelopes: what the simulator and the tests sign with (extra ``verify``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from . import crypto
from .envelopes import EvmMessage, LeEcdsaMessage, SolanaMessage


@dataclass(frozen=True)
class Signer:
    """A Lazer-like signer: one Ed25519 key (Solana) and one secp256k1 key (EVM, LeEcdsa).

    Signatures are deterministic (Ed25519 by design, ECDSA with RFC 6979 nonces), so two
    signers built from the same seed produce byte-identical envelopes. The key objects and
    public identities are built once, on first use: rebuilding them per signature tripled
    the cost of signing, which the simulator pays once per tick, shape and format.
    """

    ed25519_private_key: bytes = field(repr=False)
    secp256k1_private_key: bytes = field(repr=False)

    @classmethod
    def from_seed(cls, seed: int | bytes | str) -> Signer:
        """Keys derived from a seed with SHA-256: for simulators and tests, never for real use."""
        raw = seed if isinstance(seed, bytes) else str(seed).encode()
        return cls(crypto.derive_key(raw, "ed25519"), crypto.derive_key(raw, "secp256k1"))

    @cached_property
    def _ed25519(self) -> Any:
        return crypto.ed25519_private_key(self.ed25519_private_key)

    @cached_property
    def _secp256k1(self) -> Any:
        return crypto.secp256k1_private_key(self.secp256k1_private_key)

    @cached_property
    def solana_public_key(self) -> bytes:
        """The 32-byte Ed25519 public key carried in Solana envelopes."""
        return crypto.ed25519_public_key(self.ed25519_private_key)

    @cached_property
    def evm_address(self) -> str:
        """The Ethereum address (lowercase ``0x...``) that EVM signatures recover to."""
        return crypto.evm_address(
            crypto.secp256k1_public_key(self.secp256k1_private_key, compressed=False)
        )

    @cached_property
    def le_ecdsa_public_key(self) -> bytes:
        """The 33-byte compressed secp256k1 key that LeEcdsa signatures recover to."""
        return crypto.secp256k1_public_key(self.secp256k1_private_key, compressed=True)

    def _ecdsa(self, payload: bytes) -> tuple[bytes, int]:
        raw: bytes = self._secp256k1.sign_recoverable(crypto.keccak256(payload), hasher=None)
        return raw[:64], raw[64]

    def sign_solana(self, payload: bytes) -> SolanaMessage:
        """A Solana envelope over a little-endian payload."""
        return SolanaMessage(self._ed25519.sign(payload), self.solana_public_key, payload)

    def sign_evm(self, payload: bytes) -> EvmMessage:
        """An EVM envelope over a big-endian payload."""
        return EvmMessage(*self._ecdsa(payload), payload)

    def sign_le_ecdsa(self, payload: bytes) -> LeEcdsaMessage:
        """A LeEcdsa envelope over a little-endian payload."""
        return LeEcdsaMessage(*self._ecdsa(payload), payload)
