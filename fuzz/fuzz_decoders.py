#!/usr/bin/env python3
"""Coverage-guided fuzzing of every decoder of pylazer_sync, with atheris. Run by hand, in an
activated virtual environment (``-merge=1`` runs this file again as a program)::

    pip install -e '.[test]' -r fuzz/requirements.txt
    python fuzz/fuzz_decoders.py --seeds /tmp/lazer-fuzz             # valid inputs to start from
    python fuzz/fuzz_decoders.py /tmp/lazer-fuzz fuzz/corpus -max_total_time=600 -timeout=5 \
        -rss_limit_mb=1024 -max_len=65536                           # fuzz (grows /tmp/lazer-fuzz)
    python fuzz/fuzz_decoders.py -merge=1 fuzz/corpus /tmp/lazer-fuzz   # keep what adds coverage

``fuzz/corpus`` is the merged, minimised result: ``tests/test_fuzz_corpus.py`` replays every
file in it through :func:`check_one` in CI, so what the fuzzer found stays found. A crash
(libFuzzer writes ``crash-<sha1>``) is fixed, then its input copied into ``fuzz/corpus``
under a name saying what it was (``regression-...``).

An input is one byte choosing the decoder (modulo the number of targets), then the bytes
given to it. The oracle (:func:`check_one`): a decoder returns or raises one of the
library's own exceptions (:class:`pylazer_sync.LazerError`); whatever it returns can be
printed (``repr``), and a decoded binary frame encodes back to the very same bytes;
signature checks on decoded envelopes fail only with :class:`~pylazer_sync.SignatureError`.
libFuzzer's ``-timeout`` and ``-rss_limit_mb`` turn a hang or a memory blow-up into a
crash too.

Importing this module does not need atheris (the corpus test imports it).
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pylazer_sync as pl
from pylazer_sync import frames
from pylazer_sync.protocol import (
    EvmMessage,
    LeEcdsaMessage,
    SolanaMessage,
    StreamUpdate,
    decode_binary_update,
    decode_frame,
    decode_message,
    decode_payload,
    encode_stream_update_binary,
    parse_request,
    parse_server_message,
)
from pylazer_sync.protocol.messages import parse_json_update
from pylazer_sync.rest import RestClient

CORPUS = Path(__file__).resolve().parent / "corpus"


def _envelope(data: bytes) -> Any:
    message = decode_message(data)
    repr(message)
    with contextlib.suppress(pl.ProtocolError):
        message.decode_payload()
    try:  # signature checks: a SignatureError, never anything else
        if isinstance(message, SolanaMessage):
            message.verify()
        elif isinstance(message, EvmMessage):
            message.signer_address()
        elif isinstance(message, LeEcdsaMessage):
            message.signer_public_key()
    except (pl.SignatureError, pl.MissingDependencyError):
        pass
    return message


def _binary_update(data: bytes) -> Any:
    update = decode_binary_update(data)
    # The binary format has no slack: a frame that decodes is the one its update encodes.
    again = encode_stream_update_binary(update)
    assert again == data, f"re-encoded frame differs: {data.hex()} -> {again.hex()}"
    return update


def _symbols(data: bytes) -> Any:
    rest = RestClient("fuzz-token")
    rest._call = lambda request: data  # type: ignore[method-assign]
    return rest.symbols()


def _jsonl(data: bytes) -> Any:
    return list(frames.read_jsonl(io.StringIO(data.decode("utf-8", "replace"))))


TARGETS: list[tuple[str, Callable[[bytes], Any]]] = [
    ("binary_update", _binary_update),
    ("frame_binary", lambda d: decode_frame(d, is_text=False)),
    ("frame_text_bytes", lambda d: decode_frame(d, is_text=True)),
    ("server_message_str", lambda d: parse_server_message(d.decode("utf-8", "surrogateescape"))),
    ("envelope", _envelope),
    ("payload_le", lambda d: decode_payload(d, "little")),
    ("payload_be", lambda d: decode_payload(d, "big")),
    ("json_update", parse_json_update),
    ("symbols", _symbols),
    ("jsonl", _jsonl),
    ("request", parse_request),
]


def check_one(data: bytes) -> None:
    """The oracle: run the decoder chosen by the first byte on the rest."""
    if not data:
        return
    _, target = TARGETS[data[0] % len(TARGETS)]
    try:
        result = target(data[1:])
    except pl.LazerError as exc:
        assert str(exc), "an error without a message"
        return
    repr(result)
    if isinstance(result, StreamUpdate):
        result.feeds  # noqa: B018 (decoding the payload is part of the check)


# -- seeds ---------------------------------------------------------------------------------


def seeds() -> dict[str, bytes]:
    """Valid inputs for every target, from the simulator's encoders (name -> input)."""
    from pylazer_sync.protocol import (
        Format,
        ServerError,
        Signer,
        Subscribed,
        SubscribedWithIgnoredFeeds,
        SubscribeRequest,
        SubscriptionError,
        UnknownMessage,
        Unsubscribed,
        UnsubscribeRequest,
        encode_server_message,
    )
    from pylazer_sync.simulator.market import Catalogue, MarketModel
    from pylazer_sync.simulator.updates import UpdateEncoder, resolve

    index = {name: i for i, (name, _) in enumerate(TARGETS)}
    out: dict[str, bytes] = {}

    def add(target: str, name: str, data: bytes | str) -> None:
        raw = data.encode() if isinstance(data, str) else data
        out[f"seed-{target}-{name}"] = bytes([index[target]]) + raw

    catalogue = Catalogue.default()
    encoder = UpdateEncoder(MarketModel(catalogue, 1), Signer.from_seed(1))
    t_us = 1_700_000_000_000_000
    every_property = [p.value for p in pl.Property]
    for delivery in ("binary", "json"):
        for formats in ([], ["leUnsigned"], [f.value for f in Format]):
            for parsed in (True, False):
                for encoding in ("hex", "base64"):
                    request = SubscribeRequest(
                        price_feed_ids=[1, 2],
                        properties=every_property,
                        formats=formats,
                        delivery_format=delivery,
                        json_binary_encoding=encoding,
                        parsed=parsed,
                        subscription_id=7,
                    )
                    shape = resolve(request, catalogue).shape
                    assert shape is not None
                    frame = encoder.frame(shape, t_us)
                    if frame is None or (not formats and not parsed):
                        continue
                    name = f"{delivery}-{len(formats)}f-{'p' if parsed else 'np'}-{encoding}"
                    if isinstance(frame, bytes):
                        add("binary_update", name, frame)
                        update = decode_binary_update(frame)
                        for i, message in enumerate(update.messages):
                            add("envelope", f"{name}-{i}", message.encode())
                    else:
                        add("frame_text_bytes", name, frame)
                        add("server_message_str", name, frame)
                        add("json_update", name, json.dumps(encoder.json_update(shape, t_us)))
                        update = parse_server_message(frame)
                        line = json.dumps(frames.update_to_jsonl_obj(update))
                        add("jsonl", name, line + "\n")
                    add("request", name, request.to_json())
    payload = encoder.feeds_at(resolve(request, catalogue).shape, t_us)  # type: ignore[arg-type]
    for order in ("little", "big"):
        raw = pl.Payload(t_us, payload, 1).to_bytes(order)  # type: ignore[arg-type]
        add("payload_le" if order == "little" else "payload_be", "all-properties", raw)
    for i, message in enumerate(
        [
            Subscribed(1),
            Unsubscribed(2),
            SubscriptionError(3, "bad"),
            ServerError("oops"),
            SubscribedWithIgnoredFeeds(4, (1,), (9,), ("X",), (5,), (6,)),
            UnknownMessage("newThing", {"type": "newThing", "x": [1, {"y": None}]}),
        ]
    ):
        add("server_message_str", f"message-{i}", encode_server_message(message))
    add("request", "unsubscribe", UnsubscribeRequest(7).to_json())
    add("symbols", "catalogue", json.dumps([f.metadata() for f in catalogue]))
    return out


def write_seeds(directory: Path) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    items = seeds()
    for name, data in items.items():
        (directory / name).write_bytes(data)
    return len(items)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--seeds":
        print(f"wrote {write_seeds(Path(sys.argv[2]))} seed inputs to {sys.argv[2]}")
        return
    import atheris  # type: ignore[import-not-found]

    # Coverage feedback: instrument the bytecode of everything loaded (the library included).
    atheris.instrument_all()
    atheris.Setup(sys.argv, check_one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
