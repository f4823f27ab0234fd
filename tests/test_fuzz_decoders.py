"""Decoder fuzzing, beyond the byte-level mutations of ``test_protocol_malformed.py``.

Those flip, cut, overwrite, insert and delete bytes anywhere. These aim where decoders go
wrong: length fields pointing past the end and counts of 255 (found by walking the valid
input's layout, written out again in ``strategies.py`` from PROTOCOL.md), invalid UTF-8
inside JSON strings, JSON nested to just below and above the recursion limit (in the
caller's thread and in a fresh thread, whose stack is shallower, as the dedup thread's
is), and huge JSON. Every decoder is covered: binary frames, envelopes, payloads, JSON
server messages, REST answers (price updates and the symbols catalogue), jsonl
recordings, client requests, and the signature checks of decoded envelopes.

What must hold: only the library's own exceptions come out (``LazerError``; the decoders
raise ``ProtocolError``), whatever comes out can be printed, time is bounded, and memory
is bounded by a small multiple of the input and given back afterwards.
"""

from __future__ import annotations

import contextlib
import gc
import io
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import (
    binary_stream_updates,
    encoded_payloads,
    evm_messages,
    field_mutations,
    frame_fields,
    invalid_utf8_mutations,
    json_messages,
    le_ecdsa_messages,
    le_unsigned_messages,
    nested_json,
    payload_fields,
    payloads,
    server_messages,
    solana_messages,
    subscribe_requests,
)
from test_protocol_malformed import _mutate

import pylazer_sync as pl
from pylazer_sync import frames
from pylazer_sync.protocol import (
    JsonMessage,
    Signer,
    decode_binary_update,
    decode_frame,
    decode_message,
    decode_payload,
    encode_binary_update,
    encode_server_message,
    encode_stream_update_binary,
    parse_request,
    parse_server_message,
)
from pylazer_sync.protocol.messages import parse_json_update
from pylazer_sync.rest import RestClient

FUZZ = settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
SLOW = 2.0  # seconds: no single decode of a small input may take longer


def symbols_answer(body: bytes) -> Any:
    """What ``RestClient.symbols`` makes of an answer body (no network)."""
    rest = RestClient("fuzz-token")
    rest._call = lambda request: body  # type: ignore[method-assign]
    return rest.symbols()


def jsonl_records(text: bytes) -> Any:
    return list(frames.read_jsonl(io.StringIO(text.decode("utf-8", "replace"))))


def decodes_or_raises_own_error(fn: Callable[..., Any], *args: Any) -> Any:
    """Call a decoder: a result or a LazerError, quickly; the result must print."""
    started = time.perf_counter()
    try:
        result = fn(*args)
    except pl.LazerError as exc:
        assert str(exc)
        assert len(str(exc)) < 2000, "an error message that floods logs"
        result = None
    elapsed = time.perf_counter() - started
    assert elapsed < SLOW, f"{fn.__name__} took {elapsed:.2f} s"
    repr(result)
    if isinstance(result, pl.StreamUpdate):
        result.feeds  # noqa: B018 (decoding the payload is part of the check)
    return result


# -- length fields past the end, huge counts ---------------------------------------------------


@FUZZ
@given(update=binary_stream_updates(), data=st.data())
def test_frame_lengths_and_counts_set_to_hostile_values(update: Any, data: st.DataObject) -> None:
    raw = encode_stream_update_binary(update)
    mutated = data.draw(field_mutations(raw, frame_fields(raw)))
    decodes_or_raises_own_error(decode_binary_update, mutated)
    decodes_or_raises_own_error(decode_frame, mutated, False)


def envelopes_with_valid_payloads() -> st.SearchStrategy[Any]:
    le, be = encoded_payloads("little"), encoded_payloads("big")
    return st.one_of(
        solana_messages(le),
        evm_messages(be),
        le_ecdsa_messages(le),
        le_unsigned_messages(le),
        json_messages(),
    )


@FUZZ
@given(envelope=envelopes_with_valid_payloads(), data=st.data())
def test_envelope_lengths_and_counts_set_to_hostile_values(
    envelope: Any, data: st.DataObject
) -> None:
    raw = envelope.encode()
    frame = encode_binary_update(1, [raw])
    fields = frame_fields(frame)
    mutated = data.draw(field_mutations(frame, fields))
    decodes_or_raises_own_error(decode_binary_update, mutated)
    message = decodes_or_raises_own_error(decode_message, mutated[14:])
    if message is not None:
        decodes_or_raises_own_error(message.decode_payload)


@FUZZ
@given(payload=payloads(), order=st.sampled_from(["little", "big"]), data=st.data())
def test_payload_counts_set_to_hostile_values(
    payload: pl.Payload, order: str, data: st.DataObject
) -> None:
    raw = payload.to_bytes(order)  # type: ignore[arg-type]
    mutated = data.draw(field_mutations(raw, payload_fields(raw, 0, order)))
    decodes_or_raises_own_error(decode_payload, mutated, order)


def test_the_layout_walker_agrees_with_the_golden_frame() -> None:
    """The fields the mutations aim at are where PROTOCOL.md says (hand-checked bytes)."""
    payload = bytes.fromhex(
        "75d3c793 0100000000000000 01 01 01000000 02 00 0100000000000000 04 f8ff".replace(" ", "")
    )
    frame = bytes.fromhex("7377881b 0000000000000001 0025 0c4d6359 1f00".replace(" ", "")) + payload
    fields = [(f.offset, f.size, f.kind) for f in frame_fields(frame)]
    assert fields == [
        (12, 2, "frame message length"),
        (18, 2, "envelope payload length"),
        (33, 1, "feed count"),
        (38, 1, "property count"),
        (39, 1, "property id"),
        (48, 1, "property id"),
    ]


# -- invalid UTF-8, lone surrogates ------------------------------------------------------------


@FUZZ
@given(message=server_messages(), encoding=st.sampled_from(["hex", "base64"]), data=st.data())
def test_invalid_utf8_in_json_text(message: Any, encoding: str, data: st.DataObject) -> None:
    text = encode_server_message(message, encoding).encode()
    mutated = data.draw(invalid_utf8_mutations(text))
    decodes_or_raises_own_error(parse_server_message, mutated)
    decodes_or_raises_own_error(decode_frame, mutated, True)
    # A text frame handed over as str (decoded leniently by some other layer).
    decodes_or_raises_own_error(parse_server_message, mutated.decode("utf-8", "surrogateescape"))


@FUZZ
@given(payload=payloads(binary=False, max_feeds=3), data=st.data())
def test_invalid_utf8_in_a_json_envelope_of_a_binary_frame(
    payload: pl.Payload, data: st.DataObject
) -> None:
    raw = JsonMessage.from_payload(payload).encode()
    mutated = raw[:4] + data.draw(invalid_utf8_mutations(raw[4:]))
    decodes_or_raises_own_error(decode_binary_update, encode_binary_update(3, [mutated]))


@FUZZ
@given(request=subscribe_requests(), data=st.data())
def test_invalid_utf8_in_requests_rest_answers_and_recordings(
    request: pl.SubscribeRequest, data: st.DataObject
) -> None:
    for decoder, text in (
        (parse_request, request.to_json().encode()),
        (parse_json_update, b'{"parsed":{"timestampUs":"1","priceFeeds":[{"priceFeedId":1}]}}'),
        (symbols_answer, b'[{"pyth_lazer_id":1,"symbol":"Crypto.BTC/USD","name":"BTCUSD"}]'),
        (jsonl_records, b'{"subscription_id":1,"timestamp_us":1,"feeds":[{"feed_id":1}]}\n'),
    ):
        decodes_or_raises_own_error(decoder, data.draw(invalid_utf8_mutations(text)))


@pytest.mark.parametrize(
    "text",
    [
        r'{"type":"error","error":"\ud800"}',
        r'{"type":"subscriptionError","subscriptionId":1,"error":"\udfff\ud800"}',
        r'{"type":"\ud800"}',
        r'{"type":"subscribed","subscriptionId":"\ud800"}',
        r'{"type":"streamUpdated","subscriptionId":1,"evm":{"encoding":"hex","data":"\ud800"}}',
        r'{"type":"streamUpdated","subscriptionId":1,"evm":{"encoding":"base64","data":"\ud800"}}',
        r'{"type":"streamUpdated","subscriptionId":1,"parsed":{"timestampUs":"\ud800","priceFeeds":[]}}',
        r'{"type":"streamUpdated","subscriptionId":1,"parsed":{"timestampUs":"1","priceFeeds":[{"priceFeedId":1,"marketSession":"\ud800"}]}}',
    ],
)
def test_lone_surrogate_escapes(text: str) -> None:
    """Valid JSON, invalid Unicode: Python makes str with lone surrogates out of them."""
    message = decodes_or_raises_own_error(parse_server_message, text)
    decodes_or_raises_own_error(parse_server_message, text.encode())
    if message is not None:
        str(message)


# -- deep JSON ---------------------------------------------------------------------------------

# Each template puts the nested value (``@``) where a decoder meets it.
DEEP_TEMPLATES: list[tuple[Callable[[bytes], Any], str]] = [
    (parse_server_message, '{"type":"error","error":@}'),
    (parse_server_message, '{"type":"error","message":@}'),
    (parse_server_message, '{"type":"subscriptionError","subscriptionId":1,"error":@}'),
    (parse_server_message, '{"type":"someNewType","detail":@}'),
    (parse_server_message, '{"type":"subscribed","subscriptionId":@}'),
    (parse_server_message, '{"type":"streamUpdated","subscriptionId":1,"parsed":@}'),
    (parse_server_message, '{"type":"streamUpdated","subscriptionId":1,"evm":@}'),
    (
        parse_server_message,
        '{"type":"streamUpdated","subscriptionId":1,"parsed":{"timestampUs":"1","priceFeeds":[{"priceFeedId":1,"price":@}]}}',
    ),
    (
        parse_server_message,
        '{"type":"subscribedWithInvalidFeedIdsIgnored","subscriptionId":1,"ignoredInvalidFeedIds":{"unknownSymbols":@}}',
    ),
    (parse_json_update, '{"parsed":{"timestampUs":"1","priceFeeds":@}}'),
    (parse_request, '{"type":"subscribe","subscriptionId":1,"priceFeedIds":@}'),
    (symbols_answer, '[{"pyth_lazer_id":1,"symbol":@}]'),
    (symbols_answer, '[{"pyth_lazer_id":1,"symbol":"x","hermes_id":@}]'),
    (jsonl_records, '{"subscription_id":1,"timestamp_us":1,"feeds":[{"feed_id":1,"price":@}]}'),
]


def _deep_sweep() -> list[str]:
    """Every template at every depth around the recursion limit; the failures."""
    limit = sys.getrecursionlimit()
    failures = []
    for decoder, template in DEEP_TEMPLATES:
        for kind in ("list", "dict"):
            for depth in range(limit - 160, limit + 4, 2):
                text = template.replace("@", nested_json(depth, kind)).encode()
                try:
                    decodes_or_raises_own_error(decoder, text)
                except Exception as exc:  # RecursionError above all
                    failures.append(f"{template} at depth {depth} ({kind}): {exc!r:.120}")
                    break
    return failures


def test_deep_json_near_the_recursion_limit() -> None:
    """Nesting just below the limit parses; what a decoder then does with it (walk it,
    dump it, print it) must not recurse past the limit: the window where that happens
    depends on how deep the caller's stack already is, so every depth is tried."""
    failures = _deep_sweep()
    assert not failures, failures


def test_deep_json_near_the_recursion_limit_in_a_fresh_thread() -> None:
    """The same from a thread's shallow stack, as in the dedup thread."""
    result: list[list[str]] = []
    thread = threading.Thread(target=lambda: result.append(_deep_sweep()))
    thread.start()
    thread.join(120)
    assert result == [[]], result


# -- huge JSON: bounded time and memory --------------------------------------------------------


def _big(template: str, item: str, count: int, sep: str = ",") -> bytes:
    return template.replace("@", sep.join([item] * count)).encode()


HUGE: dict[str, tuple[Callable[[bytes], Any], bytes]] = {
    "many price feeds": (
        parse_server_message,
        _big(
            '{"type":"streamUpdated","subscriptionId":1,"parsed":{"timestampUs":"1","priceFeeds":[@]}}',
            '{"priceFeedId":1,"price":"1"}',
            30_000,
        ),
    ),
    "many ignored ids": (
        parse_server_message,
        _big(
            '{"type":"subscribedWithInvalidFeedIdsIgnored","subscriptionId":1,"subscribedFeedIds":[@]}',
            "1",
            250_000,
        ),
    ),
    "a long error": (parse_server_message, _big('{"type":"error","error":"@"}', "x", 1 << 20, "")),
    "an error made of objects": (
        parse_server_message,
        _big('{"type":"error","error":[@]}', "{}", 150_000),
    ),
    "many unknown keys": (
        parse_server_message,
        ('{"type":"x",' + ",".join(f'"k{i}":{i}' for i in range(60_000)) + "}").encode(),
    ),
    "a million digits": (
        parse_server_message,
        _big('{"type":"subscribed","subscriptionId":@}', "9", 1 << 20, ""),
    ),
    "an exponent too big for a float": (
        parse_server_message,
        b'{"type":"subscribed","subscriptionId":1e999999}',
    ),
    "a long hex envelope": (
        parse_server_message,
        _big(
            '{"type":"streamUpdated","subscriptionId":1,"leUnsigned":{"encoding":"hex","data":"0c4d6359@"}}',
            "00",
            1 << 19,
            "",
        ),
    ),
    "a million brackets": (parse_server_message, b"[" * (1 << 20)),
    "a REST answer with many feeds": (
        parse_json_update,
        _big('{"parsed":{"timestampUs":"1","priceFeeds":[@]}}', '{"priceFeedId":2}', 50_000),
    ),
    "a long symbols catalogue": (
        symbols_answer,
        _big("[@]", '{"pyth_lazer_id":1,"symbol":"Crypto.X/USD","name":"X"}', 15_000),
    ),
    "a symbol id too big for a float": (
        symbols_answer,
        b'[{"pyth_lazer_id":1e999,"symbol":"x"}]',
    ),
    "a long jsonl recording": (
        jsonl_records,
        _big("@", '{"subscription_id":1,"timestamp_us":1,"feeds":[{"feed_id":1}]}', 15_000, "\n"),
    ),
    "a request with many feeds": (
        parse_request,
        _big(
            '{"type":"subscribe","subscriptionId":1,"properties":["price"],"priceFeedIds":[@]}',
            "7",
            250_000,
        ),
    ),
}


@pytest.mark.parametrize("name", sorted(HUGE))
def test_huge_json_takes_bounded_time_and_memory(name: str) -> None:
    decoder, text = HUGE[name]
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        started = time.perf_counter()
        try:
            result = decoder(text)
        except pl.LazerError:
            result = None
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        repr(result)
        del result
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Python objects cost 10-30 bytes per byte of compact JSON ("{}" is a 64-byte dict):
    # proportional to the input, never driven by a number inside it.
    assert peak - before < 40 * len(text) + (1 << 20), (peak - before, len(text))
    assert after - before < 64 * 1024, "memory kept after the result was dropped"
    assert elapsed < 10.0, elapsed  # linear: well under a second without tracemalloc


def test_decoding_many_distinct_inputs_keeps_no_memory() -> None:
    """No decoder caches anything per input: 3000 distinct mutated frames later, traced
    memory is back where it was."""
    import random

    rng = random.Random(5)
    signer = Signer.from_seed(3)
    base = encode_binary_update(
        1, [signer.sign_solana(pl.Payload(1, [pl.FeedUpdate(1, price=5)], 1).to_bytes("little"))]
    )
    inputs = []
    for i in range(3000):
        b = bytearray(base)
        b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        inputs.append(bytes(b) + i.to_bytes(4, "big"))
        inputs.append(f'{{"type":"error","error":"{i}"}}'.encode())
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for raw in inputs:
            with contextlib.suppress(pl.LazerError):
                decode_frame(raw, raw[:1] == b"{")
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - before < 64 * 1024, after - before


# -- signature checks on mutated envelopes -----------------------------------------------------

SIGNER = Signer.from_seed(11)


@FUZZ
@given(payload=payloads(max_feeds=2), data=st.data())
def test_signature_checks_of_mutated_envelopes_fail_only_with_signature_error(
    payload: pl.Payload, data: st.DataObject
) -> None:
    envelopes_ = [
        SIGNER.sign_solana(payload.to_bytes("little")),
        SIGNER.sign_evm(payload.to_bytes("big")),
        SIGNER.sign_le_ecdsa(payload.to_bytes("little")),
    ]
    for envelope in envelopes_:
        mutated = _mutate(data, envelope.encode())
        try:
            message = decode_message(mutated)
        except pl.ProtocolError:
            continue
        for check in ("verify", "signer_address", "signer_public_key"):
            method = getattr(message, check, None)
            if method is None:
                continue
            try:
                method()
            except pl.SignatureError as exc:
                assert str(exc)
        for trusted in ([b"\x00" * 20], ["zz"], [12], ["0x" + "11" * 20], [b"\x02" * 33]):
            try:
                message.verify(trusted)  # type: ignore[union-attr]
            except (pl.SignatureError, pl.InvalidRequestError):
                pass
            except AttributeError:
                break  # LeUnsigned, JSON: nothing to verify
