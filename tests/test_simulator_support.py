"""Helpers for the simulator tests: a plain websocket-client connection with bounded waits.

Deliberately not the pylazer_sync client: the simulator is checked against a bare
WebSocket library and the protocol layer's decoders only.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Callable
from typing import Any

import websocket

from pylazer_sync.protocol import (
    ServerMessage,
    StreamUpdate,
    decode_binary_update,
    parse_server_message,
)

DEFAULT_TIMEOUT = 5.0


class WsClient:
    """A blocking WebSocket client; every receive has a timeout."""

    def __init__(self, url: str, token: str | None = None, timeout: float = DEFAULT_TIMEOUT):
        header = [f"Authorization: Bearer {token}"] if token is not None else None
        self.ws = websocket.create_connection(url, header=header, timeout=timeout)
        self.pings = 0

    def __enter__(self) -> WsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if not self.ws.connected:
            return
        try:
            self.ws.close(timeout=1.0)
        except (OSError, websocket.WebSocketException):
            self.ws.shutdown()

    def send(self, obj: Any) -> None:
        self.ws.send(obj if isinstance(obj, str) else json.dumps(obj))

    def recv_raw(self, timeout: float = DEFAULT_TIMEOUT) -> tuple[int, bytes]:
        """The next data frame as (opcode, bytes); pings are counted and skipped."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no data frame in time")
            self.ws.settimeout(remaining)
            try:
                opcode, data = self.ws.recv_data(control_frame=True)
            except websocket.WebSocketTimeoutException:
                raise TimeoutError("no data frame in time") from None
            if opcode == websocket.ABNF.OPCODE_PING:
                self.pings += 1
                continue
            if opcode in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY):
                return opcode, data
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                # Answer the close (as a reading client does) and let go of the socket.
                with contextlib.suppress(OSError, websocket.WebSocketException):
                    self.ws.send_close(int.from_bytes(data[:2], "big") if len(data) >= 2 else 1000)
                self.ws.shutdown()
                raise ConnectionClosedByServer(data)

    def recv_control_or_data(self, timeout: float) -> tuple[int, bytes]:
        """The next frame of any kind (ping, close, data)."""
        self.ws.settimeout(timeout)
        try:
            opcode, data = self.ws.recv_data(control_frame=True)
        except websocket.WebSocketTimeoutException:
            raise TimeoutError("no frame in time") from None
        return opcode, data

    def recv(self, timeout: float = DEFAULT_TIMEOUT) -> ServerMessage:
        """The next message, decoded by the protocol layer."""
        return decode(*self.recv_raw(timeout))

    def recv_until(
        self, predicate: Callable[[ServerMessage], bool], timeout: float = DEFAULT_TIMEOUT
    ) -> ServerMessage:
        deadline = time.monotonic() + timeout
        while True:
            msg = self.recv(max(0.001, deadline - time.monotonic()))
            if predicate(msg):
                return msg

    def updates(
        self, sub_id: int, count: int, timeout: float = DEFAULT_TIMEOUT
    ) -> list[StreamUpdate]:
        """The next ``count`` updates of one subscription (other messages skipped)."""
        deadline = time.monotonic() + timeout
        out: list[StreamUpdate] = []
        while len(out) < count:
            msg = self.recv(max(0.001, deadline - time.monotonic()))
            if isinstance(msg, StreamUpdate) and msg.subscription_id == sub_id:
                out.append(msg)
        return out


class ConnectionClosedByServer(Exception):
    """The server sent a close frame; ``args[0]`` is its payload (code + reason)."""

    @property
    def code(self) -> int:
        data: bytes = self.args[0]
        return int.from_bytes(data[:2], "big") if len(data) >= 2 else 1005


def decode(opcode: int, data: bytes) -> ServerMessage:
    """A data frame decoded by the protocol layer (text as JSON, binary as an update)."""
    if opcode == websocket.ABNF.OPCODE_TEXT:
        return parse_server_message(data.decode())
    return decode_binary_update(data)


def subscribe_request(sub_id: int, **params: Any) -> dict[str, Any]:
    """A subscribe request with sensible defaults (override any wire field by name)."""
    request: dict[str, Any] = {
        "type": "subscribe",
        "subscriptionId": sub_id,
        "priceFeedIds": [1, 2],
        "properties": ["price", "exponent", "feedUpdateTimestamp"],
        "formats": [],
        "deliveryFormat": "json",
        "channel": "fixed_rate@50ms",
    }
    request.update(params)
    if "symbols" in params:
        del request["priceFeedIds"]
    return request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
