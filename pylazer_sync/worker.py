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

    @property
    def name(self) -> str:
        """The thread's name (``pylazer-conn-N``, ``pylazer-dedup``)."""
        return self._thread.name

    def is_current_thread(self) -> bool:
        """Whether the caller runs in this worker's thread (which cannot join itself)."""
        return self._thread is threading.current_thread()

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the thread to end; True if it did (or never ran)."""
        if self._thread.ident is not None:
            self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        """Whether the thread is running."""
        return self._thread.is_alive()
