"""``pylazer-sync simulate``: run a simulator, exactly as ``python -m pylazer_sync.simulator``."""

from __future__ import annotations

import argparse

from ..errors import MissingDependencyError
from .command import Command, Context, Subcommands


def register(commands: Subcommands) -> None:
    """Add ``simulate`` with the simulator's own options."""
    parser = commands.add_parser(
        "simulate",
        help="run a local Lazer-compatible endpoint",
        description="Run a simulator until Ctrl-C (the same as 'python -m "
        "pylazer_sync.simulator'). It prints its URLs and signer identities.",
    )
    try:
        from ..simulator.__main__ import add_arguments
    except MissingDependencyError:
        pass  # 'simulate' then fails with a clear message when run; --help stays usable
    else:
        add_arguments(parser)


def run(args: argparse.Namespace, ctx: Context) -> int:
    """Serve until Ctrl-C, SIGTERM, end of input or ``quit``."""
    # The simulator's own entry point, so both commands behave alike in every detail.
    from ..simulator.__main__ import serve

    return serve(args)


COMMAND = Command("simulate", register, run, own_logging=True)
