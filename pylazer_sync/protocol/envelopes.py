"""The binary envelopes that carry a payload: EVM, Solana, LeEcdsa, LeUnsigned and JSON.

Each envelope keeps its raw ``payload`` bytes (what was signed) and decodes them on
request with :meth:`decode_payload`. The signed envelopes check their signature with
``verify()`` (extra ``verify``); with ``trusted_signers`` given, a valid signature by
anyone else is refused too.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, TypeAlias

from ..errors import InvalidRequestError, ProtocolError, SignatureError
from . import crypto
from .payload import Payload, decode_payload, payload_from_json_obj, payload_to_json_obj
from .typed_json import fast_payload

EVM_MAGIC: Final = 2593727018
SOLANA_MAGIC: Final = 2182742457
LE_ECDSA_MAGIC: Final = 1296547300
LE_UNSIGNED_MAGIC: Final = 1499680012
JSON_MAGIC: Final = 3302625434

_U32_LE = struct.Struct("<I")
_U16_LE = struct.Struct("<H")
_U16_BE = struct.Struct(">H")


def _hex_or_bytes(value: bytes | str, size: int | None, what: str) -> bytes:
    try:
        if isinstance(value, str):
            text = value[2:] if value[:2] in ("0x", "0X") else value
            raw = bytes.fromhex(text)
        else:
            raw = bytes(value)
    except (TypeError, ValueError):
        raise InvalidRequestError(
            f"trusted_signers: {value!r:.80} is not {what} (bytes or hex)"
        ) from None
    if size is not None and len(raw) != size:
        raise InvalidRequestError(f"trusted_signers: {what} must be {size} bytes, got {len(raw)}")
    return raw


def _trusted_bytes(signers: Iterable[bytes | str], size: int, what: str) -> frozenset[bytes]:
    if isinstance(signers, (bytes, str)):
        signers = [signers]
    return frozenset(_hex_or_bytes(s, size, what) for s in signers)


@dataclass(frozen=True, slots=True)
class SolanaMessage:
    """Ed25519-signed envelope; payload in little-endian order."""

    signature: bytes
    public_key: bytes
    payload: bytes

    def decode_payload(self) -> Payload:
        """Decode the signed payload (little-endian)."""
        return decode_payload(self.payload, "little")

    def verify(self, trusted_signers: Iterable[bytes | str] | None = None) -> str:
        """Check the Ed25519 signature and return the signer: its public key in lowercase hex.

        Every ``verify()`` returns its signer in the form ``Simulator.trusted_signers()``
        and the README show (Solana: 64 hex digits), so signers of all formats compare
        with ``==`` against the same strings. Raises :class:`SignatureError` if the
        signature is invalid, or if ``trusted_signers`` (public keys as bytes or hex) is
        given and the key is not in it.
        """
        crypto.ed25519_verify(self.public_key, self.signature, self.payload)
        if trusted_signers is not None and self.public_key not in _trusted_bytes(
            trusted_signers, 32, "an Ed25519 public key"
        ):
            raise SignatureError(f"valid Solana signature by untrusted key {self.public_key.hex()}")
        return self.public_key.hex()

    def encode(self) -> bytes:
        """The envelope's bytes: magic, signature, public key, u16 LE length, payload."""
        _check_sizes(self.signature, 64, "signature")
        _check_sizes(self.public_key, 32, "public_key")
        return (
            _U32_LE.pack(SOLANA_MAGIC)
            + self.signature
            + self.public_key
            + _payload_len(self.payload, _U16_LE)
            + self.payload
        )


@dataclass(frozen=True, slots=True)
class EvmMessage:
    """secp256k1-signed envelope over Keccak-256(payload); payload in big-endian order."""

    signature: bytes
    recovery_id: int
    payload: bytes

    def decode_payload(self) -> Payload:
        """Decode the signed payload (big-endian)."""
        return decode_payload(self.payload, "big")

    def signer_address(self) -> str:
        """Recover the signer's Ethereum address (lowercase ``0x`` + 40 hex digits)."""
        public_key = crypto.secp256k1_recover(self.signature, self.recovery_id, self.payload)
        return crypto.evm_address(public_key.format(compressed=False))

    def verify(self, trusted_signers: Iterable[bytes | str] | None = None) -> str:
        """Recover the signer and return its address (lowercase ``0x`` + 40 hex digits);
        refuse it if not in ``trusted_signers``.

        ECDSA recovery yields *some* key for almost any signature, so a tampered payload
        shows up as an unexpected address: pass ``trusted_signers`` (addresses as
        ``0x`` hex strings or 20 bytes) to turn that into a :class:`SignatureError`.
        """
        address = self.signer_address()
        if trusted_signers is not None:
            trusted = _trusted_bytes(trusted_signers, 20, "an EVM address")
            if bytes.fromhex(address[2:]) not in trusted:
                raise SignatureError(f"EVM signature by untrusted signer {address}")
        return address

    def encode(self) -> bytes:
        """The envelope's bytes: magic, signature, recovery id, u16 BE length, payload."""
        _check_sizes(self.signature, 64, "signature")
        return (
            _U32_LE.pack(EVM_MAGIC)
            + self.signature
            + bytes((_u8(self.recovery_id, "recovery_id"),))
            + _payload_len(self.payload, _U16_BE)
            + self.payload
        )


@dataclass(frozen=True, slots=True)
class LeEcdsaMessage:
    """secp256k1-signed envelope over Keccak-256(payload); payload in little-endian order."""

    signature: bytes
    recovery_id: int
    payload: bytes

    def decode_payload(self) -> Payload:
        """Decode the signed payload (little-endian)."""
        return decode_payload(self.payload, "little")

    def signer_public_key(self) -> bytes:
        """Recover the signer's 33-byte compressed secp256k1 public key."""
        public_key = crypto.secp256k1_recover(self.signature, self.recovery_id, self.payload)
        compressed: bytes = public_key.format(compressed=True)
        return compressed

    def verify(self, trusted_signers: Iterable[bytes | str] | None = None) -> str:
        """Recover the signer's compressed key and return it in lowercase hex (66 digits);
        refuse it if not in ``trusted_signers``.

        As with EVM, recovery cannot tell a tampered payload from another signer:
        pass ``trusted_signers`` (33-byte keys as bytes or hex) for a real check.
        """
        key = self.signer_public_key()
        if trusted_signers is not None and key not in _trusted_bytes(
            trusted_signers, 33, "a compressed secp256k1 public key"
        ):
            raise SignatureError(f"LeEcdsa signature by untrusted signer {key.hex()}")
        return key.hex()

    def encode(self) -> bytes:
        """The envelope's bytes: magic, signature, recovery id, u16 LE length, payload."""
        _check_sizes(self.signature, 64, "signature")
        return (
            _U32_LE.pack(LE_ECDSA_MAGIC)
            + self.signature
            + bytes((_u8(self.recovery_id, "recovery_id"),))
            + _payload_len(self.payload, _U16_LE)
            + self.payload
        )


@dataclass(frozen=True, slots=True)
class LeUnsignedMessage:
    """Unsigned envelope; payload in little-endian order. Nothing to verify."""

    payload: bytes

    def decode_payload(self) -> Payload:
        """Decode the payload (little-endian)."""
        return decode_payload(self.payload, "little")

    def encode(self) -> bytes:
        """The envelope's bytes: magic, u16 LE length, payload."""
        return _U32_LE.pack(LE_UNSIGNED_MAGIC) + _payload_len(self.payload, _U16_LE) + self.payload


@dataclass(frozen=True, slots=True)
class JsonMessage:
    """The ``parsed`` JSON object carried in a binary frame (format JSON); not signed."""

    data: bytes

    def decode_payload(self) -> Payload:
        """Parse the JSON object into a :class:`Payload` (``channel_id`` is ``None``)."""
        # msgspec for shapes decoded before, else the general decoder (typed_json.py).
        return fast_payload(self.data, _payload_from_json_text)

    @classmethod
    def from_payload(cls, payload: Payload) -> JsonMessage:
        """Encode a payload as the compact JSON object this envelope carries."""
        return cls(json.dumps(payload_to_json_obj(payload), separators=(",", ":")).encode())

    def encode(self) -> bytes:
        """The envelope's bytes: magic, then the JSON to the end."""
        return _U32_LE.pack(JSON_MAGIC) + self.data


def _payload_from_json_text(data: bytes) -> Payload:
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"JSON envelope is not valid JSON: {exc}") from None
    return payload_from_json_obj(obj)


Envelope: TypeAlias = EvmMessage | SolanaMessage | LeEcdsaMessage | LeUnsignedMessage | JsonMessage
PayloadEnvelope: TypeAlias = EvmMessage | SolanaMessage | LeEcdsaMessage | LeUnsignedMessage
"""The envelopes that carry a binary payload (all but JSON)."""


def _check_sizes(value: bytes, size: int, what: str) -> None:
    if len(value) != size:
        raise ProtocolError(f"{what} must be {size} bytes, got {len(value)}")


def _u8(value: int, what: str) -> int:
    if not 0 <= value <= 255:
        raise ProtocolError(f"{what} = {value} does not fit in a u8")
    return value


def _payload_len(payload: bytes, fmt: struct.Struct) -> bytes:
    if len(payload) > 0xFFFF:
        raise ProtocolError(f"payload of {len(payload)} bytes does not fit a u16 length")
    return fmt.pack(len(payload))


def _take_payload(data: bytes, off: int, length: int, fmt_name: str) -> bytes:
    end = off + length
    if end != len(data):
        what = (
            "runs past the end" if end > len(data) else f"leaves {len(data) - end} trailing bytes"
        )
        raise ProtocolError(
            f"{fmt_name} envelope: payload length {length} at offset {off - 2} {what} "
            f"(envelope is {len(data)} bytes)"
        )
    return data[off:end]


def decode_message(data: bytes) -> Envelope:
    """Decode one envelope (one message of a binary update frame) by its format magic.

    Raises :class:`ProtocolError` for a short input, an unknown magic or a length that
    does not match; the message says what and at which offset.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        # bytes(data) would take a str as an error and an int as a size to allocate.
        raise ProtocolError(f"envelope: expected bytes, got {type(data).__name__}")
    if type(data) is not bytes:
        data = bytes(data)
    n = len(data)
    if n < 4:
        raise ProtocolError(f"envelope too short: {n} bytes, the format magic needs 4")
    (magic,) = _U32_LE.unpack_from(data, 0)
    if magic == SOLANA_MAGIC:
        if n < 102:
            raise ProtocolError(f"Solana envelope truncated: {n} bytes, the header needs 102")
        (length,) = _U16_LE.unpack_from(data, 100)
        # The common case inline; _take_payload words what is wrong otherwise.
        payload = data[102:] if 102 + length == n else _take_payload(data, 102, length, "Solana")
        return SolanaMessage(data[4:68], data[68:100], payload)
    if magic in (EVM_MAGIC, LE_ECDSA_MAGIC):
        name = "EVM" if magic == EVM_MAGIC else "LeEcdsa"
        if n < 71:
            raise ProtocolError(f"{name} envelope truncated: {n} bytes, the header needs 71")
        (length,) = (_U16_BE if magic == EVM_MAGIC else _U16_LE).unpack_from(data, 69)
        payload = data[71:] if 71 + length == n else _take_payload(data, 71, length, name)
        cls = EvmMessage if magic == EVM_MAGIC else LeEcdsaMessage
        return cls(data[4:68], data[68], payload)
    if magic == LE_UNSIGNED_MAGIC:
        if n < 6:
            raise ProtocolError(f"LeUnsigned envelope truncated: {n} bytes, the header needs 6")
        (length,) = _U16_LE.unpack_from(data, 4)
        payload = data[6:] if 6 + length == n else _take_payload(data, 6, length, "LeUnsigned")
        return LeUnsignedMessage(payload)
    if magic == JSON_MAGIC:
        return JsonMessage(data[4:])
    raise ProtocolError(
        f"unknown envelope format magic {magic} (bytes {data[:4].hex()}) at offset 0"
    )


def encode_message(message: Envelope) -> bytes:
    """The bytes of one envelope (the inverse of :func:`decode_message`)."""
    return message.encode()
