"""What a command is, so that adding one is writing one module.

A command module (``stream.py``, ``latest.py``, ...) defines::

    def register(commands: Subcommands) -> None:   # adds its subparser and options
    def run(args: argparse.Namespace, ctx: Context) -> int:   # does the work, returns the status
    COMMAND = Command("name", register, run)

and is listed in ``COMMANDS`` in ``pylazer_sync/cli/__init__.py`` (the order of ``--help``).
``run`` raises :class:`~pylazer_sync.cli.exits.CliError` or a library ``LazerError`` for an
expected failure; ``main`` turns either into one error line and an exit status.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .exits import Parser

if TYPE_CHECKING:
    Subcommands = argparse._SubParsersAction[Parser]
else:  # not subscriptable at run time
    Subcommands = argparse._SubParsersAction


class LogGate(logging.Filter):
    """Holds back the library's log lines until the client is connected.

    While starting, each refused or failed connection logs a line; the error that
    follows sums them all up, so showing both would bury the one line that matters.
    An explicit ``--log-level`` opens the gate from the start.
    """

    def __init__(self, is_open: bool) -> None:
        super().__init__()
        self._open = is_open

    def open(self) -> None:
        """Let log lines through from now on."""
        self._open = True

    def filter(self, record: logging.LogRecord) -> bool:
        return self._open


@dataclass
class Context:
    """What ``main`` hands every command besides its options."""

    log_gate: LogGate

    def connected(self) -> None:
        """Say that the client is up: the library's log lines are worth showing now."""
        self.log_gate.open()


@dataclass(frozen=True)
class Command:
    """One ``pylazer-sync`` command: its name, how it registers, how it runs."""

    name: str
    register: Callable[[Subcommands], None]
    run: Callable[[argparse.Namespace, Context], int]
    own_logging: bool = False
    """The command sets up logging itself (``simulate``): ``main`` adds no handler."""
