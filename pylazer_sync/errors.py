"""The one exception tree of pylazer_sync.

Every error the library raises derives from :class:`LazerError`, so
``except pylazer_sync.LazerError`` catches them all (an exception of another class is
a bug: please report it). Where a standard exception
is the natural expectation (``ValueError`` for bad arguments, ``TimeoutError``
for a wait that ran out, ``ImportError`` for a missing extra), the library class
derives from it too, so either ``except`` works.
"""

from __future__ import annotations


class LazerError(Exception):
    """Base class of every error raised by pylazer_sync."""


class InvalidRequestError(LazerError, ValueError):
    """A subscription or REST request (or a client setting) breaks the protocol's rules."""


class ProtocolError(LazerError, ValueError):
    """Bytes or JSON received from the wire are malformed or cannot be decoded."""


class SignatureError(LazerError):
    """A signature is invalid, or valid but made by a signer that is not trusted."""


class MissingDependencyError(LazerError, ImportError):
    """An optional extra (for example ``pylazer-sync[verify]``) is needed but not installed."""


class AuthenticationError(LazerError):
    """The server refused the access token (HTTP 401) or the entitlement (HTTP 403)."""


class ConnectError(LazerError):
    """No connection could be opened in time; the text lists each endpoint's last failure."""


class ClientClosed(LazerError):
    """The client was closed: no more messages will arrive."""


class ClientNotStarted(LazerError):
    """``recv()``, ``recv_many()`` or iteration on a client that was never started: call
    ``start()`` first, or use ``with LazerClient(...) as client:``."""


class RecvTimeout(LazerError, TimeoutError):
    """``recv()`` waited for the given timeout and no message arrived."""


class SimulatorError(LazerError, RuntimeError):
    """The local simulator cannot do what was asked (already running, not running, or a
    blocking call from its own event loop thread)."""


class RestError(LazerError):
    """A REST call failed: the HTTP status and the server's error text are in the message.

    ``status`` is the HTTP status of the (last) answer, or ``None`` when no server answered
    (connection refused, timeout, DNS, TLS).
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RecordingError(LazerError, OSError):
    """A recording could not be written (disk full, directory not writable, ...) or read."""


class RelayError(LazerError):
    """The relay's store (Redis) failed or refused an operation; the text says which and
    why (never the password)."""


class RelayConnectError(RelayError, ConnectError):
    """The relay's store could not be reached (at start, within the start timeout), or its
    TLS certificate did not verify."""


class RelayAuthError(RelayError, AuthenticationError):
    """The relay's store refused the credentials (Redis AUTH: wrong password or ACL user)
    or the ACL user lacks a permission the relay needs."""


class RelayStreamError(RelayError):
    """The stream key holds something else: another key type, or entries this library did
    not write."""
