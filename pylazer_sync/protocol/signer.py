"""Making signed envelopes: what the simulator and the tests sign with (extra ``verify``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from . import crypto
from .envelopes import EvmMessage, LeEcdsaMessage, SolanaMessage


@dataclass(frozen=True)
class Signer:
    """A Lazer-like signer: one Ed25519 key (Solana) and one secp256k1 key (EVM, LeEcdsa).

    Signatures are deterministic (Ed25519 by design, ECDSA with RFC 6979 nonces), so two
    signers built from the same seed produce byte-identical envelopes.
    """

    ed25519_private_key: bytes = field(repr=False)
    secp256k1_private_key: bytes = field(repr=False)

    @classmethod
    def from_seed(cls, seed: int | bytes | str) -> Signer:
        """Keys derived from a seed with SHA-256: for simulators and tests, never for real use."""
        raw = seed if isinstance(seed, bytes) else str(seed).encode()
        return cls(crypto.derive_key(raw, "ed25519"), crypto.derive_key(raw, "secp256k1"))

    @property
    def solana_public_key(self) -> bytes:
        """The 32-byte Ed25519 public key carried in Solana envelopes."""
        return crypto.ed25519_public_key(self.ed25519_private_key)

    @property
    def evm_address(self) -> str:
        """The Ethereum address (lowercase ``0x...``) that EVM signatures recover to."""
        return crypto.evm_address(
            crypto.secp256k1_public_key(self.secp256k1_private_key, compressed=False)
        )

    @property
    def le_ecdsa_public_key(self) -> bytes:
        """The 33-byte compressed secp256k1 key that LeEcdsa signatures recover to."""
        return crypto.secp256k1_public_key(self.secp256k1_private_key, compressed=True)

    def sign_solana(self, payload: bytes) -> SolanaMessage:
        """A Solana envelope over a little-endian payload."""
        return SolanaMessage(
            crypto.ed25519_sign(self.ed25519_private_key, payload), self.solana_public_key, payload
        )

    def sign_evm(self, payload: bytes) -> EvmMessage:
        """An EVM envelope over a big-endian payload."""
        signature, recovery_id = crypto.secp256k1_sign(self.secp256k1_private_key, payload)
        return EvmMessage(signature, recovery_id, payload)

    def sign_le_ecdsa(self, payload: bytes) -> LeEcdsaMessage:
        """A LeEcdsa envelope over a little-endian payload."""
        signature, recovery_id = crypto.secp256k1_sign(self.secp256k1_private_key, payload)
        return LeEcdsaMessage(signature, recovery_id, payload)
