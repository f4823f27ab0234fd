"""Cryptography for the signed envelopes, on well-kept libraries (extra ``verify``).

- Ed25519 (Solana envelopes): ``cryptography``.
- secp256k1 ECDSA with public-key recovery (EVM and LeEcdsa envelopes): ``coincurve``
  (bindings to libsecp256k1, the library Bitcoin and Ethereum clients use).
- Keccak-256, the original Keccak padding Ethereum uses (not ``hashlib.sha3_256``):
  ``pycryptodome``.

The imports are lazy so the stream client works without the extra; a missing library
raises :class:`~pylazer_sync.errors.MissingDependencyError` naming the extra.
"""

from __future__ import annotations

import hashlib
from typing import Any

from ..errors import MissingDependencyError, SignatureError

_EXTRA_HINT = "install it with: pip install 'pylazer-sync[verify]'"


def _missing(library: str, exc: ImportError) -> MissingDependencyError:
    return MissingDependencyError(f"signature support needs the {library} library; {_EXTRA_HINT}")


def keccak256(data: bytes) -> bytes:
    """Keccak-256 digest as used by Ethereum (original Keccak padding, not FIPS SHA3)."""
    try:
        from Crypto.Hash import keccak
    except ImportError as exc:
        raise _missing("pycryptodome", exc) from exc
    digest: bytes = keccak.new(digest_bits=256, data=data).digest()
    return digest


def _coincurve() -> Any:
    try:
        import coincurve
    except ImportError as exc:
        raise _missing("coincurve", exc) from exc
    return coincurve


def _ed25519() -> Any:
    try:
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError as exc:
        raise _missing("cryptography", exc) from exc
    return ed25519


def ed25519_verify(public_key: bytes, signature: bytes, message: bytes) -> None:
    """Raise :class:`SignatureError` unless ``signature`` is ``public_key``'s over ``message``."""
    ed25519 = _ed25519()
    from cryptography.exceptions import InvalidSignature

    try:
        ed25519.Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except InvalidSignature:
        raise SignatureError(
            "Ed25519 signature does not match the payload and public key"
        ) from None
    except ValueError as exc:
        raise SignatureError(f"malformed Ed25519 public key: {exc}") from None


def ed25519_public_key(private_key: bytes) -> bytes:
    """The 32-byte public key of a 32-byte Ed25519 private key (seed)."""
    from cryptography.hazmat.primitives import serialization

    key = _ed25519().Ed25519PrivateKey.from_private_bytes(private_key)
    raw: bytes = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return raw


def ed25519_private_key(private_key: bytes) -> Any:
    """The ``cryptography`` key object of a 32-byte Ed25519 private key (seed)."""
    return _ed25519().Ed25519PrivateKey.from_private_bytes(private_key)


def secp256k1_private_key(private_key: bytes) -> Any:
    """The ``coincurve`` key object of a 32-byte secp256k1 private key."""
    return _coincurve().PrivateKey(private_key)


def ed25519_sign(private_key: bytes, message: bytes) -> bytes:
    """A 64-byte Ed25519 signature (deterministic by construction of Ed25519)."""
    signature: bytes = _ed25519().Ed25519PrivateKey.from_private_bytes(private_key).sign(message)
    return signature


def secp256k1_recover(signature: bytes, recovery_id: int, message: bytes) -> Any:
    """Recover the coincurve ``PublicKey`` that signed Keccak-256(``message``).

    ``recovery_id`` is 0 or 1; 27 and 28 (the offset Ethereum contracts add) are
    accepted too. Raises :class:`SignatureError` when no key can be recovered.
    """
    if recovery_id >= 27:
        recovery_id -= 27
    if recovery_id not in (0, 1, 2, 3):
        raise SignatureError(f"recovery id {recovery_id} is not 0..3 (or 27..30)")
    coincurve = _coincurve()
    digest = keccak256(message)
    try:
        return coincurve.PublicKey.from_signature_and_message(
            signature + bytes((recovery_id,)), digest, hasher=None
        )
    except Exception as exc:  # coincurve raises plain Exception/ValueError on bad input
        raise SignatureError(f"no secp256k1 public key can be recovered: {exc}") from None


def secp256k1_sign(private_key: bytes, message: bytes) -> tuple[bytes, int]:
    """Sign Keccak-256(``message``); returns (64-byte r||s, recovery id 0/1).

    libsecp256k1 uses RFC 6979 nonces, so the signature is deterministic: two
    simulators with the same key produce byte-identical envelopes.
    """
    coincurve = _coincurve()
    raw: bytes = coincurve.PrivateKey(private_key).sign_recoverable(keccak256(message), hasher=None)
    return raw[:64], raw[64]


def secp256k1_public_key(private_key: bytes, compressed: bool = True) -> bytes:
    """The public key of a 32-byte secp256k1 private key (33 bytes compressed, else 65)."""
    key: bytes = _coincurve().PrivateKey(private_key).public_key.format(compressed=compressed)
    return key


def evm_address(uncompressed_public_key: bytes) -> str:
    """Ethereum address (lowercase ``0x...``) of a 65-byte uncompressed public key."""
    return "0x" + keccak256(uncompressed_public_key[1:])[-20:].hex()


def derive_key(seed: bytes, label: str) -> bytes:
    """A 32-byte private key derived from a seed, for the simulator and tests only."""
    return hashlib.sha256(label.encode() + b"\x00" + seed).digest()
