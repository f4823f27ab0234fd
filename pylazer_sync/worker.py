"""A named daemon thread with the start/join/alive calls the client uses to manage it.

Shared by the connection threads and the dedup thread, which must not import each other.
Daemon, so a client nobody closed never holds up the interpreter's exit.
"""

from __future__ import annotations

import threading


class Worker:
    """Owns one daemon thread that runs :meth:`_run`."""

    def __init__(self, name: str) -> None:
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the thread to end; True if it did (or never ran)."""
        if self._thread.ident is not None:
            self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        """Whether the thread is running."""
        return self._thread.is_alive()
