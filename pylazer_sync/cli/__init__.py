"""The ``pylazer-sync`` command (also ``python -m pylazer_sync``).

One module per command (``stream``, ``record``, ``relay``, ``demo``, ``simulate``, ``symbols``,
``latest``), each with a ``register`` and a ``run`` (see :mod:`.command` for adding one);
the option groups they share are in :mod:`.options`, argument types in :mod:`.argtypes`,
what they print in :mod:`.output`, ``--verify`` in :mod:`.verify`, exit statuses in
:mod:`.exits`. This package is the one place in the library that prints.

Every expected failure ends in one line on standard error, ``pylazer-sync: error: ...``,
and an exit status a script can test (:data:`EXIT_CODES`); a traceback means a bug. The
access token never reaches the output: the library keeps it out of its messages, and
:func:`_scrub` removes it from anything printed here as a second line of defence.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from types import FrameType
from typing import Final

from .. import __version__
from ..config import TOKEN_ENV_VAR, Secret
from ..errors import (
    AuthenticationError,
    ConnectError,
    InvalidRequestError,
    LazerError,
    ProtocolError,
    RestError,
)
from . import demo, history, latest, record, relay, simulate, stream, symbols
from .command import Command, Context, LogGate
from .exits import (
    EPILOG,
    EXIT_AUTH,
    EXIT_CODES,
    EXIT_CONNECT,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    EXIT_USAGE,
    PROG,
    CliError,
    Parser,
    Terminated,
)
from .verify import Verifier

__all__ = ["COMMANDS", "EXIT_CODES", "Verifier", "build_parser", "main"]

COMMANDS: Final[tuple[Command, ...]] = (
    stream.COMMAND,
    record.COMMAND,
    relay.COMMAND,
    demo.COMMAND,
    simulate.COMMAND,
    symbols.COMMAND,
    latest.COMMAND,
    history.COMMAND,
)
"""Every command, in the order ``--help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    """The ``pylazer-sync`` argument parser."""
    parser = Parser(
        prog=PROG,
        description="Stream, verify and record Pyth Lazer (Pyth Pro) prices; or try it all "
        "offline against local simulators with 'pylazer-sync demo'.",
        epilog=EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.register(commands)
    return parser


def _scrub(text: str, token: str | None) -> str:
    text = " ".join(text.split())  # one line, whatever the message held
    return Secret(token).scrub(text) if token else text  # the library's one scrubber


def _error(message: str, token: str | None) -> None:
    print(f"{PROG}: error: {_scrub(message, token)}", file=sys.stderr, flush=True)


def _exit_code(exc: LazerError) -> int:
    if isinstance(exc, AuthenticationError):
        return EXIT_AUTH
    if isinstance(exc, (ConnectError, RestError, ProtocolError)):
        return EXIT_CONNECT
    if isinstance(exc, InvalidRequestError):
        return EXIT_USAGE
    return EXIT_FAILURE


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (see :data:`EXIT_CODES`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    command = next(c for c in COMMANDS if c.name == args.command)
    gate = LogGate(is_open=getattr(args, "log_level", None) is not None)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{PROG}: %(levelname)s: %(message)s"))
    handler.addFilter(gate)
    root = logging.getLogger("pylazer_sync")
    if not command.own_logging:
        root.addHandler(handler)
        root.setLevel(args.log_level or logging.WARNING)
    token = getattr(args, "token", None) or os.environ.get(TOKEN_ENV_VAR)
    # SIGTERM (``kill``, a service manager) ends a command as Ctrl-C does. Handlers can
    # only be set from the main thread; called from another, main() leaves them alone.
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous_sigterm = signal.signal(signal.SIGTERM, _on_sigterm) if in_main_thread else None
    try:
        return command.run(args, Context(gate))
    except Terminated:
        print(f"{PROG}: terminated", file=sys.stderr, flush=True)
        return EXIT_TERMINATED
    except CliError as exc:
        _error(str(exc), token)
        return exc.code
    except LazerError as exc:
        _error(str(exc), token)
        return _exit_code(exc)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (``| head``): not an error worth a traceback.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILURE
    except OSError as exc:  # e.g. a simulator cannot listen: its port is in use
        _error(f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""), token)
        return EXIT_FAILURE
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous_sigterm)
        root.removeHandler(handler)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    # Once: a second SIGTERM while the command winds down ends the process at once.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise Terminated
