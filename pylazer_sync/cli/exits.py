"""Exit statuses and the one-line error every expected failure ends with.

A script tests the status; a person reads the line. A traceback means a bug.
"""

from __future__ import annotations

import argparse
from typing import Final, NoReturn

PROG: Final = "pylazer-sync"

EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2
EXIT_AUTH: Final = 3
EXIT_CONNECT: Final = 4
EXIT_SIGNATURE: Final = 5
EXIT_INTERRUPTED: Final = 130
EXIT_TERMINATED: Final = 143
EXIT_CODES: Final = {
    EXIT_OK: "success",
    EXIT_FAILURE: "other error (for example a missing optional dependency)",
    EXIT_USAGE: "bad arguments, or a request the server refused",
    EXIT_AUTH: "authentication failure (HTTP 401/403)",
    EXIT_CONNECT: "no endpoint reachable, or a REST call failed",
    EXIT_SIGNATURE: "--verify found at least one bad or untrusted signature",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
    EXIT_TERMINATED: "terminated (SIGTERM)",
}

EPILOG: Final = "exit status: " + "; ".join(f"{code} {text}" for code, text in EXIT_CODES.items())
"""The exit statuses, shown under every command's ``--help``."""


class CliError(Exception):
    """An expected failure: printed as one line, ends the command with ``code``."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C, so that a command ends the same
    way (the client closed, ``--stats`` printed) and says which signal it was."""


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, as every other error here.

    argparse's own error prints the whole usage block first; that buries the one
    line that matters, and ``--help`` is there for the rest. Subparsers inherit it.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{PROG}: error: {message} (see '{self.prog} --help')\n")
