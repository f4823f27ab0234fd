"""Replay: the simulator serves a recording's frames instead of its market model.

:class:`Replay` loads a recording (Parquet or jsonl, see :mod:`pylazer_sync.recording`)
and sorts its frames into *streams*, one per recorded subscription: what it delivered
(``json`` or ``binary``), with which envelopes, properties, channel and feeds. A client
whose subscription asks for exactly one of them receives that stream's frames, from its
first, with their original spacing divided by ``speed`` (or as fast as the connection
takes them), under the client's own subscription id. Only that id is rewritten (bytes
4..12 of a binary frame, the ``subscriptionId`` value of a JSON frame): every envelope
stays byte for byte as recorded, so it verifies against the recorded signers.

A subscription that asks for anything else (other feeds, properties, formats, channel or
delivery) gets a ``subscriptionError`` that says what the recording holds: signed
payloads cannot be changed without their signer's key.

Each subscription plays the recording from its start, so a client that reconnects
receives it again from the start (its dedup drops what it saw within its TTL), and
``loop`` serves the same signed frames again, round after round.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import struct
from dataclasses import dataclass, field
from typing import Final

from ..errors import InvalidRequestError, ProtocolError, RecordingError
from ..protocol import (
    DeliveryFormat,
    EvmMessage,
    Format,
    JsonBinaryEncoding,
    JsonMessage,
    LeEcdsaMessage,
    LeUnsignedMessage,
    Property,
    ServerMessage,
    SolanaMessage,
    StreamUpdate,
    Subscribed,
    SubscribeRequest,
    SubscriptionError,
    decode_frame,
)
from ..protocol.types import CHANNEL_IDS
from ..recording import iter_frames
from ..recording.updates import channel_id_of
from .connection import SimConnection
from .market import Catalogue
from .updates import Frame, Shape

logger = logging.getLogger(__name__)

_SUBSCRIPTION_ID = re.compile(rb'"subscriptionId"\s*:\s*(\d+)')
_ENCODING = re.compile(rb'"encoding"\s*:\s*"(hex|base64)"')
_U64_BE: Final = struct.Struct(">Q")
_FORMAT_OF: Final = {
    EvmMessage: Format.EVM,
    SolanaMessage: Format.SOLANA,
    LeEcdsaMessage: Format.LE_ECDSA,
    LeUnsignedMessage: Format.LE_UNSIGNED,
}
# At full speed a player waits for the connection's queue to drain below this share of its
# capacity, so that nothing is dropped for want of room (the live ticks do drop).
_HIGH_WATER: Final = 0.5
_DESCRIBED_STREAMS: Final = 5


@dataclass(frozen=True, slots=True)
class ReplayFrame:
    """A recorded frame, ready to be sent under any subscription id."""

    offset_us: int
    """Time since the stream's first frame (recorded timestamps, never decreasing)."""
    is_text: bool
    head: bytes
    tail: bytes

    def for_subscription(self, subscription_id: int) -> Frame:
        """The frame with ``subscription_id`` in place of the recorded one."""
        if self.is_text:
            return (self.head + str(subscription_id).encode() + self.tail).decode()
        return self.head + _U64_BE.pack(subscription_id) + self.tail


def _split(frame: bytes, is_text: bool, where: str) -> tuple[bytes, bytes]:
    """The frame's bytes before and after its subscription id."""
    if not is_text:
        return frame[:4], frame[12:]
    found = list(_SUBSCRIPTION_ID.finditer(frame))
    # Envelopes are hex or base64 and the parsed object has no such key: one match.
    if len(found) != 1:
        raise RecordingError(f"{where}: cannot find the frame's subscriptionId")
    return frame[: found[0].start(1)], frame[found[0].end(1) :]


@dataclass
class RecordedStream:
    """The frames of one recorded subscription and what they hold."""

    delivery: DeliveryFormat
    formats: tuple[Format, ...]
    parsed: bool
    encoding: JsonBinaryEncoding | None  # None: no envelope in a JSON frame, any will do
    properties: tuple[Property, ...]
    ordered: bool  # whether the property order is signed into the frames (binary payloads)
    channel_id: int | None  # None: the frames do not say (JSON without envelopes)
    feed_ids: set[int] = field(default_factory=set)
    frames: list[ReplayFrame] = field(default_factory=list)

    def describe(self) -> str:
        """What a subscription must ask for to receive this stream."""
        channel = "any" if self.channel_id is None else _channel_names(self.channel_id)
        parts = [
            f"feeds {sorted(self.feed_ids)}",
            f"properties {','.join(p.value for p in self.properties)}",
            f"formats {','.join(f.value for f in self.formats) or 'none'}",
            f"channel {channel}",
            f"delivery {self.delivery.value}",
            f"parsed {str(self.parsed).lower()}",
        ]
        if self.encoding is not None:
            parts.append(f"jsonBinaryEncoding {self.encoding.value}")
        return ", ".join(parts)

    def differences(self, request: SubscribeRequest, feed_ids: set[int]) -> list[str]:
        """The fields in which ``request`` differs from this stream (none: a match)."""
        out: list[str] = []
        if feed_ids != self.feed_ids:
            out.append("feeds")
        if self.ordered:
            if request.properties != self.properties:
                out.append("properties (in this order)")
        elif set(request.properties) != set(self.properties):
            out.append("properties")
        if request.delivery_format is not self.delivery:
            out.append("delivery")
        # Binary frames carry the envelopes in the order asked; JSON in a fixed order.
        ordered_formats = self.delivery is DeliveryFormat.BINARY
        if (tuple(request.formats) if ordered_formats else set(request.formats)) != (
            self.formats if ordered_formats else set(self.formats)
        ):
            out.append("formats")
        if request.parsed != self.parsed:
            out.append("parsed")
        if self.channel_id is not None and CHANNEL_IDS[request.channel] != self.channel_id:
            out.append("channel")
        if self.encoding is not None and request.json_binary_encoding is not self.encoding:
            out.append("jsonBinaryEncoding")
        if request.market_sessions is not None:
            out.append("marketSessions (a replay cannot filter signed updates)")
        return out


def _channel_names(channel_id: int) -> str:
    names = [c.value for c, i in CHANNEL_IDS.items() if i == channel_id]
    return " or ".join(names) if names else f"id {channel_id}"


@dataclass(frozen=True, slots=True)
class _StreamKey:
    """What decides a frame's stream: its recorded subscription and its shape."""

    subscription_id: int
    is_text: bool
    formats: tuple[Format, ...]
    parsed: bool
    encoding: JsonBinaryEncoding | None
    properties: tuple[Property, ...] | None  # None: no binary payload says their order
    channel_id: int | None

    @classmethod
    def of(
        cls, update: StreamUpdate, is_text: bool, encoding: JsonBinaryEncoding | None
    ) -> _StreamKey:
        formats = tuple(
            _FORMAT_OF[type(m)] for m in update.messages if not isinstance(m, JsonMessage)
        )
        signed = next((m for m in update.messages if not isinstance(m, JsonMessage)), None)
        properties: tuple[Property, ...] | None = None
        if signed is not None:
            feeds = signed.decode_payload().feeds
            properties = feeds[0].properties if feeds else ()
        return cls(
            update.subscription_id,
            is_text,
            formats,
            update.parsed is not None,
            encoding,
            properties,
            channel_id_of(update),
        )

    def new_stream(self) -> RecordedStream:
        return RecordedStream(
            delivery=DeliveryFormat.JSON if self.is_text else DeliveryFormat.BINARY,
            formats=self.formats,
            parsed=self.parsed,
            encoding=self.encoding,
            properties=self.properties if self.properties is not None else (),
            ordered=self.properties is not None,
            channel_id=self.channel_id,
        )


class Replay:
    """A recording loaded for replay: its streams, each with its frames in order.

    Loading decodes every frame once (to sort it into its stream and check it), and
    keeps the frames in memory: about the recording's size in frames.
    """

    def __init__(self, streams: list[RecordedStream], source: str = "recording") -> None:
        if not streams:
            raise RecordingError(f"{source}: the recording holds no update")
        self.streams = streams
        self.source = source
        self._signers: dict[str, str] | None = None
        self._first_updates: list[StreamUpdate] = []

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Replay:
        """Load a recording (a Parquet or jsonl file, or a directory of them)."""
        streams: dict[_StreamKey, RecordedStream] = {}
        starts: dict[_StreamKey, int] = {}
        first_updates: list[StreamUpdate] = []
        for index, recorded in enumerate(iter_frames(path)):
            where = f"{path}, update {index}"
            try:
                message = decode_frame(recorded.frame, recorded.is_text)
            except ProtocolError as exc:
                raise RecordingError(f"{where}: {exc}") from None
            if not isinstance(message, StreamUpdate):
                continue
            encoding = None
            if recorded.is_text and message.messages:
                found = _ENCODING.search(recorded.frame)
                encoding = JsonBinaryEncoding(found[1].decode()) if found else None
            key = _StreamKey.of(message, recorded.is_text, encoding)
            stream = streams.get(key)
            if stream is None:
                stream = streams[key] = key.new_stream()
                first_updates.append(message)
            stamp = recorded.timestamp_us
            start = starts.setdefault(key, stamp if stamp is not None else 0)
            previous = stream.frames[-1].offset_us if stream.frames else 0
            offset = previous if stamp is None else max(previous, stamp - start)
            head, tail = _split(recorded.frame, recorded.is_text, where)
            stream.frames.append(ReplayFrame(offset, recorded.is_text, head, tail))
            for feed in message.feeds:
                stream.feed_ids.add(feed.feed_id)
                if not stream.ordered:  # properties as seen (JSON leaves absent ones out)
                    new = [p for p in feed.properties if p not in stream.properties]
                    if new:
                        stream.properties = (*stream.properties, *new)
        replay = cls(list(streams.values()), str(path))
        replay._first_updates = first_updates
        return replay

    @property
    def frame_count(self) -> int:
        """Frames in the recording (every stream)."""
        return sum(len(s.frames) for s in self.streams)

    def describe(self) -> str:
        """One line per stream (the first few): what a subscription may ask for."""
        lines = [f"[{s.describe()}]" for s in self.streams[:_DESCRIBED_STREAMS]]
        if len(self.streams) > _DESCRIBED_STREAMS:
            lines.append(f"and {len(self.streams) - _DESCRIBED_STREAMS} more")
        return "; ".join(lines)

    def signers(self) -> dict[str, str]:
        """The recorded signer identities by format (as ``Simulator.trusted_signers()``
        gives them), read from the first update of each stream; checks the signatures."""
        if self._signers is None:
            found: dict[str, str] = {}
            for update in self._first_updates:
                if update.solana is not None:
                    found.setdefault("solana", update.solana.verify())
                if update.evm is not None:
                    found.setdefault("evm", update.evm.verify())
                if update.le_ecdsa is not None:
                    found.setdefault("leEcdsa", update.le_ecdsa.verify())
            self._signers = found
        return dict(self._signers)

    def match(self, request: SubscribeRequest, catalogue: Catalogue) -> RecordedStream | str:
        """The stream a subscription receives, or the text of the error that refuses it."""
        feed_ids = set(request.price_feed_ids or ())
        unknown = []
        for symbol in request.symbols or ():
            info = catalogue.by_symbol(symbol)
            if info is None:
                unknown.append(symbol)
            else:
                feed_ids.add(info.feed_id)
        if unknown:
            return f"unknown symbols: {unknown} (a replay knows feeds by id: {self.describe()})"
        best: list[str] | None = None
        for stream in self.streams:
            differences = stream.differences(request, feed_ids)
            if not differences:
                return stream
            if best is None or len(differences) < len(best):
                best = differences
        assert best is not None
        return (
            f"the recording does not hold this subscription (it differs in "
            f"{', '.join(best)}); the recording holds: {self.describe()}"
        )


class ReplayService:
    """The replay side of a simulator server: answers subscriptions and plays streams.

    Runs on the simulator's event loop, like the server that calls it.
    """

    def __init__(
        self, replay: Replay, catalogue: Catalogue, speed: float | None, loop: bool
    ) -> None:
        if speed is not None and not speed > 0:
            raise InvalidRequestError(
                f"replay speed must be > 0 or None (as fast as possible), got {speed!r}"
            )
        self.replay = replay
        self.catalogue = catalogue
        self.speed = speed
        self.loop = loop
        self.frames_sent = 0
        self._players: dict[tuple[int, int], asyncio.Task[None]] = {}

    def subscribe(self, conn: SimConnection, request: SubscribeRequest) -> ServerMessage:
        """Start playing the matching stream to ``conn``; the answer to send first."""
        sub_id = request.subscription_id
        assert sub_id is not None
        stream = self.replay.match(request, self.catalogue)
        if isinstance(stream, str):
            return SubscriptionError(sub_id, stream)
        shape = Shape(
            subscription_id=sub_id,
            feed_ids=tuple(sorted(stream.feed_ids)),
            properties=request.properties,
            formats=request.formats,
            delivery_format=request.delivery_format,
            json_binary_encoding=request.json_binary_encoding,
            parsed=request.parsed,
            channel=request.channel,
            market_sessions=None,
        )
        conn.subscriptions[sub_id] = (shape, 0)  # period 0: no tick scheduler serves it
        self._players[(conn.conn_id, sub_id)] = asyncio.create_task(
            self._play(conn, stream, sub_id), name=f"sim-replay-{conn.conn_id}-{sub_id}"
        )
        return Subscribed(sub_id)

    def cancel(self, conn_id: int, sub_id: int) -> None:
        """Stop playing to one subscription (unsubscribed, or its connection is gone)."""
        task = self._players.pop((conn_id, sub_id), None)
        if task is not None:
            task.cancel()

    def cancel_all(self) -> None:
        """Stop every player (the server shuts down)."""
        for task in self._players.values():
            task.cancel()
        self._players.clear()

    async def _play(self, conn: SimConnection, stream: RecordedStream, sub_id: int) -> None:
        loop = asyncio.get_running_loop()
        frames = stream.frames
        duration = frames[-1].offset_us
        # A looping stream starts its next round one mean frame spacing after its end.
        period = duration + (duration // (len(frames) - 1) if len(frames) > 1 else 1_000_000)
        high_water = max(1, int(conn.queue.maxsize * _HIGH_WATER))
        started = loop.time()
        round_number = 0
        while True:
            for frame in frames:
                if self.speed is None:
                    if conn.queue.qsize() >= high_water:
                        await conn.queue.join()
                    else:
                        await asyncio.sleep(0)  # let the writer and the other tasks run
                else:
                    due = started + (round_number * period + frame.offset_us) / 1e6 / self.speed
                    wait = due - loop.time()
                    if wait > 0:
                        await asyncio.sleep(wait)
                conn.offer(frame.for_subscription(sub_id))
                self.frames_sent += 1
            if not self.loop:
                return
            round_number += 1


def load_replay(source: str | os.PathLike[str] | Replay) -> Replay:
    """A :class:`Replay` from a path, or the one given (to share a loaded recording)."""
    return source if isinstance(source, Replay) else Replay.load(source)
