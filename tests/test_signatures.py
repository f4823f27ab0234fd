"""Signature checks on the signed envelopes, against keys and digests made independently.

Keys are generated here with ``cryptography`` and ``coincurve`` directly, and digests and
addresses are recomputed with pycryptodome directly, so a bug in
``pylazer_sync.protocol.crypto`` cannot make the expected values agree with it.
"""

from __future__ import annotations

import contextlib
import hashlib
import sys

import coincurve
import pytest
from Crypto.Hash import keccak as pycryptodome_keccak
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pylazer_sync.errors import LazerError, MissingDependencyError, SignatureError
from pylazer_sync.protocol import (
    EvmMessage,
    LeEcdsaMessage,
    Payload,
    Property,
    Signer,
    SolanaMessage,
    crypto,
    decode_binary_update,
    decode_message,
    encode_binary_update,
)
from pylazer_sync.protocol.payload import FeedUpdate

PAYLOAD = Payload(
    timestamp_us=1_700_000_000_000_000,
    channel_id=1,
    feeds=[
        FeedUpdate(
            1, price=6_543_210_987_654, exponent=-8, properties=(Property.PRICE, Property.EXPONENT)
        )
    ],
)
PAYLOAD_LE = PAYLOAD.to_bytes("little")
PAYLOAD_BE = PAYLOAD.to_bytes("big")


def keccak(data: bytes) -> bytes:
    return pycryptodome_keccak.new(digest_bits=256, data=data).digest()


def eth_address(key: coincurve.PublicKey) -> str:
    return "0x" + keccak(key.format(compressed=False)[1:])[-20:].hex()


def flip_byte(data: bytes, index: int) -> bytes:
    b = bytearray(data)
    b[index] ^= 0x01
    return bytes(b)


def ecdsa_sign(key: coincurve.PrivateKey, payload: bytes) -> tuple[bytes, int]:
    raw = key.sign_recoverable(keccak(payload), hasher=None)
    return raw[:64], raw[64]


def test_signature_error_is_a_lazer_error() -> None:
    assert issubclass(SignatureError, LazerError)
    assert issubclass(MissingDependencyError, ImportError)


# -- Keccak-256 ------------------------------------------------------------------------


def test_keccak256_is_not_sha3() -> None:
    empty = "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    assert crypto.keccak256(b"").hex() == empty
    assert crypto.keccak256(b"") != hashlib.sha3_256(b"").digest()
    assert hashlib.sha3_256(b"").hexdigest() == (
        "a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a"
    )
    assert crypto.keccak256(b"abc").hex() == (
        "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45"
    )


# -- Solana (Ed25519) ---------------------------------------------------------------------


def _ed25519_keypair() -> tuple[Ed25519PrivateKey, bytes]:
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return key, public


def test_solana_valid() -> None:
    key, public = _ed25519_keypair()
    message = SolanaMessage(key.sign(PAYLOAD_LE), public, PAYLOAD_LE)
    # verify() gives the signer as lowercase hex, the form trusted_signers() shows.
    assert message.verify() == public.hex()
    assert message.verify(trusted_signers=[public]) == public.hex()
    assert message.verify(trusted_signers=public.hex()) == public.hex()  # one key, as hex
    assert message.verify(trusted_signers={"0x" + public.hex(), bytes(32)}) == public.hex()
    # Through the wire and back, the signature still holds.
    decoded = decode_message(message.encode())
    assert isinstance(decoded, SolanaMessage)
    assert decoded.verify(trusted_signers=[public]) == public.hex()
    assert decoded.decode_payload() == PAYLOAD


def test_solana_rfc8032_vector() -> None:
    """RFC 8032, section 7.1, TEST 1 (empty message)."""
    secret = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    public = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    signature = bytes.fromhex(
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555"
        "fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    )
    assert crypto.ed25519_public_key(secret) == public
    assert crypto.ed25519_sign(secret, b"") == signature
    assert SolanaMessage(signature, public, b"").verify(trusted_signers=[public]) == public.hex()


@pytest.mark.parametrize("index", [0, 13, len(PAYLOAD_LE) - 1])
def test_solana_tampered_payload(index: int) -> None:
    key, public = _ed25519_keypair()
    message = SolanaMessage(key.sign(PAYLOAD_LE), public, flip_byte(PAYLOAD_LE, index))
    with pytest.raises(SignatureError, match="does not match"):
        message.verify()
    with pytest.raises(SignatureError):
        message.verify(trusted_signers=[public])


@pytest.mark.parametrize("index", [0, 31, 32, 63])
def test_solana_tampered_signature(index: int) -> None:
    key, public = _ed25519_keypair()
    message = SolanaMessage(flip_byte(key.sign(PAYLOAD_LE), index), public, PAYLOAD_LE)
    with pytest.raises(SignatureError):
        message.verify()


def test_solana_untrusted_signer() -> None:
    key, public = _ed25519_keypair()
    _, other = _ed25519_keypair()
    message = SolanaMessage(key.sign(PAYLOAD_LE), public, PAYLOAD_LE)
    with pytest.raises(SignatureError, match=f"untrusted key {public.hex()}"):
        message.verify(trusted_signers=[other])
    with pytest.raises(SignatureError, match="untrusted"):
        message.verify(trusted_signers=[])


def test_solana_signature_by_another_key_in_the_envelope() -> None:
    # The key carried in the envelope must be the one that signed.
    key, _ = _ed25519_keypair()
    _, other = _ed25519_keypair()
    with pytest.raises(SignatureError):
        SolanaMessage(key.sign(PAYLOAD_LE), other, PAYLOAD_LE).verify()


def test_solana_trusted_signer_of_wrong_size() -> None:
    key, public = _ed25519_keypair()
    message = SolanaMessage(key.sign(PAYLOAD_LE), public, PAYLOAD_LE)
    with pytest.raises(ValueError, match="must be 32 bytes"):
        message.verify(trusted_signers=[public[:31]])


# -- EVM (secp256k1 recovery over Keccak-256, address) ----------------------------------


def test_evm_valid() -> None:
    key = coincurve.PrivateKey()
    signature, recovery_id = ecdsa_sign(key, PAYLOAD_BE)
    message = EvmMessage(signature, recovery_id, PAYLOAD_BE)
    expected = eth_address(key.public_key)
    assert message.signer_address() == expected
    assert message.verify() == expected
    assert message.verify(trusted_signers=[expected]) == expected
    assert message.verify(trusted_signers=[bytes.fromhex(expected[2:])]) == expected
    # Checksummed (mixed case) addresses as users copy them are accepted.
    mixed = "0x" + "".join(c.upper() if i % 2 else c for i, c in enumerate(expected[2:]))
    assert message.verify(trusted_signers=mixed) == expected
    decoded = decode_message(message.encode())
    assert isinstance(decoded, EvmMessage)
    assert decoded.verify(trusted_signers=[expected]) == expected
    assert decoded.decode_payload() == PAYLOAD


def test_evm_well_known_key() -> None:
    private = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
    address = "0x2c7536e3605d9c16a7a3d7b1898e529396a65c23"
    assert eth_address(coincurve.PrivateKey(private).public_key) == address
    public = crypto.secp256k1_public_key(private, compressed=False)
    assert crypto.evm_address(public) == address
    signer = Signer(ed25519_private_key=bytes(32), secp256k1_private_key=private)
    assert signer.evm_address == address
    assert signer.sign_evm(PAYLOAD_BE).verify(trusted_signers=[address]) == address


@pytest.mark.parametrize("offset", [0, 27])
def test_evm_recovery_ids(offset: int) -> None:
    """Recovery id 0/1, and 27/28 as contracts write them, recover the same signer."""
    key = coincurve.PrivateKey()
    expected = eth_address(key.public_key)
    seen = set()
    for n in range(40):  # enough payloads to see both recovery ids
        payload = PAYLOAD_BE + bytes([n])
        signature, recovery_id = ecdsa_sign(key, payload)
        seen.add(recovery_id)
        message = EvmMessage(signature, recovery_id + offset, payload)
        assert message.signer_address() == expected
        # The other id recovers another key (or none): the id matters.
        other = EvmMessage(signature, (1 - recovery_id) + offset, payload)
        with contextlib.suppress(SignatureError):
            assert other.signer_address() != expected
    assert seen == {0, 1}


@pytest.mark.parametrize("recovery_id", [4, 26, 31, 255])
def test_evm_bad_recovery_id(recovery_id: int) -> None:
    key = coincurve.PrivateKey()
    signature, _ = ecdsa_sign(key, PAYLOAD_BE)
    with pytest.raises(SignatureError, match="recovery id"):
        EvmMessage(signature, recovery_id, PAYLOAD_BE).signer_address()


def test_evm_tampered_payload() -> None:
    key = coincurve.PrivateKey()
    expected = eth_address(key.public_key)
    signature, recovery_id = ecdsa_sign(key, PAYLOAD_BE)
    message = EvmMessage(signature, recovery_id, flip_byte(PAYLOAD_BE, 20))
    # Recovery yields some other key, which a trusted-signer check refuses.
    assert message.signer_address() != expected
    with pytest.raises(SignatureError, match="untrusted signer"):
        message.verify(trusted_signers=[expected])


@pytest.mark.parametrize("index", [0, 31, 32, 63])
def test_evm_tampered_signature(index: int) -> None:
    key = coincurve.PrivateKey()
    expected = eth_address(key.public_key)
    signature, recovery_id = ecdsa_sign(key, PAYLOAD_BE)
    message = EvmMessage(flip_byte(signature, index), recovery_id, PAYLOAD_BE)
    with pytest.raises(SignatureError):
        message.verify(trusted_signers=[expected])


def test_evm_unrecoverable_signature() -> None:
    # r = 0 is never a valid signature: no key can be recovered.
    with pytest.raises(SignatureError, match="no secp256k1 public key can be recovered"):
        EvmMessage(bytes(64), 0, PAYLOAD_BE).signer_address()


def test_evm_untrusted_signer() -> None:
    key, other = coincurve.PrivateKey(), coincurve.PrivateKey()
    signature, recovery_id = ecdsa_sign(key, PAYLOAD_BE)
    message = EvmMessage(signature, recovery_id, PAYLOAD_BE)
    with pytest.raises(SignatureError, match=f"untrusted signer {eth_address(key.public_key)}"):
        message.verify(trusted_signers=[eth_address(other.public_key)])


def test_evm_signs_keccak_not_sha3() -> None:
    """A signature over SHA3-256(payload) does not recover the signer: the digest matters."""
    key = coincurve.PrivateKey()
    raw = key.sign_recoverable(hashlib.sha3_256(PAYLOAD_BE).digest(), hasher=None)
    message = EvmMessage(raw[:64], raw[64], PAYLOAD_BE)
    assert message.signer_address() != eth_address(key.public_key)


# -- LeEcdsa (compressed secp256k1 key) ---------------------------------------------------


def test_le_ecdsa_valid() -> None:
    key = coincurve.PrivateKey()
    compressed = key.public_key.format(compressed=True)
    assert len(compressed) == 33 and compressed[0] in (2, 3)
    signature, recovery_id = ecdsa_sign(key, PAYLOAD_LE)
    message = LeEcdsaMessage(signature, recovery_id, PAYLOAD_LE)
    assert message.signer_public_key() == compressed
    assert message.verify(trusted_signers=[compressed]) == compressed.hex()
    assert message.verify(trusted_signers=compressed.hex()) == compressed.hex()
    assert LeEcdsaMessage(signature, recovery_id + 27, PAYLOAD_LE).signer_public_key() == compressed
    decoded = decode_message(message.encode())
    assert isinstance(decoded, LeEcdsaMessage)
    assert decoded.verify(trusted_signers=[compressed]) == compressed.hex()
    assert decoded.decode_payload() == PAYLOAD


def test_le_ecdsa_tampered_payload() -> None:
    key = coincurve.PrivateKey()
    compressed = key.public_key.format(compressed=True)
    signature, recovery_id = ecdsa_sign(key, PAYLOAD_LE)
    message = LeEcdsaMessage(signature, recovery_id, flip_byte(PAYLOAD_LE, 5))
    assert message.signer_public_key() != compressed
    with pytest.raises(SignatureError, match="untrusted signer"):
        message.verify(trusted_signers=[compressed])


@pytest.mark.parametrize("index", [0, 40, 63])
def test_le_ecdsa_tampered_signature(index: int) -> None:
    key = coincurve.PrivateKey()
    compressed = key.public_key.format(compressed=True)
    signature, recovery_id = ecdsa_sign(key, PAYLOAD_LE)
    message = LeEcdsaMessage(flip_byte(signature, index), recovery_id, PAYLOAD_LE)
    with pytest.raises(SignatureError):
        message.verify(trusted_signers=[compressed])


def test_le_ecdsa_untrusted_signer() -> None:
    key, other = coincurve.PrivateKey(), coincurve.PrivateKey()
    signature, recovery_id = ecdsa_sign(key, PAYLOAD_LE)
    message = LeEcdsaMessage(signature, recovery_id, PAYLOAD_LE)
    with pytest.raises(SignatureError, match="untrusted signer"):
        message.verify(trusted_signers=[other.public_key.format(compressed=True)])
    with pytest.raises(ValueError, match="must be 33 bytes"):
        message.verify(trusted_signers=[other.public_key.format(compressed=False)])


# -- the Signer used by the simulator -----------------------------------------------------


def test_signer_from_seed_is_deterministic_and_verifiable() -> None:
    a, b = Signer.from_seed(7), Signer.from_seed("7")
    assert a.sign_solana(PAYLOAD_LE) == b.sign_solana(PAYLOAD_LE)
    assert a.sign_evm(PAYLOAD_BE) == b.sign_evm(PAYLOAD_BE)
    assert a.sign_le_ecdsa(PAYLOAD_LE) == b.sign_le_ecdsa(PAYLOAD_LE)
    assert Signer.from_seed(8).solana_public_key != a.solana_public_key
    # The advertised identities are what the signatures check out as.
    expected_address = eth_address(coincurve.PrivateKey(a.secp256k1_private_key).public_key)
    assert a.evm_address == expected_address
    frame = encode_binary_update(
        9, [a.sign_solana(PAYLOAD_LE), a.sign_evm(PAYLOAD_BE), a.sign_le_ecdsa(PAYLOAD_LE)]
    )
    update = decode_binary_update(frame)
    assert update.solana is not None and update.evm is not None and update.le_ecdsa is not None
    assert update.solana.verify(trusted_signers=[a.solana_public_key]) == a.solana_public_key.hex()
    assert update.evm.verify(trusted_signers=[expected_address]) == expected_address
    assert update.le_ecdsa.verify(trusted_signers=[a.le_ecdsa_public_key]) == (
        a.le_ecdsa_public_key.hex()
    )
    assert update.payload == PAYLOAD


def test_every_verify_returns_the_signer_as_trusted_signers_shows_it() -> None:
    """One comparable form: ``signer == sim.trusted_signers()[kind]`` for all three formats."""
    from pylazer_sync.simulator import Simulator

    sim = Simulator(seed=3, token=None)  # not started: only its keys are needed
    trusted = sim.trusted_signers()
    signer = Signer.from_seed(3)
    update = decode_binary_update(
        encode_binary_update(
            1,
            [
                signer.sign_solana(PAYLOAD_LE),
                signer.sign_evm(PAYLOAD_BE),
                signer.sign_le_ecdsa(PAYLOAD_LE),
            ],
        )
    )
    assert update.solana is not None and update.evm is not None and update.le_ecdsa is not None
    assert update.solana.verify() == trusted["solana"]
    assert update.evm.verify() == trusted["evm"]
    assert update.le_ecdsa.verify() == trusted["leEcdsa"]


def test_signer_repr_hides_keys() -> None:
    signer = Signer.from_seed(1)
    assert signer.ed25519_private_key.hex() not in repr(signer)
    assert signer.secp256k1_private_key.hex() not in repr(signer)


# -- a missing extra ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("modules", "library", "call"),
    [
        (
            ["coincurve"],
            "coincurve",
            lambda: EvmMessage(bytes(64), 0, PAYLOAD_BE).signer_address(),
        ),
        (
            ["Crypto", "Crypto.Hash", "Crypto.Hash.keccak"],
            "pycryptodome",
            lambda: crypto.keccak256(b""),
        ),
        (
            ["cryptography.hazmat.primitives.asymmetric"],
            "cryptography",
            lambda: SolanaMessage(bytes(64), bytes(32), b"").verify(),
        ),
    ],
)
def test_missing_dependency(
    monkeypatch: pytest.MonkeyPatch, modules: list[str], library: str, call: object
) -> None:
    # A None entry in sys.modules makes the import fail as if the library were absent.
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(MissingDependencyError) as info:
        call()  # type: ignore[operator]
    assert isinstance(info.value, ImportError)
    assert library in str(info.value)
    assert "pylazer-sync[verify]" in str(info.value)
