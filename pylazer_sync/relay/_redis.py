"""The one border with Redis (redis-py): the URL and its secrets, the append script, reads,
and the translation of every redis-py exception into the library's own.

How an update is written exactly once by any number of relays: each append is one Lua
script, run atomically by the server. For each update it checks a short-lived seen-key
named by a digest of the raw frame; only if that key is absent does it set it (with a
TTL) and ``XADD`` the entry. Two relays racing to append the same update are serialised
by the server: whichever runs first writes it, the other finds the key. Because the
check and the append happen together, no crash between them can leave a key without
its entry (which would make the other relay skip an update nobody wrote), and a retry
after a lost reply is harmless (the key says it is already there). Entry ids are left to
Redis (``*``), so they follow append order: deterministic ids from the update timestamps
would fail on updates arriving out of timestamp order, which happens.

Requires Redis 7.0 or newer (the script declares itself with ``#!lua``, so a server that
is out of memory refuses it before it writes anything).
"""

from __future__ import annotations

import contextlib
import re
import ssl
import struct
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, Final, cast
from urllib.parse import parse_qs, unquote, urlsplit

from ..config import Secret, is_loopback
from ..errors import (
    InvalidRequestError,
    MissingDependencyError,
    RelayAuthError,
    RelayConnectError,
    RelayError,
    RelayStreamError,
)
from .entries import OutgoingEntry, StoredEntry
from .store import AppendResult, PermanentConnectError, Retention, StartPosition, StreamState

try:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError(
        "the relay needs redis-py: pip install 'pylazer-sync[redis]'"
    ) from exc

_APPEND_SCRIPT: Final = r"""#!lua
-- Append each update once, atomically. KEYS[1] the stream, KEYS[2] its seq counter,
-- KEYS[3..] one seen-key per update. ARGV[1] seen-key TTL (ms), ARGV[2] MAXLEN ~
-- (0: none), ARGV[3] max age (ms, 0: none), ARGV[4] the updates, one after the other:
-- frame length (u32 BE), meta length (u16 BE), frame, meta ("text ts sub").
local stream, counter = KEYS[1], KEYS[2]
local kind = redis.call('TYPE', stream)['ok']
if kind ~= 'stream' and kind ~= 'none' then
  return redis.error_reply('WRONGTYPE the key ' .. stream .. ' holds a ' .. kind .. ', not a stream')
end
local blob, pos = ARGV[4], 1
local fresh, taken = {}, {}
for i = 3, #KEYS do
  local frame_len, meta_len
  frame_len, meta_len, pos = struct.unpack('>I4I2', blob, pos)
  local key = KEYS[i]
  if not taken[key] and redis.call('EXISTS', key) == 0 then
    taken[key] = true
    local meta = string.sub(blob, pos + frame_len, pos + frame_len + meta_len - 1)
    local text, ts, sub = string.match(meta, '^([01]) (%d*) (%d+)$')
    if text == nil then
      return redis.error_reply('ERR malformed update ' .. (i - 2) .. ' in the batch')
    end
    fresh[#fresh + 1] = {key, string.sub(blob, pos, pos + frame_len - 1), text, ts, sub}
  end
  pos = pos + frame_len + meta_len
end
if #fresh > 0 then
  -- INCRBY first: should the counter be unusable, the script fails before any write.
  local seq = redis.call('INCRBY', counter, #fresh) - #fresh
  for _, u in ipairs(fresh) do
    seq = seq + 1
    redis.call('SET', u[1], '1', 'PX', ARGV[1])
    redis.call('XADD', stream, '*', 'frame', u[2], 'text', u[3], 'ts', u[4], 'sub', u[5],
               'seq', string.format('%d', seq))
  end
  if ARGV[2] ~= '0' then
    redis.call('XTRIM', stream, 'MAXLEN', '~', ARGV[2])
  end
  if ARGV[3] ~= '0' then
    local now = redis.call('TIME')
    local min_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - tonumber(ARGV[3])
    if min_ms > 0 then
      redis.call('XTRIM', stream, 'MINID', '~', string.format('%d', min_ms))
    end
  end
end
return {redis.call('XLEN', stream), #fresh}
"""
# The updates of a batch travel as one argument: redis-py packs each argument in Python
# (~1.5 us), and five per update made packing most of the relay's cost per update.
_BATCH_HEAD: Final = struct.Struct(">IH")

_ENTRY_ID: Final = re.compile(r"\d{1,20}(-\d{1,20})?")
_MAX_SEQ: Final = "18446744073709551615"  # the largest sequence part of an entry id
_TLS_FAILURES: Final = ("CERTIFICATE_VERIFY_FAILED", "certificate verify failed", "hostname")


def _check_stream_name(stream: str) -> str:
    if not isinstance(stream, str) or not stream or len(stream) > 512:
        raise InvalidRequestError(f"stream: {stream!r} must be a non-empty name")
    if any(c in stream for c in "{}") or not stream.isprintable():
        # The relay's own keys are "{stream}:seq" and "{stream}:seen:...": the braces make
        # them share the stream's hash slot (Redis Cluster), which a name with braces breaks.
        raise InvalidRequestError(
            f"stream: {stream!r} may not contain braces or unprintable characters"
        )
    return stream


class _Url:
    """A Redis URL taken apart: what to connect to, with the credentials held aside."""

    def __init__(
        self,
        url: str,
        password: str | None,
        username: str | None,
        ca_file: str | None,
        allow_insecure: bool,
    ) -> None:
        if not isinstance(url, str):
            raise InvalidRequestError(f"redis_url: {url!r} is not a URL string")
        parts = urlsplit(url)
        self.scheme = parts.scheme
        url_password = unquote(parts.password) if parts.password is not None else None
        url_username = unquote(parts.username) if parts.username else None
        if password is not None and url_password is not None:
            raise InvalidRequestError(
                "pass the Redis password either in the URL or as password=, not both"
            )
        if username is not None and url_username is not None:
            raise InvalidRequestError(
                "pass the Redis user either in the URL or as username=, not both"
            )
        secret = password if password is not None else url_password
        self.password = Secret(secret) if secret else None
        self.username = username if username is not None else url_username
        if self.username is not None and (
            not isinstance(self.username, str) or not self.username.isprintable()
        ):
            raise InvalidRequestError("username: must be a printable string")
        host = parts.hostname or ""
        try:
            port = parts.port
        except ValueError:
            port = -1
        db = 0
        query = parse_qs(parts.query, keep_blank_values=True)
        self.display = self._display(host, port, parts.path)
        if self.scheme == "unix":
            # A socket path: db may only come as ?db=N (the path holds no room for it).
            if not parts.path:
                raise InvalidRequestError(f"redis_url: {self.display!r} names no socket path")
            if set(query) - {"db"}:
                raise InvalidRequestError(
                    f"redis_url: {self.display!r}: only ?db=N is understood after a socket path"
                )
            db_text = query.get("db", ["0"])[-1]
            path = parts.path
        else:
            if not host or port == -1:
                raise InvalidRequestError(
                    f"redis_url: {self.display!r} needs a host and a valid port"
                )
            if parts.query or parts.fragment:
                # redis-py would take any ?name=value as a connection setting (even one
                # turning TLS checks off): settings are arguments here, never URL options.
                raise InvalidRequestError(
                    f"redis_url: {self.display!r}: options after '?' are not accepted"
                )
            db_text = parts.path.strip("/") or "0"
            path = ""
        if not db_text.isdigit():
            raise InvalidRequestError(f"redis_url: {self.display!r}: the database must be a number")
        db = int(db_text)
        if ca_file is not None and self.scheme != "rediss":
            raise InvalidRequestError("ca_file: only applies to rediss:// (TLS) URLs")
        if (
            self.scheme == "redis"
            and self.password is not None
            and not allow_insecure
            and not is_loopback(host)
        ):
            raise InvalidRequestError(
                f"redis_url: {self.display!r} is plain redis:// to a non-loopback host; the "
                "password would travel in clear text. Use rediss://, or pass "
                "allow_insecure=True if you must."
            )
        self.ca_file = ca_file
        if self.scheme == "unix":
            self.connect_url = f"unix://{path}?db={db}"
        else:
            netloc = f"[{host}]" if ":" in host else host
            self.connect_url = f"{self.scheme}://{netloc}:{port or 6379}/{db}"

    def _display(self, host: str, port: int | None, path: str) -> str:
        """The URL as shown in messages and stats: never the password."""
        user = f"{self.username_shown}:***@" if self.has_credentials else ""
        if self.scheme == "unix":
            return f"unix://{user}{path}"
        netloc = f"[{host}]" if ":" in host else host
        shown_port = "" if port is None or port == -1 else f":{port}"
        return f"{self.scheme}://{user}{netloc}{shown_port}{path}"

    @property
    def has_credentials(self) -> bool:
        return self.password is not None or self.username is not None

    @property
    def username_shown(self) -> str:
        return self.username or ""


class RedisStore:
    """One Redis stream, for a relay (appends) or a consumer (reads). See :class:`~.store.Store`.

    redis-py's own retries are turned off (``Retry(NoBackoff(), 0)``): the relay and the
    consumer retry with their own backoff, and count and log each failure.
    """

    def __init__(
        self,
        url: str,
        stream: str,
        *,
        password: str | None = None,
        username: str | None = None,
        ca_file: str | None = None,
        allow_insecure: bool = False,
        timeout: float = 5.0,
    ) -> None:
        self._url = _Url(url, password, username, ca_file, allow_insecure)
        self.stream = _check_stream_name(stream)
        self.name = f"{self._url.display} stream {stream}"
        self._counter_key = f"{{{stream}}}:seq"
        self._seen_prefix = f"{{{stream}}}:seen:"
        options: dict[str, Any] = {
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            "retry": Retry(NoBackoff(), 0),
            "client_name": "pylazer-sync",
        }
        if self._url.password is not None:
            options["password"] = self._url.password.reveal()
        if self._url.username is not None:
            options["username"] = self._url.username
        if self._url.scheme == "rediss":
            # Explicit, whatever the redis-py version's defaults: certificates and host
            # names are always checked.
            options["ssl_cert_reqs"] = "required"
            options["ssl_check_hostname"] = True
            if ca_file is not None:
                options["ssl_ca_certs"] = ca_file
        self.timeout = timeout
        self._redis = redis.Redis.from_url(self._url.connect_url, **options)
        self._append = self._redis.register_script(_APPEND_SCRIPT)

    def __repr__(self) -> str:
        return f"RedisStore({self.name!r})"

    # -- errors ----------------------------------------------------------------------

    def _text(self, exc: BaseException) -> str:
        text = str(exc) or type(exc).__name__
        secret = self._url.password
        if secret is not None and secret.reveal():
            text = text.replace(secret.reveal(), "***")  # redis-py does not echo it; be sure
        return text if len(text) <= 300 else text[:297] + "..."

    @contextlib.contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Translate redis-py's exceptions (and socket errors) at this one border."""
        where = f"{self.name}: {doing}"
        try:
            yield
        except redis.exceptions.AuthenticationError as exc:  # a ConnectionError: first
            raise RelayAuthError(
                f"{where}: Redis refused the credentials ({self._text(exc)})"
            ) from None
        except redis.exceptions.NoPermissionError as exc:
            raise RelayAuthError(
                f"{where}: the Redis user lacks a permission ({self._text(exc)})"
            ) from None
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
            text = self._text(exc)
            if _tls_verification_failed(exc, text):
                raise PermanentConnectError(
                    f"{where}: the server's TLS certificate did not verify ({text})"
                ) from None
            raise RelayConnectError(f"{where}: {text}") from None
        except redis.exceptions.ResponseError as exc:
            text = self._text(exc)
            if text.startswith("WRONGTYPE"):
                raise RelayStreamError(f"{where}: {text}") from None
            if text.startswith(("NOAUTH", "WRONGPASS")):
                raise RelayAuthError(f"{where}: Redis refused the credentials ({text})") from None
            if "Error compiling script" in text or "Unexpected #!" in text:
                raise RelayError(f"{where}: the relay needs Redis 7.0 or newer ({text})") from None
            raise RelayError(f"{where}: {text}") from None
        except redis.exceptions.RedisError as exc:
            raise RelayError(f"{where}: {self._text(exc)}") from None

    # -- the Store protocol ---------------------------------------------------------------

    def check(self, writing: bool) -> StreamState:
        with self._errors("checking the stream"):
            kind = _text_of(self._redis.type(self.stream))
            counter_kind = _text_of(self._redis.type(self._counter_key))
        if kind not in ("none", "stream"):
            raise RelayStreamError(
                f"{self.name}: the key holds a {kind}, not a stream; "
                "choose another stream name or delete the key"
            )
        if counter_kind not in ("none", "string"):
            raise RelayStreamError(
                f"{self.name}: the relay's counter key {self._counter_key!r} holds a "
                f"{counter_kind}; delete it"
            )
        with self._errors("checking the stream"):
            pipe = self._redis.pipeline(transaction=True)
            pipe.xrevrange(self.stream, count=1)
            pipe.get(self._counter_key)
            pipe.xlen(self.stream)
            last, counter, length = pipe.execute()
        if counter is not None and not counter.isdigit():
            raise RelayStreamError(
                f"{self.name}: the relay's counter key {self._counter_key!r} does not hold "
                "a number; delete it"
            )
        last_id = "0-0"
        last_seq: int | None = int(counter) if counter is not None else 0
        newest = _entries(last)
        if newest:
            stored = newest[0]
            last_id = stored.entry_id
            if stored.problem is not None:
                if writing:
                    raise RelayStreamError(
                        f"{self.name}: {stored.problem}; a relay writes only into a stream "
                        "of its own: choose another stream name"
                    )
                last_seq = None
            else:
                last_seq = stored.seq
        if writing:
            # Runs the append script with nothing to append: loads it (after a restart
            # too), and a server or ACL user that cannot run it is reported now.
            with self._errors("loading the append script"):
                self._append(keys=[self.stream, self._counter_key], args=[1, 0, 0, b""])
        return StreamState(last_id, last_seq, int(length))

    def append(
        self, entries: Sequence[OutgoingEntry], seen_ttl: float, retention: Retention
    ) -> AppendResult:
        prefix = self._seen_prefix
        keys = [self.stream, self._counter_key]
        keys.extend(prefix + e.digest for e in entries)
        head = _BATCH_HEAD.pack
        parts: list[bytes] = []
        for e in entries:
            frame, text, ts, sub = e.fields()
            meta = b"%s %s %s" % (text, ts, sub)
            parts += (head(len(frame), len(meta)), frame, meta)
        args: list[bytes | int] = [
            max(1, int(seen_ttl * 1000)),
            retention.max_len or 0,
            int((retention.max_age or 0) * 1000),
            b"".join(parts),
        ]
        with self._errors("appending"):
            length, appended = self._append(keys=keys, args=args)
        return AppendResult(int(appended), int(length))

    def validate_start(self, start: StartPosition) -> None:
        """Raise InvalidRequestError for a start position that is not one (no I/O)."""
        if isinstance(start, datetime):
            return
        if not isinstance(start, str) or not (start == "$" or _ENTRY_ID.fullmatch(start)):
            raise InvalidRequestError(
                f"start: {start!r}; expected '$' (new entries), '0' (all retained), an entry "
                "id such as '1700000000000-0', or a datetime"
            )

    def start_after(self, start: StartPosition) -> tuple[str, int | None]:
        self.validate_start(start)
        if isinstance(start, datetime):
            if start.tzinfo is None:
                start = start.astimezone()  # naive: local time, as datetime.timestamp() has it
            ms = (start - datetime(1970, 1, 1, tzinfo=timezone.utc)) // _ONE_MS
            # Entry ids are the time of the append in ms: "after the last id of ms - 1".
            return (f"{ms - 1}-{_MAX_SEQ}" if ms > 0 else "0-0"), None
        if start == "$":
            state = self.check(writing=False)
            return state.last_id, state.last_seq
        if start in ("0", "0-0"):
            return "0-0", None
        entry_id = start if "-" in start else f"{start}-0"
        with self._errors("looking up the start entry"):
            found = self._redis.xrange(self.stream, entry_id, entry_id, count=1)
        entries = _entries(found)
        return entry_id, entries[0].seq if entries else None

    def read(self, after: str, count: int, block: float) -> list[StoredEntry]:
        with self._errors("reading"):
            reply = self._redis.xread(
                {self.stream: after}, count=count, block=max(1, int(block * 1000))
            )
        if not reply:
            return []
        # RESP2 (redis-py's default): [[stream, [(id, {field: value}), ...]]]
        _, items = cast(list[tuple[bytes, object]], reply)[0]
        return _entries(items)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._redis.close()

    # -- for tests and tools -------------------------------------------------------------

    def delete(self) -> int:
        """Delete the stream, its counter and its seen-keys; returns how many keys went."""
        with self._errors("deleting the stream"):
            keys = [self.stream, self._counter_key]
            keys.extend(self._redis.scan_iter(match=self._seen_prefix + "*", count=1000))
            removed = 0
            for i in range(0, len(keys), 1000):
                removed += int(self._redis.delete(*keys[i : i + 1000]))
            return removed

    def memory_usage(self) -> int:
        """Bytes Redis attributes to the stream key (``MEMORY USAGE ... SAMPLES 0``)."""
        with self._errors("measuring the stream"):
            used = self._redis.memory_usage(self.stream, samples=0)
        return int(used or 0)


_ONE_MS: Final = timedelta(milliseconds=1)


def _text_of(reply: object) -> str:
    """A simple-string reply as text (redis-py gives bytes, or str when decoding)."""
    return reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)


def _entries(items: object) -> list[StoredEntry]:
    """Stream entries as redis-py returns them (``[(id, {field: value}), ...]``)."""
    return [
        StoredEntry.parse(_text_of(entry_id), fields)
        for entry_id, fields in cast(list[tuple[bytes, dict[bytes, bytes]]], items or [])
    ]


def _tls_verification_failed(exc: BaseException, text: str) -> bool:
    seen: BaseException | None = exc
    for _ in range(5):  # the cause chain, bounded
        if seen is None:
            break
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return any(marker in text for marker in _TLS_FAILURES) and "SSL" in text.upper()
