"""Exit statuses and the one-line error every expected failure ends with.

A script tests the status; a person reads the line. A traceback means a bug.
"""

from __future__ import annotations

from typing import Final

PROG: Final = "pylazer-sync"

EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2
EXIT_AUTH: Final = 3
EXIT_CONNECT: Final = 4
EXIT_SIGNATURE: Final = 5
EXIT_INTERRUPTED: Final = 130
EXIT_CODES: Final = {
    EXIT_OK: "success",
    EXIT_FAILURE: "other error (for example a missing optional dependency)",
    EXIT_USAGE: "bad arguments, or a request the server refused",
    EXIT_AUTH: "authentication failure (HTTP 401/403)",
    EXIT_CONNECT: "no endpoint reachable, or a REST call failed",
    EXIT_SIGNATURE: "--verify found at least one bad or untrusted signature",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
}

EPILOG: Final = "exit status: " + "; ".join(f"{code} {text}" for code, text in EXIT_CODES.items())
"""The exit statuses, shown under every command's ``--help``."""


class CliError(Exception):
    """An expected failure: printed as one line, ends the command with ``code``."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code
