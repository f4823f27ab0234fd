"""One HTTP exchange, and the one border where urllib's exceptions become the library's.

Built on the standard library's ``urllib.request``: a handful of small JSON calls do not
justify another dependency, and it verifies TLS certificates with the system's CAs (or a
given ``ssl.SSLContext``). The token goes only into an *unredirected* ``Authorization``
header, so a redirect to another host never carries it, and any text that comes back is
scrubbed of it before it is shown.
"""

from __future__ import annotations

import http.client
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from ..config import Secret
from ..errors import AuthenticationError, InvalidRequestError, RestError

MAX_ANSWER: Final = 64 << 20
"""Bytes an answer may hold: the symbols catalogue is a few MB in production."""


def exchange(
    request: urllib.request.Request,
    token: Secret | None,
    timeout: float,
    ssl_context: ssl.SSLContext,
) -> bytes:
    """Send ``request`` (bearer token, JSON accepted) and return the answer's body.

    Raises :class:`AuthenticationError` (HTTP 401/403), :class:`InvalidRequestError`
    (HTTP 400), :class:`RestError` (any other failure, with ``status`` when a server
    answered); the texts name the URL, never the token.
    """
    if token is not None:
        request.add_unredirected_header("Authorization", f"Bearer {token.reveal()}")
    request.add_header("Accept", "application/json")
    with (
        mapped_errors(request.full_url, token),
        urllib.request.urlopen(request, timeout=timeout, context=ssl_context) as response,
    ):
        body: bytes = response.read(MAX_ANSWER + 1)
    if len(body) > MAX_ANSWER:
        raise RestError(f"{request.full_url}: answer larger than {MAX_ANSWER} bytes")
    return body


@contextmanager
def mapped_errors(url: str, token: Secret | None) -> Iterator[None]:
    """Translate urllib's exceptions into the library's, naming the URL (never the token)."""
    try:
        yield
    except urllib.error.HTTPError as exc:
        detail = exc.read(2000).decode("utf-8", "replace").strip()
        if token is not None:
            detail = token.scrub(detail)  # an error page may echo the request's headers
        if exc.code in (401, 403):
            what = (
                "no access token was sent"
                if token is None
                else "the server refused the access token"
            )
            raise AuthenticationError(f"{url}: HTTP {exc.code}, {what}: {detail}") from None
        if exc.code == 400:
            raise InvalidRequestError(f"{url}: HTTP 400: {detail}") from None
        raise RestError(f"{url}: HTTP {exc.code}: {detail}", status=exc.code) from None
    except urllib.error.URLError as exc:
        raise RestError(f"{url}: {exc.reason}") from None
    except TimeoutError as exc:
        raise RestError(f"{url}: timed out ({exc})") from None
    except (OSError, ssl.SSLError, http.client.HTTPException) as exc:
        # Also a connection cut while the answer was read (reset, incomplete body).
        raise RestError(f"{url}: {exc!r}" if not str(exc) else f"{url}: {exc}") from None
