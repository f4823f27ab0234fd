"""The feeds catalogue on disk: the last answer kept, for when the service is unreachable.

As the official Rust client's ``cache_dir``: every successful fetch of the whole
catalogue replaces the file (written beside it, flushed, then renamed over it, so a
reader never sees half a file and a crash leaves the old copy), and a call that cannot
reach the service answers from the file instead. The file holds the service's own JSON
entries (never the token) with the time and place they were fetched, so entries read
back decode exactly as fresh ones.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

logger = logging.getLogger("pylazer_sync.rest")

_KIND: Final = "pylazer-sync symbols cache"
_VERSION: Final = 1


@dataclass(frozen=True)
class CachedCatalogue:
    """A catalogue read back from the cache file."""

    entries: list[Any]
    """The service's JSON entries, as it sent them."""
    fetched_at: float
    """When they were fetched (seconds since the epoch)."""
    source: str
    """The URL they were fetched from."""

    @property
    def age(self) -> float:
        """Seconds since the fetch (never negative, whatever the clock did)."""
        return max(0.0, time.time() - self.fetched_at)


class CatalogueCache:
    """One cache file (created with its directory on the first save)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser()

    def __repr__(self) -> str:
        return f"CatalogueCache({str(self.path)!r})"

    def load(self) -> CachedCatalogue | None:
        """The cached catalogue, or ``None`` if there is none (or it is unreadable, which
        is logged: a broken cache must not break a call that could do without it)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            logger.warning("symbols cache %s cannot be read: %s", self.path, exc)
            return None
        try:
            doc = json.loads(text)
            if not isinstance(doc, dict) or doc.get("kind") != _KIND:
                raise ValueError("not a pylazer-sync symbols cache")
            if doc.get("version") != _VERSION:
                raise ValueError(f"version {doc.get('version')!r}, expected {_VERSION}")
            entries, fetched_at = doc["symbols"], doc["fetched_at"]
            if not isinstance(entries, list) or not isinstance(fetched_at, (int, float)):
                raise ValueError("malformed")
        except (ValueError, KeyError, RecursionError) as exc:
            logger.warning("symbols cache %s is not usable (%s); ignored", self.path, exc)
            return None
        return CachedCatalogue(entries, float(fetched_at), str(doc.get("source", "")))

    def save(self, entries: list[Any], source: str, fetched_at: float | None = None) -> bool:
        """Replace the file with ``entries`` atomically; False (logged) if it cannot be
        written, which leaves the previous copy in place."""
        doc = {
            "kind": _KIND,
            "version": _VERSION,
            "fetched_at": time.time() if fetched_at is None else fetched_at,
            "source": source,
            "symbols": entries,
        }
        tmp: str | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(doc, f, separators=(",", ":"))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            tmp = None
            return True
        except OSError as exc:
            logger.warning("symbols cache %s cannot be written: %s", self.path, exc)
            return False
        finally:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
